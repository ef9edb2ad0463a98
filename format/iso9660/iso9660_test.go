package iso9660

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ingot-linux/ingot/ingottest"
)

// tree is what each image holds: NoCloud's two files, a long name, and a
// subdirectory with a file of several sectors.
var tree = map[string]string{
	"user-data":                  "#cloud-config\nhostname: seed\n",
	"meta-data":                  "instance-id: i-1\nlocal-hostname: seed\n",
	"network-config":             "version: 2\n",
	"sub/a-rather-long-name.txt": "long\n",
	"sub/big.bin":                strings.Repeat("0123456789abcdef", 700),
}

// makeImage writes tree to a directory and runs a real tool on it.
func makeImage(t *testing.T, tool string, args ...string) string {
	t.Helper()
	ingottest.LookTool(t, tool, tool)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for name, content := range tree {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "seed.iso")
	for i, a := range args {
		args[i] = strings.NewReplacer("OUT", img, "SRC", src).Replace(a)
	}
	if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return img
}

// TestReadToolImages reads seeds made as cloud-localds and the cloud-init
// documentation make them (genisoimage -J -R), with only Joliet or only
// Rock Ridge, and with xorriso.
func TestReadToolImages(t *testing.T) {
	for _, tc := range []struct {
		name, tool string
		args       []string
		label      string
	}{
		{"genisoimage joliet rock", "genisoimage", []string{"-quiet", "-output", "OUT", "-volid", "cidata", "-joliet", "-rock", "SRC"}, "cidata"},
		{"genisoimage joliet only", "genisoimage", []string{"-quiet", "-o", "OUT", "-V", "CIDATA", "-J", "SRC"}, "CIDATA"},
		{"genisoimage rock only", "genisoimage", []string{"-quiet", "-o", "OUT", "-V", "cidata", "-R", "SRC"}, "cidata"},
		{"xorriso as mkisofs", "xorriso", []string{"-as", "mkisofs", "-quiet", "-o", "OUT", "-V", "cidata", "-J", "-r", "SRC"}, "cidata"},
		{"xorriso native", "xorriso", []string{"-report_about", "SORRY", "-outdev", "OUT", "-volid", "cidata", "-joliet", "on", "-map", "SRC", "/"}, "cidata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := makeImage(t, tc.tool, tc.args...)
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var s16 [SectorSize]byte
			if _, err := f.ReadAt(s16[:], 16*SectorSize); err != nil || !IsISO9660(s16[:]) {
				t.Errorf("IsISO9660 false for %s: %v", tc.name, err)
			}
			v, err := Open(f)
			if err != nil {
				t.Fatal(err)
			}
			if v.Label() != tc.label {
				t.Errorf("label %q, want %q", v.Label(), tc.label)
			}
			var want []string
			for name, content := range tree {
				want = append(want, name)
				got, err := fs.ReadFile(v, name)
				if err != nil || !bytes.Equal(got, []byte(content)) {
					t.Errorf("%s: %q, %v", name, got, err)
				}
			}
			if err := fstest.TestFS(v, want...); err != nil {
				t.Error(err)
			}
			if _, err := v.Open("USER-DATA"); err == nil {
				t.Error("names are case-sensitive, as Linux shows them with Rock Ridge or Joliet")
			}
		})
	}
}

// TestOpenRefuses checks images that are not ISO 9660 or are damaged.
func TestOpenRefuses(t *testing.T) {
	img := makeImage(t, "genisoimage", "-quiet", "-o", "OUT", "-V", "cidata", "-J", "-R", "SRC")
	good, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		modify func([]byte) []byte
		want   string
	}{
		{"empty", func([]byte) []byte { return nil }, "read volume descriptor 0"},
		{"no magic", func(b []byte) []byte { b[16*SectorSize+1] = 'X'; return b }, "not ISO 9660"},
		{"block size", func(b []byte) []byte { b[16*SectorSize+129] = 0; return b }, "logical block size"},
		{"root record", func(b []byte) []byte { b[16*SectorSize+156] = 3; return b }, "primary root directory record"},
		{"truncated", func(b []byte) []byte { return b[:19*SectorSize] }, "read the root directory"},
		{"no terminator", func(b []byte) []byte {
			for i := 17; i < 17+maxDescriptors; i++ {
				copy(b[i*SectorSize:], b[16*SectorSize:16*SectorSize+SectorSize])
			}
			return b
		}, "no volume descriptor set terminator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.modify(append([]byte(nil), good...))
			_, err := Open(bytes.NewReader(b))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzOpen reads arbitrary images: Open and reading every file must not
// panic or loop, whatever the bytes.
func FuzzOpen(f *testing.F) {
	f.Add(fuzzSeed(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Open(bytes.NewReader(data))
		if err != nil {
			return
		}
		fs.WalkDir(v, ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				fs.ReadFile(v, p)
			}
			return nil
		})
	})
}

// fuzzSeed is a small image built by hand, so the fuzz target runs
// without tools: a primary descriptor, a Joliet one and a root directory
// with user-data.
func fuzzSeed(t testing.TB) []byte {
	t.Helper()
	img := make([]byte, 22*SectorSize)
	desc := func(sector int, typ byte) []byte {
		b := img[sector*SectorSize : (sector+1)*SectorSize]
		b[0] = typ
		copy(b[1:], "CD001")
		b[6] = 1
		return b
	}
	rec := func(b []byte, name []byte, extent, size uint32, dir bool) int {
		n := 33 + len(name)
		if len(name)%2 == 0 {
			n++
		}
		b[0] = byte(n)
		putBoth32(b[2:], extent)
		putBoth32(b[10:], size)
		if dir {
			b[25] = 2
		}
		b[32] = byte(len(name))
		copy(b[33:], name)
		return n
	}
	pvd := desc(16, 1)
	copy(pvd[40:72], "cidata                          ")
	pvd[128], pvd[129] = 0x00, 0x08 // 2048, little-endian
	rec(pvd[156:], []byte{0}, 20, SectorSize, true)
	svd := desc(17, 2)
	copy(svd[88:], "%/E")
	svd[128], svd[129] = 0x00, 0x08
	rec(svd[156:], []byte{0}, 19, SectorSize, true)
	desc(18, 255)
	joliet := img[19*SectorSize:]
	off := rec(joliet, []byte{0}, 19, SectorSize, true)
	off += rec(joliet[off:], []byte{1}, 19, SectorSize, true)
	rec(joliet[off:], utf16be("user-data;1"), 21, 14, false)
	root := img[20*SectorSize:]
	off = rec(root, []byte{0}, 20, SectorSize, true)
	off += rec(root[off:], []byte{1}, 20, SectorSize, true)
	rec(root[off:], []byte("USER_DAT.;1"), 21, 14, false)
	copy(img[21*SectorSize:], "#cloud-config\n")
	v, err := Open(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(v, "user-data"); err != nil || string(b) != "#cloud-config\n" {
		t.Fatalf("the hand-made seed: %q, %v", b, err)
	}
	return img
}

func putBoth32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	b[4], b[5], b[6], b[7] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

func utf16be(s string) []byte {
	var b []byte
	for _, r := range s {
		b = append(b, byte(r>>8), byte(r))
	}
	return b
}
