package build

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/build/store"
	"github.com/ingot-linux/ingot/spec"
)

// Assemble copies the runtime outputs of the named packages (keys gives
// each one's store key, e.g. Result.Keys) into dst, which must be empty or
// not exist: a root file system for the image stage. Modes, symbolic links
// and the store's normalized mtimes are kept; packages may share
// directories but not files.
func Assemble(storeDir string, keys map[string]string, names []string, dst string) error {
	st, err := store.Open(storeDir)
	if err != nil {
		return err
	}
	if ents, err := os.ReadDir(dst); err == nil && len(ents) > 0 {
		return fmt.Errorf("assemble into %s: not empty", dst)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("assemble into %s: %w", dst, err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	sorted := append([]string{}, names...)
	sort.Strings(sorted)
	owner := map[string]string{}
	type dir struct {
		rel string
		fi  fs.FileInfo
	}
	var dirs []dir
	for _, n := range sorted {
		key, ok := keys[n]
		if !ok || !st.Has(key) {
			return fmt.Errorf("assemble: %s is not in the store (build it first)", n)
		}
		root := filepath.Join(st.Path(key), spec.Runtime)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			target := filepath.Join(dst, rel)
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if d.IsDir() {
				if _, err := os.Lstat(target); err == nil {
					return nil
				}
				dirs = append(dirs, dir{rel, fi})
				if err := os.Mkdir(target, 0o700); err != nil {
					return err
				}
				return os.Chmod(target, fi.Mode()&(fs.ModePerm|fs.ModeSetgid|fs.ModeSticky))
			}
			if prev, ok := owner[rel]; ok {
				return fmt.Errorf("%s is in both %s and %s", rel, prev, n)
			}
			owner[rel] = n
			if d.Type()&fs.ModeSymlink != 0 {
				t, err := os.Readlink(p)
				if err != nil {
					return err
				}
				if err := os.Symlink(t, target); err != nil {
					return err
				}
			} else {
				if err := copyFile(p, target, 0o600); err != nil {
					return err
				}
				if err := os.Chmod(target, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
					return err
				}
			}
			return setMtime(target, fi)
		})
		if err != nil {
			return fmt.Errorf("assemble %s: %w", n, err)
		}
	}
	// Directories last, deepest first, so filling them does not move their mtimes.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := setMtime(filepath.Join(dst, dirs[i].rel), dirs[i].fi); err != nil {
			return fmt.Errorf("assemble: %w", err)
		}
	}
	return nil
}

func setMtime(p string, fi fs.FileInfo) error {
	ts := unix.NsecToTimespec(fi.ModTime().UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}
