package uki_test

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/ingot-linux/ingot/format/uki"
)

// FuzzOpen feeds arbitrary bytes to the reader: it must never panic, and
// what it returns must be consistent with the input.
func FuzzOpen(f *testing.F) {
	var seed bytes.Buffer
	if err := uki.Build(&seed, makeStub(stubOptions{sections: 2, symtab: true}), sampleSections()); err != nil {
		f.Fatal(err)
	}
	f.Add(seed.Bytes())
	f.Add(makeStub(stubOptions{}))
	f.Add(makeStub(stubOptions{pe32: true}))
	if stub, err := os.ReadFile(realStubPath); err == nil {
		var real bytes.Buffer
		if err := uki.Build(&real, stub, []uki.Section{
			{Name: ".osrel", Data: []byte("ID=ingot\n")},
			{Name: ".cmdline", Data: []byte("quiet")},
			{Name: ".linux", Data: []byte("kernel")},
		}); err != nil {
			f.Fatal(err)
		}
		f.Add(real.Bytes())
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		for _, r := range []io.ReaderAt{bytes.NewReader(data), readerAtOnly{bytes.NewReader(data)}} {
			img, err := uki.Open(r)
			if err != nil {
				continue
			}
			for _, name := range img.Sections() {
				b, err := img.Section(name)
				if err != nil {
					continue
				}
				if len(b) > len(data) {
					t.Fatalf("Section(%q) returned %d bytes from a %d-byte input", name, len(b), len(data))
				}
				sr, err := img.SectionReader(name)
				if err != nil {
					t.Fatalf("SectionReader(%q): %v after Section succeeded", name, err)
				}
				if c, err := io.ReadAll(sr); err != nil || !bytes.Equal(c, b) {
					t.Fatalf("SectionReader(%q) disagrees with Section: %v", name, err)
				}
			}
			_, _ = img.Cmdline()
			_, _ = img.OSRelease()
		}
	})
}
