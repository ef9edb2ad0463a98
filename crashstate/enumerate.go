package crashstate

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"strconv"

	"github.com/ingot-linux/ingot/format/logwrites"
)

// DefaultMaxPerEpoch is the default bound on the states drawn from one
// epoch.
const DefaultMaxPerEpoch = 256

// Options bound the enumeration.
type Options struct {
	// MaxPerEpoch bounds the states drawn from one epoch (default
	// DefaultMaxPerEpoch).
	MaxPerEpoch int
	// Seed seeds the random subsets (the same seed gives the same states).
	Seed uint64
}

// Kinds of states.
const (
	KindBarrier    = "barrier"     // the epoch's writes all lost: the state at the last barrier
	KindFinal      = "final"       // every write of the range
	KindExhaustive = "exhaustive"  // one of all subsets of a small epoch
	KindPrefix     = "prefix"      // the epoch's first writes in completion order
	KindAllButOne  = "all-but-one" // the epoch without one write
	KindTorn       = "torn"        // a prefix, then the first half of the next write
	KindRandom     = "random"      // a random subset
)

// State is one crash state.
type State struct {
	// Index counts the states of an enumeration from 0.
	Index int
	// Epoch counts the epochs of the range from 0.
	Epoch int
	// Barrier is the log index of the barrier before the epoch, or -1.
	Barrier int
	// Persisted and Lost are the log indexes of the epoch's writes that
	// this state has and has not (a torn write is in Persisted).
	Persisted, Lost []int
	// Torn is the log index of the torn write, or -1.
	Torn int
	// Kind says how the subset was chosen.
	Kind string
	// Disk is the state's disk, valid until the next state is asked for.
	Disk *View
}

// String names the state for failure messages.
func (s State) String() string {
	return fmt.Sprintf("state %d (%s; epoch %d after log entry %d; lost entries %v; torn %d)", s.Index, s.Kind, s.Epoch, s.Barrier, s.Lost, s.Torn)
}

// WriteOf turns a log entry into a Write, or reports false for entries
// that change no data (flushes, marks, empty writes).
func WriteOf(l *logwrites.Log, e logwrites.Entry) (Write, bool) {
	if e.Sectors == 0 || e.Flags&logwrites.Mark != 0 {
		return Write{}, false
	}
	w := Write{Off: l.ByteOffset(e), Len: l.ByteLen(e), ID: e.DataOffset, Entry: e.Index}
	if e.Flags&logwrites.Discard == 0 {
		w.Src = l.Data(e)
	}
	return w, true
}

// Replay applies the writes of entries to o in order.
func Replay(o *Overlay, l *logwrites.Log, entries []logwrites.Entry) error {
	for _, e := range entries {
		if w, ok := WriteOf(l, e); ok {
			if err := o.Apply(w); err != nil {
				return fmt.Errorf("log entry %d: %w", e.Index, err)
			}
		}
	}
	return nil
}

// Enumerate yields the crash states of entries over o, which must hold the
// disk as it was before the first of them; it leaves o holding the disk
// after the last. The states end with the final one (all writes).
func Enumerate(l *logwrites.Log, entries []logwrites.Entry, o *Overlay, opts Options) iter.Seq2[State, error] {
	if opts.MaxPerEpoch < 2 {
		opts.MaxPerEpoch = DefaultMaxPerEpoch
	}
	return func(yield func(State, error) bool) {
		en := enumerator{o: o, opts: opts, yield: yield, barrier: -1}
		var epoch []Write
		for _, e := range entries {
			w, ok := WriteOf(l, e)
			if ok {
				epoch = append(epoch, w)
			}
			if e.Flags&(logwrites.Flush|logwrites.FUA) == 0 {
				continue
			}
			if !en.epoch(epoch, e.Index) {
				return
			}
			epoch = epoch[:0]
		}
		if !en.epoch(epoch, -1) {
			return
		}
		en.emit(State{Kind: KindFinal, Barrier: en.barrier, Epoch: en.n, Torn: -1}, nil)
	}
}

type enumerator struct {
	o       *Overlay
	opts    Options
	yield   func(State, error) bool
	index   int
	n       int // epochs done
	barrier int
	stopped bool
}

func (en *enumerator) emit(s State, top []Write) bool {
	if en.stopped {
		return false
	}
	s.Index = en.index
	en.index++
	s.Disk = NewView(en.o, top)
	if !en.yield(s, nil) {
		en.stopped = true
	}
	return !en.stopped
}

// epoch yields the states of one epoch, then makes it durable in o.
func (en *enumerator) epoch(ws []Write, barrierAt int) bool {
	if len(ws) > 0 {
		for _, m := range subsets(ws, en.opts.MaxPerEpoch, en.opts.Seed, en.n) {
			if !en.emit(en.state(ws, m), m.writes(ws)) {
				return false
			}
		}
		for _, w := range ws {
			if err := en.o.Apply(w); err != nil {
				en.yield(State{}, fmt.Errorf("log entry %d: %w", w.Entry, err))
				en.stopped = true
				return false
			}
		}
		en.n++
	}
	if barrierAt >= 0 {
		en.barrier = barrierAt
	}
	return true
}

