package casync

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// windowSize is the length of the rolling hash's window.
const windowSize = 48

// Chunk sizes: casync's and desync's defaults, which ingot uses.
const (
	DefaultMin = 16 << 10
	DefaultAvg = 64 << 10
	DefaultMax = 256 << 10
	// MaxChunkMax bounds the largest chunk an index may declare, so a
	// reader never buffers more for one chunk.
	MaxChunkMax = 16 << 20
)

// Params are the chunk sizes of a chunker and of the index it makes.
type Params struct {
	Min, Avg, Max int64
}

// DefaultParams are casync's default chunk sizes: 16/64/256 KiB.
func DefaultParams() Params { return Params{Min: DefaultMin, Avg: DefaultAvg, Max: DefaultMax} }

// Check says what is wrong with p, if anything.
func (p Params) Check() error {
	switch {
	case p.Min <= windowSize:
		return fmt.Errorf("minimum chunk size %d: must be more than the %d-byte hash window", p.Min, windowSize)
	case p.Min > p.Avg || p.Avg > p.Max:
		return fmt.Errorf("chunk sizes min %d, avg %d, max %d: want min ≤ avg ≤ max", p.Min, p.Avg, p.Max)
	case p.Max > MaxChunkMax:
		return fmt.Errorf("maximum chunk size %d: more than %d", p.Max, MaxChunkMax)
	}
	return nil
}

// discriminator is casync's boundary divisor for an average chunk size.
func (p Params) discriminator() uint32 {
	avg := float64(p.Avg)
	return uint32(avg / (-1.42888852e-7*avg + 1.33237515))
}

// Chunker cuts a stream into content-defined chunks: a boundary follows
// the first position past Min where the buzhash of the last 48 bytes hits
// the discriminator, or Max. An insertion or deletion therefore moves
// only the boundaries near it; the chunks after it come out the same.
type Chunker struct {
	r    io.Reader
	p    Params
	disc uint32
	buf  []byte // unread bytes are buf[start:]
	pos  int
	off  int64
	eof  bool
}

// NewChunker returns a chunker reading r.
func NewChunker(r io.Reader, p Params) (*Chunker, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	return &Chunker{r: r, p: p, disc: p.discriminator(), buf: make([]byte, 0, 4*p.Max)}, nil
}

// Next returns the next chunk and its offset in the stream; the slice is
// valid until the following call. At the end it returns io.EOF.
func (c *Chunker) Next() (int64, []byte, error) {
	if err := c.fill(); err != nil {
		return 0, nil, err
	}
	avail := c.buf[c.pos:]
	if len(avail) == 0 {
		return 0, nil, io.EOF
	}
	n := c.boundary(avail)
	off := c.off
	c.pos += n
	c.off += int64(n)
	return off, avail[:n], nil
}

// fill makes sure at least Max bytes are buffered, or all that is left.
func (c *Chunker) fill() error {
	if c.eof || len(c.buf)-c.pos >= int(c.p.Max) {
		return nil
	}
	c.buf = c.buf[:copy(c.buf[:cap(c.buf)], c.buf[c.pos:])]
	c.pos = 0
	for len(c.buf) < cap(c.buf) {
		n, err := c.r.Read(c.buf[len(c.buf):cap(c.buf)])
		c.buf = c.buf[:len(c.buf)+n]
		if errors.Is(err, io.EOF) {
			c.eof = true
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// boundary returns the length of the chunk at the start of b, which
// holds at least Max bytes unless the stream ends within them.
func (c *Chunker) boundary(b []byte) int {
	lo := int(c.p.Min)
	if len(b) <= lo {
		return len(b)
	}
	end := min(len(b), int(c.p.Max))
	var h uint32
	for i, x := range b[lo-windowSize : lo] {
		h ^= bits.RotateLeft32(buzhashTable[x], windowSize-i-1)
	}
	for pos := lo; pos < end; {
		in, out := b[pos], b[pos-windowSize]
		h = bits.RotateLeft32(h, 1) ^ bits.RotateLeft32(buzhashTable[out], windowSize) ^ buzhashTable[in]
		pos++
		if h%c.disc == c.disc-1 {
			return pos
		}
	}
	return end
}
