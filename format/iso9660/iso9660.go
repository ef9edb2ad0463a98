// Package iso9660 reads the files of an ISO 9660 image, as genisoimage,
// mkisofs, xorriso and cloud-localds make a NoCloud seed: the primary
// volume descriptor, the directory tree, and the names Rock Ridge (NM) or
// Joliet give the files, else the plain ISO 9660 names. It is a small
// reader for untrusted input, not a general one: no multi-extent files,
// no El Torito, no writing.
//
//	v, err := iso9660.Open(disk)
//	if err == nil && strings.EqualFold(v.Label(), "cidata") {
//		data, err := fs.ReadFile(v, "user-data")
//	}
package iso9660

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"
	"unicode/utf16"
)

const (
	// SectorSize is the logical block size of every image this reads.
	SectorSize = 2048
	// firstDescriptor is the sector of the first volume descriptor.
	firstDescriptor = 16
	// maxDescriptors bounds the volume descriptor set.
	maxDescriptors = 64
	// maxDirSize bounds one directory's extent.
	maxDirSize = 1 << 20
	// maxDepth bounds the directory tree's depth.
	maxDepth = 16
)

// Magic is the standard identifier at byte 1 of a volume descriptor, at
// byte 16*2048+1 of the image.
var Magic = []byte("CD001")

// IsISO9660 reports whether the 2048 bytes of sector 16 of an image are
// a volume descriptor.
func IsISO9660(sector16 []byte) bool {
	return len(sector16) >= 7 && bytes.Equal(sector16[1:6], Magic) && sector16[6] == 1
}

// Volume is an opened image; it implements fs.FS for regular files and
// directories. It is immutable and safe for concurrent use as long as the
// io.ReaderAt is.
type Volume struct {
	r      io.ReaderAt
	label  string
	root   record
	joliet bool // names are Joliet's UCS-2
	rock   bool // names are Rock Ridge's NM entries
}

// record is one directory record, as much as the reader needs.
type record struct {
	name   string
	extent int64 // first byte
	size   int64
	dir    bool
}

// Open reads the volume descriptors of the image at offset 0 of r. It
// uses the Joliet tree when the primary tree has no Rock Ridge names.
func Open(r io.ReaderAt) (*Volume, error) {
	var pvd, svd []byte
	for i := range maxDescriptors {
		b := make([]byte, SectorSize)
		if _, err := r.ReadAt(b, int64(firstDescriptor+i)*SectorSize); err != nil {
			return nil, fmt.Errorf("read volume descriptor %d: %w", i, err)
		}
		if !bytes.Equal(b[1:6], Magic) {
			return nil, fmt.Errorf("volume descriptor %d: not ISO 9660 (no CD001)", i)
		}
		switch b[0] {
		case 1:
			if pvd == nil {
				pvd = b
			}
		case 2:
			if svd == nil && isJoliet(b[88:120]) {
				svd = b
			}
		case 255:
			return open(r, pvd, svd)
		}
	}
	return nil, fmt.Errorf("no volume descriptor set terminator in %d descriptors", maxDescriptors)
}

func open(r io.ReaderAt, pvd, svd []byte) (*Volume, error) {
	if pvd == nil {
		return nil, errors.New("no primary volume descriptor")
	}
	if bs := binary.LittleEndian.Uint16(pvd[128:]); bs != SectorSize {
		return nil, fmt.Errorf("logical block size %d, want %d", bs, SectorSize)
	}
	v := &Volume{r: r, label: strings.TrimRight(string(pvd[40:72]), " \x00")}
	root, err := rootRecord(pvd, false)
	if err != nil {
		return nil, fmt.Errorf("primary root directory record: %w", err)
	}
	v.root = root
	recs, err := v.readDir(root)
	if err != nil {
		return nil, fmt.Errorf("read the root directory: %w", err)
	}
	v.rock = hasRockRidge(recs)
	if !v.rock && svd != nil {
		jroot, err := rootRecord(svd, true)
		if err != nil {
			return nil, fmt.Errorf("the Joliet root directory record: %w", err)
		}
		v.root, v.joliet = jroot, true
	}
	return v, nil
}

// rootRecord is the root directory record of a volume descriptor.
func rootRecord(desc []byte, joliet bool) (record, error) {
	r, err := parseRecord(desc[156:190], joliet)
	if err == nil && !r.dir {
		err = errors.New("not a directory")
	}
	return r, err
}

