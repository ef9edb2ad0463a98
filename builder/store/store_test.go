package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o777))
	must(os.WriteFile(filepath.Join(dir, "usr/bin/tool"), []byte("#!/bin/sh\n"), 0o777))
	must(os.Link(filepath.Join(dir, "usr/bin/tool"), filepath.Join(dir, "usr/bin/tool2")))
	must(os.Symlink("tool", filepath.Join(dir, "usr/bin/alias")))
	must(os.Chmod(filepath.Join(dir, "usr/bin"), 0o777))
	syscall.Umask(0o022)
	got, err := Normalize(dir, 1000)
	must(err)
	sum := sha256.Sum256([]byte("#!/bin/sh\n"))
	want := []FileEntry{
		{Path: "usr", Type: "dir", Mode: 0o755},
		{Path: "usr/bin", Type: "dir", Mode: 0o755},
		{Path: "usr/bin/alias", Type: "symlink", Mode: 0o777, Link: "tool"},
		{Path: "usr/bin/tool", Type: "file", Mode: 0o755, Size: 10, SHA256: hex.EncodeToString(sum[:])},
		{Path: "usr/bin/tool2", Type: "hardlink", Mode: 0o755, Link: "usr/bin/tool"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	for _, p := range []string{"", "usr", "usr/bin", "usr/bin/tool", "usr/bin/alias"} {
		fi, err := os.Lstat(filepath.Join(dir, p))
		must(err)
		if fi.ModTime().Unix() != 1000 {
			t.Errorf("%s: mtime %v", p, fi.ModTime())
		}
		if st := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (st.Uid != 0 || st.Gid != 0) {
			t.Errorf("%s: owner %d:%d", p, st.Uid, st.Gid)
		}
	}
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	if _, err := Normalize(dir, 1000); err == nil || !strings.Contains(err.Error(), "fifo") {
		t.Errorf("a FIFO was accepted: %v", err)
	}
}

func TestCommitAndLookup(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := strings.Repeat("a", 64)
	if s.Has(key) {
		t.Fatal("empty store has the key")
	}
	if _, err := s.Lookup(key); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Lookup = %v", err)
	}
	if _, err := s.Lookup("../etc"); err == nil {
		t.Fatal("Lookup accepted a path")
	}
	unlock, err := s.Lock(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := s.TempDir(key)
	if err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(tmp, "entry")
	os.MkdirAll(filepath.Join(entry, "runtime"), 0o755)
	if err := s.Commit(entry, &Manifest{Name: "x", Key: key}); err != nil {
		t.Fatal(err)
	}
	unlock()
	m, err := s.Lookup(key)
	if err != nil || m.Name != "x" {
		t.Fatalf("Lookup = %+v, %v", m, err)
	}
}

func TestLock(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := strings.Repeat("b", 64)
	unlock, err := s.Lock(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	// A leftover of an interrupted build, removed by the next lock holder.
	stale, _ := s.TempDir(key)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(ctx, key); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock = %v, want to wait until the deadline", err)
	}
	unlock()
	unlock2, err := s.Lock(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock2()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale work directory kept: %v", err)
	}
}
