package fat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testTime is the timestamp of the test volumes.
var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// pattern returns n deterministic pseudo-random bytes.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// tfile is a file of a test volume.
type tfile struct {
	path string
	data []byte
}

// volumeSpec describes a test volume.
type volumeSpec struct {
	name  string
	opts  Options
	files []tfile
	dirs  []string // created with Mkdir
}

// build adds the spec's content to a new Writer.
func (s volumeSpec) build(t *testing.T) *Writer {
	t.Helper()
	w, err := NewWriter(s.opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range s.dirs {
		if err := w.Mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range s.files {
		if err := w.AddFile(f.path, bytes.NewReader(f.data), int64(len(f.data))); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// write builds the spec and writes it to a new image file.
func (s volumeSpec) write(t *testing.T) (string, *Writer) {
	t.Helper()
	w := s.build(t)
	img := filepath.Join(t.TempDir(), "esp.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := w.Write(f); err != nil {
		t.Fatal(err)
	}
	return img, w
}

// paths returns the expected volume paths: files as "a/b", directories
// (including implicit parents) as "a/".
func (s volumeSpec) paths() []string {
	set := map[string]bool{}
	addParents := func(p string) {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			set[d+"/"] = true
		}
	}
	for _, d := range s.dirs {
		set[d+"/"] = true
		addParents(d)
	}
	for _, f := range s.files {
		set[f.path] = true
		addParents(f.path)
	}
	var out []string
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func testSpecs() []volumeSpec {
	var many []tfile
	for i := range 700 {
		many = append(many, tfile{fmt.Sprintf("many/file-%04d.dat", i), pattern(i, i%7)})
	}
	for i := range 40 {
		many = append(many, tfile{fmt.Sprintf("D%02d/X", i), nil})
	}
	long := strings.Repeat("a", 250) + ".conf"
	deep := "d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12/d13/d14/d15/d16"
	return []volumeSpec{{
		name: "esp",
		opts: Options{SizeBytes: 64 << 20, VolumeID: 0xC0FFEE, Time: testTime},
		files: []tfile{
			{"EFI/BOOT/BOOTX64.EFI", pattern(1, 3<<20+77)},
			{"EFI/Linux/ingot_1.0.0+3-0.efi", pattern(2, 70000)},
			{"EFI/Linux/ingot_1.0.0+4-0.efi", pattern(3, 70001)},
			{"loader/loader.conf", []byte("timeout 3\ndefault ingot_*\n")},
			{"loader/entries.srel", []byte("type1\n")},
		},
	}, {
		name: "sizes-4k-clusters",
		opts: Options{SizeBytes: 300 << 20, Label: "sizes", VolumeID: 1, Time: testTime},
		files: []tfile{
			{"zero", nil}, {"one", pattern(4, 1)}, {"s511", pattern(5, 511)},
			{"s512", pattern(6, 512)}, {"s513", pattern(7, 513)}, {"s4095", pattern(8, 4095)},
			{"s4096", pattern(9, 4096)}, {"s4097", pattern(10, 4097)},
			{"sub/big.bin", pattern(11, 5<<20+3)},
		},
	}, {
		name: "names",
		opts: Options{SizeBytes: 40 << 20, Label: "Names 1", Time: testTime},
		files: []tfile{
			{"README", []byte("upper")},
			{"UPPER.TXT", []byte("upper 8.3")},
			{"lower.txt", []byte("lower 8.3")},
			{"Mixed.Txt", []byte("mixed")},
			{"x", []byte("x")},
			{".hidden", []byte("dot")},
			{"my file.txt", []byte("space")},
			{"a.b.c", []byte("dots")},
			{"LONGFI~1.TXT", []byte("literal alias")},
			{"longfilename.txt", []byte("alias 2")},
			{"longfilename2.txt", []byte("alias 3")},
			{"Grüße 日本語.txt", []byte("unicode")},
			// mtools 4.0 cannot decode surrogate pairs: see mtoolsSkip.
			{mtoolsSkip + "emoji 😀.bin", []byte("surrogates")},
			{"thirteen-char", []byte("13 units, no terminator")},
			{"twenty-six-characters.text", []byte("26 units")},
			{"weird+,;=[]chars", []byte("lossy")},
			{long, []byte("255 units")},
			{deep + "/leaf.txt", []byte("deep")},
		},
		dirs: []string{"empty", "EFI/Linux", "d1/d2/other"},
	}, {
		name:  "many-entries",
		opts:  Options{SizeBytes: 64 << 20, Time: testTime},
		files: many,
	}, {
		name: "empty-min-size",
		opts: Options{SizeBytes: MinSize},
	}, {
		name: "full",
		opts: Options{SizeBytes: MinSize, Time: testTime},
		// One cluster for the root directory, all others for the file.
		files: []tfile{{"FILL", pattern(12, (minClusters-1)*512)}},
	}}
}

// TestWriteValidate writes test volumes and checks them with fsck.vfat,
// mtools, the package's reader and raw structure checks.
func TestWriteValidate(t *testing.T) {
	for _, s := range testSpecs() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			img, w := s.write(t)
			st, err := os.Stat(img)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() != s.opts.SizeBytes {
				t.Fatalf("image size %d, want %d", st.Size(), s.opts.SizeBytes)
			}
			checkRaw(t, img, w)
			checkReader(t, img, s)
			fsck(t, img)
			label := s.opts.Label
			if label == "" {
				label = "ESP"
			}
			if got, want := mdirPaths(t, img, strings.ToUpper(label), s.opts.VolumeID), mtoolsPaths(s.paths()); !slices.Equal(got, want) {
				t.Errorf("mdir paths:\n%q\nwant:\n%q", got, want)
			}
			for i, f := range s.files {
				if i >= 25 { // each mtype is a process: sample large volumes
					break
				}
				if strings.HasPrefix(f.path, mtoolsSkip) {
					continue
				}
				if got := mtype(t, img, f.path); !bytes.Equal(got, f.data) {
					t.Errorf("mtype %s: got %d bytes, want %d bytes (equal prefix %v)",
						f.path, len(got), len(f.data), bytes.HasPrefix(f.data, got))
				}
			}
		})
	}
}

// checkReader reads the volume back with Open and compares all paths and
// contents.
func checkReader(t *testing.T, img string, s volumeSpec) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fsys, err := Open(f)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if d.IsDir() {
			p += "/"
		}
		got = append(got, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := s.paths(); !slices.Equal(got, want) {
		t.Errorf("reader paths:\n%q\nwant:\n%q", got, want)
	}
	for _, tf := range s.files {
		data, err := fs.ReadFile(fsys, tf.path)
		if err != nil {
			t.Errorf("read %s: %v", tf.path, err)
		} else if !bytes.Equal(data, tf.data) {
			t.Errorf("read %s: content differs", tf.path)
		}
		if st, err := fs.Stat(fsys, tf.path); err != nil {
			t.Error(err)
		} else if d, tm, _ := dosTime(s.opts.Time); !st.ModTime().Equal(fromDOSTime(d, tm)) {
			t.Errorf("%s: mod time %v, want %v", tf.path, st.ModTime(), s.opts.Time)
		}
	}
}

// checkRaw verifies the on-disk structures that fsck.vfat may not report:
// backups, FSInfo, identical FATs, "." and ".." entries.
func checkRaw(t *testing.T, img string, w *Writer) {
	t.Helper()
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	boot := data[:512]
	if !bytes.Equal(boot, data[6*512:7*512]) || !bytes.Equal(data[512:1024], data[7*512:8*512]) {
		t.Error("boot sector or FSInfo backup differs")
	}
	if string(boot[3:11]) != "INGOT   " || string(boot[82:90]) != "FAT32   " || boot[21] != 0xF8 ||
		boot[510] != 0x55 || boot[511] != 0xAA || le.Uint32(boot[67:]) != w.opts.VolumeID {
		t.Errorf("boot sector fields wrong: % x", boot[:90])
	}
	g := w.geo
	if (reservedSectors+2*g.fatSectors)%g.spc != 0 {
		t.Errorf("data region not cluster-aligned: fat %d spc %d", g.fatSectors, g.spc)
	}
	fatLen := int64(g.fatSectors) * 512
	fat1 := data[g.fatOffset(0) : g.fatOffset(0)+fatLen]
	if !bytes.Equal(fat1, data[g.fatOffset(1):g.fatOffset(1)+fatLen]) {
		t.Error("FATs differ")
	}
	free, first := uint32(0), uint32(0xFFFFFFFF)
	for c := uint32(2); c < g.clusters+2; c++ {
		if le.Uint32(fat1[c*4:]) == 0 {
			free++
			first = min(first, c)
		}
	}
	info := data[512:1024]
	if le.Uint32(info[488:]) != free || le.Uint32(info[492:]) != first {
		t.Errorf("FSInfo free %d next %d, want %d %d", le.Uint32(info[488:]), le.Uint32(info[492:]), free, first)
	}
	if used := int64(g.clusters-free) * g.clusterSize(); used != w.Used() {
		t.Errorf("Used() = %d, FAT says %d", w.Used(), used)
	}
	v, err := openVolume(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var check func(d *entry, parent uint32)
	check = func(d *entry, parent uint32) {
		for _, c := range d.children {
			if !c.dir {
				continue
			}
			e := data[v.clusterOffset(c.cluster):]
			dot, dotdot := e[:32], e[32:64]
			cl := func(b []byte) uint32 { return uint32(le.Uint16(b[20:]))<<16 | uint32(le.Uint16(b[26:])) }
			if string(dot[:11]) != ".          " || cl(dot) != c.cluster || dot[11] != attrDirectory {
				t.Errorf("%s: bad '.' entry % x", c.name, dot)
			}
			if string(dotdot[:11]) != "..         " || cl(dotdot) != parent || dotdot[11] != attrDirectory {
				t.Errorf("%s: bad '..' entry % x, want cluster %d", c.name, dotdot, parent)
			}
			check(c, c.cluster)
		}
	}
	check(v.root, 0)
}

// TestDeterministic checks that the same content gives the same bytes,
// whatever the order of the calls, and that Write can be repeated.
func TestDeterministic(t *testing.T) {
	s := testSpecs()[2]
	img1, w := s.write(t)
	slices.Reverse(s.files)
	slices.Reverse(s.dirs)
	img2, _ := s.write(t)
	b1, _ := os.ReadFile(img1)
	b2, _ := os.ReadFile(img2)
	if !bytes.Equal(b1, b2) {
		t.Fatal("images differ for the same content added in another order")
	}
	img3 := filepath.Join(t.TempDir(), "again.img")
	f, err := os.Create(img3)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := w.Write(f); err != nil {
		t.Fatal(err)
	}
	b3, _ := os.ReadFile(img3)
	if !bytes.Equal(b1, b3) {
		t.Fatal("second Write of the same Writer differs")
	}
}

// recorder is an io.WriterAt over a file that records the written ranges.
type recorder struct {
	f      io.WriterAt
	writes [][2]int64
}

func (r *recorder) WriteAt(p []byte, off int64) (int, error) {
	r.writes = append(r.writes, [2]int64{off, off + int64(len(p))})
	return r.f.WriteAt(p, off)
}

// discard is an io.WriterAt that drops everything.
type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// TestWriteSparseOverGarbage checks that Write touches only metadata, used
// clusters and the last sector, and that the result is valid even if dst
// held other data before.
func TestWriteSparseOverGarbage(t *testing.T) {
	s := testSpecs()[0]
	w := s.build(t)
	img := filepath.Join(t.TempDir(), "garbage.img")
	if err := os.WriteFile(img, bytes.Repeat([]byte{0xF6}, int(s.opts.SizeBytes)), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := &recorder{f: f}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	usedEnd := w.geo.clusterOffset(rootCluster) + w.Used()
	last := s.opts.SizeBytes - 512
	for _, r := range rec.writes {
		if r[1] > usedEnd && r != [2]int64{last, last + 512} {
			t.Errorf("write [%d, %d) beyond the used clusters (end %d)", r[0], r[1], usedEnd)
		}
	}
	checkReader(t, img, s)
	fsck(t, img)
}

// TestGeometry checks the computed layout over the supported size range.
func TestGeometry(t *testing.T) {
	tests := []struct {
		size int64
		spc  uint32
	}{
		{MinSize, 1},
		{64 << 20, 1},
		{532480 * 512, 1},
		{532480*512 + 512, 8},
		{512 << 20, 8},
		{8 << 30, 8},
		{16 << 30, 16},
		{32 << 30, 32},
		{1 << 40, 64},
		{MaxSize, 64},
	}
	for _, tt := range tests {
		g, err := newGeometry(tt.size)
		if err != nil {
			t.Errorf("size %d: %v", tt.size, err)
			continue
		}
		meta := uint64(reservedSectors) + 2*uint64(g.fatSectors)
		switch {
		case g.spc != tt.spc:
			t.Errorf("size %d: %d sectors per cluster, want %d", tt.size, g.spc, tt.spc)
		case g.clusters < minClusters:
			t.Errorf("size %d: only %d clusters", tt.size, g.clusters)
		case (uint64(g.clusters)+2)*4 > uint64(g.fatSectors)*512:
			t.Errorf("size %d: FAT of %d sectors too small for %d clusters", tt.size, g.fatSectors, g.clusters)
		case meta+uint64(g.clusters)*uint64(g.spc) > uint64(g.totalSectors):
			t.Errorf("size %d: clusters exceed the volume", tt.size)
		case meta%uint64(g.spc) != 0:
			t.Errorf("size %d: data region not aligned", tt.size)
		case (uint64(g.clusters)+2)*4+uint64(g.spc)*512*2 < uint64(g.fatSectors)*512:
			t.Errorf("size %d: FAT of %d sectors larger than needed for %d clusters", tt.size, g.fatSectors, g.clusters)
		}
	}
	if g, _ := newGeometry(MinSize); g.clusters != minClusters {
		t.Errorf("MinSize gives %d clusters, want %d", g.clusters, minClusters)
	}
}

func TestNewWriterErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"zero size", Options{}, "too small for FAT32"},
		{"too small", Options{SizeBytes: MinSize - 512}, "too small for FAT32: minimum is 34089472 bytes"},
		{"16 MiB", Options{SizeBytes: 16 << 20}, "too small"},
		{"not sector multiple", Options{SizeBytes: 64<<20 + 1}, "not a multiple of 512"},
		{"too large", Options{SizeBytes: MaxSize + 512}, "too large"},
		{"label too long", Options{SizeBytes: MinSize, Label: "ABCDEFGHIJKL"}, "longer than 11"},
		{"label char", Options{SizeBytes: MinSize, Label: "A.B"}, "invalid character"},
		{"label space", Options{SizeBytes: MinSize, Label: " A"}, "starts with a space"},
	}
	for _, tt := range tests {
		_, err := NewWriter(tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestAddErrors(t *testing.T) {
	tests := []struct {
		name string
		op   func(w *Writer) error
		want string
	}{
		{"empty path", func(w *Writer) error { return w.AddFile("", nil, 0) }, "empty path"},
		{"dot path", func(w *Writer) error { return w.Mkdir(".") }, "empty path"},
		{"empty dir", func(w *Writer) error { return w.Mkdir("") }, "empty path"},
		{"dotdot", func(w *Writer) error { return w.AddFile("..", nil, 0) }, "invalid path"},
		{"dotdot inside", func(w *Writer) error { return w.AddFile("a/../b", nil, 0) }, "invalid path"},
		{"absolute", func(w *Writer) error { return w.AddFile("/EFI/x", nil, 0) }, "invalid path"},
		{"double slash", func(w *Writer) error { return w.Mkdir("a//b") }, "invalid path"},
		{"trailing slash", func(w *Writer) error { return w.Mkdir("a/") }, "invalid path"},
		{"too long", func(w *Writer) error { return w.AddFile(strings.Repeat("x", 256), nil, 0) }, "too long"},
		{"too long utf16", func(w *Writer) error { return w.Mkdir(strings.Repeat("😀", 128)) }, "too long"},
		{"star", func(w *Writer) error { return w.AddFile("a*b", nil, 0) }, "invalid character"},
		{"backslash", func(w *Writer) error { return w.AddFile(`a\b`, nil, 0) }, "invalid character"},
		{"control", func(w *Writer) error { return w.AddFile("a\tb", nil, 0) }, "invalid character"},
		{"trailing dot", func(w *Writer) error { return w.AddFile("a.", nil, 0) }, "ends with a dot"},
		{"trailing space", func(w *Writer) error { return w.Mkdir("a ") }, "ends with a dot or space"},
		{"bad utf8", func(w *Writer) error { return w.AddFile("a\xffb", nil, 0) }, "not valid UTF-8"},
		{"negative size", func(w *Writer) error { return w.AddFile("a", nil, -1) }, "out of range"},
		{"too big", func(w *Writer) error { return w.AddFile("a", bytes.NewReader(nil), 1<<32) }, "out of range"},
		{"nil reader", func(w *Writer) error { return w.AddFile("a", nil, 1) }, "nil reader"},
		{"duplicate", func(w *Writer) error {
			w.AddFile("EFI/BOOT/x.efi", nil, 0)
			return w.AddFile("EFI/BOOT/x.efi", nil, 0)
		}, "already exists"},
		{"case duplicate", func(w *Writer) error {
			w.AddFile("EFI/BOOT/BOOTX64.EFI", nil, 0)
			return w.AddFile("efi/boot/bootx64.efi", nil, 0)
		}, `"BOOTX64.EFI" already exists`},
		{"file over dir", func(w *Writer) error {
			w.Mkdir("EFI")
			return w.AddFile("efi", nil, 0)
		}, "already exists"},
		{"dir under file", func(w *Writer) error {
			w.AddFile("f", nil, 0)
			return w.Mkdir("f/sub")
		}, `"f" is a file`},
		{"file under file", func(w *Writer) error {
			w.AddFile("f", nil, 0)
			return w.AddFile("F/x", nil, 0)
		}, `"f" is a file`},
	}
	for _, tt := range tests {
		w, err := NewWriter(Options{SizeBytes: MinSize})
		if err != nil {
			t.Fatal(err)
		}
		err = tt.op(w)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
	w, _ := NewWriter(Options{SizeBytes: MinSize})
	if err := w.Mkdir("EFI/BOOT"); err != nil {
		t.Fatal(err)
	}
	if err := w.Mkdir("efi/boot"); err != nil {
		t.Errorf("Mkdir of an existing directory: %v", err)
	}
}

func TestNoSpace(t *testing.T) {
	w, err := NewWriter(Options{SizeBytes: MinSize})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddFile("a", bytes.NewReader(nil), w.Capacity()); err != nil { // plus the root directory
		t.Fatal(err)
	}
	if w.Used() <= w.Capacity() {
		t.Fatalf("Used() = %d, Capacity() = %d", w.Used(), w.Capacity())
	}
	rec := &recorder{f: discard{}}
	err = w.Write(rec)
	want := fmt.Sprintf("need %d bytes (65526 clusters of 512 bytes), have %d bytes", w.Used(), w.Capacity())
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want ErrNoSpace with %q", err, want)
	}
	if len(rec.writes) != 0 {
		t.Fatalf("%d writes before the space check failed", len(rec.writes))
	}
}

// TestTooManyEntries checks the limit of 65536 entries per directory.
func TestTooManyEntries(t *testing.T) {
	w, err := NewWriter(Options{SizeBytes: MinSize})
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxDirEntries - 2 { // plus "." and ".."
		if err := w.AddFile(fmt.Sprintf("D/F%05X", i), nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write(discard{}); err != nil {
		t.Fatalf("full directory: %v", err)
	}
	if err := w.AddFile("D/ONE.MOR", nil, 0); err != nil {
		t.Fatal(err)
	}
	err = w.Write(&recorder{f: discard{}})
	if err == nil || !strings.Contains(err.Error(), `directory "D": 65537 entries exceed the maximum of 65536`) {
		t.Fatalf("error %v", err)
	}
}

// TestShortReader checks that a source with fewer bytes than announced
// fails the write.
func TestShortReader(t *testing.T) {
	w, err := NewWriter(Options{SizeBytes: MinSize})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddFile("EFI/x", strings.NewReader("short"), 1000); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = w.Write(f)
	if err == nil || !strings.Contains(err.Error(), `file "EFI/x": read at 5 of 1000 bytes: unexpected EOF`) {
		t.Fatalf("error %v", err)
	}
}

func TestShortNames(t *testing.T) {
	names := []struct {
		name  string
		short string
		lfn   bool
	}{
		{"BOOTX64.EFI", "BOOTX64 EFI", false},
		{"README", "README     ", false},
		{"A~1", "A~1        ", false},
		{"loader", "LOADER     ", true},
		{"loader.conf", "LOADER~1CON", true},
		{"Mixed.Txt", "MIXED   TXT", true},
		{"ingot_1.0.0+3-0.efi", "INGOT_~1EFI", true},
		{"ingot_1.0.0+4-0.efi", "INGOT_~2EFI", true},
		{"LONGFI~1.TXT", "LONGFI~1TXT", false},
		{"longfilename.txt", "LONGFI~2TXT", true},
		{".hidden", "HIDDEN~1   ", true},
		{"my file.txt", "MYFILE~1TXT", true},
		{"a.b.c", "AB~1    C  ", true},
		{"Grüße.txt", "GR__E~1 TXT", true},
		{"+", "_~1        ", true},
		{"EFI.TXT.GZ", "EFITXT~1GZ ", true},
	}
	d := &node{dir: true, children: map[string]*node{}}
	for _, n := range names {
		c := &node{name: n.name, parent: d}
		d.children[strings.ToUpper(n.name)] = c
		d.sorted = append(d.sorted, c)
	}
	slices.SortFunc(d.sorted, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	if err := assignShortNames(d); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		c := d.children[strings.ToUpper(n.name)]
		if string(c.short[:]) != n.short || c.lfn != n.lfn {
			t.Errorf("%q: short %q lfn %v, want %q %v", n.name, c.short[:], c.lfn, n.short, n.lfn)
		}
		if want := 0; !n.lfn && lfnCount(n.name) != want {
			t.Errorf("%q: lfnCount %d, want 0", n.name, lfnCount(n.name))
		}
	}
}

func TestDOSTime(t *testing.T) {
	tests := []struct {
		in, want time.Time
	}{
		{time.Time{}, time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(2024, 5, 6, 7, 8, 9, 500, time.FixedZone("X", 3600)), time.Date(2024, 5, 6, 6, 8, 8, 0, time.UTC)},
		{time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)},
	}
	for _, tt := range tests {
		d, tm, _ := dosTime(tt.in)
		if got := fromDOSTime(d, tm); !got.Equal(tt.want) {
			t.Errorf("%v: got %v, want %v", tt.in, got, tt.want)
		}
	}
}
