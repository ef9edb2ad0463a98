package fat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// memAt is a growing in-memory io.WriterAt.
type memAt struct{ b []byte }

func (m *memAt) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

// tinyFiles is the content of tinyImage.
var tinyFiles = []tfile{
	{"EFI/BOOT/BOOTX64.EFI", pattern(20, 1100)},
	{"EFI/Linux/ingot_1.0.0+3-0.efi", pattern(21, 300)},
	{"loader/loader.conf", []byte("timeout 3\n")},
	{"a/b/Long Name.txt", []byte("long")},
	{"empty", nil},
}

// tinyWriter returns a Writer of tinyFiles for a volume that is far too
// small to be FAT32 by the specification (32 clusters of 512 bytes) but has
// the same structure. It keeps corruption tests and fuzz inputs small.
func tinyWriter(t testing.TB) *Writer {
	t.Helper()
	w, err := NewWriter(Options{SizeBytes: MinSize, Label: "TINY", VolumeID: 7, Time: testTime})
	if err != nil {
		t.Fatal(err)
	}
	w.geo = geometry{totalSectors: reservedSectors + 2 + 32, spc: 1, fatSectors: 1, clusters: 32}
	w.opts.SizeBytes = int64(w.geo.totalSectors) * sectorSize
	for _, f := range tinyFiles {
		if err := w.AddFile(f.path, bytes.NewReader(f.data), int64(len(f.data))); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// tinyImage returns the volume written by tinyWriter.
func tinyImage(t testing.TB) []byte {
	t.Helper()
	var m memAt
	if err := tinyWriter(t).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.b
}

// TestReaderFSTest runs the standard fs.FS conformance tests on a volume.
func TestReaderFSTest(t *testing.T) {
	s := testSpecs()[2] // names
	img, _ := s.write(t)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fsys, err := Open(f)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, tf := range s.files {
		want = append(want, tf.path)
	}
	if err := fstest.TestFS(fsys, want...); err != nil {
		t.Fatal(err)
	}
}

func TestReaderLookup(t *testing.T) {
	fsys, err := Open(bytes.NewReader(tinyImage(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"efi/boot/bootx64.efi", "EFI/LINUX/INGOT_1.0.0+3-0.EFI", "A/B/long name.TXT"} {
		if _, err := fs.Stat(fsys, name); err != nil {
			t.Errorf("case-insensitive lookup: %v", err)
		}
	}
	for _, name := range []string{"EFI/BOOT/BOOTX64.EFI/x", "missing", "EFI/INGOT_~1.EFI"} {
		if _, err := fsys.Open(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("open %q: %v, want ErrNotExist", name, err)
		}
	}
}

// TestReaderForeignFAT12And16 reads FAT12 and FAT16 volumes as mkfs.fat
// makes them by default for small disks (a NoCloud seed, a USB stick):
// files in the fixed root directory and in a subdirectory, long names,
// and a file whose cluster chain crosses FAT sectors (and, on FAT12,
// entries that straddle two sectors).
func TestReaderForeignFAT12And16(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string // mkfs.fat's, before the size in 1 KiB blocks
	}{
		{"FAT12 default", []string{"1440"}},
		{"FAT12 forced, near the cluster limit", []string{"-F", "12", "-s", "4", "8000"}},
		{"FAT16 default", []string{"65536"}},
		{"FAT16 forced, 1 sector per cluster", []string{"-F", "16", "-s", "1", "20000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "v.img")
			args := append([]string{"-n", "CIDATA", "-C", img}, tc.flags...)
			out := run(t, "mkfs.fat", append([]string{"-v"}, args...)...)
			files := map[string][]byte{
				"user-data":             []byte("#cloud-config\nhostname: a\n"),
				"meta-data":             []byte("instance-id: i-1\n"),
				"sub/Long name.txt":     []byte("long"),
				"sub/deeper/chain.bin":  pattern(7, 300<<10),
				"a-much-longer-name.md": pattern(8, 5000),
			}
			run(t, "mmd", "-i", img, "::sub", "::sub/deeper")
			for name, data := range files {
				src := filepath.Join(dir, "src")
				if err := os.WriteFile(src, data, 0o644); err != nil {
					t.Fatal(err)
				}
				run(t, "mcopy", "-o", "-i", img, src, "::"+name)
			}
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fsys, err := Open(f)
			if err != nil {
				t.Fatalf("%v\nmkfs.fat said:\n%s", err, out)
			}
			want := "FAT12"
			if v := fsys.(*volume); v.bits != 12 {
				want = "FAT16"
				if v.bits != 16 {
					t.Errorf("read as FAT%d", v.bits)
				}
			}
			if !bytes.Contains(out, []byte(want)) && !bytes.Contains(out, []byte(strings.TrimPrefix(want, "FAT")+"-bit")) {
				t.Errorf("read as %s, but mkfs.fat made:\n%s", want, out)
			}
			for name, data := range files {
				got, err := fs.ReadFile(fsys, name)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s: %d bytes, %v", name, len(got), err)
				}
			}
		})
	}
}

// TestReaderForeign reads a volume made by mkfs.fat and mtools, including
// short names with lower-case flags and a fragmented file.
func TestReaderForeign(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "foreign.img")
	run(t, "mkfs.fat", "-F", "32", "-n", "FOREIGN", "-C", img, "40000")
	put := func(name string, data []byte) {
		src := filepath.Join(dir, "src")
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "mcopy", "-o", "-i", img, src, "::"+name)
	}
	run(t, "mmd", "-i", img, "::sub")
	files := map[string][]byte{
		"lower.txt":         []byte("lower"),
		"MiXed.TXT":         []byte("mixed"),
		"UPPER.TXT":         []byte("upper"),
		"sub/Long name.txt": []byte("long"),
		"sub/big.bin":       pattern(30, 100<<10),
	}
	for name, data := range files {
		put(name, data)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fsys, err := Open(f)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := fs.ReadFile(fsys, name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, %v", name, len(got), err)
		}
	}
	if err := fstest.TestFS(fsys, "lower.txt", "sub/Long name.txt"); err != nil {
		t.Fatal(err)
	}
}

