package uki_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/format/uki"
)

// readerAtOnly hides Size so that Open cannot learn the input length.
type readerAtOnly struct{ r io.ReaderAt }

func (r readerAtOnly) ReadAt(p []byte, off int64) (int, error) { return r.r.ReadAt(p, off) }

func TestOpen(t *testing.T) {
	img := build(t, makeStub(stubOptions{}), sampleSections())
	path := filepath.Join(t.TempDir(), "uki.efi")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()

	for name, r := range map[string]io.ReaderAt{
		"bytes":        bytes.NewReader(img),
		"file":         file,
		"unknown-size": readerAtOnly{bytes.NewReader(img)},
	} {
		t.Run(name, func(t *testing.T) {
			u, err := uki.Open(r)
			if err != nil {
				t.Fatal(err)
			}
			cmdline, err := u.Cmdline()
			if err != nil || cmdline != "console=ttyS0 root=PARTLABEL=root-x86-64 rw" {
				t.Errorf("Cmdline() = %q, %v", cmdline, err)
			}
			osrel, err := u.OSRelease()
			want := map[string]string{"ID": "ingot", "NAME": "Ingot Linux", "VERSION_ID": "1"}
			if err != nil || !maps.Equal(osrel, want) {
				t.Errorf("OSRelease() = %v, %v; want %v", osrel, err, want)
			}
			for _, s := range sampleSections() {
				got, err := u.Section(s.Name)
				if err != nil || !bytes.Equal(got, contents(t, s)) {
					t.Errorf("Section(%q): %d bytes, %v", s.Name, len(got), err)
				}
				sr, err := u.SectionReader(s.Name)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := io.ReadAll(sr); err != nil || !bytes.Equal(got, contents(t, s)) {
					t.Errorf("SectionReader(%q): %d bytes, %v", s.Name, len(got), err)
				}
			}
			if _, err := u.Section(".dtb"); !errors.Is(err, uki.ErrNoSection) {
				t.Errorf("Section(.dtb) error = %v, want ErrNoSection", err)
			}
			if _, err := u.SectionReader(".dtb"); !errors.Is(err, uki.ErrNoSection) {
				t.Errorf("SectionReader(.dtb) error = %v, want ErrNoSection", err)
			}
		})
	}
}

func TestOpenMissingSections(t *testing.T) {
	img := build(t, makeStub(stubOptions{}), []uki.Section{{Name: ".linux", Data: []byte("k")}})
	u, err := uki.Open(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Cmdline(); !errors.Is(err, uki.ErrNoSection) {
		t.Errorf("Cmdline() error = %v, want ErrNoSection", err)
	}
	if _, err := u.OSRelease(); !errors.Is(err, uki.ErrNoSection) {
		t.Errorf("OSRelease() error = %v, want ErrNoSection", err)
	}
}

// patch returns a copy of b with the little-endian uint32 at off set to v.
func patch(b []byte, off int, v uint32) []byte {
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint32(b[off:], v)
	return b
}

func TestOpenMalformed(t *testing.T) {
	img := build(t, makeStub(stubOptions{}), sampleSections())
	tab := synthPEOff + 24 + synthOptSize64 // section table of the synthetic stub
	le := binary.LittleEndian
	dup := bytes.Clone(img)
	copy(dup[tab+40:tab+48], ".text\x00\x00\x00")
	noSecs := bytes.Clone(img)
	le.PutUint16(noSecs[synthPEOff+6:], 0)
	badMagic := bytes.Clone(img)
	le.PutUint16(badMagic[synthPEOff+24:], 0x107)
	notEFI := bytes.Clone(img)
	le.PutUint16(notEFI[synthPEOff+24+68:], 3)
	smallOpt := bytes.Clone(img)
	le.PutUint16(smallOpt[synthPEOff+20:], 16)

	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "DOS header"},
		{"not-mz", []byte(strings.Repeat("x", 200)), "MZ"},
		{"lfanew-past-end", patch(img, 0x3c, 0xfffffff0), "PE header"},
		{"no-pe-signature", patch(img, 0x3c, 0x10), "PE signature"},
		{"optional-header-small", smallOpt, "optional header too small"},
		{"bad-magic", badMagic, "magic"},
		{"not-efi", notEFI, "EFI application"},
		{"no-sections", noSecs, "no sections"},
		{"table-truncated", img[:tab+20], "section table"},
		{"duplicate", dup, "duplicate section"},
		{"data-past-end", patch(img, tab+40+20, 0x7fffff00), "past end of file"},
		{"huge-size", patch(patch(img, tab+40+8, 0xffffffff), tab+40+16, 0xffffffff), "past end of file"},
		{"truncated", img[:len(img)-100], "past end of file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := uki.Open(bytes.NewReader(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open error = %v, want one containing %q", err, tc.want)
			}
		})
	}

	// Without a known size, bad section bounds surface when reading, and
	// a forged 4 GiB size must not be allocated up front.
	t.Run("unknown-size", func(t *testing.T) {
		forged := patch(patch(img, tab+40+8, 0xffffffff), tab+40+16, 0xffffffff)
		u, err := uki.Open(readerAtOnly{bytes.NewReader(forged)})
		if err != nil {
			t.Fatal(err)
		}
		name := u.Sections()[1]
		if _, err := u.Section(name); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("Section(%q) error = %v, want unexpected EOF", name, err)
		}
		if n := testing.AllocsPerRun(1, func() { _, _ = u.Section(name) }); n > 20 {
			t.Errorf("reading a forged section took %v allocations", n)
		}
	})

	// Every truncation of a valid UKI fails cleanly or still reads.
	t.Run("truncations", func(t *testing.T) {
		for n := 0; n < len(img); n += 7 {
			u, err := uki.Open(bytes.NewReader(img[:n]))
			if err != nil {
				continue
			}
			for _, s := range u.Sections() {
				if _, err := u.Section(s); err != nil {
					t.Errorf("len %d: Open succeeded but Section(%q) failed: %v", n, s, err)
				}
			}
		}
	})
}

