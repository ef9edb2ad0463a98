package casync

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
)

// casync format constants (casync's caformat.h; desync's const.go).
const (
	typeIndex      = 0x96824d9c7b129ff9
	typeTable      = 0xe75b9e112f17417d
	tableTail      = 0x4b4f050e5549ecd1
	flagSHA512256  = 0x2000000000000000
	flagExclNoDump = 0x8000000000000000
	indexHdrSize   = 48
	tableHdrSize   = 16
	itemSize       = 40
	tailSize       = 40
)

// ID is a chunk's id: the sha256 of its bytes. (casync's indexes without
// the SHA512-256 flag use sha256; ingot writes only those, so an id is
// also the chunk's OCI digest.)
type ID [32]byte

// String is the id in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Sum returns the id of data.
func Sum(data []byte) ID { return sha256.Sum256(data) }

// Chunk is one entry of an index: a range of the indexed file and the id
// of its bytes.
type Chunk struct {
	ID     ID
	Offset int64
	Size   int64
}

// Index is a casync blob index (.caibx): the chunks a file is cut into,
// in order.
type Index struct {
	Params Params
	Chunks []Chunk
	flags  uint64 // casync feature flags, kept as read
}

// Size is the length of the indexed file.
func (x *Index) Size() int64 {
	if len(x.Chunks) == 0 {
		return 0
	}
	last := x.Chunks[len(x.Chunks)-1]
	return last.Offset + last.Size
}

// MaxIndexBytes is the most an index of a file of size bytes cut with a
// minimum chunk size of min can have: every chunk but the last at least
// min bytes.
func MaxIndexBytes(size, min int64) int64 {
	if min <= 0 {
		min = 1
	}
	return indexHdrSize + tableHdrSize + (size/min+1)*itemSize + 8 + tailSize
}

// Make cuts r into chunks with p and returns their index.
func Make(r io.Reader, p Params) (*Index, error) {
	c, err := NewChunker(r, p)
	if err != nil {
		return nil, err
	}
	x := &Index{Params: p, flags: flagExclNoDump}
	for {
		off, b, err := c.Next()
		if errors.Is(err, io.EOF) {
			return x, nil
		}
		if err != nil {
			return nil, err
		}
		x.Chunks = append(x.Chunks, Chunk{ID: Sum(b), Offset: off, Size: int64(len(b))})
	}
}

// MarshalBinary encodes x in the casync index format, as casync and
// desync write it.
func (x *Index) MarshalBinary() ([]byte, error) {
	var b bytes.Buffer
	u := func(vs ...uint64) {
		for _, v := range vs {
			b.Write(binary.LittleEndian.AppendUint64(nil, v))
		}
	}
	u(indexHdrSize, typeIndex, x.flags, uint64(x.Params.Min), uint64(x.Params.Avg), uint64(x.Params.Max))
	u(math.MaxUint64, typeTable)
	for _, c := range x.Chunks {
		u(uint64(c.Offset + c.Size))
		b.Write(c.ID[:])
	}
	table := tableHdrSize + len(x.Chunks)*itemSize + tailSize
	u(0, 0, indexHdrSize, uint64(table), tableTail)
	return b.Bytes(), nil
}

// FormatError says what is wrong with an index.
type FormatError struct {
	// Offset is where in the index the problem is.
	Offset int
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("chunk index: at byte %d: %s", e.Offset, e.Reason)
}

// Parse decodes a casync blob index of a file of exactly size bytes.
// Everything it declares is checked before use: the header, chunk sizes
// within the index's own bounds (and MaxChunkMax), offsets that grow and
// end at size, the tail, and no bytes after it. Indexes with SHA512-256
// ids are refused: ids must be sha256.
func Parse(b []byte, size int64) (*Index, error) {
	r := &reader{b: b}
	flags, err := r.header()
	if err != nil {
		return nil, err
	}
	x := &Index{flags: flags}
	x.Params = Params{Min: r.int64(), Avg: r.int64(), Max: r.int64()}
	if r.err != nil {
		return nil, r.err
	}
	if err := x.Params.Check(); err != nil {
		return nil, &FormatError{Offset: 24, Reason: err.Error()}
	}
	if r.u64() != math.MaxUint64 || r.u64() != typeTable {
		return nil, r.fail(indexHdrSize, "no chunk table after the header")
	}
	if int64(len(b)) > MaxIndexBytes(size, x.Params.Min) {
		return nil, r.fail(0, fmt.Sprintf("%d bytes, more than an index of %d bytes in chunks of at least %d can have", len(b), size, x.Params.Min))
	}
	if err := r.items(x, size); err != nil {
		return nil, err
	}
	return x, r.tail(len(x.Chunks))
}

// reader decodes little-endian words, remembering the first error.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) u64() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b)-r.off < 8 {
		r.err = &FormatError{Offset: r.off, Reason: "truncated"}
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

func (r *reader) int64() int64 {
	v := r.u64()
	if v > math.MaxInt64 && r.err == nil {
		r.err = &FormatError{Offset: r.off - 8, Reason: fmt.Sprintf("value %d out of range", v)}
	}
	return int64(v)
}

func (r *reader) fail(off int, reason string) error {
	if r.err != nil {
		return r.err
	}
	return &FormatError{Offset: off, Reason: reason}
}

func (r *reader) header() (flags uint64, err error) {
	size, typ, flags := r.u64(), r.u64(), r.u64()
	switch {
	case r.err != nil:
		return 0, r.err
	case size != indexHdrSize || typ != typeIndex:
		return 0, r.fail(0, "not a casync blob index (.caibx)")
	case flags&flagSHA512256 != 0:
		return 0, r.fail(16, "chunk ids are SHA512-256; ingot needs sha256 ids (desync make --digest sha256, or ingot push)")
	}
	return flags, nil
}

// items reads the chunk table up to its zero terminator.
func (r *reader) items(x *Index, size int64) error {
	var prev int64
	for {
		at := r.off
		end := r.int64()
		if r.err != nil {
			return r.err
		}
		if end == 0 {
			break
		}
		n := end - prev
		switch {
		case end <= prev:
			return r.fail(at, fmt.Sprintf("chunk ends at %d, not after the previous one (%d)", end, prev))
		case n > x.Params.Max:
			return r.fail(at, fmt.Sprintf("chunk of %d bytes, more than the index's maximum %d", n, x.Params.Max))
		case end > size:
			return r.fail(at, fmt.Sprintf("chunk ends at %d, past the file's %d bytes", end, size))
		case len(r.b)-r.off < len(ID{}):
			return r.fail(r.off, "truncated chunk id")
		}
		c := Chunk{Offset: prev, Size: n}
		r.off += copy(c.ID[:], r.b[r.off:])
		x.Chunks = append(x.Chunks, c)
		prev = end
	}
	if prev != size {
		return r.fail(r.off-8, fmt.Sprintf("chunks cover %d bytes of a %d-byte file", prev, size))
	}
	return nil
}

// tail checks the table's tail record and that nothing follows it.
func (r *reader) tail(n int) error {
	at := r.off
	zero, idx, table, marker := r.u64(), r.u64(), r.u64(), r.u64()
	switch {
	case r.err != nil:
		return r.err
	case zero != 0 || idx != indexHdrSize || table != uint64(tableHdrSize+n*itemSize+tailSize) || marker != tableTail:
		return r.fail(at, "bad chunk table tail")
	case r.off != len(r.b):
		return r.fail(r.off, fmt.Sprintf("%d bytes after the chunk table", len(r.b)-r.off))
	}
	return nil
}
