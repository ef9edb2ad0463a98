package rootfs

import (
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	erofs "github.com/erofs/go-erofs"
)

// WriteEROFS writes the subtree at root (e.g. "usr") as an EROFS image to out.
// Every entry's mtime must already be final (see ClampMtimes); buildTime is the
// superblock's build time. tempDir holds go-erofs's data spool.
func (t *Tree) WriteEROFS(out io.WriteSeeker, root string, buildTime int64, tempDir string) error {
	root = Clean(root)
	if e := t.Lookup(root); e == nil || !e.IsDir() {
		return fmt.Errorf("write EROFS: %s is not a directory", root)
	}
	w := erofs.Create(out, erofs.WithBuildTime(uint64(buildTime), 0), erofs.WithTempDir(tempDir))
	err := t.Walk(root, func(e *Entry) error {
		name := "/"
		if e.Path != root {
			name = "/" + strings.TrimPrefix(e.Path, root+"/")
			if root == "." {
				name = "/" + e.Path
			}
		}
		if err := addEROFS(w, name, e); err != nil {
			return fmt.Errorf("add /%s: %w", e.Path, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write EROFS: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write EROFS: finish image: %w", err)
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
		if err := w.Setxattr(name, k, e.Xattrs[k]); err != nil {
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
