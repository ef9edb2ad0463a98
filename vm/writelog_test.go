package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/format/logwrites"
)

// TestWriteLog writes to the boot disk through QEMU's block layer (the
// monitor's qemu-io, as a guest's writes arrive) and reads the writes and
// the flush back from the log.
func TestWriteLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logPath := filepath.Join(t.TempDir(), "disk0.log")
	m := startOVMF(t, ctx, Config{WriteLog: logPath})
	for _, cmd := range []string{"write -P 0xab 4096 8192", "flush", "write -P 0xcd 0 512"} {
		args := map[string]string{"command-line": `qemu-io -d /machine/peripheral-anon/device[0]/virtio-backend "` + cmd + `"`}
		out, err := m.QMP(ctx, "human-monitor-command", args)
		if err != nil {
			t.Fatalf("qemu-io %s: %v", cmd, err)
		}
		var s string
		// qemu-io reports success on the console, errors here.
		if err := json.Unmarshal(out, &s); err != nil || s != "" {
			t.Fatalf("qemu-io %s: %s", cmd, s)
		}
	}
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := logwrites.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	var got []logwrites.Entry
	for e, err := range l.Entries(logwrites.WithUncounted()) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	// OVMF may have written before: look at the last three entries.
	if len(got) < 3 {
		t.Fatalf("%d log entries, want at least 3: %+v", len(got), got)
	}
	w1, fl, w2 := got[len(got)-3], got[len(got)-2], got[len(got)-1]
	if w1.Sector != 8 || w1.Sectors != 16 || fl.Flags != logwrites.Flush || w2.Sector != 0 || w2.Sectors != 1 {
		t.Errorf("entries %+v, %+v, %+v; want a write of 16 sectors at 8, a flush, a write of one sector at 0", w1, fl, w2)
	}
	data, _ := io.ReadAll(l.Data(w1))
	if !bytes.Equal(data, bytes.Repeat([]byte{0xab}, 8192)) {
		t.Error("the logged data is not what was written")
	}
	if l.Counted() < uint64(fl.Index+1) {
		t.Errorf("the superblock counts %d entries after the flush, want at least %d", l.Counted(), fl.Index+1)
	}
}
