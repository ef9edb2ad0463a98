package erofs

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Inode data layouts (i_format bits 1–3).
const (
	layoutFlatPlain      = 0
	layoutCompressedFull = 1
	layoutFlatInline     = 2
)

// node is one inode of the image, or one further name of a hard-linked one.
type node struct {
	f        *File
	name     string
	children []*node // sorted by name; directories only
	parent   *node
	link     *node // for a further name: the inode it names
	nlink    uint32
	ino      uint32

	xattr  []byte // inline xattr area, header included
	isize  int    // 32 (compact) or 64 (extended)
	layout int
	size   uint64
	// blkaddr is the first data block (plain layouts); iu overrides it
	// (rdev, compressed block count).
	blkaddr uint32
	iu      uint32
	tail    []byte // inline after the inode: a plain tail or the compressed index
	late    []byte // whole blocks written after the metadata (directories, long symlinks)
	dir     [][]dirent
	nid     uint64
}

// target is the inode a name stands for.
func (n *node) target() *node {
	if n.link != nil {
		return n.link
	}
	return n
}

// buildTree checks files and returns the root and every inode in image
// order (depth first, names sorted), each name of a hard link once.
func buildTree(files []File) (*node, []*node, error) {
	byPath := map[string]*node{}
	var root *node
	for i := range files {
		f := &files[i]
		if f.Path == "." {
			if !f.Mode.IsDir() || root != nil {
				return nil, nil, fmt.Errorf("root: must be one directory (%w)", ErrInvalid)
			}
			root = &node{f: f, name: "."}
			byPath["."] = root
			continue
		}
		n, err := addNode(byPath, f)
		if err != nil {
			return nil, nil, fmt.Errorf("/%s: %w (%w)", f.Path, err, ErrInvalid)
		}
		byPath[f.Path] = n
	}
	if root == nil {
		return nil, nil, fmt.Errorf("no root directory %q (%w)", ".", ErrInvalid)
	}
	for _, n := range byPath {
		if err := resolveLink(byPath, n); err != nil {
			return nil, nil, fmt.Errorf("/%s: %w (%w)", n.f.Path, err, ErrInvalid)
		}
	}
	var order []*node
	var walk func(n *node)
	walk = func(n *node) {
		slices.SortFunc(n.children, func(a, b *node) int { return strings.Compare(a.name, b.name) })
		if n.link == nil {
			order = append(order, n)
		}
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(root)
	root.parent = root
	for i, n := range order {
		n.ino = uint32(i + 1)
		n.nlink++
		if n.f.Mode.IsDir() {
			n.nlink++ // "." (and the parent's entry counted above)
			for _, c := range n.children {
				if c.f.Mode.IsDir() {
					n.nlink++
				}
			}
		}
	}
	return root, order, nil
}

// addNode makes f a child of its parent directory.
func addNode(byPath map[string]*node, f *File) (*node, error) {
	if f.Path == "" || path.Clean(f.Path) != f.Path || strings.HasPrefix(f.Path, "/") || strings.HasPrefix(f.Path, "../") || f.Path == ".." {
		return nil, fmt.Errorf("path is not clean and relative")
	}
	if byPath[f.Path] != nil {
		return nil, fmt.Errorf("listed twice")
	}
	dir, name := path.Split(f.Path)
	if len(name) > 255 {
		return nil, fmt.Errorf("name over 255 bytes")
	}
	pdir := strings.TrimSuffix(dir, "/")
	if pdir == "" {
		pdir = "."
	}
	p := byPath[pdir]
	if p == nil || !p.f.Mode.IsDir() {
		return nil, fmt.Errorf("parent is not a directory listed before it")
	}
	n := &node{f: f, name: name, parent: p}
	p.children = append(p.children, n)
	return n, nil
}

// resolveLink points a further name of a hard link at its inode.
func resolveLink(byPath map[string]*node, n *node) error {
	if n.f.HardLink == "" {
		return nil
	}
	t := byPath[n.f.HardLink]
	if t == nil || t.f.HardLink != "" || !t.f.Mode.IsRegular() {
		return fmt.Errorf("hard link to %q, which is not a regular file of the image", n.f.HardLink)
	}
	n.link = t
	t.nlink++
	return nil
}

// fileType is a directory entry's EROFS_FT_*.
func fileType(m fs.FileMode) uint8 {
	switch {
	case m.IsRegular():
		return 1
	case m.IsDir():
		return 2
	case m&fs.ModeCharDevice != 0:
		return 3
	case m&fs.ModeDevice != 0:
		return 4
	case m&fs.ModeNamedPipe != 0:
		return 5
	case m&fs.ModeSocket != 0:
		return 6
	case m&fs.ModeSymlink != 0:
		return 7
	}
	return 0
}

// unixMode is m as st_mode.
func unixMode(m fs.FileMode) (uint16, error) {
	t := map[uint8]uint16{1: 0o100000, 2: 0o040000, 3: 0o020000, 4: 0o060000, 5: 0o010000, 6: 0o140000, 7: 0o120000}[fileType(m)]
	if t == 0 {
		return 0, fmt.Errorf("unsupported file type %v", m.Type())
	}
	mode := t | uint16(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode, nil
}
