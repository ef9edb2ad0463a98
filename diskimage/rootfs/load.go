package rootfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/internal/decompress"
)

// Options configure Load.
type Options struct {
	// TempDir holds the spool file for tarball contents; "" means os.TempDir.
	TempDir string
	// MaxContentBytes bounds the sum of the sizes of the regular files
	// (hard links counted once, holes of sparse files included); 0 means
	// ContentBound of what the input stores: a tarball's size, or the
	// blocks a directory's files take.
	MaxContentBytes int64
}

// Load reads a root filesystem from a directory or a tarball (.tar, .tar.gz,
// .tgz, .tar.zst, .tar.xz; the compression is detected from the content).
func Load(src string, opts Options) (*Tree, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("open root filesystem: %w", err)
	}
	if fi.IsDir() {
		return LoadDir(src, opts)
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("open root filesystem: %w", err)
	}
	defer f.Close()
	if opts.MaxContentBytes == 0 {
		opts.MaxContentBytes = ContentBound(fi.Size())
	}
	t, err := LoadTar(f, opts)
	if err != nil {
		return nil, fmt.Errorf("read tarball %s: %w", src, err)
	}
	return t, nil
}

// LoadDir reads the directory dir as a root filesystem. Contents are opened
// when the tree is written; an unreadable file is reported here, not then.
// Names of one file (same device and inode) become hard links.
func LoadDir(dir string, opts Options) (*Tree, error) {
	d := dirLoader{t: New(), inodes: map[[2]uint64]*Entry{}}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk %s: %w", p, err)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		return d.add(p, Clean(filepath.ToSlash(rel)))
	})
	if err == nil {
		err = d.checkBound(opts.MaxContentBytes)
	}
	if err == nil {
		err = d.t.checkBlocks()
	}
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", dir, err)
	}
	return d.t, nil
}

// dirLoader collects a directory's entries, their hard links and what
// their content stores.
type dirLoader struct {
	t      *Tree
	inodes map[[2]uint64]*Entry // device and inode of files with several names
	// contentBytes and storedBytes sum the sizes and allocated bytes of
	// regular files, each inode once; sparsest is the file with the most
	// unallocated bytes.
	contentBytes, storedBytes int64
	sparsest                  *Entry
	sparsestHoles             int64
}

func (d *dirLoader) add(p, rel string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return fmt.Errorf("stat %s: %w", p, err)
	}
	e, err := entryFromFile(p, rel, &st)
	if err != nil {
		return err
	}
	if err := CheckEntry(e); err != nil {
		return err
	}
	if rel == "." {
		d.t.entries["."] = e
		return nil
	}
	key := [2]uint64{st.Dev, st.Ino}
	if first := d.inodes[key]; first != nil {
		e.Inode = d.t.linkID(first)
		d.t.entries[e.Path] = e
		return nil
	}
	if st.Nlink > 1 && !e.IsDir() {
		d.inodes[key] = e
	}
	if e.Mode.IsRegular() {
		d.contentBytes += e.Size
		d.storedBytes += st.Blocks * 512
		if holes := e.Size - st.Blocks*512; d.sparsest == nil || holes > d.sparsestHoles {
			d.sparsest, d.sparsestHoles = e, holes
		}
	}
	d.t.entries[e.Path] = e
	return nil
}

// checkBound refuses content beyond bound (0: ContentBound of what the
// files store), naming the sparsest file.
func (d *dirLoader) checkBound(bound int64) error {
	if bound == 0 {
		bound = ContentBound(d.storedBytes)
	}
	if d.contentBytes > bound {
		return tooLarge(d.sparsest.Path, d.sparsest.Size, d.contentBytes, bound)
	}
	return nil
}

