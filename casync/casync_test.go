package casync

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
)

// pseudoRandom returns n reproducible bytes.
func pseudoRandom(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustMake(t *testing.T, data []byte, p Params) *Index {
	t.Helper()
	x, err := Make(bytes.NewReader(data), p)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestChunker checks the chunk sizes and that the chunks cover the input
// for inputs around the size bounds.
func TestChunker(t *testing.T) {
	p := DefaultParams()
	for _, tc := range []struct {
		name string
		data []byte
		want int // chunks; -1: any
	}{
		{"empty", nil, 0},
		{"one byte", []byte{1}, 1},
		{"exactly min", pseudoRandom(1, DefaultMin), 1},
		{"zeros: max-size chunks", make([]byte, 3*DefaultMax+5), 4},
		{"random 3 MiB", pseudoRandom(2, 3<<20), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := mustMake(t, tc.data, p)
			if tc.want >= 0 && len(x.Chunks) != tc.want {
				t.Errorf("%d chunks, want %d", len(x.Chunks), tc.want)
			}
			var off int64
			for i, c := range x.Chunks {
				if c.Offset != off || c.Size > p.Max || (c.Size < p.Min && i != len(x.Chunks)-1) {
					t.Fatalf("chunk %d: %+v after %d", i, c, off)
				}
				if Sum(tc.data[c.Offset:c.Offset+c.Size]) != c.ID {
					t.Fatalf("chunk %d: id is not the sha256 of its bytes", i)
				}
				off += c.Size
			}
			if off != int64(len(tc.data)) {
				t.Errorf("chunks cover %d of %d bytes", off, len(tc.data))
			}
			if len(tc.data) > 1<<20 && (x.Size()/int64(len(x.Chunks)) < p.Min || x.Size()/int64(len(x.Chunks)) > p.Max) {
				t.Errorf("average chunk %d bytes", x.Size()/int64(len(x.Chunks)))
			}
		})
	}
}

// TestInsertionShiftsNoOtherChunk is why the chunking is content-defined:
// bytes inserted into the middle change the chunks around them only.
func TestInsertionShiftsNoOtherChunk(t *testing.T) {
	p := DefaultParams()
	old := pseudoRandom(3, 4<<20)
	for _, tc := range []struct {
		name   string
		at     int
		insert []byte
	}{
		{"one byte", 2 << 20, []byte{42}},
		{"a block", 1 << 20, pseudoRandom(4, 4096)},
		{"at the start", 0, []byte("hello")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			neu := append(append(append([]byte{}, old[:tc.at]...), tc.insert...), old[tc.at:]...)
			a, b := mustMake(t, old, p), mustMake(t, neu, p)
			have := map[ID]bool{}
			for _, c := range a.Chunks {
				have[c.ID] = true
			}
			var missing int64
			for _, c := range b.Chunks {
				if !have[c.ID] {
					missing += c.Size
				}
			}
			if missing > 2*p.Max+int64(len(tc.insert)) {
				t.Errorf("%d bytes of new chunks after inserting %d bytes", missing, len(tc.insert))
			}
		})
	}
}

// TestDesync checks ingot's index against desync's, byte for byte: same
// chunker, same format.
func TestDesync(t *testing.T) {
	bin := ingottest.LookTool(t, "desync", "desync (scripts/setup builds it)")
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"random", pseudoRandom(5, 3<<20+123)},
		{"zeros and text", append(make([]byte, 1<<20), bytes.Repeat([]byte("ingot "), 200000)...)},
		{"small", []byte("tiny")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := filepath.Join(dir, "in")
			if err := os.WriteFile(in, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "desync.caibx")
			ingottest.Run(t, bin, "make", "--digest", "sha256", "-m", "16:64:256", out, in)
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			got, err := mustMake(t, tc.data, DefaultParams()).MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("index differs from desync's: %d bytes, desync %d", len(got), len(want))
			}
			if _, err := Parse(want, int64(len(tc.data))); err != nil {
				t.Fatalf("parse desync's index: %v", err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	data := pseudoRandom(6, 1<<20)
	good, err := mustMake(t, data, DefaultParams()).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	for _, tc := range []struct {
		name string
		b    []byte
		size int64
		ok   bool
	}{
		{"good", good, 1 << 20, true},
		{"wrong size", good, 1<<20 + 1, false},
		{"smaller file", good, 1<<20 - 1, false},
		{"empty", nil, 0, false},
		{"truncated", good[:len(good)-1], 1 << 20, false},
		{"trailing byte", append(append([]byte{}, good...), 0), 1 << 20, false},
		{"SHA512-256 ids", mod(func(b []byte) []byte { b[23] |= 0x20; return b }), 1 << 20, false},
		{"not an index", mod(func(b []byte) []byte { b[8] ^= 1; return b }), 1 << 20, false},
		{"min below the window", mod(func(b []byte) []byte { b[24], b[25] = 8, 0; return b }), 1 << 20, false},
		{"huge max", mod(func(b []byte) []byte { b[47] = 1; return b }), 1 << 20, false},
		{"bad tail", mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), 1 << 20, false},
		{"chunk end backwards", mod(func(b []byte) []byte { copy(b[64+40:], make([]byte, 7)); b[64+40] = 1; return b }), 1 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := Parse(tc.b, tc.size)
			if tc.ok != (err == nil) {
				t.Fatalf("Parse: %v, want ok=%v", err, tc.ok)
			}
			var fe *FormatError
			if err != nil && !errors.As(err, &fe) {
				t.Errorf("error %v is no *FormatError", err)
			}
			if err == nil && x.Size() != tc.size {
				t.Errorf("index of %d bytes", x.Size())
			}
		})
	}
}

