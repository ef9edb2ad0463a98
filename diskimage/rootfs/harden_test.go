package rootfs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	erofs "github.com/erofs/go-erofs"
	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/ingottest"
)

type tarFile struct {
	hdr  tar.Header
	data string
}

func reg(name, data string) tarFile {
	return tarFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, data: data}
}

func sym(name, target string) tarFile {
	return tarFile{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target}}
}

func dev(name string, major, minor int64) tarFile {
	return tarFile{hdr: tar.Header{Typeflag: tar.TypeChar, Name: name, Mode: 0o600, Devmajor: major, Devminor: minor}}
}

func withXattrs(f tarFile, kv ...string) tarFile {
	f.hdr.PAXRecords = map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		f.hdr.PAXRecords["SCHILY.xattr."+kv[i]] = kv[i+1]
	}
	return f
}

// makeTar returns a PAX tarball of files, gzipped if gz.
func makeTar(t testing.TB, gz bool, files ...tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, f := range files {
		h := f.hdr
		h.Format = tar.FormatPAX
		h.Size = int64(len(f.data))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// loadFile writes data to a file and loads it with Load, so the content
// bound is the default one for its size; tmp must be empty afterwards.
func loadFile(t *testing.T, data []byte) (*Tree, error) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	tr, err := Load(src, Options{TempDir: tmp})
	if err != nil {
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("a failed load left %v", left)
		}
		return nil, err
	}
	t.Cleanup(func() { tr.Close() })
	return tr, nil
}

func TestHarden11LimitsRefused(t *testing.T) {
	long := strings.Repeat("n", 256)
	deep := strings.Repeat(strings.Repeat("d", 200)+"/", 21) + "f"
	manyNames := []string{}
	for i := range 300 {
		manyNames = append(manyNames, fmt.Sprintf("user.%0240d", i), "v")
	}
	tests := []struct {
		name string
		file tarFile
		want string // in the error, besides the path
	}{
		{"name of 256 bytes", reg("usr/lib/"+long, "x"), "is 256 bytes, more than 255"},
		{"name of a directory", reg("usr/"+long+"/f", "x"), "more than 255"},
		{"path beyond PATH_MAX", reg("usr/"+deep, "x"), "more than 4095"},
		{"symlink target beyond PATH_MAX", sym("usr/l", strings.Repeat("t", 4096)), "symlink target is 4096 bytes"},
		{"empty symlink target", sym("usr/l", ""), "symlink target is 0 bytes"},
		{"uid -1", tarFile{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "usr/d", Uid: 1<<32 - 1}}, "owner 4294967295:0"},
		{"gid beyond 32 bits", tarFile{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "usr/d", Gid: 1 << 32}}, "owner 0:4294967296"},
		{"device major beyond 12 bits", dev("usr/dev", 4096, 0), "device 4096:0"},
		{"device minor beyond 20 bits", dev("usr/dev", 1, 1<<20), "device 1:1048576"},
		{"xattr outside the kernel's namespaces", withXattrs(reg("usr/f", "x"), "foo.bar", "v"), `"foo.bar" is not in a namespace`},
		{"system xattr other than a POSIX ACL", withXattrs(reg("usr/f", "x"), "system.foo", "v"), `"system.foo" is not in a namespace`},
		{"xattr without a name", withXattrs(reg("usr/f", "x"), "user.", "v"), "not in a namespace"},
		{"xattr name beyond 255", withXattrs(reg("usr/f", "x"), "user."+long, "v"), "more than 255"},
		{"xattr value beyond 16 bits", withXattrs(reg("usr/f", "x"), "user.big", strings.Repeat("v", 1<<16)), "xattr user.big is 65536 bytes"},
		{"xattr names beyond XATTR_LIST_MAX", withXattrs(reg("usr/f", "x"), manyNames...), "bytes of names"},
	}
	for _, tc := range tests {
		for _, gz := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/gzip=%v", tc.name, gz), func(t *testing.T) {
				data := makeTar(t, gz, tarFile{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "usr/", Mode: 0o755}}, tc.file)
				_, err := loadFile(t, data)
				p := "/" + Clean(tc.file.hdr.Name)
				if err == nil || !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), p+": ") || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v\nwant ErrLimit naming %.40s… and saying %q", err, p, tc.want)
				}
			})
		}
	}
}

