package fetch

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ingot-linux/ingot/internal/decompress"
)

// IsArchive reports whether the file is a tar archive, plain or compressed
// with gzip, bzip2, xz or zstd (judged by content, not name).
func IsArchive(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	r, closer, err := decompress.Reader(bufio.NewReader(f))
	if err != nil {
		return false, nil
	}
	defer closer()
	var hdr [512]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return false, nil
	}
	if string(hdr[257:262]) == "ustar" || bytes.Equal(hdr[257:265], []byte("ustar  \x00")) {
		return true, nil
	}
	return isV7Header(hdr), nil
}

// isV7Header reports whether hdr is a pre-POSIX (V7) tar header, which
// has no magic: a name and a checksum that matches. automake's tar-v7
// option still makes such archives (strace's release tarballs).
func isV7Header(hdr [512]byte) bool {
	if hdr[0] == 0 {
		return false
	}
	field := strings.Trim(string(hdr[148:156]), " \x00")
	want, err := strconv.ParseUint(field, 8, 32)
	if err != nil {
		return false
	}
	var unsigned, signed int64
	for i, b := range hdr {
		if i >= 148 && i < 156 {
			b = ' '
		}
		unsigned += int64(b)
		signed += int64(int8(b))
	}
	return int64(want) == unsigned || int64(want) == signed
}

// Unpack extracts the tar archive at archive into dest, a directory inside
// tree given relative to it ("" is the top; created if needed), stripping
// the top-level directory when every entry is under a single one. Nothing
// lands outside dest: absolute names, "..", hard links out of the archive,
// entries under a symbolic link the archive made, and a dest that runs
// through a symbolic link (shipped by an earlier source) are refused.
// Regular files keep their permission bits and mtimes (configure scripts
// compare them), owners are not kept. A failed Unpack leaves no entry of
// the archive behind.
func Unpack(archive string, tree *os.Root, dest string) error {
	name := filepath.Base(archive)
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	r, closer, err := decompress.Reader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return fmt.Errorf("unpack %s: %w", name, err)
	}
	defer closer()
	stage, err := makeStage(tree)
	if err != nil {
		return fmt.Errorf("unpack %s: %w", name, err)
	}
	defer tree.RemoveAll(stage)
	if err := extractInto(tar.NewReader(r), tree, stage); err != nil {
		return fmt.Errorf("unpack %s: %w; refusing the archive (it is broken or hostile: check the source)", name, err)
	}
	dir, err := MakeDest(tree, dest)
	if err != nil {
		return fmt.Errorf("unpack %s: %w", name, err)
	}
	if err := moveTop(tree, stage, dir); err != nil {
		return fmt.Errorf("unpack %s: %w", name, err)
	}
	return nil
}

// makeStage makes a new directory at the top of tree to extract into: on
// the same file system as the destination, so entries move by renaming.
func makeStage(tree *os.Root) (string, error) {
	for {
		name := ".unpack-" + rand.Text()
		err := tree.Mkdir(name, 0o700)
		if !errors.Is(err, fs.ErrExist) {
			return name, err
		}
	}
}

// MakeDest creates dest, relative to tree ("" is the top), and returns it
// cleaned. A symbolic link on the way is refused, whichever source shipped
// it: a destination must be a directory of the tree itself.
func MakeDest(tree *os.Root, dest string) (string, error) {
	if dest == "" {
		return ".", nil
	}
	if !filepath.IsLocal(dest) {
		return "", fmt.Errorf("destination %q: not a relative path inside the source tree", dest)
	}
	cur := "."
	for _, el := range strings.Split(path.Clean(dest), "/") {
		cur = path.Join(cur, el)
		fi, err := tree.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			err = tree.Mkdir(cur, 0o755)
		case err != nil:
		case fi.Mode()&fs.ModeSymlink != 0:
			err = fmt.Errorf("%s is a symbolic link (an earlier source shipped it): a destination must be a directory of the source tree; change the source's dest", cur)
		case !fi.IsDir():
			err = fmt.Errorf("%s is not a directory; change the source's dest", cur)
		}
		if err != nil {
			return "", fmt.Errorf("destination %q: %w", dest, err)
		}
	}
	return cur, nil
}

