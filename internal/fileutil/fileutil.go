// Package fileutil has the file operations ingot does everywhere: hash a
// file, replace one atomically, and make directories that a failure can
// take back.
package fileutil

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// SHA256 returns the lowercase hex sha256 of the file at path.
func SHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// WriteAtomic replaces the file at path with data, mode perm: it writes a
// temporary file in the same directory, syncs it, renames it over path
// and syncs the directory, so a crash leaves the old file or the new one,
// never a part of either. On error the temporary file is removed.
func WriteAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making renames in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// MkdirAllUndo makes dir and any missing parents, like os.MkdirAll, and
// returns undo, which removes exactly the directories this call made,
// deepest first, if they are still empty: a failed run calls it to leave
// the filesystem as it found it. undo is never nil.
func MkdirAllUndo(dir string, perm fs.FileMode) (undo func(), err error) {
	var made []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !os.IsNotExist(err) {
			break
		}
		made = append(made, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	undo = func() {
		for _, d := range made {
			os.Remove(d) // fails, and stops nothing, if something is in it
		}
	}
	if err := os.MkdirAll(dir, perm); err != nil {
		undo()
		return func() {}, err
	}
	return undo, nil
}

// CopyTo copies the file at src into out and closes out, reporting the
// first error of either.
func CopyTo(out io.WriteCloser, src string) error {
	in, err := os.Open(src)
	if err != nil {
		out.Close()
		return err
	}
	defer in.Close()
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// Staging is a hidden temporary directory beside a destination, where a
// result is assembled before it is renamed into place; Discard removes it
// unless Keep said it was committed.
type Staging struct {
	// Dir is the staging directory.
	Dir  string
	kept bool
}

// NewStaging makes ".<base of dst>.tmp-*" next to dst, creating dst's
// parent directory if needed.
func NewStaging(dst string) (*Staging, error) {
	dst = filepath.Clean(dst)
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return nil, err
	}
	return &Staging{Dir: dir}, nil
}

// Keep marks the staging directory as committed (renamed into place).
func (s *Staging) Keep() { s.kept = true }

// Discard removes the staging directory unless it was kept.
func (s *Staging) Discard() {
	if !s.kept {
		os.RemoveAll(s.Dir)
	}
}
