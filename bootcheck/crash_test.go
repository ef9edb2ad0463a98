package bootcheck_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/bootcheck"
	"github.com/ingot-linux/ingot/crashstate"
	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/format/logwrites"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/layout"
)

// recorder is a disk that logs every write (widened to whole sectors) and
// flush in the dm-log-writes format, as QEMU's blklogwrites does.
type recorder struct {
	disk *os.File
	log  *logwrites.Writer
}

func (r *recorder) WriteAt(p []byte, off int64) (int, error) {
	lo, hi := off&^511, (off+int64(len(p))+511)&^511
	buf := make([]byte, hi-lo)
	if _, err := r.disk.ReadAt(buf, lo); err != nil {
		return 0, err
	}
	copy(buf[off-lo:], p)
	if _, err := r.disk.WriteAt(buf, lo); err != nil {
		return 0, err
	}
	return len(p), r.log.Write(lo, buf, 0)
}

func (r *recorder) flush() error { return r.log.Flush() }

// Sync is fsync on the disk: a flush (gpt.Table.Write syncs between the
// backup and the primary copy when it can).
func (r *recorder) Sync() error { return r.flush() }

// Steps of a simulated `ingot update` of slot b, in the order a test
// case lists them.
const (
	stepUsr         = "write usr and verity"
	stepLabel       = "label slot (gpt.Table.Write, which syncs between the copies)"
	stepLabelNoSync = "label slot (through a writer that cannot sync)"
	stepUKIData     = "write the UKI's clusters"
	stepUKIMeta     = "write the FAT and directory entry of the UKI"
	stepFlush       = "flush"
)

// noSync hides the recorder's Sync method.
type noSync struct{ w io.WriterAt }

func (n noSync) WriteAt(p []byte, off int64) (int, error) { return n.w.WriteAt(p, off) }

// simulateUpdate installs v2 into slot b of the disk at p (holding v1) in
// the given steps, recording the writes, and returns the log. The ESP
// change is the new volume's difference from the old one: the UKI's data
// sectors, and the rest (FAT, directory).
func simulateUpdate(t *testing.T, p string, tab *gpt.Table, v1, v2 *version, steps []string) (*logwrites.Log, []logwrites.Entry) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var logf ingottest.MemFile
	lw, err := logwrites.NewWriter(&logf, 512)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{disk: f, log: lw}
	ps := tab.Partitions
	// Without loader.conf every file sorts before the new UKI, so the
	// writer leaves them where they were, as a FAT driver does.
	old, next := espVolume(t, "", v1), espVolume(t, "", v1, v2)
	data, meta := splitESPChange(old, next, v2.uki)
	writeSectors := func(secs []int64) error {
		for _, s := range secs {
			if _, err := r.WriteAt(next[s:s+512], ps[0].Offset(512)+s); err != nil {
				return err
			}
		}
		return nil
	}
	usr, ver := layout.UsrPartUUIDs(v2.rootHash)
	ps[4].UUID, ps[4].Name = usr, layout.UsrLabel(v2.name)
	ps[5].UUID, ps[5].Name = ver, layout.VerityLabel(v2.name)
	for _, step := range steps {
		var err error
		switch step {
		case stepUsr:
			_, err = r.WriteAt(v2.usr, ps[4].Offset(512))
			if err == nil {
				_, err = r.WriteAt(v2.verity, ps[5].Offset(512))
			}
		case stepLabel:
			err = tab.Write(r, diskBytes)
		case stepLabelNoSync:
			err = tab.Write(noSync{r}, diskBytes)
		case stepUKIData:
			err = writeSectors(data)
		case stepUKIMeta:
			err = writeSectors(meta)
		case stepFlush:
			err = r.flush()
		}
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := logwrites.Open(&logf)
	if err != nil {
		t.Fatal(err)
	}
	es, err := l.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return l, es
}

