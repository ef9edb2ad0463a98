package fat

import (
	"errors"
	"io"
	"io/fs"
	"sort"
	"strings"
	"time"
)

// Open implements fs.FS.
func (v *volume) Open(name string) (fs.File, error) {
	e, err := v.lookup(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if e.dir {
		if e.err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: e.err}
		}
		return &dirFile{info: fileInfo{e}, entries: e.children}, nil
	}
	f := &file{v: v, info: fileInfo{e}}
	if e.size > 0 {
		need := (e.size + v.clusterSize - 1) / v.clusterSize
		exts, n, _, err := v.chain(e.cluster, need)
		if err == nil && n < need {
			err = errors.New("cluster chain is shorter than the file")
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		f.exts = exts
		f.ends = make([]int64, len(exts))
		var sum int64
		for i, x := range exts {
			sum += int64(x.count)
			f.ends[i] = sum
		}
	}
	return f, nil
}

// lookup finds the entry at name, trying an exact match before a
// case-insensitive one in each directory.
func (v *volume) lookup(name string) (*entry, error) {
	if !fs.ValidPath(name) {
		return nil, fs.ErrInvalid
	}
	e := v.root
	if name == "." {
		return e, nil
	}
	for elem := range strings.SplitSeq(name, "/") {
		if !e.dir {
			return nil, fs.ErrNotExist
		}
		if e.err != nil {
			return nil, e.err
		}
		var next *entry
		for _, c := range e.children {
			if c.name == elem {
				next = c
				break
			}
			if next == nil && strings.EqualFold(c.name, elem) {
				next = c
			}
		}
		if next == nil {
			return nil, fs.ErrNotExist
		}
		e = next
	}
	return e, nil
}

// fileInfo implements fs.FileInfo and fs.DirEntry for an entry.
type fileInfo struct{ e *entry }

func (fi fileInfo) Name() string {
	if fi.e.name == "" {
		return "." // the root
	}
	return fi.e.name
}
func (fi fileInfo) Size() int64        { return fi.e.size }
func (fi fileInfo) ModTime() time.Time { return fi.e.mod }
func (fi fileInfo) IsDir() bool        { return fi.e.dir }
func (fi fileInfo) Sys() any           { return nil }
func (fi fileInfo) Type() fs.FileMode  { return fi.Mode().Type() }
func (fi fileInfo) Info() (fs.FileInfo, error) {
	return fi, nil
}
func (fi fileInfo) Mode() fs.FileMode {
	if fi.e.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (fi fileInfo) String() string { return fs.FormatFileInfo(fi) }

// dirFile is an open directory.
type dirFile struct {
	info    fileInfo
	entries []*entry // not yet returned by ReadDir
	closed  bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) {
	if d.closed {
		return nil, d.err("stat", fs.ErrClosed)
	}
	return d.info, nil
}

func (d *dirFile) Read([]byte) (int, error) {
	if d.closed {
		return 0, d.err("read", fs.ErrClosed)
	}
	return 0, d.err("read", errors.New("is a directory"))
}

func (d *dirFile) Close() error {
	if d.closed {
		return d.err("close", fs.ErrClosed)
	}
	d.closed = true
	return nil
}

// ReadDir implements fs.ReadDirFile. Entries are returned in on-disk order.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.closed {
		return nil, d.err("readdir", fs.ErrClosed)
	}
	if n > 0 && len(d.entries) == 0 {
		return nil, io.EOF
	}
	k := len(d.entries)
	if n > 0 {
		k = min(k, n)
	}
	out := make([]fs.DirEntry, k)
	for i, e := range d.entries[:k] {
		out[i] = fileInfo{e}
	}
	d.entries = d.entries[k:]
	return out, nil
}

func (d *dirFile) err(op string, err error) error {
	return &fs.PathError{Op: op, Path: d.info.Name(), Err: err}
}

// file is an open regular file. It implements io.ReaderAt and io.Seeker.
type file struct {
	v      *volume
	info   fileInfo
	exts   []extent
	ends   []int64 // ends[i]: clusters in exts[:i+1]
	off    int64
	closed bool
}

func (f *file) Stat() (fs.FileInfo, error) {
	if f.closed {
		return nil, f.err("stat", fs.ErrClosed)
	}
	return f.info, nil
}

func (f *file) Close() error {
	if f.closed {
		return f.err("close", fs.ErrClosed)
	}
	f.closed = true
	return nil
}

func (f *file) Read(p []byte) (int, error) {
	if f.closed {
		return 0, f.err("read", fs.ErrClosed)
	}
	n, err := f.readAt(p, f.off)
	f.off += int64(n)
	return n, err
}

func (f *file) Seek(offset int64, whence int) (int64, error) {
	if f.closed {
		return 0, f.err("seek", fs.ErrClosed)
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.info.e.size
	default:
		return 0, f.err("seek", fs.ErrInvalid)
	}
	if offset < 0 {
		return 0, f.err("seek", fs.ErrInvalid)
	}
	f.off = offset
	return offset, nil
}

// ReadAt implements io.ReaderAt.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, f.err("read", fs.ErrClosed)
	}
	if off < 0 {
		return 0, f.err("read", fs.ErrInvalid)
	}
	return f.readAt(p, off)
}

func (f *file) readAt(p []byte, off int64) (int, error) {
	size := f.info.e.size
	if off >= size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), size-off)
	cs := f.v.clusterSize
	done := int64(0)
	for done < want {
		pos := off + done
		// Find the extent holding cluster index pos/cs.
		idx := pos / cs
		i := sort.Search(len(f.ends), func(i int) bool { return f.ends[i] > idx })
		if i >= len(f.exts) {
			return int(done), f.err("read", io.ErrUnexpectedEOF)
		}
		x := f.exts[i]
		rel := pos - (f.ends[i]-int64(x.count))*cs // byte offset within the extent
		n := min(want-done, int64(x.count)*cs-rel)
		if _, err := f.v.r.ReadAt(p[done:done+n], f.v.clusterOffset(x.first)+rel); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return int(done), f.err("read", err)
		}
		done += n
	}
	if want < int64(len(p)) {
		return int(done), io.EOF
	}
	return int(done), nil
}

func (f *file) err(op string, err error) error {
	return &fs.PathError{Op: op, Path: f.info.Name(), Err: err}
}
