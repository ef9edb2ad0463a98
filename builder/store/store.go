// Package store is ingot's content-addressed package store: one directory
// per build key holding the split, normalized output trees and a manifest.
//
// Layout under the store directory:
//
//	<key>/manifest.json     what was built from what, and every output file
//	<key>/runtime/ dev/ doc/ the split output trees (owners 0, mtimes = epoch)
//	<key>/build.log         the build's log
//	sources/<sha256>        fetched upstream files, verified
//	logs/<name>-<key>.log   the latest log of each build, kept on failure
//	locks/<key>             per-key lock files (flock)
//	.tmp/<key>-*            work in progress; never read as an entry
//
// An entry appears only by renaming a complete directory from .tmp, so an
// interrupted build leaves no partial entry.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/internal/fileutil"
)

// Store is an opened store directory.
type Store struct {
	dir string
}

var keyRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Open creates (if needed) and opens the store at dir.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	for _, d := range []string{abs, filepath.Join(abs, "sources"), filepath.Join(abs, "logs"),
		filepath.Join(abs, "locks"), filepath.Join(abs, ".tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	return &Store{dir: abs}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// SourcesDir is where fetched sources are kept, named by sha256.
func (s *Store) SourcesDir() string { return filepath.Join(s.dir, "sources") }

// LogPath is the log file of a build.
func (s *Store) LogPath(name, key string) string {
	return filepath.Join(s.dir, "logs", name+"-"+key[:16]+".log")
}

// Path is the directory of an entry (which may not exist).
func (s *Store) Path(key string) string { return filepath.Join(s.dir, key) }

// Lookup returns the manifest of a complete entry, or fs.ErrNotExist.
func (s *Store) Lookup(key string) (*Manifest, error) {
	if !keyRE.MatchString(key) {
		return nil, fmt.Errorf("store key %q: not a sha256", key)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, key, "manifest.json"))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("store entry %s: manifest: %w", key, err)
	}
	if m.Key != key {
		return nil, fmt.Errorf("store entry %s: manifest has key %s", key, m.Key)
	}
	return &m, nil
}

// Has reports whether a complete entry exists for key.
func (s *Store) Has(key string) bool {
	_, err := os.Stat(filepath.Join(s.dir, key, "manifest.json"))
	return err == nil
}

// Lock takes the per-key lock, waiting for another process or goroutine
// that holds it (until ctx ends), and removes leftovers of interrupted
// builds of that key. Call the returned function to release it.
func (s *Store) Lock(ctx context.Context, key string) (unlock func(), err error) {
	if !keyRE.MatchString(key) {
		return nil, fmt.Errorf("store key %q: not a sha256", key)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, "locks", key), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	stale, _ := filepath.Glob(filepath.Join(s.dir, ".tmp", key+"-*"))
	for _, d := range stale {
		os.RemoveAll(d)
	}
	return func() { f.Close() }, nil
}

// TempDir makes a work directory for building key; Commit or remove it.
// Hold the key's lock while using it.
func (s *Store) TempDir(key string) (string, error) {
	d, err := os.MkdirTemp(filepath.Join(s.dir, ".tmp"), key+"-*")
	if err != nil {
		return "", fmt.Errorf("store work directory: %w", err)
	}
	return d, nil
}

// Commit makes the directory entry (inside a TempDir) the store's entry
// for m.Key: it writes the manifest, flushes the file system and renames
// the directory into place. Hold the key's lock.
func (s *Store) Commit(entry string, m *Manifest) error {
	if !keyRE.MatchString(m.Key) {
		return fmt.Errorf("commit: key %q is not a sha256", m.Key)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("commit %s: %w", m.Name, err)
	}
	if err := os.WriteFile(filepath.Join(entry, "manifest.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("commit %s: %w", m.Name, err)
	}
	if err := syncfs(entry); err != nil {
		return fmt.Errorf("commit %s: %w", m.Name, err)
	}
	dst := s.Path(m.Key)
	if err := os.Rename(entry, dst); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return nil // someone else committed the same key: equal keys, equal bytes
		}
		return fmt.Errorf("commit %s: %w", m.Name, err)
	}
	return fileutil.SyncDir(s.dir)
}

func syncfs(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