// TestSeeds: a file changed in the middle is mostly found in its old
// version; each chunk read from a seed is checked against its id.
func TestSeeds(t *testing.T) {
	p := DefaultParams()
	old := pseudoRandom(7, 3<<20)
	neu := append([]byte{}, old...)
	copy(neu[1<<20:], pseudoRandom(8, 100<<10)) // 100 KiB changed
	for _, tc := range []struct {
		name     string
		seed     []byte
		maxFetch int64 // bytes not in the seed, at most
		minFetch int64
	}{
		{"same version", neu, 0, 0},
		{"one region changed", old, 100<<10 + 2*p.Max, 100 << 10},
		{"no seed data", nil, 3 << 20, 3 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSeeds(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Add(context.Background(), "seed", bytes.NewReader(tc.seed), int64(len(tc.seed))); err != nil {
				t.Fatal(err)
			}
			var fetch int64
			for _, c := range mustMake(t, neu, p).Chunks {
				buf := make([]byte, c.Size)
				ok, err := s.Read(c, buf)
				if err != nil {
					t.Fatal(err)
				}
				if ok != s.Has(c) {
					t.Fatalf("Has %v, Read %v", s.Has(c), ok)
				}
				if !ok {
					fetch += c.Size
				} else if !bytes.Equal(buf, neu[c.Offset:c.Offset+c.Size]) {
					t.Fatal("seed gave wrong bytes")
				}
			}
			if fetch > tc.maxFetch || fetch < tc.minFetch {
				t.Errorf("%d bytes to fetch, want %d–%d", fetch, tc.minFetch, tc.maxFetch)
			}
		})
	}
}

// TestSeedChanged: a seed whose bytes changed after it was cut yields no
// chunk, never the changed bytes.
func TestSeedChanged(t *testing.T) {
	p := DefaultParams()
	data := pseudoRandom(9, 1<<20)
	s, err := NewSeeds(p)
	if err != nil {
		t.Fatal(err)
	}
	seed := append([]byte{}, data...)
	if err := s.Add(context.Background(), "seed", bytes.NewReader(seed), int64(len(seed))); err != nil {
		t.Fatal(err)
	}
	x := mustMake(t, data, p)
	c := x.Chunks[0]
	seed[c.Offset] ^= 0xff
	if ok, err := s.Read(c, make([]byte, c.Size)); ok || err != nil {
		t.Errorf("changed seed chunk: ok %v, err %v", ok, err)
	}
}

func FuzzParse(f *testing.F) {
	data := pseudoRandom(10, 300<<10)
	b, err := (&Index{Params: DefaultParams()}).MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, int64(0))
	x, err := Make(bytes.NewReader(data), DefaultParams())
	if err != nil {
		f.Fatal(err)
	}
	b, err = x.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, int64(len(data)))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		x, err := Parse(b, size)
		if err != nil {
			return
		}
		if x.Size() != size {
			t.Fatalf("index of %d bytes for a file of %d", x.Size(), size)
		}
		out, err := x.MarshalBinary()
		if err != nil || !bytes.Equal(out, b[:len(out)]) || len(out) != len(b) {
			t.Fatalf("parsed index does not encode to its input")
		}
	})
}
