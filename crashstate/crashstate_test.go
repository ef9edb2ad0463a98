package crashstate_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/ingot-linux/ingot/crashstate"
	"github.com/ingot-linux/ingot/format/logwrites"
	"github.com/ingot-linux/ingot/ingottest"
)

type op struct {
	off, n int64
	fill   byte // 0: flush; 0xff: discard
}

func logOf(t *testing.T, ops []op) (*logwrites.Log, []logwrites.Entry) {
	t.Helper()
	f := &ingottest.MemFile{}
	w, err := logwrites.NewWriter(f, 512)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		switch o.fill {
		case 0:
			err = w.Flush()
		case 0xff:
			err = w.Discard(o.off, o.n)
		default:
			err = w.Write(o.off, bytes.Repeat([]byte{o.fill}, int(o.n)), 0)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := logwrites.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	es, err := l.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return l, es
}

func read(t *testing.T, r io.ReaderAt, size int64) []byte {
	t.Helper()
	b := make([]byte, size)
	if _, err := r.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return b
}

// TestOverlayMatchesApply applies random writes to an overlay and to a
// plain buffer and compares every read.
func TestOverlayMatchesApply(t *testing.T) {
	const size = 64 << 10
	base := bytes.Repeat([]byte{7}, size/2) // the disk grew: its second half reads zeros
	rng := rand.New(rand.NewPCG(1, 2))
	var ops []op
	for range 200 {
		off := int64(rng.IntN(size/512)) * 512
		n := int64(1+rng.IntN(16)) * 512
		n = min(n, size-off)
		fill := byte(1 + rng.IntN(250))
		if rng.IntN(10) == 0 {
			fill = 0xff
		}
		ops = append(ops, op{off, n, fill})
	}
	l, es := logOf(t, ops)
	o := crashstate.NewOverlay(bytes.NewReader(base), size)
	want := make([]byte, size)
	copy(want, base)
	for i, e := range es {
		if err := crashstate.Replay(o, l, es[i:i+1]); err != nil {
			t.Fatal(err)
		}
		fill := ops[i].fill
		if fill == 0xff {
			fill = 0
		}
		copy(want[ops[i].off:ops[i].off+ops[i].n], bytes.Repeat([]byte{fill}, int(ops[i].n)))
		if got := read(t, o, size); !bytes.Equal(got, want) {
			t.Fatalf("after entry %d (%+v) the overlay differs", e.Index, ops[i])
		}
	}
	// A read at an odd offset and length.
	p := make([]byte, 1000)
	if _, err := o.ReadAt(p, 777); err != nil || !bytes.Equal(p, want[777:1777]) {
		t.Errorf("odd read: %v", err)
	}
}

func TestEnumerate(t *testing.T) {
	tests := []struct {
		name       string
		ops        []op
		bound      int
		wantStates int
	}{
		// Epoch of 3 writes: 7 proper subsets; epoch of 1: 1; final: 1.
		{"exhaustive", []op{{0, 512, 1}, {512, 512, 2}, {1024, 512, 3}, {}, {0, 512, 4}, {}}, 0, 7 + 1 + 1},
		// A write of two sectors: lost, torn; then the final state.
		{"torn", []op{{0, 1024, 1}, {}}, 0, 1 + 1 + 1},
		// Two writes, one of two sectors: 3 subsets, torn alone and with
		// the other, final.
		{"torn with another", []op{{0, 1024, 1}, {4096, 512, 2}, {}}, 0, 3 + 2 + 1},
		// 20 writes in one epoch, bound 16.
		{"sampled", manyWrites(20), 16, 16 + 1},
		// No writes at all: only the final state.
		{"empty", []op{{}, {}}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, es := logOf(t, tt.ops)
			o := crashstate.NewOverlay(bytes.NewReader(nil), 64<<10)
			n := 0
			for s, err := range crashstate.Enumerate(l, es, o, crashstate.Options{MaxPerEpoch: tt.bound, Seed: 1}) {
				if err != nil {
					t.Fatal(err)
				}
				checkState(t, l, es, s)
				n++
			}
			if n != tt.wantStates {
				t.Errorf("%d states, want %d", n, tt.wantStates)
			}
		})
	}
}

func manyWrites(k int) []op {
	var ops []op
	for i := range k {
		ops = append(ops, op{int64(i) * 1024, 1024, byte(i + 1)})
	}
	return append(ops, op{})
}

// checkState compares the state's disk with the writes it says it has.
func checkState(t *testing.T, l *logwrites.Log, es []logwrites.Entry, s crashstate.State) {
	t.Helper()
	want := make([]byte, s.Disk.Size())
	persisted := map[int]bool{}
	for _, i := range s.Persisted {
		persisted[i] = true
	}
	lost := map[int]bool{}
	for _, i := range s.Lost {
		lost[i] = true
	}
	for _, e := range es {
		w, ok := crashstate.WriteOf(l, e)
		if !ok || lost[e.Index] || (e.Index > s.Barrier && !persisted[e.Index] && s.Kind != crashstate.KindFinal) {
			continue
		}
		data := make([]byte, w.Len)
		if w.Src != nil {
			w.Src.ReadAt(data, 0)
		}
		if e.Index == s.Torn {
			data = data[:(w.Len/512+1)/2*512]
		}
		copy(want[w.Off:], data)
	}
	if got := read(t, s.Disk, s.Disk.Size()); !bytes.Equal(got, want) {
		t.Errorf("%v: disk differs from its writes", s)
	}
}

// TestEnumerateReproducible: the same seed gives the same states.
func TestEnumerateReproducible(t *testing.T) {
	l, es := logOf(t, manyWrites(40))
	run := func(seed uint64) [][]int {
		var out [][]int
		o := crashstate.NewOverlay(bytes.NewReader(nil), 64<<10)
		for s, err := range crashstate.Enumerate(l, es, o, crashstate.Options{MaxPerEpoch: 64, Seed: seed}) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s.Lost)
		}
		return out
	}
	a, b, c := run(1), run(1), run(2)
	if len(a) != 65 {
		t.Errorf("%d states, want 64 + final", len(a))
	}
	if !equal(a, b) {
		t.Error("seed 1 gave different states twice")
	}
	if equal(a, c) {
		t.Error("seeds 1 and 2 gave the same states")
	}
}

func equal(a, b [][]int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				return false
			}
		}
	}
	return true
}

// TestFingerprint: equal where the states agree, different where not.
func TestFingerprint(t *testing.T) {
	l, es := logOf(t, []op{{0, 512, 1}, {}, {4096, 512, 2}, {8192, 512, 3}, {}})
	o := crashstate.NewOverlay(bytes.NewReader(nil), 64<<10)
	var states []crashstate.State
	fps := map[int][2][32]byte{}
	for s, err := range crashstate.Enumerate(l, es, o, crashstate.Options{}) {
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, s)
		fps[s.Index] = [2][32]byte{s.Disk.Fingerprint(0, 4096), s.Disk.Fingerprint(4096, 512)}
	}
	// States: 0 (nothing), then epoch 2: none, {2}, {3}, then final {2,3}.
	if len(states) != 5 {
		t.Fatalf("%d states", len(states))
	}
	if fps[0][0] == fps[1][0] {
		t.Error("the first write did not change the fingerprint of its region")
	}
	if fps[1][0] != fps[2][0] || fps[2][0] != fps[4][0] {
		t.Error("a region no state changed has different fingerprints")
	}
	if fps[1][1] == fps[2][1] || fps[2][1] != fps[4][1] || fps[3][1] != fps[1][1] {
		t.Errorf("fingerprints of the second region do not follow its writes")
	}
}
