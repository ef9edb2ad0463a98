package machineconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/ingot-linux/ingot/internal/fileutil"
)

// tops are the trees Apply writes into; each gets its own staging
// directory, so a staged file is renamed within one filesystem.
var tops = []string{"/etc", "/var", "/home", "/root"}

// stagingName is the staging directory in each top.
const stagingName = ".ingot-config.staging"

// Apply makes entries true under root (the booted system's root: /etc
// there may be an overlay): entries already as wanted are left alone, the
// rest are written into a staging directory in the same tree, checked,
// and renamed into place, so each file is replaced whole; removals come
// last. It returns the paths it changed. A path outside /etc, /var, /home
// and /root, or one whose parent directory is a symbolic link, is refused
// before anything is written.
func Apply(root string, entries []Entry) (changed []string, err error) {
	var todo []Entry
	for _, e := range entries {
		if err := checkTarget(root, e.Path); err != nil {
			return nil, err
		}
		if !upToDate(root, e) {
			todo = append(todo, e)
		}
	}
	cleanStaging(root)
	if len(todo) == 0 {
		return nil, nil
	}
	defer cleanStaging(root)
	staged, err := stage(root, todo)
	if err != nil {
		return nil, err
	}
	for i, e := range todo {
		if err := commit(root, e, staged[i]); err != nil {
			return changed, fmt.Errorf("put %s in place: %w", e.Path, err)
		}
		changed = append(changed, e.Path)
	}
	return changed, nil
}

func topOf(p string) string {
	for _, t := range tops {
		if p == t || strings.HasPrefix(p, t+"/") {
			return t
		}
	}
	return ""
}

// checkTarget refuses a path outside the trees Apply writes, with ..,
// or under a symbolic link (which could lead into ingot's state or /usr).
func checkTarget(root, p string) error {
	t := topOf(p)
	if t == "" || filepath.Clean(p) != p {
		return fmt.Errorf("%s: refused: only clean paths under %s are written", p, strings.Join(tops, ", "))
	}
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		if fi, err := os.Lstat(filepath.Join(root, d)); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s: refused: %s is a symbolic link", p, d)
		}
		if d == t || d == "/" {
			return nil
		}
	}
}

// upToDate reports whether what is at e.Path is already e.
func upToDate(root string, e Entry) bool {
	p := filepath.Join(root, e.Path)
	fi, err := os.Lstat(p)
	if e.Remove {
		return err != nil
	}
	if err != nil || fi.Mode().Type() != e.Mode.Type() {
		return false
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && e.Mode.Type() != fs.ModeSymlink && (int(st.Uid) != e.UID || int(st.Gid) != e.GID) {
		return false
	}
	switch e.Mode.Type() {
	case fs.ModeSymlink:
		l, err := os.Readlink(p)
		return err == nil && l == e.Link
	case fs.ModeDir:
		return fi.Mode().Perm() == e.Mode.Perm()
	}
	if fi.Mode().Perm() != e.Mode.Perm() || fi.Size() != int64(len(e.Data)) {
		return false
	}
	b, err := os.ReadFile(p)
	return err == nil && bytes.Equal(b, e.Data)
}

func cleanStaging(root string) {
	for _, t := range tops {
		os.RemoveAll(filepath.Join(root, t, stagingName))
	}
}

// stage writes each file and link into its tree's staging directory and
// syncs it; it returns each entry's staged path ("" for directories and
// removals).
func stage(root string, todo []Entry) ([]string, error) {
	staged := make([]string, len(todo))
	for i, e := range todo {
		if e.Remove || e.Mode.IsDir() {
			continue
		}
		top := filepath.Join(root, topOf(e.Path))
		if err := ensureTop(top); err != nil {
			return nil, err
		}
		dir := filepath.Join(top, stagingName)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("staging for %s: %w", e.Path, err)
		}
		staged[i] = filepath.Join(dir, strconv.Itoa(i))
		if err := stageOne(staged[i], e); err != nil {
			return nil, fmt.Errorf("stage %s: %w", e.Path, err)
		}
	}
	for _, t := range tops {
		if err := fileutil.SyncDir(filepath.Join(root, t, stagingName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return staged, nil
}

// ensureTop makes a missing /etc, /var or /home 0755 and /root 0700.
func ensureTop(top string) error {
	mode := fs.FileMode(0o755)
	if filepath.Base(top) == "root" {
		mode = 0o700
	}
	if err := os.Mkdir(top, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

func stageOne(p string, e Entry) error {
	if e.Mode.Type() == fs.ModeSymlink {
		return os.Symlink(e.Link, p)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // 0600 until complete: secrets never show
	if err != nil {
		return err
	}
	_, err = f.Write(e.Data)
	for _, step := range []func() error{func() error { return err }, func() error { return f.Chown(e.UID, e.GID) },
		func() error { return f.Chmod(e.Mode.Perm()) }, f.Sync} {
		if err = step(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// commit puts one staged entry in place: a rename for files and links,
// mkdir (or chmod/chown) for directories, remove for removals.
func commit(root string, e Entry, staged string) error {
	p := filepath.Join(root, e.Path)
	switch {
	case e.Remove:
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return fileutil.SyncDir(filepath.Dir(p))
	case e.Mode.IsDir():
		if err := ensureTop(filepath.Join(root, topOf(e.Path))); err != nil {
			return err
		}
		if err := os.MkdirAll(p, 0o700); err != nil {
			return err
		}
		if err := os.Lchown(p, e.UID, e.GID); err != nil {
			return err
		}
		return os.Chmod(p, e.Mode.Perm())
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if e.Mode.Type() == fs.ModeSymlink {
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			return fmt.Errorf("a directory is in the way")
		}
	}
	if err := os.Rename(staged, p); err != nil {
		return err
	}
	return fileutil.SyncDir(filepath.Dir(p))
}
