//go:build vm

package vm_test

import (
	"encoding/hex"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/bootcheck"
	"github.com/ingot-linux/ingot/crashstate"
	"github.com/ingot-linux/ingot/format/logwrites"
)

// crashSegment is the part of the recorded log one verb wrote.
type crashSegment struct {
	name string
	// from and to are marks: the segment is the entries after from's
	// write up to to's; from "" starts at the beginning of the log.
	from, to string
	// versions are what a crash state may boot (directly, no fallback).
	versions []string
}

// TestCrashFirstBoot checks every crash state of a first boot: the GPT
// moved to the end of the grown disk, the root partition added, formatted
// and named, boot counting and blessing on the ESP.
func TestCrashFirstBoot(t *testing.T) {
	checkCrashSegment(t, crashSegment{"first boot", "", "firstboot", []string{"1.0.0"}})
}

// TestCrashUpdate checks every crash state of `ingot update` from a
// directory (slot a→b) and from a registry (slot b→a).
func TestCrashUpdate(t *testing.T) {
	checkCrashSegment(t, crashSegment{"update from a directory, a→b", "update-dir:start", "update-dir:end", []string{"1.0.0", "2.0.0"}})
	checkCrashSegment(t, crashSegment{"update from a registry, b→a", "update-oci:start", "update-oci:end", []string{"2.0.0", "3.0.0"}})
}

// TestCrashRollback checks every crash state of `ingot rollback`.
func TestCrashRollback(t *testing.T) {
	checkCrashSegment(t, crashSegment{"rollback", "update-oci:end", "rollback:end", []string{"2.0.0", "3.0.0"}})
}

// TestCrashReset checks every crash state of `ingot reset`.
func TestCrashReset(t *testing.T) {
	checkCrashSegment(t, crashSegment{"reset", "rollback:end", "reset:end", []string{"2.0.0", "3.0.0"}})
}

// checkCrashSegment enumerates the crash states of a segment of the
// recorded session and checks that each boots one of the segment's
// versions directly and allows the next update.
func checkCrashSegment(t *testing.T, seg crashSegment) {
	t.Helper()
	crashRecording(t)
	t.Logf("recorded session: %v", crashRec.duration.Round(time.Second))
	from, to, err := segmentBounds(seg)
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.Open(crashRec.base)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	logf, err := os.Open(crashRec.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	l, entries, err := readLog(logf)
	if err != nil {
		t.Fatal(err)
	}
	o := crashstate.NewOverlay(base, crashRec.size)
	if err := crashstate.Replay(o, l, entries[:from]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c := bootcheck.New(bootcheck.Options{})
	n, bad := 0, 0
	reasons := map[string]int{} // reason → bad states
	var order []string
	for s, err := range crashstate.Enumerate(l, entries[from:to], o, crashstate.Options{Seed: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		msg := checkCrashState(c, s, seg.versions)
		if msg == "" {
			continue
		}
		bad++
		if reasons[msg]++; reasons[msg] == 1 {
			order = append(order, msg)
			t.Errorf("%s: %v: %s", seg.name, s, msg)
		}
	}
	for _, msg := range order {
		t.Logf("%s: %d states: %s", seg.name, reasons[msg], msg)
	}
	t.Logf("%s: %d crash states checked in %v (log entries %d–%d; %d bad; UKI checks %d + %d memoised, verity checks %d + %d memoised)",
		seg.name, n, time.Since(start).Round(10*time.Millisecond), from, to, bad,
		c.Stats.UKIChecks, c.Stats.UKIMemoHits, c.Stats.VerityChecks, c.Stats.VerityMemoHits)
}

// checkCrashState returns why a state is bad, or "".
func checkCrashState(c *bootcheck.Checker, s crashstate.State, versions []string) string {
	res := c.Check(s.Disk, crashRec.size)
	switch {
	case res.Err != nil:
		return res.String()
	case res.Fallbacks() > 0:
		return "boots only after a fallback: " + res.String()
	case !slices.Contains(versions, res.Version):
		return "boots an unexpected version: " + res.String()
	}
	h, _ := hex.DecodeString(res.UsrHash)
	if err := bootcheck.Updatable(s.Disk, crashRec.size, h); err != nil {
		return "the next update cannot start: " + err.Error()
	}
	return ""
}

func segmentBounds(seg crashSegment) (from, to int, err error) {
	if seg.from != "" {
		i, ok := crashRec.marks[seg.from]
		if !ok {
			return 0, 0, missingMark(seg.from)
		}
		from = i + 1
	}
	i, ok := crashRec.marks[seg.to]
	if !ok {
		return 0, 0, missingMark(seg.to)
	}
	return from, i, nil
}

type missingMark string

func (m missingMark) Error() string { return "the recorded log has no mark " + string(m) }

func readLog(f *os.File) (*logwrites.Log, []logwrites.Entry, error) {
	l, err := logwrites.Open(f)
	if err != nil {
		return nil, nil, err
	}
	es, err := l.ReadAll(logwrites.WithUncounted())
	return l, es, err
}
