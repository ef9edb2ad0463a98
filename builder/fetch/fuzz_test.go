package fetch

import (
	"archive/tar"
	"os"
	"path/filepath"
	"testing"
)

// FuzzUnpack feeds arbitrary archives to Unpack: it may fail, but must not
// panic or write outside its destination.
func FuzzUnpack(f *testing.F) {
	f.Add(makeTar(f, []entry{{name: "x/", typ: tar.TypeDir}, {name: "x/a", body: "a"}, {name: "x/l", typ: tar.TypeSymlink, link: "a"}}))
	f.Add(makeTar(f, []entry{{name: "l", typ: tar.TypeSymlink, link: ".."}, {name: "l/escape", body: "x"}}))
	f.Add(makeTar(f, []entry{{name: "h", typ: tar.TypeLink, link: "../h"}}))
	f.Add(toV7(f, makeTar(f, []entry{{name: "x/", typ: tar.TypeDir}, {name: "x/a", body: "a"}})))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		a := filepath.Join(dir, "archive")
		if err := os.WriteFile(a, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := IsArchive(a); err != nil {
			t.Fatal(err)
		}
		unpackInto(t, a, filepath.Join(dir, "src"), "")
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Name() != "archive" && e.Name() != "src" {
				t.Fatalf("Unpack wrote %s outside its destination", e.Name())
			}
		}
	})
}
