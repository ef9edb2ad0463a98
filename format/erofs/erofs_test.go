package erofs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/ingottest"
)

const buildTime = 1700000000

func dir(p string) File { return File{Path: p, Mode: fs.ModeDir | 0o755, Mtime: buildTime} }

func reg(p string, b []byte) File {
	return File{Path: p, Mode: 0o644, Mtime: buildTime, Size: int64(len(b)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
}

// random is deterministic incompressible data.
func random(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// text is compressible data, lines of numbers.
func text(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %d of a file that compresses well %d\n", i, i*i%977)
	}
	return b.Bytes()[:n]
}

// shapes are the file trees every algorithm is checked on.
func shapes() map[string][]File {
	sparse := make([]byte, 1<<20)
	copy(sparse[len(sparse)-100:], "end of a sparse file")
	mixed := append(random(70000, 7), text(200000)...)
	mixed = append(mixed, random(5000, 8)...)
	deep := []File{dir(".")}
	p := ""
	for i := range 60 {
		p = strings.TrimPrefix(p+"/"+strings.Repeat(string(rune('a'+i%26)), 60), "/")
		deep = append(deep, dir(p))
	}
	deep = append(deep, reg(p+"/leaf", text(5000)))
	big := []File{dir("."), dir("d")}
	for i := range 3000 {
		big = append(big, reg(fmt.Sprintf("d/file-with-a-longish-name-%05d", i), []byte(fmt.Sprint(i))))
	}
	odd := File{Path: "suid", Mode: 0o4755 | fs.ModeSetuid, UID: 70000, GID: 3, Mtime: buildTime + 5}
	odd.Size, odd.Open = reg("", text(9000)).Size, reg("", text(9000)).Open
	// user::rwx user:1000:r-x group::r-x mask::r-x other::r-x (a minimal
	// ACL would be no xattr once extracted)
	acl := "\x02\x00\x00\x00" + "\x01\x00\x07\x00\xff\xff\xff\xff" + "\x02\x00\x05\x00\xe8\x03\x00\x00" +
		"\x04\x00\x05\x00\xff\xff\xff\xff" + "\x10\x00\x05\x00\xff\xff\xff\xff" + "\x20\x00\x05\x00\xff\xff\xff\xff"
	x := dir("x")
	x.Xattrs = map[string]string{"system.posix_acl_default": acl, "system.posix_acl_access": acl}
	capf := reg("x/cap", text(20000))
	capf.Xattrs = map[string]string{"security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "trusted.t": "v", "user.long": strings.Repeat("u", 3000)}
	small := []File{dir("."), dir("s")}
	for i := range 400 {
		small = append(small, reg(fmt.Sprintf("s/%03d", i), text(i*37%6000 + 1)[i%7:]))
	}
	tails := []File{dir(".")}
	for _, n := range []int{1, 100, blkSize - 1, blkSize, blkSize + 1, 3*blkSize + 5, lz4Extent - 1} {
		for k := range 2 {
			b := append(text(k*lz4Extent + 200)[200:], random(n, uint64(n))...)
			tails = append(tails, reg(fmt.Sprintf("t%d-%d", k, n), b))
		}
	}
	tailEnd := text(70000)
	shared := []File{dir("."), reg("a", append(text(lz4Extent), tailEnd...)), reg("b", append(random(2*lz4Extent, 9), tailEnd...)),
		reg("whole", tailEnd), reg("prefix", tailEnd[:1000])}
	return map[string][]File{
		"smallfiles":     small,
		"tails":          tails,
		"sharedtail":     shared,
		"empty":          {dir("."), reg("empty", nil)},
		"tiny":           {dir("."), reg("tiny", []byte("hi\n"))},
		"blocks":         {dir("."), reg("one", text(4096)), reg("oneplus", text(4097)), reg("ext", text(lz4Extent)), reg("extplus", text(zstdExtent+1))},
		"incompressible": {dir("."), reg("rand", random(300000, 1)), reg("rand4k", random(4096, 2))},
		"sparse":         {dir("."), reg("sparse", sparse), reg("zeros", make([]byte, 3<<20))},
		"mixed":          {dir("."), reg("mixed", mixed)},
		"text":           {dir("."), reg("text", text(3<<20+123))},
		"hardlinks": {dir("."), dir("a"), reg("a/f", text(10000)), {Path: "a/g", HardLink: "a/f"},
			{Path: "h", HardLink: "a/f"}, reg("small", []byte("x")), {Path: "small2", HardLink: "small"}},
		"dupes": {dir("."), reg("d1", text(50000)), reg("d2", text(50000)), reg("s1", []byte("same")), reg("s2", []byte("same")),
			reg("p1", random(9000, 3)), reg("p2", random(9000, 3))},
		"names": {dir("."), reg(strings.Repeat("n", 255), []byte("long name")), dir("-dash"), reg(".dot", nil),
			{Path: "link", Mode: fs.ModeSymlink | 0o777, LinkTarget: strings.Repeat("t/", 1500), Mtime: buildTime},
			{Path: "short", Mode: fs.ModeSymlink | 0o777, LinkTarget: "tiny", Mtime: buildTime},
			{Path: "null", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Rdev: 1<<8 | 3, Mtime: buildTime},
			{Path: "fifo", Mode: fs.ModeNamedPipe | 0o600, Mtime: buildTime}, odd},
		"deep":   deep,
		"bigdir": big,
		"xattrs": {dir("."), x, capf},
	}
}

func TestWriteExtract(t *testing.T) {
	for _, c := range []Compression{{}, {Algorithm: LZ4HC}, {Algorithm: Zstd}, {Algorithm: Zstd, Level: 3}} {
		fsck := fsckFor(t, c.Algorithm)
		for name, files := range shapes() {
			t.Run(c.String()+"/"+name, func(t *testing.T) {
				img := writeImage(t, files, Options{BuildTime: buildTime, Compression: c})
				out := filepath.Join(t.TempDir(), "x")
				ingottest.Run(t, fsck, "--extract="+out, img)
				compareTree(t, files, out)
				if name == "xattrs" {
					compareXattrs(t, files, fsck, img)
				}
			})
		}
	}
}

// TestDeterministic checks that the bytes do not depend on the number of
// workers or on the order of the list.
func TestDeterministic(t *testing.T) {
	files := shapes()["mixed"]
	files = append(files, shapes()["dupes"][1:]...)
	files = append(files, shapes()["incompressible"][1:]...)
	c := Compression{Algorithm: LZ4HC}
	a := readFile(t, writeImage(t, files, Options{BuildTime: buildTime, Compression: c, Workers: 1}))
	rev := append([]File{files[0]}, files[1:]...)
	for i, j := 1, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	b := readFile(t, writeImage(t, rev, Options{BuildTime: buildTime, Compression: c, Workers: 4}))
	if !bytes.Equal(a, b) {
		t.Error("images of one tree differ with other worker counts or input order")
	}
}

// TestCompressionSaves checks that compression and deduplication take
// effect: a compressible tree shrinks, duplicates cost nothing.
func TestCompressionSaves(t *testing.T) {
	files := []File{dir("."), reg("a", text(1<<20)), reg("b", text(1<<20))}
	plain := len(readFile(t, writeImage(t, files, Options{BuildTime: buildTime})))
	for _, a := range []Algorithm{LZ4HC, Zstd} {
		got := len(readFile(t, writeImage(t, files, Options{BuildTime: buildTime, Compression: Compression{Algorithm: a}})))
		if got*4 > plain {
			t.Errorf("%v: %d bytes, plain %d: want under a quarter (2 MiB of text, one copy)", a, got, plain)
		}
	}
	// 500 small files of text: fragments pack them into shared
	// pclusters, far below one block each.
	small := []File{dir(".")}
	for i := range 500 {
		small = append(small, reg(fmt.Sprintf("f%03d", i), text(1000 + i*5)[i:]))
	}
	for _, a := range []Algorithm{LZ4HC, Zstd} {
		got := len(readFile(t, writeImage(t, small, Options{BuildTime: buildTime, Compression: Compression{Algorithm: a}})))
		if got > 100*blkSize {
			t.Errorf("%v: 500 small files take %d bytes, want under 100 blocks", a, got)
		}
	}
	if plain > 1<<20+3*blkSize {
		t.Errorf("plain: %d bytes for two identical 1 MiB files", plain)
	}
}

func TestWriteInvalid(t *testing.T) {
	for name, files := range map[string][]File{
		"no root":      {reg("a", nil)},
		"orphan":       {dir("."), reg("a/b", nil)},
		"twice":        {dir("."), reg("a", nil), reg("a", nil)},
		"long name":    {dir("."), reg(strings.Repeat("n", 256), nil)},
		"bad link":     {dir("."), {Path: "l", HardLink: "missing"}},
		"xattr":        {dir("."), {Path: "f", Mode: 0o644, Xattrs: map[string]string{"foo.bar": "x"}}},
		"unclean path": {dir("."), reg("./a", nil)},
		"short read":   {dir("."), {Path: "f", Mode: 0o644, Size: 10, Open: reg("", []byte("abc")).Open}},
	} {
		t.Run(name, func(t *testing.T) {
			var buf writerAt
			_, err := Write(&buf, files, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			if name != "short read" && !errors.Is(err, ErrInvalid) {
				t.Errorf("%v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestParseCompression(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Compression
		err  bool
	}{
		{"none", Compression{}, false},
		{"lz4hc", Compression{LZ4HC, 0}, false},
		{"lz4hc:9", Compression{LZ4HC, 9}, false},
		{"zstd:22", Compression{Zstd, 22}, false},
		{"zstd:23", Compression{}, true},
		{"none:1", Compression{}, true},
		{"lzma", Compression{}, true},
		{"zstd:", Compression{}, true},
	} {
		got, err := ParseCompression(c.in)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("%q: %v, %v", c.in, got, err)
		}
		if !c.err && got.String() != c.in {
			t.Errorf("%q: String %q", c.in, got.String())
		}
	}
}

func FuzzParseCompression(f *testing.F) {
	for _, s := range []string{"none", "lz4hc:9", "zstd:19", "zstd:-1", "x:y:z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCompression(s)
		if err != nil {
			return
		}
		if back, err := ParseCompression(c.String()); err != nil || back != c {
			t.Errorf("%q → %v → %v, %v", s, c, back, err)
		}
	})
}

type writerAt struct{ b []byte }

func (w *writerAt) WriteAt(p []byte, off int64) (int, error) {
	if n := int(off) + len(p); n > len(w.b) {
		w.b = append(w.b, make([]byte, n-len(w.b))...)
	}
	return copy(w.b[off:], p), nil
}

func writeImage(t *testing.T, files []File, o Options) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img.erofs")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, err := Write(f, files, o)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != size {
		t.Fatalf("file has %d bytes, Write says %d (%v)", fi.Size(), size, err)
	}
	return p
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fsckFor returns an fsck.erofs that can check images compressed with a:
// fragments (every compressed image) and zstd need erofs-utils 1.9.4 or
// later (scripts/setup builds it); Debian 12's 1.5 reads neither.
func fsckFor(t *testing.T, a Algorithm) string {
	t.Helper()
	p := ingottest.LookTool(t, "fsck.erofs", "erofs-utils")
	if a == None {
		return p
	}
	out, _ := exec.Command(p, "-V").CombinedOutput()
	m := regexp.MustCompile(`erofs-utils\) (\d+)\.(\d+)`).FindStringSubmatch(string(out))
	var major, minor int
	if m != nil {
		fmt.Sscan(m[1], &major)
		fmt.Sscan(m[2], &minor)
	}
	if major*100+minor < 109 || a == Zstd && !strings.Contains(string(out), "zstd") {
		ingottest.Skip(t, "%s cannot check fragments or zstd (erofs-utils >= 1.9.4 with zstd needed; run scripts/setup)", p)
	}
	return p
}

// compareTree checks the extracted tree at root against files: type,
// permissions, owners, mtime, content, symlink targets, device numbers,
// hard links and xattrs.
func compareTree(t *testing.T, files []File, root string) {
	t.Helper()
	inodes := map[string]uint64{}
	for i := range files {
		f := files[i]
		p := filepath.Join(root, f.Path)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Errorf("%s: %v", f.Path, err)
			continue
		}
		inodes[f.Path] = st.Ino
		if f.HardLink != "" {
			if inodes[f.HardLink] != st.Ino {
				t.Errorf("%s: not a hard link of %s", f.Path, f.HardLink)
			}
			continue
		}
		compareEntry(t, f, p, &st)
	}
}

func compareEntry(t *testing.T, f File, p string, st *unix.Stat_t) {
	t.Helper()
	want, _ := unixMode(f.Mode)
	if uint16(st.Mode) != want || st.Uid != f.UID || st.Gid != f.GID {
		t.Errorf("%s: mode %o uid %d gid %d, want %o %d %d", f.Path, st.Mode, st.Uid, st.Gid, want, f.UID, f.GID)
	}
	if !f.Mode.IsDir() && f.Mode&fs.ModeSymlink == 0 && st.Mtim.Sec != f.Mtime {
		t.Errorf("%s: mtime %d, want %d", f.Path, st.Mtim.Sec, f.Mtime)
	}
	switch {
	case f.Mode.IsRegular():
		got := readFile(t, p)
		wantB, _ := readAll(&f)
		if !bytes.Equal(got, wantB) {
			t.Errorf("%s: content differs (%d bytes, want %d)", f.Path, len(got), len(wantB))
		}
	case f.Mode&fs.ModeSymlink != 0:
		if got, err := os.Readlink(p); err != nil || got != f.LinkTarget {
			t.Errorf("%s: link %q, %v", f.Path, got, err)
		}
	case f.Mode&fs.ModeDevice != 0:
		if uint32(st.Rdev) != f.Rdev {
			t.Errorf("%s: rdev %x, want %x", f.Path, st.Rdev, f.Rdev)
		}
	}

}

// compareXattrs extracts files again with xattrs, as no owner (chown
// would drop security.capability), and checks them.
func compareXattrs(t *testing.T, files []File, fsck, img string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "x")
	ingottest.Run(t, fsck, "--extract="+root, "--xattrs", "--no-preserve-owner", img)
	for _, f := range files {
		for k, v := range f.Xattrs {
			buf := make([]byte, 70000)
			n, err := unix.Lgetxattr(filepath.Join(root, f.Path), k, buf)
			if err != nil || string(buf[:n]) != v {
				t.Errorf("%s: xattr %s: %q, %v", f.Path, k, buf[:max(n, 0)], err)
			}
		}
	}
}