// TestHarden11LimitsDirectory crafts what a directory can hold beyond the
// limits: a path longer than PATH_MAX, a POSIX ACL.
func TestHarden11LimitsDirectory(t *testing.T) {
	t.Run("path beyond PATH_MAX", func(t *testing.T) {
		root := t.TempDir()
		fd, err := unix.Open(root, unix.O_DIRECTORY|unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		for range 21 { // relative to a descriptor: no PATH_MAX
			name := strings.Repeat("d", 200)
			err := unix.Mkdirat(fd, name, 0o755)
			next, err2 := unix.Openat(fd, name, unix.O_DIRECTORY|unix.O_RDONLY, 0)
			unix.Close(fd)
			if err := errors.Join(err, err2); err != nil {
				t.Fatal(err)
			}
			fd = next
		}
		unix.Close(fd)
		// The walk itself meets the limit, as ENAMETOOLONG.
		_, err = LoadDir(root, Options{})
		if err == nil || !(errors.Is(err, ErrLimit) || errors.Is(err, unix.ENAMETOOLONG)) || !strings.Contains(err.Error(), "/dddd") {
			t.Fatalf("error %v, want one naming the path", err)
		}
	})
	t.Run("POSIX ACL", func(t *testing.T) {
		root := t.TempDir()
		f := filepath.Join(root, "usr/f")
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		// user::rw-, user:1000:r--, group::r--, mask::r--, other::r--
		acl := []byte{2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 2, 0, 4, 0, 0xe8, 3, 0, 0,
			4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, 0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff}
		if err := unix.Setxattr(f, "system.posix_acl_access", acl, 0); err != nil {
			ingottest.Skip(t, "no POSIX ACLs here: %v", err)
		}
		// Kept: EROFS stores POSIX ACLs (Debian's /var/log/journal has one).
		tr, err := LoadDir(root, Options{})
		if err != nil {
			t.Fatalf("a POSIX ACL was refused: %v", err)
		}
		defer tr.Close()
		fi, err := fs.Stat(writeAndCheck(t, tr), "f")
		if err != nil {
			t.Fatal(err)
		}
		// go-erofs reads prefix index 2 (the kernel's POSIX ACL access
		// index) back as "system.posix_acl_access." with an empty suffix.
		if got := fi.Sys().(*erofs.Stat).Xattrs["system.posix_acl_access."]; got != string(acl) {
			t.Errorf("the ACL did not land under EROFS's ACL index: %q", fi.Sys().(*erofs.Stat).Xattrs)
		}
	})
}

// TestHarden11LimitsRoundTrip writes a tree at every limit the loader lets
// through and checks it with fsck.erofs and go-erofs's reader: what is not
// refused is written correctly.
func TestHarden11LimitsRoundTrip(t *testing.T) {
	name255 := strings.Repeat("n", 255)
	deep := "usr/" + strings.Repeat(strings.Repeat("d", 250)+"/", 16) + strings.Repeat("p", MaxPathBytes-1-4-251*16)
	files := []tarFile{
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "usr/", Mode: 0o755}},
		reg("usr/"+name255, "name"),
		reg(deep, "deep"),
		sym("usr/longlink", strings.Repeat("t", 4095)),
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/owned", Mode: 0o6755, Uid: MaxID, Gid: 70000}, data: "o"},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "usr/sticky/", Mode: 0o1777}},
		dev("usr/dev", MaxDevMajor, MaxDevMinor),
		withXattrs(reg("usr/x", "x"), "user.big", strings.Repeat("v", MaxXattrValueBytes),
			"security.capability", "\x01\x00\x00\x02", "trusted.t", "t", "user."+strings.Repeat("u", 250), "u"),
	}
	tr, err := LoadTar(bytes.NewReader(makeTar(t, false, files...)), Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	const subdirs = 1<<16 + 2 // nlink of usr/many beyond a compact inode's 16 bits
	for i := range subdirs {
		tr.Mkdir(fmt.Sprintf("usr/many/%d", i), 0o755, 0)
	}
	fsys := writeAndCheck(t, tr)
	stat := func(p string) *erofs.Stat {
		fi, err := fs.Stat(fsys, p)
		if err != nil {
			t.Fatalf("stat %.40s…: %v", p, err)
		}
		return fi.Sys().(*erofs.Stat)
	}
	if b, err := fs.ReadFile(fsys, name255); err != nil || string(b) != "name" {
		t.Errorf("255-byte name: %q, %v", b, err)
	}
	if b, err := fs.ReadFile(fsys, strings.TrimPrefix(deep, "usr/")); err != nil || string(b) != "deep" {
		t.Errorf("4095-byte path: %q, %v", b, err)
	}
	if target, err := fsys.(interface{ ReadLink(string) (string, error) }).ReadLink("longlink"); err != nil || len(target) != 4095 {
		t.Errorf("4095-byte symlink: %d bytes, %v", len(target), err)
	}
	if st := stat("owned"); st.UID != MaxID || st.GID != 70000 || st.Mode&(fs.ModeSetuid|fs.ModeSetgid) != fs.ModeSetuid|fs.ModeSetgid {
		t.Errorf("owned: %d:%d %v", st.UID, st.GID, st.Mode)
	}
	if st := stat("sticky"); st.Mode&fs.ModeSticky == 0 {
		t.Errorf("sticky: %v", st.Mode)
	}
	if st := stat("dev"); st.Rdev != uint32(unix.Mkdev(MaxDevMajor, MaxDevMinor)) {
		t.Errorf("device %#x, want %d:%d", st.Rdev, MaxDevMajor, MaxDevMinor)
	}
	if st := stat("x"); len(st.Xattrs["user.big"]) != MaxXattrValueBytes || len(st.Xattrs) != 4 {
		t.Errorf("xattrs: %d of them, user.big %d bytes", len(st.Xattrs), len(st.Xattrs["user.big"]))
	}
	if st := stat("many"); st.Nlink != subdirs+2 {
		t.Errorf("nlink of a directory with %d subdirectories: %d", subdirs, st.Nlink)
	}
}

