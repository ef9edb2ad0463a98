package rootfs

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadTarball feeds LoadTar arbitrary bytes: it must not panic, must
// write nothing but its spool (gone after Close), and what it loads must
// be within the limits and written as EROFS without an error.
func FuzzLoadTarball(f *testing.F) {
	link := tarFile{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "usr/b", Linkname: "usr/a"}}
	files := []tarFile{
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "usr/", Mode: 0o755}},
		reg("usr/a", "content"), link, sym("usr/s", "a"), dev("usr/null", 1, 3),
		withXattrs(reg("usr/x", "x"), "security.capability", "\x01\x00\x00\x02"),
	}
	f.Add(makeTar(f, false, files...))
	f.Add(makeTar(f, true, files...))
	f.Add(makeTar(f, false, reg("../../escape", "x"), reg("/abs/../../x", "y")))
	f.Add(makeTar(f, false))
	f.Fuzz(func(t *testing.T, data []byte) {
		spool := t.TempDir()
		tr, err := LoadTar(bytes.NewReader(data), Options{TempDir: spool, MaxContentBytes: 1 << 20})
		if err == nil {
			checkLoaded(t, tr)
			if err := tr.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if left, _ := os.ReadDir(spool); len(left) != 0 {
			t.Fatalf("LoadTar left %v in its temporary directory", left)
		}
	})
}

// checkLoaded checks a tree LoadTar accepted: within the limits, every
// file readable at its size, and its /usr (if any) written as EROFS.
func checkLoaded(t *testing.T, tr *Tree) {
	if err := tr.Check(); err != nil {
		t.Fatalf("loaded a tree beyond the limits: %v", err)
	}
	err := tr.Walk(".", func(e *Entry) error {
		if !e.Mode.IsRegular() {
			return nil
		}
		b, err := tr.ReadFile(e.Path)
		if err == nil && int64(len(b)) != e.Size {
			t.Errorf("%s: %d bytes, size %d", e.Path, len(b), e.Size)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if e := tr.Lookup("usr"); e == nil || !e.IsDir() {
		return
	}
	dir := t.TempDir()
	img, err := os.Create(filepath.Join(dir, "usr.erofs"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := tr.WriteEROFS(img, "usr", 1700000000, dir); err != nil {
		t.Fatalf("write a loaded tree: %v", err)
	}
}
