// Package rootfs reads a root filesystem — a directory or a tarball — into an
// in-memory tree of metadata whose file contents are read lazily.
//
// The tree keeps everything an image needs without root privileges: owners,
// modes (setuid, setgid, sticky), extended attributes, symlinks, hard links and
// device nodes. The image stage edits it (adds files, moves /etc) and writes it
// out as EROFS.
//
//	t, err := rootfs.Load("rootfs.tar.zst", rootfs.Options{TempDir: dir})
//	defer t.Close()
//	e := t.Lookup("usr/lib/os-release")
package rootfs

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Entry is one file, directory, symlink or special file in a Tree.
type Entry struct {
	// Path is slash-separated and relative to the root, without a leading
	// slash; the root itself is ".".
	Path string
	// Mode holds type and permission bits, including fs.ModeSetuid,
	// fs.ModeSetgid and fs.ModeSticky.
	Mode fs.FileMode
	// UID and GID own the entry.
	UID, GID int
	// MtimeUnix is the modification time in seconds since the epoch.
	MtimeUnix int64
	// Xattrs maps extended attribute names (e.g. "security.capability") to
	// raw values.
	Xattrs map[string]string
	// LinkTarget is the target of a symlink.
	LinkTarget string
	// Rdev is the device number of a character or block device (Linux
	// encoding: major<<8 | minor for small numbers, as in stat(2)).
	Rdev uint64
	// Size is the size in bytes of a regular file.
	Size int64
	// Open returns the content of a regular file.
	Open func() (io.ReadCloser, error)
	// Inode is 0, or the same for every name of a file with several
	// names (hard links): they are written as one EROFS inode as long as
	// their metadata stays equal.
	Inode uint64
}

// IsDir reports whether e is a directory.
func (e *Entry) IsDir() bool { return e.Mode.IsDir() }

// Tree is a root filesystem: a set of entries indexed by path.
type Tree struct {
	entries map[string]*Entry
	closers []io.Closer
	inodes  uint64 // Inode numbers handed out
}

// New returns an empty tree holding only the root directory.
func New() *Tree {
	t := &Tree{entries: map[string]*Entry{}}
	t.entries["."] = &Entry{Path: ".", Mode: fs.ModeDir | 0o755}
	return t
}

// linkID returns e's Inode, giving it a new one first if it has none.
func (t *Tree) linkID(e *Entry) uint64 {
	if e.Inode == 0 {
		t.inodes++
		e.Inode = t.inodes
	}
	return e.Inode
}

// Close releases the temporary files that back the tree's contents.
func (t *Tree) Close() error {
	var first error
	for _, c := range t.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	t.closers = nil
	return first
}

// Clean turns a user path ("/usr/bin/", "usr//bin") into the tree's form
// ("usr/bin"); the root is ".".
func Clean(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// Lookup returns the entry at p without following symlinks, or nil.
func (t *Tree) Lookup(p string) *Entry { return t.entries[Clean(p)] }

// Resolve follows symlinks in every component of p (relative to the tree's
// root, never escaping it) and returns the entry it names, or nil.
func (t *Tree) Resolve(p string) *Entry {
	cur := "."
	parts := strings.Split(Clean(p), "/")
	for hops := 0; len(parts) > 0; {
		name := parts[0]
		parts = parts[1:]
		if name == "." || name == "" {
			continue
		}
		if name == ".." {
			cur = Clean(path.Dir(cur))
			continue
		}
		next := Clean(cur + "/" + name)
		e := t.entries[next]
		if e == nil {
			return nil
		}
		if e.Mode&fs.ModeSymlink != 0 {
			if hops++; hops > 40 {
				return nil
			}
			target := e.LinkTarget
			if strings.HasPrefix(target, "/") {
				cur = "."
			}
			parts = append(strings.Split(target, "/"), parts...)
			continue
		}
		cur = next
	}
	return t.entries[cur]
}

// Put adds or replaces e, creating missing parent directories (mode 0755,
// owned by root, with e's mtime).
func (t *Tree) Put(e *Entry) {
	e.Path = Clean(e.Path)
	if old := t.entries[e.Path]; old != nil && old.IsDir() && e.IsDir() {
		// Replacing a directory's metadata keeps its children.
		t.entries[e.Path] = e
		return
	}
	if old := t.entries[e.Path]; old != nil && old.IsDir() && !e.IsDir() {
		t.Remove(e.Path)
	}
	t.mkdirAll(path.Dir(e.Path), e.MtimeUnix)
	t.entries[e.Path] = e
}

// PutFile adds a regular file with the given content, mode and mtime, owned by
// root.
func (t *Tree) PutFile(p string, data []byte, mode fs.FileMode, mtime int64) {
	t.Put(&Entry{Path: p, Mode: mode.Perm() | mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky),
		MtimeUnix: mtime, Size: int64(len(data)), Open: bytesOpener(data)})
}

