package builder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/ingot-linux/ingot/builder/store"
	"github.com/ingot-linux/ingot/cookbook"
)

// Assemble copies the runtime outputs of the named packages (keys gives
// each one's store key, e.g. Result.Keys) into dst, which must be empty or
// not exist: a root file system for the image stage. Modes, symbolic links
// and the store's normalized mtimes are kept; packages may share
// directories but nothing else, and no write leaves dst, whatever links
// the packages ship. On failure dst is left as it was.
func Assemble(storeDir string, keys map[string]string, names []string, dst string) (err error) {
	trees, err := runtimeTrees(storeDir, keys, names)
	if err != nil {
		return err
	}
	created, err := prepareEmpty(dst)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			removeContents(dst, created)
		}
	}()
	t, err := openMergedTree(dst)
	if err != nil {
		return fmt.Errorf("assemble into %s: %w", dst, err)
	}
	defer t.close()
	a := &assembly{tree: t}
	sorted := append([]string{}, names...)
	sort.Strings(sorted)
	for _, n := range sorted {
		if err := t.add(n, trees[n], a.put); err != nil {
			return fmt.Errorf("assemble %s: %w", n, err)
		}
	}
	return a.finish()
}

// runtimeTrees returns the store directory of each package's runtime
// output.
func runtimeTrees(storeDir string, keys map[string]string, names []string) (map[string]string, error) {
	st, err := store.Open(storeDir)
	if err != nil {
		return nil, err
	}
	trees := map[string]string{}
	for _, n := range names {
		key, ok := keys[n]
		if !ok || !st.Has(key) {
			return nil, fmt.Errorf("assemble: %s is not in the store (build it first)", n)
		}
		trees[n] = filepath.Join(st.Path(key), cookbook.Runtime)
	}
	return trees, nil
}

// prepareEmpty makes sure dir exists and is empty; created reports that it
// did not exist.
func prepareEmpty(dir string) (created bool, err error) {
	ents, err := os.ReadDir(dir)
	switch {
	case err == nil && len(ents) > 0:
		return false, fmt.Errorf("assemble into %s: not empty", dir)
	case err == nil:
		return false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("assemble into %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("assemble into %s: %w", dir, err)
	}
	return true, nil
}

// removeContents empties dir (removing links, not what they point to), and
// removes it too when created.
func removeContents(dir string, created bool) {
	if created {
		os.RemoveAll(dir)
		return
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// assembly copies packages' runtime trees into a root file system.
type assembly struct {
	tree *mergedTree
	dirs []dirMeta
}

type dirMeta struct {
	rel string
	fi  fs.FileInfo
}

// put copies one entry of a runtime tree with its mode and mtime;
// directories get their mtimes in finish.
func (a *assembly) put(rel, p string, d fs.DirEntry) error {
	fi, err := d.Info()
	if err != nil {
		return err
	}
	switch {
	case d.IsDir():
		a.dirs = append(a.dirs, dirMeta{rel, fi})
		return a.tree.mkdir(rel, fi.Mode()&(fs.ModePerm|fs.ModeSetgid|fs.ModeSticky))
	case d.Type()&fs.ModeSymlink != 0:
		err = a.tree.symlinkFrom(p, rel)
	default:
		err = a.tree.copyFrom(p, rel, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
	}
	if err != nil {
		return err
	}
	return a.tree.setMtime(rel, fi)
}

// finish sets the directories' mtimes, deepest first, so filling them does
// not move them.
func (a *assembly) finish() error {
	for i := len(a.dirs) - 1; i >= 0; i-- {
		if err := a.tree.setMtime(a.dirs[i].rel, a.dirs[i].fi); err != nil {
			return fmt.Errorf("assemble: %w", err)
		}
	}
	return nil
}