// isJoliet reports whether a supplementary descriptor's escape sequences
// name UCS-2 (levels 1–3).
func isJoliet(esc []byte) bool {
	return bytes.HasPrefix(esc, []byte("%/@")) || bytes.HasPrefix(esc, []byte("%/C")) || bytes.HasPrefix(esc, []byte("%/E"))
}

// Label is the primary volume identifier, trailing spaces removed.
func (v *Volume) Label() string { return v.label }

// rawRecord is a directory record with its system use area.
type rawRecord struct {
	record
	rawName   []byte
	systemUse []byte
}

// parseRecord decodes a directory record's fixed part.
func parseRecord(b []byte, joliet bool) (record, error) {
	rr, err := parseRaw(b)
	if err != nil {
		return record{}, err
	}
	rr.name = isoName(rr.rawName, joliet)
	return rr.record, nil
}

func parseRaw(b []byte) (rawRecord, error) {
	if len(b) < 34 || int(b[0]) < 34 || int(b[0]) > len(b) {
		return rawRecord{}, errors.New("short directory record")
	}
	b = b[:b[0]]
	n := int(b[32])
	if 33+n > len(b) {
		return rawRecord{}, errors.New("directory record name past its end")
	}
	le := binary.LittleEndian
	flags := b[25]
	if flags&0x80 != 0 {
		return rawRecord{}, errors.New("multi-extent files are not supported")
	}
	su := 33 + n
	if n%2 == 0 { // a padding byte keeps the system use area even
		su++
	}
	rr := rawRecord{
		record: record{
			extent: int64(le.Uint32(b[2:])) * SectorSize,
			size:   int64(le.Uint32(b[10:])),
			dir:    flags&0x02 != 0,
		},
		rawName: b[33 : 33+n],
	}
	if su < len(b) {
		rr.systemUse = b[su:]
	}
	return rr, nil
}

// isoName is a record's name: Joliet's UCS-2, or the ISO 9660 name
// without its version (";1") and a trailing dot, in lower case (what
// Linux shows with map=normal). "\x00" and "\x01" are "." and "..".
func isoName(raw []byte, joliet bool) string {
	if len(raw) == 1 && raw[0] <= 1 {
		return string(".."[:raw[0]+1])
	}
	var name string
	if joliet {
		u := make([]uint16, len(raw)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(raw[2*i:])
		}
		name = string(utf16.Decode(u))
	} else {
		name = strings.ToLower(string(raw))
	}
	if i := strings.LastIndexByte(name, ';'); i >= 0 {
		name = name[:i]
	}
	return strings.TrimSuffix(name, ".")
}

// rockName is the Rock Ridge alternate name in a system use area, if any.
func rockName(su []byte) (string, bool) {
	var name []byte
	found := false
	for len(su) >= 4 {
		n := int(su[2])
		if n < 4 || n > len(su) {
			break
		}
		if string(su[:2]) == "NM" && n >= 5 {
			flags := su[4]
			if flags&0x06 == 0 { // not "." or ".."
				name = append(name, su[5:n]...)
				found = true
			}
		}
		su = su[n:]
	}
	return string(name), found && len(name) > 0
}

// hasRockRidge reports whether the root's records carry Rock Ridge
// entries (SP in ".", or RR, NM or PX in any).
func hasRockRidge(recs []rawRecord) bool {
	for _, r := range recs {
		for su := r.systemUse; len(su) >= 4; su = su[su[2]:] {
			if su[2] < 4 || int(su[2]) > len(su) {
				break
			}
			switch string(su[:2]) {
			case "SP", "RR", "NM", "PX":
				return true
			}
		}
	}
	return false
}