// PutSymlink adds a symlink owned by root.
func (t *Tree) PutSymlink(p, target string, mtime int64) {
	t.Put(&Entry{Path: p, Mode: fs.ModeSymlink | 0o777, LinkTarget: target, MtimeUnix: mtime})
}

// Mkdir adds a directory owned by root, and its parents.
func (t *Tree) Mkdir(p string, perm fs.FileMode, mtime int64) {
	t.Put(&Entry{Path: p, Mode: fs.ModeDir | perm, MtimeUnix: mtime})
}

func (t *Tree) mkdirAll(p string, mtime int64) {
	p = Clean(p)
	if e := t.entries[p]; e != nil {
		if !e.IsDir() {
			// A non-directory in the way of a directory: the later entry wins,
			// as it would when extracting a tarball.
			delete(t.entries, p)
		} else {
			return
		}
	}
	if p != "." {
		t.mkdirAll(path.Dir(p), mtime)
	}
	t.entries[p] = &Entry{Path: p, Mode: fs.ModeDir | 0o755, MtimeUnix: mtime}
}

// Remove deletes p and, for a directory, everything below it.
func (t *Tree) Remove(p string) {
	p = Clean(p)
	delete(t.entries, p)
	prefix := p + "/"
	if p == "." {
		prefix = ""
	}
	for k := range t.entries {
		if strings.HasPrefix(k, prefix) && k != "." {
			delete(t.entries, k)
		}
	}
	if p == "." {
		t.entries["."] = &Entry{Path: ".", Mode: fs.ModeDir | 0o755}
	}
}

// Move renames the subtree at from to to, replacing whatever was at to.
func (t *Tree) Move(from, to string) error {
	from, to = Clean(from), Clean(to)
	if t.entries[from] == nil {
		return fmt.Errorf("move %s: %w", from, fs.ErrNotExist)
	}
	if to == from || strings.HasPrefix(to, from+"/") {
		return fmt.Errorf("move %s to %s: destination inside source", from, to)
	}
	t.Remove(to)
	moved := map[string]*Entry{}
	for k, e := range t.entries {
		if k == from || strings.HasPrefix(k, from+"/") {
			moved[to+strings.TrimPrefix(k, from)] = e
			delete(t.entries, k)
		}
	}
	t.mkdirAll(path.Dir(to), moved[to].MtimeUnix)
	for k, e := range moved {
		e.Path = k
		t.entries[k] = e
	}
	return nil
}

// Walk calls fn for every entry below (and including) root, in lexical path
// order, so parents come before their children.
func (t *Tree) Walk(root string, fn func(e *Entry) error) error {
	root = Clean(root)
	for _, k := range t.Paths() {
		if root != "." && k != root && !strings.HasPrefix(k, root+"/") {
			continue
		}
		if err := fn(t.entries[k]); err != nil {
			return err
		}
	}
	return nil
}

// Paths returns every path in the tree in an order where a directory comes
// before its children and siblings are sorted bytewise.
func (t *Tree) Paths() []string {
	keys := make([]string, 0, len(t.entries))
	for k := range t.entries {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return pathLess(keys[i], keys[j]) })
	return keys
}

// pathLess orders paths component by component, with "." first.
func pathLess(a, b string) bool {
	if a == "." || b == "." {
		return a == "." && b != "."
	}
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] != bs[i] {
			return as[i] < bs[i]
		}
	}
	return len(as) < len(bs)
}

// Len returns the number of entries, the root included.
func (t *Tree) Len() int { return len(t.entries) }

// ClampMtimes sets every mtime later than epoch to epoch, as reproducible
// builds do with SOURCE_DATE_EPOCH.
func (t *Tree) ClampMtimes(epoch int64) {
	for _, e := range t.entries {
		if e.MtimeUnix > epoch {
			e.MtimeUnix = epoch
		}
	}
}

// ReadFile returns the content of the regular file at p, following symlinks.
func (t *Tree) ReadFile(p string) ([]byte, error) {
	e := t.Resolve(p)
	if e == nil {
		return nil, fmt.Errorf("read %s: %w", p, fs.ErrNotExist)
	}
	if !e.Mode.IsRegular() {
		return nil, fmt.Errorf("read %s: not a regular file", p)
	}
	rc, err := e.Open()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return data, nil
}

func bytesOpener(data []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
