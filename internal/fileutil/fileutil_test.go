package fileutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSHA256(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := SHA256(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("SHA256 = %s, want %s", got, want)
	}
	if _, err := SHA256(p + ".missing"); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.json")
	for _, content := range []string{"first", "second, longer"} {
		if err := WriteAtomic(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != content {
			t.Fatalf("read back %q, %v; want %q", b, err, content)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory has %d entries, want only the file (no temporaries)", len(entries))
	}
	if err := WriteAtomic(filepath.Join(dir, "no/such/dir/f"), []byte("x"), 0o644); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

func TestMkdirAllUndo(t *testing.T) {
	base := t.TempDir()
	undo, err := MkdirAllUndo(filepath.Join(base, "a/b/c"), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	undo()
	if _, err := os.Stat(filepath.Join(base, "a")); !os.IsNotExist(err) {
		t.Errorf("undo left a: %v", err)
	}
	// Directories that existed, or that got content since, stay.
	if err := os.MkdirAll(filepath.Join(base, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	undo, err = MkdirAllUndo(filepath.Join(base, "a/b/c"), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(base, "a/b/keep"), nil, 0o644)
	undo()
	if _, err := os.Stat(filepath.Join(base, "a/b/keep")); err != nil {
		t.Errorf("undo removed a directory with content: %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "a/b/c")); !os.IsNotExist(err) {
		t.Errorf("undo left a/b/c: %v", err)
	}
	if _, err := MkdirAllUndo("/proc/ingot/x", 0o755); err == nil {
		t.Error("made a directory in /proc")
	}
}

func TestCopyTo(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	if err := CopyTo(out, src); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out.Name()); string(b) != "content" {
		t.Errorf("copied %q, want %q", b, "content")
	}
	out2, _ := os.Create(filepath.Join(dir, "dst2"))
	if err := CopyTo(out2, filepath.Join(dir, "missing")); err == nil {
		t.Error("CopyTo of a missing file: no error")
	}
}

func TestStaging(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "a", "out")
	s, err := NewStaging(dst)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(s.Dir) != filepath.Dir(dst) || !strings.HasPrefix(filepath.Base(s.Dir), ".out.tmp-") {
		t.Fatalf("staging %s for %s", s.Dir, dst)
	}
	s.Discard()
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Fatalf("discarded staging still there: %v", err)
	}
	k, err := NewStaging(dst)
	if err != nil {
		t.Fatal(err)
	}
	k.Keep()
	k.Discard()
	if _, err := os.Stat(k.Dir); err != nil {
		t.Fatalf("kept staging removed: %v", err)
	}
}
