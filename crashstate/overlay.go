package crashstate

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sort"
)

// Write is one write to the disk: Len bytes at Off, read from Src at SrcOff,
// or zeros when Src is nil (a discard, replayed as zeros).
type Write struct {
	Off, Len int64
	Src      io.ReaderAt
	SrcOff   int64
	// ID names the data uniquely among all writes that share a Fingerprint
	// (the log entry's data offset); equal IDs mean equal bytes.
	ID int64
	// Entry is the index of the log entry the write came from.
	Entry int
}

// extent is a piece of a write that is still visible.
type extent struct {
	off, len int64
	src      io.ReaderAt
	srcOff   int64
	id       int64
}

// Overlay is a disk made of a base image with writes on top, kept as a
// sorted list of non-overlapping extents that point into the writes'
// sources (the log), so no disk data is copied. The zero value is not
// usable; make one with NewOverlay.
type Overlay struct {
	base io.ReaderAt
	size int64
	ext  []extent
	fp   map[[2]int64][32]byte
}

// NewOverlay returns an overlay over the first size bytes of base; reads
// beyond base's end (a disk that was grown) are zeros.
func NewOverlay(base io.ReaderAt, size int64) *Overlay {
	return &Overlay{base: base, size: size, fp: map[[2]int64][32]byte{}}
}

// Size is the disk size in bytes.
func (o *Overlay) Size() int64 { return o.size }

// Apply puts w on top of the overlay.
func (o *Overlay) Apply(w Write) error {
	if w.Off < 0 || w.Len <= 0 || w.Off+w.Len > o.size {
		return fmt.Errorf("write of %d bytes at %d outside the %d-byte disk", w.Len, w.Off, o.size)
	}
	clear(o.fp)
	o.ext = insert(o.ext, extent{w.Off, w.Len, w.Src, w.SrcOff, w.ID})
	return nil
}

// insert puts ne into the sorted, non-overlapping list ext, cutting what
// it covers.
func insert(ext []extent, ne extent) []extent {
	end := ne.off + ne.len
	i := sort.Search(len(ext), func(i int) bool { return ext[i].off+ext[i].len > ne.off })
	j := i
	var before, after []extent
	for ; j < len(ext) && ext[j].off < end; j++ {
		e := ext[j]
		if e.off < ne.off {
			before = append(before, extent{e.off, ne.off - e.off, e.src, e.srcOff, e.id})
		}
		if eEnd := e.off + e.len; eEnd > end {
			cut := end - e.off
			after = append(after, extent{end, eEnd - end, e.src, srcAdd(e.src, e.srcOff, cut), e.id})
		}
	}
	repl := append(append(before, ne), after...)
	return slices.Replace(ext, i, j, repl...)
}

func srcAdd(src io.ReaderAt, off, n int64) int64 {
	if src == nil {
		return 0
	}
	return off + n
}

// ReadAt reads the disk as the overlay shows it.
func (o *Overlay) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	if off >= o.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), o.size-off))
	if err := readBase(o.base, p[:n], off); err != nil {
		return 0, err
	}
	end := off + int64(n)
	i := sort.Search(len(o.ext), func(i int) bool { return o.ext[i].off+o.ext[i].len > off })
	for ; i < len(o.ext) && o.ext[i].off < end; i++ {
		if err := copyExtent(p[:n], off, o.ext[i]); err != nil {
			return 0, err
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readBase fills p from base, with zeros past its end.
func readBase(base io.ReaderAt, p []byte, off int64) error {
	n, err := base.ReadAt(p, off)
	if err != nil && err != io.EOF {
		return fmt.Errorf("read base disk at %d: %w", off, err)
	}
	clear(p[n:])
	return nil
}

// copyExtent copies the part of e that overlaps [off, off+len(p)) into p.
func copyExtent(p []byte, off int64, e extent) error {
	lo, hi := max(off, e.off), min(off+int64(len(p)), e.off+e.len)
	if lo >= hi {
		return nil
	}
	dst := p[lo-off : hi-off]
	if e.src == nil {
		clear(dst)
		return nil
	}
	if _, err := e.src.ReadAt(dst, e.srcOff+(lo-e.off)); err != nil {
		return fmt.Errorf("read logged data at %d: %w", e.srcOff+(lo-e.off), err)
	}
	return nil
}

// Fingerprint is a hash of what the overlay holds in [off, off+n): equal
// fingerprints mean equal bytes there (a write's ID stands for its data,
// and the base is the same for all states of one log). Callers memoise
// expensive checks of a region by it.
func (o *Overlay) Fingerprint(off, n int64) [32]byte {
	key := [2]int64{off, n}
	if fp, ok := o.fp[key]; ok {
		return fp
	}
	fp := hashExtents(o.region(off, n))
	o.fp[key] = fp
	return fp
}

// region returns a copy of the extents in [off, off+n), clipped to it.
func (o *Overlay) region(off, n int64) []extent {
	end := off + n
	var out []extent
	i := sort.Search(len(o.ext), func(i int) bool { return o.ext[i].off+o.ext[i].len > off })
	for ; i < len(o.ext) && o.ext[i].off < end; i++ {
		e := o.ext[i]
		lo, hi := max(off, e.off), min(end, e.off+e.len)
		out = append(out, extent{lo, hi - lo, e.src, srcAdd(e.src, e.srcOff, lo-e.off), e.id})
	}
	return out
}

// hashExtents hashes a sorted extent list canonically: neighbouring
// pieces of the same write count as one.
func hashExtents(ext []extent) [32]byte {
	h := sha256.New()
	var b [24]byte
	for i := 0; i < len(ext); {
		e := ext[i]
		id, end := extentID(e), e.off+e.len
		for i++; i < len(ext) && ext[i].off == end && extentID(ext[i]) == id; i++ {
			end += ext[i].len
		}
		binary.LittleEndian.PutUint64(b[0:], uint64(e.off))
		binary.LittleEndian.PutUint64(b[8:], uint64(end-e.off))
		binary.LittleEndian.PutUint64(b[16:], uint64(id))
		h.Write(b[:])
	}
	var fp [32]byte
	h.Sum(fp[:0])
	return fp
}

// extentID names an extent's data: its write's ID, or -1 for zeros.
func extentID(e extent) int64 {
	if e.src == nil {
		return -1
	}
	return e.id
}