func TestOpenRealStub(t *testing.T) {
	stub := realStub(t)
	u, err := uki.Open(bytes.NewReader(stub))
	if err != nil {
		t.Fatal(err)
	}
	sbat, err := u.Section(".sbat")
	if err != nil || !bytes.HasPrefix(sbat, []byte("sbat,1,")) {
		t.Errorf("stub .sbat = %q, %v", sbat, err)
	}
}

func TestParseOSRelease(t *testing.T) {
	const in = `# comment
NAME="Ingot Linux"
ID=ingot
 ID_LIKE='debian  ubuntu'
PRETTY_NAME="Ingot \"1\" \$HOME \\ \x"
VERSION=1\ beta
EMPTY=
=novalue
1BAD=x
bad key=x
no-equals
HOME_URL="https://example.org/"   ` + "\x00\x00"
	img := build(t, makeStub(stubOptions{}), []uki.Section{{Name: ".osrel", Data: []byte(in)}})
	u, err := uki.Open(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	got, err := u.OSRelease()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"NAME":        "Ingot Linux",
		"ID":          "ingot",
		"ID_LIKE":     "debian  ubuntu",
		"PRETTY_NAME": `Ingot "1" $HOME \ \x`,
		"VERSION":     "1 beta",
		"EMPTY":       "",
		"HOME_URL":    "https://example.org/",
	}
	if !maps.Equal(got, want) {
		t.Errorf("OSRelease() =\n%q\nwant\n%q", got, want)
	}
}

func TestCmdlineTrim(t *testing.T) {
	img := build(t, makeStub(stubOptions{}), []uki.Section{{Name: ".cmdline", Data: []byte(" quiet  rw \r\n\x00")}})
	u, err := uki.Open(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := u.Cmdline(); got != " quiet  rw" || err != nil {
		t.Errorf("Cmdline() = %q, %v", got, err)
	}
}

// TestOpenLargeSection reads sections bigger than the reader's growth
// chunk, with and without a known input size.
func TestOpenLargeSection(t *testing.T) {
	big := make([]byte, 3<<20+7)
	for i := range big {
		big[i] = byte(i * 7 >> 3)
	}
	img := build(t, makeStub(stubOptions{}), []uki.Section{{Name: ".linux", Reader: bytes.NewReader(big), Size: int64(len(big))}})
	for _, r := range []io.ReaderAt{bytes.NewReader(img), readerAtOnly{bytes.NewReader(img)}} {
		u, err := uki.Open(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := u.Section(".linux")
		if err != nil || !bytes.Equal(got, big) {
			t.Errorf("Section(.linux): %d bytes, %v; want %d bytes", len(got), err, len(big))
		}
	}
	// Cut inside the third chunk: the read fails.
	u, err := uki.Open(readerAtOnly{bytes.NewReader(img[:len(img)-1<<20])})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Section(".linux"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated Section(.linux) error = %v, want unexpected EOF", err)
	}
}
