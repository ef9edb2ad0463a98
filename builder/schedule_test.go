package builder

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSchedule(t *testing.T) {
	// a ← b ← d, a ← c ← d, e independent; c fails.
	order := []string{"a", "e", "b", "c", "d"}
	deps := map[string][]string{"b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
	var mu sync.Mutex
	var ran []string
	var concurrent, peak atomic.Int32
	run := func(_ context.Context, n string) error {
		c := concurrent.Add(1)
		defer concurrent.Add(-1)
		for {
			p := peak.Load()
			if c <= p || peak.CompareAndSwap(p, c) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		ran = append(ran, n)
		mu.Unlock()
		if n == "c" {
			return errors.New("boom")
		}
		return nil
	}
	res := schedule(context.Background(), order, deps, 2, true, run)
	var se *SkippedError
	if !errors.As(res["d"], &se) || se.Cause != "c" {
		t.Errorf("d: %v, want skipped because of c", res["d"])
	}
	for _, n := range []string{"a", "b", "e"} {
		if res[n] != nil {
			t.Errorf("%s: %v", n, res[n])
		}
	}
	if peak.Load() != 2 {
		t.Errorf("peak concurrency %d, want 2", peak.Load())
	}
	pos := map[string]int{}
	for i, n := range ran {
		pos[n] = i
	}
	if pos["a"] > pos["b"] || pos["a"] > pos["c"] {
		t.Errorf("ran %v: a must come before b and c", ran)
	}
	if _, ok := pos["d"]; ok {
		t.Errorf("d ran although c failed")
	}
}

func TestScheduleStopsWithoutKeepGoing(t *testing.T) {
	order := []string{"a", "b", "c"}
	var n atomic.Int32
	res := schedule(context.Background(), order, nil, 1, false, func(_ context.Context, name string) error {
		n.Add(1)
		if name == "a" {
			return fmt.Errorf("boom")
		}
		return nil
	})
	var se *SkippedError
	if n.Load() != 1 || !errors.As(res["b"], &se) || se.Cause != "" {
		t.Errorf("ran %d, b: %v", n.Load(), res["b"])
	}
}

func TestScheduleCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	res := schedule(ctx, []string{"a", "b"}, map[string][]string{"b": {"a"}}, 1, true, func(ctx context.Context, name string) error {
		cancel()
		return nil
	})
	if !errors.Is(res["b"], context.Canceled) {
		t.Errorf("b: %v, want canceled", res["b"])
	}
}
