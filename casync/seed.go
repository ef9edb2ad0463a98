package casync

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Seeds finds chunks in local data: each seed is cut with the index's
// chunk sizes, so the parts it shares with the indexed file come out as
// the same chunks, found by id.
type Seeds struct {
	p     Params
	at    map[ID]seedChunk
	names []string
	srcs  []io.ReaderAt
	// Bytes is how much seed data was cut.
	Bytes int64
}

type seedChunk struct {
	src  int
	off  int64
	size int64
}

// NewSeeds returns an empty seed set for chunks cut with p.
func NewSeeds(p Params) (*Seeds, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	return &Seeds{p: p, at: map[ID]seedChunk{}}, nil
}

// Add cuts size bytes of r into chunks and remembers where each one is.
// name says what r is, for errors.
func (s *Seeds) Add(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	src := len(s.srcs)
	s.srcs, s.names = append(s.srcs, r), append(s.names, name)
	c, err := NewChunker(io.NewSectionReader(r, 0, size), s.p)
	if err != nil {
		return err
	}
	zero := map[int64]ID{} // runs of zeros are common (free space): hash each length once
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		off, b, err := c.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("seed %s: %w", name, err)
		}
		s.Bytes += int64(len(b))
		id, ok := zero[int64(len(b))]
		if !ok || !allZero(b) {
			id = Sum(b)
			if allZero(b) {
				zero[int64(len(b))] = id
			}
		}
		if _, ok := s.at[id]; !ok {
			s.at[id] = seedChunk{src: src, off: off, size: int64(len(b))}
		}
	}
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// Has says whether a seed holds chunk c.
func (s *Seeds) Has(c Chunk) bool {
	sc, ok := s.at[c.ID]
	return ok && sc.size == c.Size
}

// Read reads chunk c from a seed into buf (of c.Size bytes) and checks
// its id: a seed that changed since it was cut, or an id collision of
// sizes, gives false, never wrong bytes.
func (s *Seeds) Read(c Chunk, buf []byte) (bool, error) {
	sc, ok := s.at[c.ID]
	if !ok || sc.size != c.Size || int64(len(buf)) != c.Size {
		return false, nil
	}
	if _, err := s.srcs[sc.src].ReadAt(buf, sc.off); err != nil {
		return false, fmt.Errorf("read seed %s at %d: %w", s.names[sc.src], sc.off, err)
	}
	return Sum(buf) == c.ID, nil
}
