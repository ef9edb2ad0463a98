package fetch

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// IsArchive reports whether the file is a tar archive, plain or compressed
// with gzip, bzip2, xz or zstd (judged by content, not name).
func IsArchive(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	r, closer, err := decompress(bufio.NewReader(f))
	if err != nil {
		return false, nil
	}
	defer closer()
	var hdr [512]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return false, nil
	}
	return string(hdr[257:262]) == "ustar" || bytes.Equal(hdr[257:265], []byte("ustar  \x00")), nil
}

// decompress sniffs the compression of r.
func decompress(br *bufio.Reader) (io.Reader, func(), error) {
	magic, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		z.Multistream(true)
		return z, func() { z.Close() }, nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return bzip2.NewReader(br), func() {}, nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		z, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return z, func() {}, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, err
		}
		return z, z.Close, nil
	}
	return br, func() {}, nil
}

// Unpack extracts the tar archive at archive into dest (created if needed),
// stripping the top-level directory when every entry is under a single
// one. Entries must stay inside dest: absolute paths, ".." and writes
// through symbolic links are refused. Regular files keep their permission
// bits and mtimes (configure scripts compare them), owners are not kept.
func Unpack(archive, dest string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	r, closer, err := decompress(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return fmt.Errorf("unpack %s: %w", archive, err)
	}
	defer closer()
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	stage, err := os.MkdirTemp(dest, ".unpack-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	if err := extract(tar.NewReader(r), stage); err != nil {
		return fmt.Errorf("unpack %s: %w", filepath.Base(archive), err)
	}
	top, err := os.ReadDir(stage)
	if err != nil {
		return err
	}
	from := stage
	if len(top) == 1 && top[0].IsDir() {
		from = filepath.Join(stage, top[0].Name())
		if top, err = os.ReadDir(from); err != nil {
			return err
		}
	}
	for _, e := range top {
		if err := os.Rename(filepath.Join(from, e.Name()), filepath.Join(dest, e.Name())); err != nil {
			return fmt.Errorf("unpack %s: %w", filepath.Base(archive), err)
		}
	}
	return nil
}

type dirTime struct {
	name  string
	mtime time.Time
}

func extract(tr *tar.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	var dirs []dirTime
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if name == "." || h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("entry %q leaves the source tree", h.Name)
		}
		if d := path.Dir(name); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		perm := fs.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := root.Chmod(name, perm|0o700); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			dirs = append(dirs, dirTime{name, h.ModTime})
		case tar.TypeReg:
			w, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm|0o600)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			_, err = io.Copy(w, tr)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := root.Chmod(name, perm|0o600); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := root.Chtimes(name, h.ModTime, h.ModTime); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case tar.TypeSymlink:
			if err := root.Symlink(h.Linkname, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case tar.TypeLink:
			target := path.Clean(strings.TrimPrefix(h.Linkname, "./"))
			if !filepath.IsLocal(target) {
				return fmt.Errorf("hard link %q leaves the source tree", h.Name)
			}
			if err := root.Link(target, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		default:
			// Devices, FIFOs and the like have no place in a source tree.
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := root.Chtimes(dirs[i].name, dirs[i].mtime, dirs[i].mtime); err != nil {
			return fmt.Errorf("%s: %w", dirs[i].name, err)
		}
	}
	return nil
}