func entryFromFile(p, rel string, st *unix.Stat_t) (*Entry, error) {
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

// LoadTar reads a tarball (optionally compressed) as a root filesystem. File
// contents are spooled into one temporary file that lives until Tree.Close;
// their sizes may add up to opts.MaxContentBytes (0: ContentBound(0)),
// checked before anything is spooled. Hard links stay hard links; sparse
// files are expanded.
func LoadTar(r io.Reader, opts Options) (_ *Tree, err error) {
	plain, done, err := decompress.Reader(r)
	if err != nil {
		return nil, err
	}
	defer done()
	spool, err := os.CreateTemp(opts.TempDir, "ingot-rootfs-*.spool")
	if err != nil {
		return nil, fmt.Errorf("create spool file: %w", err)
	}
	os.Remove(spool.Name()) // lives until closed
	l := tarLoader{t: New(), spool: spool, bound: opts.MaxContentBytes}
	if l.bound == 0 {
		l.bound = ContentBound(0)
	}
	l.t.closers = append(l.t.closers, spool)
	defer func() {
		if err != nil {
			l.t.Close()
		}
	}()
	tr := tar.NewReader(plain)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			if n == 0 {
				return nil, errors.New("tarball is empty or not a tar archive")
			}
			return l.t, l.t.checkBlocks()
		}
		if err != nil {
			return nil, fmt.Errorf("read tar header: %w", err)
		}
		if err := l.add(hdr, tr); err != nil {
			return nil, err
		}
	}
}

// tarLoader adds a tarball's entries to t, spooling contents up to bound
// bytes.
type tarLoader struct {
	t     *Tree
	spool *os.File
	off   int64 // bytes spooled
	bound int64
}

func (l *tarLoader) add(hdr *tar.Header, tr io.Reader) error {
	e := &Entry{
		Path:      Clean(hdr.Name),
		Mode:      modeFromUnix(uint32(hdr.Mode&0o7777) | tarTypeBits(hdr.Typeflag)),
		UID:       hdr.Uid,
		GID:       hdr.Gid,
		MtimeUnix: hdr.ModTime.Unix(),
		Xattrs:    tarXattrs(hdr),
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		if err := l.spoolFile(e, hdr, tr); err != nil {
			return err
		}
	case tar.TypeLink:
		return l.link(e.Path, hdr.Linkname)
	case tar.TypeSymlink:
		e.LinkTarget = hdr.Linkname
	case tar.TypeChar, tar.TypeBlock:
		if hdr.Devmajor < 0 || hdr.Devmajor > MaxDevMajor || hdr.Devminor < 0 || hdr.Devminor > MaxDevMinor {
			return fmt.Errorf("/%s: device %d:%d is beyond %d:%d (%w)", e.Path, hdr.Devmajor, hdr.Devminor, MaxDevMajor, MaxDevMinor, ErrLimit)
		}
		e.Rdev = unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	case tar.TypeDir, tar.TypeFifo:
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("%s: unsupported tar entry type %q", hdr.Name, hdr.Typeflag)
	}
	if err := CheckEntry(e); err != nil {
		return err
	}
	l.put(e)
	return nil
}

// put adds e; an entry for the root other than a directory is ignored.
func (l *tarLoader) put(e *Entry) {
	if e.Path == "." {
		if e.IsDir() {
			l.t.entries["."] = e
		}
		return
	}
	l.t.Put(e)
}

// spoolFile copies a regular file's content (a sparse file's holes
// expanded) to the spool, after checking that its declared size stays
// within the bound.
func (l *tarLoader) spoolFile(e *Entry, hdr *tar.Header, tr io.Reader) error {
	if total := l.off + hdr.Size; hdr.Size > l.bound || total > l.bound {
		return tooLarge(e.Path, hdr.Size, total, l.bound)
	}
	start := l.off
	n, err := io.Copy(io.NewOffsetWriter(l.spool, start), tr)
	if err != nil {
		return fmt.Errorf("spool %s: %w", hdr.Name, err)
	}
	l.off += n
	e.Size = n
	e.Open = func() (io.ReadCloser, error) {
		return io.NopCloser(io.NewSectionReader(l.spool, start, n)), nil
	}
	return nil
}

// link adds p as a hard link to the earlier entry target: both names get
// the same Inode.
func (l *tarLoader) link(p, target string) error {
	te := l.t.entries[Clean(target)]
	if te == nil || te.IsDir() {
		return fmt.Errorf("hard link %s: target %s is not a file earlier in the tarball", p, target)
	}
	cp := *te
	cp.Path = p
	cp.Inode = l.t.linkID(te)
	if err := CheckEntry(&cp); err != nil {
		return err
	}
	l.put(&cp)
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
