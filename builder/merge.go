package builder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/internal/fileutil"
)

// mergedTree is a directory that the trees of several packages are merged
// into (a root file system, a sysroot). Every write goes through an
// os.Root, so no symbolic link, whoever shipped it, leads a write out of
// the directory; and two packages may ship the same path only when it is a
// directory in both, so one package's link cannot redirect another's files.
type mergedTree struct {
	root *os.Root
	seen map[string]shipped
}

// shipped is what a package put at a path.
type shipped struct {
	pkg  string
	kind fs.FileMode // fs.ModeDir, fs.ModeSymlink, or 0 for any other file
}

func openMergedTree(dir string) (*mergedTree, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &mergedTree{root: root, seen: map[string]shipped{}}, nil
}

func (t *mergedTree) close() { t.root.Close() }

// add merges the tree at src, shipped by pkg: put is called for every path
// below src that no package has put in place yet.
func (t *mergedTree) add(pkg, src string, put func(rel, p string, d fs.DirEntry) error) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		if fresh, err := t.claim(rel, pkg, d.Type()&(fs.ModeDir|fs.ModeSymlink)); err != nil || !fresh {
			return err
		}
		return put(rel, p, d)
	})
}

// claim records that pkg ships rel as kind. It reports whether rel is new,
// and fails when another package shipped rel and it is not a directory in
// both.
func (t *mergedTree) claim(rel, pkg string, kind fs.FileMode) (fresh bool, err error) {
	prev, ok := t.seen[rel]
	switch {
	case !ok:
		t.seen[rel] = shipped{pkg, kind}
		return true, nil
	case prev.kind == fs.ModeDir && kind == fs.ModeDir:
		return false, nil
	case prev.kind == kind:
		return false, fmt.Errorf("%s is in both %s and %s", rel, prev.pkg, pkg)
	}
	return false, fmt.Errorf("%s is %s in %s and %s in %s: packages may share directories, "+
		"nothing else may stand in for one (change one of the packages)", rel, kindName(prev.kind), prev.pkg, kindName(kind), pkg)
}

func kindName(kind fs.FileMode) string {
	switch kind {
	case fs.ModeDir:
		return "a directory"
	case fs.ModeSymlink:
		return "a symbolic link"
	}
	return "a file"
}

// mkdir makes the directory rel with mode.
func (t *mergedTree) mkdir(rel string, mode fs.FileMode) error {
	if err := t.root.Mkdir(rel, 0o700); err != nil {
		return err
	}
	return t.root.Chmod(rel, mode)
}

// symlinkFrom makes rel a symbolic link with the target of the link p.
func (t *mergedTree) symlinkFrom(p, rel string) error {
	target, err := os.Readlink(p)
	if err != nil {
		return err
	}
	return t.root.Symlink(target, rel)
}

// copyFrom copies the file p to the new file rel and gives it mode.
func (t *mergedTree) copyFrom(p, rel string, mode fs.FileMode) error {
	out, err := t.root.OpenFile(rel, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := fileutil.CopyTo(out, p); err != nil {
		return err
	}
	return t.root.Chmod(rel, mode)
}

// linkFrom makes rel a hard link to the file p, or a copy with permission
// bits perm when p is on another file system.
func (t *mergedTree) linkFrom(p, rel string, perm fs.FileMode) error {
	err := t.inParent("link", rel, func(dirfd int, name string) error {
		return unix.Linkat(unix.AT_FDCWD, p, dirfd, name, 0)
	})
	if errors.Is(err, syscall.EXDEV) {
		return t.copyFrom(p, rel, perm)
	}
	return err
}

// setMtime gives rel (not what it links to) the modification time of fi.
func (t *mergedTree) setMtime(rel string, fi fs.FileInfo) error {
	ts := unix.NsecToTimespec(fi.ModTime().UnixNano())
	return t.inParent("utimensat", rel, func(dirfd int, name string) error {
		return unix.UtimesNanoAt(dirfd, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// inParent calls f, the system call op, with the directory of rel, opened
// inside the root, and rel's last element.
func (t *mergedTree) inParent(op, rel string, f func(dirfd int, name string) error) error {
	dir, err := t.root.Open(filepath.Dir(rel))
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := f(int(dir.Fd()), filepath.Base(rel)); err != nil {
		return &fs.PathError{Op: op, Path: rel, Err: err}
	}
	return nil
}