// TestReaderFragmented moves the middle cluster of a file elsewhere and
// reads the resulting three-extent file.
func TestReaderFragmented(t *testing.T) {
	b := tinyImage(t)
	v, err := openVolume(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	e, err := v.lookup("EFI/BOOT/BOOTX64.EFI")
	if err != nil {
		t.Fatal(err)
	}
	c, moved := e.cluster, v.maxCluster // the last cluster is free
	copy(b[v.clusterOffset(moved):], b[v.clusterOffset(c+1):v.clusterOffset(c+2)])
	clear(b[v.clusterOffset(c+1):v.clusterOffset(c+2)])
	le := binary.LittleEndian
	le.PutUint32(b[v.fatOffset+int64(c)*4:], moved)
	le.PutUint32(b[v.fatOffset+int64(c+1)*4:], 0)
	le.PutUint32(b[v.fatOffset+int64(moved)*4:], c+2)
	fsys, err := Open(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	f, err := fsys.Open("EFI/BOOT/BOOTX64.EFI")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := len(f.(*file).exts); n != 3 {
		t.Fatalf("%d extents, want 3", n)
	}
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, tinyFiles[0].data) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if err := fstest.TestFS(fsys, "EFI/BOOT/BOOTX64.EFI"); err != nil {
		t.Fatal(err)
	}
}

// corruption describes a damaged tiny image: modify damages the image that
// v describes, then Open fails with openErr, or reading each path of
// pathErrs fails with the given error ("" for no error).
type corruption struct {
	name     string
	modify   func(b []byte, v *volume)
	truncate func(v *volume) int64 // image length, if set
	openErr  string                // expected error of Open, or "" if Open succeeds
	pathErrs map[string]string
}

func TestReaderCorrupt(t *testing.T) {
	le := binary.LittleEndian
	find := func(v *volume, path string) *entry {
		e, err := v.lookup(path)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	setFAT := func(b []byte, v *volume, c, next uint32) {
		le.PutUint32(b[v.fatOffset+int64(c)*4:], next)
	}
	// direntAt returns the offset of the short entry of the named child of
	// directory dir.
	direntAt := func(b []byte, v *volume, dir *entry, short string) int64 {
		start := v.clusterOffset(dir.cluster)
		for off := start; off < start+v.clusterSize; off += 32 {
			if string(b[off:off+11]) == short {
				return off
			}
		}
		t.Fatalf("no entry %q", short)
		return 0
	}
	dirent := func(b []byte, v *volume, dir *entry, short string) []byte {
		off := direntAt(b, v, dir, short)
		return b[off : off+32]
	}
	tests := []corruption{
		{name: "signature", modify: func(b []byte, _ *volume) { b[510] = 0 }, openErr: "no boot sector signature"},
		{name: "sector size", modify: func(b []byte, _ *volume) { b[11] = 1 }, openErr: "unsupported sector size"},
		{name: "cluster size", modify: func(b []byte, _ *volume) { b[13] = 3 }, openErr: "invalid sectors per cluster"},
		{name: "FAT16 BPB without a root directory", modify: func(b []byte, _ *volume) { b[22] = 1 }, openErr: "a FAT12/16 volume without root directory entries"},
		{name: "FAT32 BPB with a root directory", modify: func(b []byte, _ *volume) { b[17] = 16 }, openErr: "a FAT32 BPB with a FAT12/16 root directory size"},
		{name: "root cluster", modify: func(b []byte, _ *volume) { le.PutUint32(b[44:], 1000) }, openErr: "invalid root cluster"},
		{name: "no data", modify: func(b []byte, _ *volume) { le.PutUint32(b[32:], 20) }, openErr: "no data region"},
		{
			name:     "truncated root directory",
			truncate: func(v *volume) int64 { return v.clusterOffset(rootCluster) + 100 },
			openErr:  "read cluster 2: EOF",
		},
		{
			name:     "truncated file data",
			truncate: func(v *volume) int64 { return v.clusterOffset(find(v, "EFI/BOOT/BOOTX64.EFI").cluster) + 1000 },
			pathErrs: map[string]string{"EFI/BOOT/BOOTX64.EFI": "unexpected EOF", "empty": ""},
		},
		{name: "root chain loop", modify: func(b []byte, v *volume) { setFAT(b, v, 2, 2) }, openErr: "loops at cluster 2"},
		{
			name: "file chain loop",
			modify: func(b []byte, v *volume) {
				c := find(v, "EFI/BOOT/BOOTX64.EFI").cluster
				setFAT(b, v, c+1, c)
			},
			pathErrs: map[string]string{"EFI/BOOT/BOOTX64.EFI": "cluster chain loops"},
		},
		{
			name: "file chain free cluster",
			modify: func(b []byte, v *volume) {
				setFAT(b, v, find(v, "EFI/BOOT/BOOTX64.EFI").cluster, 0)
			},
			pathErrs: map[string]string{"EFI/BOOT/BOOTX64.EFI": "links to invalid cluster 0x0"},
		},
		{
			name: "file chain too short",
			modify: func(b []byte, v *volume) {
				le.PutUint32(dirent(b, v, find(v, "loader"), "LOADER~1CON")[28:], 5000)
			},
			pathErrs: map[string]string{"loader/loader.conf": "shorter than the file"},
		},
		{
			name: "directory points to root",
			modify: func(b []byte, v *volume) {
				e := dirent(b, v, find(v, "a"), "B          ")
				le.PutUint16(e[26:], rootCluster)
			},
			pathErrs: map[string]string{"a/b": "used by another directory", "a/b/Long Name.txt": "used by another directory"},
		},
		{
			name: "directory points to itself",
			modify: func(b []byte, v *volume) {
				a := find(v, "a")
				le.PutUint16(dirent(b, v, a, "B          ")[26:], uint16(a.cluster))
			},
			pathErrs: map[string]string{"a/b": "used by another directory"},
		},
		{
			name: "bad LFN checksum falls back to short name",
			modify: func(b []byte, v *volume) {
				off := direntAt(b, v, find(v, "loader"), "LOADER~1CON")
				b[off-32+13] ^= 0xFF // the single LFN entry before it
			},
			pathErrs: map[string]string{"loader/loader.conf": "file does not exist", "loader/LOADER~1.CON": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tinyImage(t)
			v, err := openVolume(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if tt.modify != nil {
				tt.modify(b, v)
			}
			if tt.truncate != nil {
				b = b[:tt.truncate(v)]
			}
			fsys, err := Open(bytes.NewReader(b))
			if tt.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.openErr) {
					t.Fatalf("Open error %v, want %q", err, tt.openErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for path, want := range tt.pathErrs {
				_, err := fs.ReadFile(fsys, path)
				if errors.Is(err, io.EOF) || want == "" && err != nil ||
					want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
					t.Errorf("read %s: error %v, want %q", path, err, want)
				}
			}
			walkAll(t, fsys)
		})
	}
}

// walkAll visits and reads everything in fsys, tolerating errors, and
// fails only on inconsistencies.
func walkAll(t testing.TB, fsys fs.FS) {
	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		f, err := fsys.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			t.Errorf("stat %s: %v", p, err)
			return nil
		}
		n, err := io.Copy(io.Discard, f)
		if err == nil && n != st.Size() {
			t.Errorf("%s: read %d bytes, size %d", p, n, st.Size())
		}
		if ra, ok := f.(io.ReaderAt); ok && st.Size() > 0 {
			buf := make([]byte, 700)
			_, _ = ra.ReadAt(buf, st.Size()/3)
		}
		return nil
	})
}

func TestDecodeShort(t *testing.T) {
	tests := []struct {
		name  string
		ntres byte
		want  string
	}{
		{"BOOTX64 EFI", 0, "BOOTX64.EFI"},
		{"README     ", 0, "README"},
		{"README  TXT", 0x08, "readme.TXT"},
		{"README  TXT", 0x10, "README.txt"},
		{"README  TXT", 0x18, "readme.txt"},
		{"\x05BC     TXT", 0, "\u00e5BC.TXT"}, // 0x05 stands for 0xE5
	}
	for _, tt := range tests {
		b := make([]byte, 32)
		copy(b, tt.name)
		b[12] = tt.ntres
		if got := decodeShort(b); got != tt.want {
			t.Errorf("decodeShort(%q, %#x) = %q, want %q", tt.name, tt.ntres, got, tt.want)
		}
	}
}