// writeAndCheck writes the tree's /usr, checks it with fsck.erofs and
// returns it opened with go-erofs.
func writeAndCheck(t *testing.T, tr *Tree) fs.FS {
	t.Helper()
	p := filepath.Join(t.TempDir(), "usr.erofs")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := tr.WriteEROFS(f, "usr", 1700000000, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	ingottest.FsckErofs(t, p)
	fsys, err := erofs.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

func TestHarden11LimitsTooManyBlocks(t *testing.T) {
	tr := New()
	tr.Put(&Entry{Path: "usr/huge", Size: 1 << 44, Open: bytesOpener(nil)})
	if err := tr.Check(); !errors.Is(err, ErrLimit) {
		t.Errorf("a 16 TiB file: %v, want ErrLimit", err)
	}
}

// stat returns go-erofs's stat of p, failing the test if it is missing.
func stat(t *testing.T, fsys fs.FS, p string) *erofs.Stat {
	t.Helper()
	fi, err := fs.Lstat(fsys, p)
	if err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	return fi.Sys().(*erofs.Stat)
}

// checkLinked checks that names are one inode with len(names) links and
// the content want.
func checkLinked(t *testing.T, fsys fs.FS, want string, names ...string) {
	t.Helper()
	first := stat(t, fsys, names[0])
	for _, n := range names {
		st := stat(t, fsys, n)
		if st.Ino != first.Ino || st.Nlink != len(names) {
			t.Errorf("%s: inode %d nlink %d, want inode %d (of %s) nlink %d", n, st.Ino, st.Nlink, first.Ino, names[0], len(names))
		}
		if st.Mode.IsRegular() {
			if b, err := fs.ReadFile(fsys, n); err != nil || string(b) != want {
				t.Errorf("%s: %d bytes, %v", n, len(b), err)
			}
		}
	}
}

func imageBytes(t *testing.T, tr *Tree) int64 {
	t.Helper()
	p := filepath.Join(t.TempDir(), "usr.erofs")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tr.WriteEROFS(f, "usr", 1700000000, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	return fi.Size()
}

func TestHarden14HardLinksTarball(t *testing.T) {
	content := strings.Repeat("0123456789abcdef", 4096) // 64 KiB
	link := func(name, target string) tarFile {
		return tarFile{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target}}
	}
	one := []tarFile{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/bin/a", Mode: 0o4755, Uid: 7}, data: content}}
	linked := append(one, link("usr/bin/b", "usr/bin/a"), link("usr/lib/c", "./usr/bin/a"),
		sym("usr/s", "bin/a"), link("usr/s2", "usr/s"), dev("usr/null", 1, 3), link("usr/null2", "usr/null"))
	tr, err := loadFile(t, makeTar(t, true, linked...))
	if err != nil {
		t.Fatal(err)
	}
	fsys := writeAndCheck(t, tr)
	checkLinked(t, fsys, content, "bin/a", "bin/b", "lib/c")
	checkLinked(t, fsys, "", "s", "s2")
	checkLinked(t, fsys, "", "null", "null2")
	if st := stat(t, fsys, "lib/c"); st.UID != 7 || st.Mode&fs.ModeSetuid == 0 {
		t.Errorf("a hard link lost its inode's metadata: %d %v", st.UID, st.Mode)
	}

	single, err := LoadTar(bytes.NewReader(makeTar(t, false, one...)), Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	if grown := imageBytes(t, tr) - imageBytes(t, single); grown >= int64(len(content)) {
		t.Errorf("six more names grew the image by %d bytes: a copy of the content", grown)
	}

	// A name whose metadata the image stage changed is a file of its own.
	tr.Lookup("usr/lib/c").Mode = 0o600
	fsys = writeAndCheck(t, tr)
	checkLinked(t, fsys, content, "bin/a", "bin/b")
	checkLinked(t, fsys, content, "lib/c")
}

func TestHarden14HardLinksDirectory(t *testing.T) {
	root := t.TempDir()
	content := strings.Repeat("x", 10000)
	for _, d := range []string{"usr/bin", "usr/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	a := filepath.Join(root, "usr/bin/a")
	if err := os.WriteFile(a, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"usr/bin/b", "usr/lib/c"} {
		if err := os.Link(a, filepath.Join(root, n)); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := LoadDir(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkLinked(t, writeAndCheck(t, tr), content, "bin/a", "bin/b", "lib/c")
}

// sparseTar returns a tar.gz holding usr/sparse, a file of realBytes with
// 4 KiB of data at its end, in the PAX (GNU 1.0) or old GNU sparse format,
// which archive/tar reads but cannot write.
func sparseTar(t *testing.T, realBytes int64, pax bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	data := strings.Repeat("s", 4096)
	if pax {
		rec := ""
		for _, kv := range []string{"GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.name=usr/sparse",
			fmt.Sprintf("GNU.sparse.realsize=%d", realBytes)} {
			n := len(kv) + 3
			for len(fmt.Sprintf("%d %s\n", n, kv)) != n {
				n++
			}
			rec += fmt.Sprintf("%d %s\n", n, kv)
		}
		buf.Write(rawHeader("usr/PaxHeaders/sparse", 'x', int64(len(rec)), nil))
		buf.Write(pad512(rec))
		sparseMap := pad512(fmt.Sprintf("1\n%d\n%d\n", realBytes-4096, 4096))
		buf.Write(rawHeader("usr/GNUSparseFile.0/sparse", '0', int64(len(sparseMap)+len(data)), nil))
		buf.Write(sparseMap)
	} else {
		buf.Write(rawHeader("usr/sparse", 'S', int64(len(data)), func(h []byte) {
			copy(h[257:], "ustar  \x00")
			copy(h[386:], fmt.Sprintf("%011o\x00%011o\x00", realBytes-4096, 4096))
			copy(h[483:], fmt.Sprintf("%011o\x00", realBytes))
		}))
	}
	buf.Write(pad512(data))
	buf.Write(make([]byte, 1024))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(buf.Bytes())
	zw.Close()
	return gz.Bytes()
}

// rawHeader is a tar header block; more fills in format-specific fields
// before the checksum.
func rawHeader(name string, typ byte, size int64, more func([]byte)) []byte {
	h := make([]byte, 512)
	copy(h, name)
	copy(h[100:], "0000644\x00")
	copy(h[108:], "0000000\x000000000\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00", size))
	copy(h[136:], "00000000000\x00")
	h[156] = typ
	copy(h[257:], "ustar\x0000")
	if more != nil {
		more(h)
	}
	copy(h[148:], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	return h
}

func pad512(s string) []byte {
	b := []byte(s)
	return append(b, make([]byte, (512-len(b)%512)%512)...)
}

func TestHarden14SparseTarball(t *testing.T) {
	for _, pax := range []bool{true, false} {
		t.Run(fmt.Sprintf("pax=%v", pax), func(t *testing.T) {
			data := sparseTar(t, 5<<30, pax)
			_, err := loadFile(t, data)
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "/usr/sparse: its 5368709120 bytes") ||
				!strings.Contains(err.Error(), fmt.Sprint(ContentBound(int64(len(data))))) {
				t.Fatalf("a 5 GiB sparse file in a %d-byte tar.gz: %v, want ErrTooLarge naming it and the bound", len(data), err)
			}
			// Within the bound, a sparse file is read expanded.
			tr, err := LoadTar(bytes.NewReader(sparseTar(t, 1<<20, pax)), Options{TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if b, err := tr.ReadFile("usr/sparse"); err != nil || len(b) != 1<<20 || b[len(b)-1] != 's' || b[0] != 0 {
				t.Errorf("a 1 MiB sparse file: %d bytes, %v", len(b), err)
			}
		})
	}
}

func TestHarden14CompressionBomb(t *testing.T) {
	zeros := strings.Repeat("\x00", 8<<20)
	data := makeTar(t, true, reg("usr/a", "a"), reg("usr/zeros", zeros))
	_, err := LoadTar(bytes.NewReader(data), Options{TempDir: t.TempDir(), MaxContentBytes: 4 << 20})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "/usr/zeros: its 8388608 bytes take the root filesystem's content to 8388609 bytes, past 4194304") {
		t.Fatalf("8 MiB of zeros in a %d-byte tar.gz, bound 4 MiB: %v", len(data), err)
	}
	tr, err := LoadTar(bytes.NewReader(data), Options{TempDir: t.TempDir(), MaxContentBytes: 16 << 20})
	if err != nil {
		t.Fatalf("a raised bound: %v", err)
	}
	tr.Close()
	if got := ContentBound(int64(len(data))); got != MinContentBytes {
		t.Errorf("ContentBound(%d) = %d, want the minimum", len(data), got)
	}
	if got := ContentBound(1 << 30); got != 100<<30 {
		t.Errorf("ContentBound(1 GiB) = %d, want 100 GiB", got)
	}
}

func TestHarden14SparseDirectory(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "small"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(root, "small"), 5<<30); err != nil {
		t.Fatal(err)
	}
	_, err := LoadDir(root, Options{})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "/small: its 5368709120 bytes") {
		t.Fatalf("a 5 GiB sparse file: %v, want ErrTooLarge naming it", err)
	}
	if _, err := LoadDir(root, Options{MaxContentBytes: 6 << 30}); err != nil {
		t.Errorf("a raised bound: %v", err)
	}
}