// splitESPChange returns the offsets of the 512-byte sectors that differ
// between two ESP volumes: those holding the UKI's bytes, and the rest.
func splitESPChange(old, next, ukiData []byte) (data, meta []int64) {
	chunks := map[string]bool{}
	for i := 0; i+512 <= len(ukiData); i += 512 {
		chunks[string(ukiData[i:i+512])] = true
	}
	for s := 0; s+512 <= len(next); s += 512 {
		if bytes.Equal(old[s:s+512], next[s:s+512]) {
			continue
		}
		if chunks[string(next[s:s+512])] {
			data = append(data, int64(s))
		} else {
			meta = append(meta, int64(s))
		}
	}
	return data, meta
}

// crashCheck enumerates every crash state of the log over the disk before
// it and returns the number of states and the first one that does not
// boot v1 or v2 directly.
func crashCheck(t *testing.T, base string, l *logwrites.Log, es []logwrites.Entry, v1, v2 *version) (int, string) {
	t.Helper()
	f, err := os.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := bootcheck.New(bootcheck.Options{})
	o := crashstate.NewOverlay(f, diskBytes)
	n, bad := 0, ""
	for s, err := range crashstate.Enumerate(l, es, o, crashstate.Options{Seed: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		res := c.Check(s.Disk, diskBytes)
		ok := res.Err == nil && res.Fallbacks() == 0 && (res.Version == v1.name || res.Version == v2.name)
		if ok {
			ok = bootcheck.Updatable(s.Disk, diskBytes, v1.rootHash) == nil || bootcheck.Updatable(s.Disk, diskBytes, v2.rootHash) == nil
		}
		if !ok && bad == "" {
			bad = fmt.Sprintf("%v: %v", s, res)
		}
	}
	t.Logf("%d crash states checked (UKI checks %d, memo hits %d; verity checks %d, memo hits %d)", n,
		c.Stats.UKIChecks, c.Stats.UKIMemoHits, c.Stats.VerityChecks, c.Stats.VerityMemoHits)
	return n, bad
}

// TestCrashBrokenOrder proves the crash states catch a wrong write order:
// the update as the agent orders it survives every crash state, and an
// update that labels the slot or shows the UKI before the bytes they point
// at are flushed leaves a state that does not boot a version directly,
// named with the lost log entries and the reason.
func TestCrashBrokenOrder(t *testing.T) {
	v1, v2 := buildVersion(t, "1.0.0"), buildVersion(t, "2.0.0")
	tests := []struct {
		name    string
		steps   []string
		wantBad string // "" when every state must boot
	}{
		{"agent order", []string{stepUsr, stepFlush, stepLabel, stepFlush, stepUKIData, stepFlush, stepUKIMeta, stepFlush}, ""},
		{"UKI before its bytes are flushed", []string{stepUsr, stepFlush, stepLabel, stepFlush, stepUKIData, stepUKIMeta, stepFlush},
			"ingot_2.0.0+3-0.efi is not whole"},
		{"slot labelled before its data is synced", []string{stepUKIData, stepFlush, stepUsr, stepLabelNoSync, stepUKIMeta, stepFlush},
			"after ingot_2.0.0+3-0.efi failed: mount /usr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, tab := writeDisk(t, v1, "")
			base := p + ".base"
			copyFile(t, p, base)
			l, es := simulateUpdate(t, p, tab, v1, v2, tt.steps)
			start := time.Now()
			n, bad := crashCheck(t, base, l, es, v1, v2)
			t.Logf("%d log entries, %d states in %v", len(es), n, time.Since(start).Round(time.Millisecond))
			switch {
			case tt.wantBad == "" && bad != "":
				t.Errorf("a crash state does not boot: %s", bad)
			case tt.wantBad != "" && bad == "":
				t.Errorf("no crash state caught the broken order")
			case tt.wantBad != "" && !strings.Contains(bad, tt.wantBad):
				t.Errorf("caught %s; want it to say %q", bad, tt.wantBad)
			case bad != "":
				t.Logf("caught: %s", bad)
			}
		})
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