func (en *enumerator) state(ws []Write, m mask) State {
	s := State{Kind: m.kind, Epoch: en.n, Barrier: en.barrier, Torn: -1}
	for i, w := range ws {
		switch {
		case i == m.torn:
			s.Torn = w.Entry
			s.Persisted = append(s.Persisted, w.Entry)
		case m.in[i]:
			s.Persisted = append(s.Persisted, w.Entry)
		default:
			s.Lost = append(s.Lost, w.Entry)
		}
	}
	return s
}

// mask is a subset of an epoch's writes; torn, when ≥ 0, is a write of
// which only the first half of the sectors persisted.
type mask struct {
	in   []bool
	torn int
	kind string
}

func (m mask) writes(ws []Write) []Write {
	var out []Write
	for i, w := range ws {
		switch {
		case i == m.torn:
			half := (w.Len/512 + 1) / 2 * 512
			w.Len = half
			out = append(out, w)
		case m.in[i]:
			out = append(out, w)
		}
	}
	return out
}

func (m mask) key() string {
	b := make([]byte, len(m.in))
	for i, v := range m.in {
		if v {
			b[i] = 1
		}
	}
	return string(b[:len(m.in)]) + strconv.Itoa(m.torn)
}

// subsets returns the subsets of an epoch's writes to check, without the
// full set (the next epoch's barrier state, or the final state).
func subsets(ws []Write, bound int, seed uint64, epoch int) []mask {
	k := len(ws)
	var torn []int // writes of more than one sector
	for i, w := range ws {
		if w.Len > 512 {
			torn = append(torn, i)
		}
	}
	if k < 31 && 1<<k+2*len(torn) <= bound {
		return exhaustive(k, torn)
	}
	s := sampler{k: k, bound: bound, seen: map[string]bool{}}
	s.add(mask{in: make([]bool, k), torn: -1, kind: KindBarrier})
	quarter := max(1, bound/4)
	for _, i := range spread(k-1, quarter) {
		s.add(prefixMask(k, i+1, -1, KindPrefix))
	}
	for _, i := range spread(k, quarter) {
		m := prefixMask(k, k, -1, KindAllButOne)
		m.in[i] = false
		s.add(m)
	}
	for _, j := range spread(len(torn), quarter) {
		s.add(prefixMask(k, torn[j], torn[j], KindTorn))
	}
	rng := rand.New(rand.NewPCG(seed, uint64(epoch)))
	for tries := 0; len(s.out) < bound && tries < 4*bound; tries++ {
		m := mask{in: make([]bool, k), torn: -1, kind: KindRandom}
		for i := range m.in {
			m.in[i] = rng.IntN(2) == 1
		}
		s.add(m)
	}
	return s.out
}

// exhaustive returns every proper subset of k writes, and for each write of
// several sectors the states where it is torn with none and with all of
// the others.
func exhaustive(k int, torn []int) []mask {
	out := make([]mask, 0, 1<<k+2*len(torn))
	for bits := 0; bits < 1<<k-1; bits++ {
		m := mask{in: make([]bool, k), torn: -1, kind: KindExhaustive}
		for i := range k {
			m.in[i] = bits&(1<<i) != 0
		}
		if bits == 0 {
			m.kind = KindBarrier
		}
		out = append(out, m)
	}
	for _, i := range torn {
		none := mask{in: make([]bool, k), torn: i, kind: KindTorn}
		others := prefixMask(k, k, i, KindTorn)
		others.in[i] = false
		out = append(out, none)
		if k > 1 {
			out = append(out, others)
		}
	}
	return out
}

// prefixMask has the first n writes; torn ≥ 0 marks one torn write.
func prefixMask(k, n, torn int, kind string) mask {
	m := mask{in: make([]bool, k), torn: torn, kind: kind}
	for i := range n {
		m.in[i] = true
	}
	return m
}

// spread returns up to want indexes spread evenly over [0, n).
func spread(n, want int) []int {
	if n <= 0 {
		return nil
	}
	if n <= want {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := make([]int, want)
	for i := range out {
		out[i] = i * n / want
	}
	return out
}

type sampler struct {
	k, bound int
	seen     map[string]bool
	out      []mask
}

func (s *sampler) add(m mask) {
	full := m.torn < 0
	for _, v := range m.in {
		full = full && v
	}
	if full || len(s.out) >= s.bound || s.seen[m.key()] {
		return
	}
	s.seen[m.key()] = true
	s.out = append(s.out, m)
}
