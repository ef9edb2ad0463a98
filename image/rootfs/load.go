package rootfs

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// Options configure Load.
type Options struct {
	// TempDir holds the spool file for tarball contents; "" means os.TempDir.
	TempDir string
}

// Load reads a root filesystem from a directory or a tarball (.tar, .tar.gz,
// .tgz, .tar.zst, .tar.xz; the compression is detected from the content).
func Load(src string, opts Options) (*Tree, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("open root filesystem: %w", err)
	}
	if fi.IsDir() {
		return LoadDir(src)
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("open root filesystem: %w", err)
	}
	defer f.Close()
	t, err := LoadTar(f, opts)
	if err != nil {
		return nil, fmt.Errorf("read tarball %s: %w", src, err)
	}
	return t, nil
}

// LoadDir reads the directory dir as a root filesystem. Contents are opened
// when the tree is written; an unreadable file is reported here, not then.
func LoadDir(dir string) (*Tree, error) {
	t := New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk %s: %w", p, err)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		e, err := entryFromFile(p, filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if rel == "." {
			e.Path = "."
			t.entries["."] = e
			return nil
		}
		t.entries[Clean(e.Path)] = e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", dir, err)
	}
	return t, nil
}

func entryFromFile(p, rel string) (*Entry, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	e := &Entry{
		Path:      rel,
		Mode:      modeFromUnix(st.Mode),
		UID:       int(st.Uid),
		GID:       int(st.Gid),
		MtimeUnix: st.Mtim.Sec,
	}
	xattrs, err := readXattrs(p)
	if err != nil {
		return nil, err
	}
	e.Xattrs = xattrs
	switch {
	case e.Mode.IsRegular():
		e.Size = st.Size
		// Fail now, with the path, rather than halfway through the image.
		f, err := os.Open(p)
		if err != nil {
			return nil, err // *PathError: names the file
		}
		f.Close()
		e.Open = func() (io.ReadCloser, error) { return os.Open(p) }
	case e.Mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return nil, fmt.Errorf("readlink %s: %w", p, err)
		}
		e.LinkTarget = target
	case e.Mode&(fs.ModeDevice|fs.ModeCharDevice) != 0:
		e.Rdev = st.Rdev
	}
	return e, nil
}

func readXattrs(p string) (map[string]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		vsize, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, fmt.Errorf("read xattr %s of %s: %w", name, p, err)
		}
		val := make([]byte, vsize)
		vsize, err = unix.Lgetxattr(p, name, val)
		if err != nil {
			return nil, fmt.Errorf("read xattr %s of %s: %w", name, p, err)
		}
		out[name] = string(val[:vsize])
	}
	return out, nil
}

func modeFromUnix(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		mode |= fs.ModeDevice
	case syscall.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&syscall.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&syscall.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&syscall.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// decompress detects gzip, zstd and xz by magic number and returns a reader of
// the plain stream.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("xz: %w", err)
		}
		return xr, func() {}, nil
	}
	return br, func() {}, nil
}

// LoadTar reads a tarball (optionally compressed) as a root filesystem. File
// contents are spooled into one temporary file that lives until Tree.Close.
func LoadTar(r io.Reader, opts Options) (_ *Tree, err error) {
	plain, done, err := decompress(r)
	if err != nil {
		return nil, err
	}
	defer done()
	spool, err := os.CreateTemp(opts.TempDir, "ingot-rootfs-*.spool")
	if err != nil {
		return nil, fmt.Errorf("create spool file: %w", err)
	}
	os.Remove(spool.Name()) // lives until closed
	t := New()
	t.closers = append(t.closers, spool)
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	var off int64
	tr := tar.NewReader(plain)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			if n == 0 {
				return nil, errors.New("tarball is empty or not a tar archive")
			}
			return t, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read tar header: %w", err)
		}
		if err := t.addTarEntry(hdr, tr, spool, &off); err != nil {
			return nil, err
		}
	}
}

func (t *Tree) addTarEntry(hdr *tar.Header, tr io.Reader, spool *os.File, off *int64) error {
	p := Clean(hdr.Name)
	e := &Entry{
		Path:      p,
		Mode:      modeFromUnix(uint32(hdr.Mode&0o7777) | tarTypeBits(hdr.Typeflag)),
		UID:       hdr.Uid,
		GID:       hdr.Gid,
		MtimeUnix: hdr.ModTime.Unix(),
		Xattrs:    tarXattrs(hdr),
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
		start := *off
		n, err := io.Copy(io.NewOffsetWriter(spool, start), tr)
		if err != nil {
			return fmt.Errorf("spool %s: %w", hdr.Name, err)
		}
		*off += n
		e.Size = n
		e.Open = func() (io.ReadCloser, error) {
			return io.NopCloser(io.NewSectionReader(spool, start, n)), nil
		}
	case tar.TypeLink:
		target := t.entries[Clean(hdr.Linkname)]
		if target == nil || !target.Mode.IsRegular() {
			return fmt.Errorf("hard link %s: target %s is not a regular file earlier in the tarball", hdr.Name, hdr.Linkname)
		}
		// EROFS has no shared data between inodes here: a hard link becomes a
		// copy with the same metadata.
		cp := *target
		cp.Path = p
		t.Put(&cp)
		return nil
	case tar.TypeSymlink:
		e.LinkTarget = hdr.Linkname
	case tar.TypeChar, tar.TypeBlock:
		e.Rdev = unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	case tar.TypeDir, tar.TypeFifo:
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("%s: unsupported tar entry type %q", hdr.Name, hdr.Typeflag)
	}
	if p == "." {
		if e.IsDir() {
			t.entries["."] = e
		}
		return nil
	}
	t.Put(e)
	return nil
}

func tarTypeBits(flag byte) uint32 {
	switch flag {
	case tar.TypeDir:
		return syscall.S_IFDIR
	case tar.TypeSymlink:
		return syscall.S_IFLNK
	case tar.TypeChar:
		return syscall.S_IFCHR
	case tar.TypeBlock:
		return syscall.S_IFBLK
	case tar.TypeFifo:
		return syscall.S_IFIFO
	}
	return syscall.S_IFREG
}

func tarXattrs(hdr *tar.Header) map[string]string {
	var out map[string]string
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if out == nil {
				out = map[string]string{}
			}
			out[name] = v
		}
	}
	return out
}
