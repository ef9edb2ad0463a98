package builder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ingot-linux/ingot/cookbook"
)

// input is a build input's store entry.
type input struct{ name, dir string }

// composeSysroot merges the runtime and dev trees of the inputs into dst
// with hard links (copies across file systems). Two inputs may share
// directories but nothing else, and no write leaves dst.
func composeSysroot(dst string, inputs []input) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	t, err := openMergedTree(dst)
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	defer t.close()
	link := func(rel, p string, d fs.DirEntry) error {
		switch {
		case d.IsDir():
			return t.mkdir(rel, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			return t.symlinkFrom(p, rel)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return t.linkFrom(p, rel, fi.Mode().Perm())
	}
	for _, in := range inputs {
		for _, sub := range []string{cookbook.Runtime, cookbook.Dev} {
			root := filepath.Join(in.dir, sub)
			if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err := t.add(in.name, root, link); err != nil {
				return fmt.Errorf("sysroot from %s: %w", in.name, err)
			}
		}
	}
	return nil
}

// splitOutputs moves every file of the install tree out into
// entry/{runtime,dev,doc} as o says; directories left without files go to
// runtime.
func splitOutputs(out, entry string, o cookbook.Outputs) error {
	for _, s := range []string{cookbook.Runtime, cookbook.Dev, cookbook.Doc} {
		if err := os.MkdirAll(filepath.Join(entry, s), 0o755); err != nil {
			return err
		}
	}
	var dirs []string
	err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			dirs = append(dirs, rel)
			return nil
		}
		split := o.Split(filepath.ToSlash(rel), d.Type()&fs.ModeSymlink != 0)
		if err := ensureDir(filepath.Join(entry, split), filepath.Dir(rel), out); err != nil {
			return err
		}
		return os.Rename(p, filepath.Join(entry, split, rel))
	})
	if err != nil {
		return fmt.Errorf("split outputs: %w", err)
	}
	for _, d := range dirs {
		found := false
		for _, s := range []string{cookbook.Runtime, cookbook.Dev, cookbook.Doc} {
			if _, err := os.Lstat(filepath.Join(entry, s, d)); err == nil {
				found = true
			}
		}
		if !found {
			if err := ensureDir(filepath.Join(entry, cookbook.Runtime), d, out); err != nil {
				return fmt.Errorf("split outputs: %w", err)
			}
		}
	}
	return nil
}

// ensureDir creates rel (and its parents) under root with the modes the
// same directories have under src.
func ensureDir(root, rel, src string) error {
	if rel == "." {
		return nil
	}
	if err := ensureDir(root, filepath.Dir(rel), src); err != nil {
		return err
	}
	p := filepath.Join(root, rel)
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	mode := fs.FileMode(0o755)
	if fi, err := os.Lstat(filepath.Join(src, rel)); err == nil {
		// Keep the sticky and setgid bits (/tmp is 1777).
		mode = fi.Mode() & (fs.ModePerm | fs.ModeSetgid | fs.ModeSticky)
	}
	if err := os.Mkdir(p, 0o700); err != nil {
		return err
	}
	return os.Chmod(p, mode|0o700)
}
