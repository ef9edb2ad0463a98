package rootfs

import (
	"fmt"
	"io"
	"io/fs"
	"maps"
	"strings"
	"time"

	erofs "github.com/erofs/go-erofs"

	ingoterofs "github.com/ingot-linux/ingot/format/erofs"
)

// ImageFile is what WriteEROFS writes to: it reads back and patches what
// go-erofs wrote, so an *os.File.
type ImageFile interface {
	io.WriteSeeker
	io.ReaderAt
	io.WriterAt
}

// WriteEROFS writes the subtree at root (e.g. "usr") as an EROFS image to out.
// Every entry's mtime must already be final (see ClampMtimes); buildTime is the
// superblock's build time. tempDir holds go-erofs's data spool. Names of one
// file (equal Inode and metadata) become hard links to one inode.
func (t *Tree) WriteEROFS(out ImageFile, root string, buildTime int64, tempDir string) error {
	root = Clean(root)
	if e := t.Lookup(root); e == nil || !e.IsDir() {
		return fmt.Errorf("write EROFS: %s is not a directory", root)
	}
	w := erofs.Create(out, erofs.WithBuildTime(uint64(buildTime), 0), erofs.WithTempDir(tempDir))
	links := t.hardLinks(root)
	err := t.Walk(root, func(e *Entry) error {
		if err := CheckEntry(e); err != nil {
			return err
		}
		name := erofsName(root, e.Path)
		if first := links[e]; first != nil {
			return addPlaceholder(w, name, buildTime)
		}
		if err := addEROFS(w, name, e); err != nil {
			return fmt.Errorf("add /%s: %w", e.Path, err)
		}
		return nil
	})
	if err == nil {
		err = setNlinks(w, root, links)
	}
	if err != nil {
		return fmt.Errorf("write EROFS: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write EROFS: finish image: %w", err)
	}
	if err := relink(out, root, links); err != nil {
		return fmt.Errorf("write EROFS: hard links: %w", err)
	}
	return nil
}

// erofsName is the name of the tree path p in an image of the subtree at
// root: "usr/bin/x" is "/bin/x" in an image of "usr".
func erofsName(root, p string) string {
	switch {
	case p == root:
		return "/"
	case root == ".":
		return "/" + p
	}
	return "/" + strings.TrimPrefix(p, root+"/")
}

// hardLinks maps every name below root that is a hard link to its file's
// first name (in path order) with the same metadata. A name whose metadata
// differs from the first (the image stage changed it) is a file of its own.
func (t *Tree) hardLinks(root string) map[*Entry]*Entry {
	first := map[uint64]*Entry{}
	links := map[*Entry]*Entry{}
	_ = t.Walk(root, func(e *Entry) error {
		if e.Inode == 0 || e.IsDir() {
			return nil
		}
		if f := first[e.Inode]; f != nil && sameFile(f, e) {
			links[e] = f
		} else if f == nil {
			first[e.Inode] = e
		}
		return nil
	})
	return links
}

// sameFile reports whether a and b have the metadata of one inode.
func sameFile(a, b *Entry) bool {
	return a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID && a.MtimeUnix == b.MtimeUnix &&
		a.Size == b.Size && a.LinkTarget == b.LinkTarget && a.Rdev == b.Rdev && maps.Equal(a.Xattrs, b.Xattrs)
}

// addPlaceholder adds an empty file whose directory entry relink points at
// another inode; its own (compact, 32-byte) inode is left unreachable.
func addPlaceholder(w *erofs.Writer, name string, buildTime int64) error {
	f, err := w.Create(name)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	bt := time.Unix(buildTime, 0)
	return w.Chtimes(name, bt, bt)
}

// setNlinks gives every file with hard links its number of names.
func setNlinks(w *erofs.Writer, root string, links map[*Entry]*Entry) error {
	n := map[*Entry]uint32{}
	for _, f := range links {
		n[f]++
	}
	for f, k := range n {
		if err := w.SetNlink(erofsName(root, f.Path), k+1); err != nil {
			return fmt.Errorf("/%s: %w", f.Path, err)
		}
	}
	return nil
}

func addEROFS(w *erofs.Writer, name string, e *Entry) error {
	switch {
	case e.IsDir():
		if err := w.Mkdir(name, e.Mode.Perm()); err != nil {
			return err
		}
	case e.Mode.IsRegular():
		f, err := w.Create(name)
		if err != nil {
			return err
		}
		rc, err := e.Open()
		if err != nil {
			return err
		}
		n, err := io.Copy(f, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("copy content: %w", err)
		}
		if n != e.Size {
			return fmt.Errorf("content changed while reading: %d bytes, expected %d", n, e.Size)
		}
		if err := f.Close(); err != nil {
			return err
		}
	case e.Mode&fs.ModeSymlink != 0:
		if err := w.Symlink(e.LinkTarget, name); err != nil {
			return err
		}
	case e.Mode&(fs.ModeDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0:
		if err := w.Mknod(name, unixType(e.Mode)|uint16(e.Mode.Perm()), uint32(e.Rdev)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unsupported file type %v", e.Mode.Type())
	}
	if err := w.Chmod(name, e.Mode); err != nil {
		return err
	}
	if err := w.Chown(name, e.UID, e.GID); err != nil {
		return err
	}
	mt := time.Unix(e.MtimeUnix, 0)
	if err := w.Chtimes(name, mt, mt); err != nil {
		return err
	}
	for _, k := range sortedKeys(e.Xattrs) {
		if err := w.Setxattr(name, erofsXattrName(k), e.Xattrs[k]); err != nil {
			return fmt.Errorf("set xattr %s: %w", k, err)
		}
	}
	return nil
}

func unixType(m fs.FileMode) uint16 {
	switch {
	case m&fs.ModeCharDevice != 0:
		return 0o020000
	case m&fs.ModeDevice != 0:
		return 0o060000
	case m&fs.ModeNamedPipe != 0:
		return 0o010000
	case m&fs.ModeSocket != 0:
		return 0o140000
	}
	return 0
}

// WriteCompressedEROFS writes the subtree at root as EROFS to out with
// ingot's own writer (format/erofs), its regular files compressed with c
// where that saves space, and returns the image's size. Limits, hard links,
// xattrs and POSIX ACLs are as in WriteEROFS; buildTime is the superblock's
// time.
func (t *Tree) WriteCompressedEROFS(out io.WriterAt, root string, buildTime int64, c ingoterofs.Compression) (int64, error) {
	root = Clean(root)
	if e := t.Lookup(root); e == nil || !e.IsDir() {
		return 0, fmt.Errorf("write EROFS: %s is not a directory", root)
	}
	links := t.hardLinks(root)
	var files []ingoterofs.File
	err := t.Walk(root, func(e *Entry) error {
		if err := CheckEntry(e); err != nil {
			return err
		}
		name := strings.TrimPrefix(erofsName(root, e.Path), "/")
		if name == "" {
			name = "."
		}
		if first := links[e]; first != nil {
			files = append(files, ingoterofs.File{Path: name, HardLink: strings.TrimPrefix(erofsName(root, first.Path), "/")})
			return nil
		}
		files = append(files, ingoterofs.File{Path: name, Mode: e.Mode, UID: uint32(e.UID), GID: uint32(e.GID),
			Mtime: e.MtimeUnix, Xattrs: e.Xattrs, LinkTarget: e.LinkTarget, Rdev: uint32(e.Rdev), Size: e.Size, Open: e.Open})
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("write EROFS: %w", err)
	}
	return ingoterofs.Write(out, files, ingoterofs.Options{BuildTime: buildTime, Compression: c})
}