// readDir reads a directory's records, "." and ".." included. A record
// never crosses a sector; a zero length byte ends the sector's records.
func (v *Volume) readDir(d record) ([]rawRecord, error) {
	if d.size > maxDirSize {
		return nil, fmt.Errorf("directory of %d bytes, more than %d", d.size, maxDirSize)
	}
	data := make([]byte, d.size)
	if _, err := v.r.ReadAt(data, d.extent); err != nil {
		return nil, fmt.Errorf("read directory at %d: %w", d.extent, err)
	}
	var recs []rawRecord
	for off := 0; off < len(data); {
		if data[off] == 0 {
			off = (off/SectorSize + 1) * SectorSize
			continue
		}
		end := min(len(data), (off/SectorSize+1)*SectorSize)
		rr, err := parseRaw(data[off:end])
		if err != nil {
			return nil, fmt.Errorf("directory record at %d: %w", d.extent+int64(off), err)
		}
		recs = append(recs, rr)
		off += int(data[off])
	}
	return recs, nil
}

// entries reads a directory's children with their names.
func (v *Volume) entries(d record) ([]record, error) {
	recs, err := v.readDir(d)
	if err != nil {
		return nil, err
	}
	var out []record
	for _, rr := range recs {
		name := isoName(rr.rawName, v.joliet)
		if name == "." || name == ".." || name == "" {
			continue
		}
		if v.rock {
			if n, ok := rockName(rr.systemUse); ok {
				name = n
			}
		}
		if strings.ContainsAny(name, "/\x00") {
			continue
		}
		rr.name = name
		out = append(out, rr.record)
	}
	return out, nil
}

// lookup finds the record at a slash-separated path.
func (v *Volume) lookup(name string) (record, error) {
	if !fs.ValidPath(name) {
		return record{}, fs.ErrInvalid
	}
	cur := v.root
	cur.name = "."
	if name == "." {
		return cur, nil
	}
	parts := strings.Split(name, "/")
	if len(parts) > maxDepth {
		return record{}, fs.ErrNotExist
	}
	for _, p := range parts {
		if !cur.dir {
			return record{}, fs.ErrNotExist
		}
		children, err := v.entries(cur)
		if err != nil {
			return record{}, err
		}
		found := false
		for _, c := range children {
			if c.name == p {
				cur, found = c, true
				break
			}
		}
		if !found {
			return record{}, fs.ErrNotExist
		}
	}
	return cur, nil
}

// Open opens a file or directory of the volume (fs.FS).
func (v *Volume) Open(name string) (fs.File, error) {
	rec, err := v.lookup(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	f := &file{v: v, rec: rec, name: path.Base(name)}
	if !rec.dir {
		f.sr = io.NewSectionReader(v.r, rec.extent, rec.size)
	}
	return f, nil
}

// file is an open file or directory.
type file struct {
	v    *Volume
	rec  record
	name string
	sr   *io.SectionReader // regular files
	rest []fs.DirEntry     // directories: what ReadDir has not returned yet
}

func (f *file) Stat() (fs.FileInfo, error) { return info{f.rec, f.name}, nil }
func (f *file) Close() error               { return nil }

func (f *file) Read(p []byte) (int, error) {
	if f.sr == nil {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: errors.New("is a directory")}
	}
	return f.sr.Read(p)
}

// ReadAt reads a regular file at an offset.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if f.sr == nil {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: errors.New("is a directory")}
	}
	return f.sr.ReadAt(p, off)
}

// ReadDir lists a directory (fs.ReadDirFile).
func (f *file) ReadDir(n int) ([]fs.DirEntry, error) {
	if !f.rec.dir {
		return nil, &fs.PathError{Op: "readdir", Path: f.name, Err: errors.New("not a directory")}
	}
	if f.rest == nil {
		children, err := f.v.entries(f.rec)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: f.name, Err: err}
		}
		f.rest = make([]fs.DirEntry, len(children))
		for i, c := range children {
			f.rest[i] = fs.FileInfoToDirEntry(info{c, c.name})
		}
	}
	if n <= 0 {
		out := f.rest
		f.rest = f.rest[len(f.rest):]
		return out, nil
	}
	if len(f.rest) == 0 {
		return nil, io.EOF
	}
	out := f.rest[:min(n, len(f.rest))]
	f.rest = f.rest[len(out):]
	return out, nil
}

// info is a record as fs.FileInfo.
type info struct {
	rec  record
	name string
}

func (i info) Name() string       { return i.name }
func (i info) Size() int64        { return i.rec.size }
func (i info) ModTime() time.Time { return time.Time{} }
func (i info) IsDir() bool        { return i.rec.dir }
func (i info) Sys() any           { return nil }
func (i info) Mode() fs.FileMode {
	if i.rec.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