// moveTop moves what the archive unpacked into stage (or into its only
// top-level directory) to dir.
func moveTop(tree *os.Root, stage, dir string) error {
	from := stage
	top, err := readDir(tree, from)
	if err != nil {
		return err
	}
	if len(top) == 1 && top[0].IsDir() {
		from = path.Join(stage, top[0].Name())
		if top, err = readDir(tree, from); err != nil {
			return err
		}
	}
	for _, e := range top {
		if err := tree.Rename(path.Join(from, e.Name()), path.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func readDir(tree *os.Root, dir string) ([]fs.DirEntry, error) {
	return fs.ReadDir(tree.FS(), dir)
}

type dirTime struct {
	name  string
	mtime time.Time
}

// extractor writes the entries of one archive inside a root.
type extractor struct {
	root *os.Root
	// links are the symbolic links the archive made: no entry may go
	// through one.
	links map[string]bool
	dirs  []dirTime
}

// extractInto extracts the archive into dir, a new directory of tree.
func extractInto(tr *tar.Reader, tree *os.Root, dir string) error {
	root, err := tree.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	x := &extractor{root: root, links: map[string]bool{}}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := x.entry(h, tr); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
	}
	return x.finish()
}

// entry writes one archive entry; r is its content.
func (x *extractor) entry(h *tar.Header, r io.Reader) error {
	name := path.Clean(strings.TrimPrefix(h.Name, "./"))
	if name == "." || h.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	if err := x.check(name); err != nil {
		return err
	}
	if d := path.Dir(name); d != "." {
		if err := x.root.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	perm := fs.FileMode(h.Mode).Perm()
	switch h.Typeflag {
	case tar.TypeDir:
		return x.dir(name, perm, h.ModTime)
	case tar.TypeReg:
		return x.file(name, perm, h.ModTime, r)
	case tar.TypeSymlink:
		x.links[name] = true
		return x.root.Symlink(h.Linkname, name)
	case tar.TypeLink:
		target := path.Clean(strings.TrimPrefix(h.Linkname, "./"))
		if err := x.check(target); err != nil {
			return fmt.Errorf("hard link to %q: %w", h.Linkname, err)
		}
		return x.root.Link(target, name)
	}
	// Devices, FIFOs and the like have no place in a source tree.
	return nil
}

// check refuses a name that would land outside the tree: absolute, with
// "..", or under a symbolic link the archive made.
func (x *extractor) check(name string) error {
	if !filepath.IsLocal(name) {
		return errors.New("leaves the source tree (an absolute name or ..)")
	}
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		if x.links[d] {
			return fmt.Errorf("goes through %s, a symbolic link the archive made", d)
		}
	}
	return nil
}

func (x *extractor) dir(name string, perm fs.FileMode, mtime time.Time) error {
	if err := x.root.MkdirAll(name, 0o755); err != nil {
		return err
	}
	if err := x.root.Chmod(name, perm|0o700); err != nil {
		return err
	}
	x.dirs = append(x.dirs, dirTime{name, mtime})
	return nil
}

func (x *extractor) file(name string, perm fs.FileMode, mtime time.Time, r io.Reader) error {
	w, err := x.root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm|0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, r)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := x.root.Chmod(name, perm|0o600); err != nil {
		return err
	}
	return x.root.Chtimes(name, mtime, mtime)
}

// finish sets the directories' mtimes, deepest first.
func (x *extractor) finish() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		if err := x.root.Chtimes(x.dirs[i].name, x.dirs[i].mtime, x.dirs[i].mtime); err != nil {
			return fmt.Errorf("%s: %w", x.dirs[i].name, err)
		}
	}
	return nil
}
