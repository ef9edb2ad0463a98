//go:build vm

package vm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/format/logwrites"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/oci"
	"github.com/ingot-linux/ingot/vm"
)

// markSector is where the guest writes its in-band marks (the last sector
// before the first partition, which nothing reads): a write there whose
// data starts with markPrefix ends a recorded verb.
const (
	markSector = 2047
	markPrefix = "INGOT-CRASH-MARK "
)

// crashRec is one recorded session of ingot's musl base, shared by the
// TestCrash… tests: a first boot, an update from a directory (slot a→b), a
// reboot, an update from a registry (b→a), a rollback and a reset, with
// every write to the boot disk logged.
var crashRec struct {
	once     sync.Once
	err      error
	dir      string
	base     string // the 1.0.0 image: the disk before the log
	size     int64  // the disk the guest saw
	log      string
	marks    map[string]int // mark name → log index of its write
	usrHash  map[string]string
	duration time.Duration
}

// crashRecording records the session once (about 10 minutes under TCG:
// run with -timeout 60m).
func crashRecording(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("VM tests boot real machines; not in -short")
	}
	crashRec.once.Do(func() {
		start := time.Now()
		// Stays set if the recording stops the test (t.Fatal).
		crashRec.err = errors.New("the crash session recording failed (see the first TestCrash test)")
		crashRec.err = recordCrashSession(t)
		crashRec.duration = time.Since(start)
	})
	if crashRec.err != nil {
		t.Fatal(crashRec.err)
	}
}

func recordCrashSession(t *testing.T) error {
	dir := os.Getenv("INGOT_CRASH_KEEP") // a directory to keep the recording in, for a closer look
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "ingot-crash-*"); err != nil {
			return err
		}
		crashRec.dir = dir // removed by TestMain
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	crashRec.usrHash = map[string]string{}
	var vs []*diskimage.Result
	for _, v := range []string{"1.0.0", "2.0.0", "3.0.0"} {
		res := baseVersionWith(t, v, func(o *diskimage.Options) { o.OutputDir = filepath.Join(dir, "v"+v) })
		vs = append(vs, res)
		crashRec.usrHash[v] = res.UsrHash
	}
	if err := checkMarkSectorFree(vs[0].DiskPath); err != nil {
		return err
	}
	payload := payloadDisk(t, vs[1].UpdateDir)
	registry, _ := ingottest.DockerRegistry(t)
	if _, err := oci.Push(context.Background(), vs[2].UpdateDir, "oci://"+registry+"/ingot:3.0.0"); err != nil {
		return fmt.Errorf("push 3.0.0: %w", err)
	}
	crashRec.base, crashRec.size = vs[0].DiskPath, vs[0].DiskBytes+1<<30
	crashRec.log = filepath.Join(dir, "disk0.log")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	logPath := filepath.Join(os.TempDir(), "ingot-vm-TestCrash.log")
	m, err := vm.Start(ctx, vm.Config{Image: crashRec.base, DiskSizeBytes: crashRec.size, ExtraDisks: []string{payload},
		WriteLog: crashRec.log, LogFile: logPath,
		UserNet: &vm.UserNet{GuestForwards: []vm.GuestForward{{GuestAddr: "10.0.2.100", GuestPort: 5000, Target: registry}}}})
	if err != nil {
		return err
	}
	defer m.Close()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console (full log in %s):\n%s", logPath, m.Tail(8000))
		}
	})
	driveSession(ctx, t, m, filepath.Base(vs[1].UpdateDir))
	if err := m.Kill(); err != nil {
		return err
	}
	crashRec.marks, err = findMarks(crashRec.log)
	return err
}

// driveSession runs the verbs in the guest, each between marks.
func driveSession(ctx context.Context, t *testing.T, m *vm.Machine, v2Dir string) {
	mark := func(name string) {
		t.Helper()
		run(ctx, t, m, "sync && printf '"+markPrefix+name+"\\n' | dd of=/dev/vda bs=512 seek=2047 count=1 conv=sync,fsync 2>/dev/null && sync")
	}
	step := func(what string, fn func()) {
		start := time.Now()
		fn()
		t.Logf("guest: %s took %v", what, time.Since(start).Round(time.Second))
	}
	expectMarker(t, booted(ctx, t, m), "1.0.0", "a")
	mark("firstboot")
	runFor(ctx, t, m, "mkdir -p /var/tmp/u && tar -xf /dev/vdb -C /var/tmp/u", 10*time.Minute)
	mark("update-dir:start")
	step("ingot update from a directory", func() { runFor(ctx, t, m, "ingot update /var/tmp/u/"+v2Dir, 15*time.Minute) })
	mark("update-dir:end")
	m.Send("systemctl reboot\n")
	expectMarker(t, booted(ctx, t, m), "2.0.0", "b")
	run(ctx, t, m, "dev=$(ls /sys/class/net | grep -v '^lo$' | head -1) && ip link set $dev up && { ip addr add 10.0.2.15/24 dev $dev 2>/dev/null || ip addr show dev $dev | grep -q 'inet 10.0.2.15/'; }")
	mark("update-oci:start")
	step("ingot update from a registry", func() { runFor(ctx, t, m, "ingot update oci://10.0.2.100:5000/ingot:3.0.0", 15*time.Minute) })
	mark("update-oci:end")
	step("ingot rollback", func() { run(ctx, t, m, "ingot rollback") })
	mark("rollback:end")
	step("ingot reset", func() { run(ctx, t, m, "ingot reset") })
	mark("reset:end")
}

// checkMarkSectorFree makes sure no partition holds the mark sector.
func checkMarkSectorFree(disk string) error {
	d, f, err := diskimage.InspectFile(disk)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range d.Table.Partitions {
		if p.FirstLBA <= markSector && markSector <= p.LastLBA {
			return fmt.Errorf("partition %d holds sector %d, where the marks go", p.Index, markSector)
		}
	}
	return nil
}

// findMarks returns the log index of each mark the guest wrote.
func findMarks(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	l, err := logwrites.Open(f)
	if err != nil {
		return nil, err
	}
	marks := map[string]int{}
	buf := make([]byte, 512)
	for e, err := range l.Entries(logwrites.WithUncounted()) {
		if err != nil {
			return nil, err
		}
		if !e.IsWrite() || e.Sector > markSector || e.Sector+e.Sectors <= markSector {
			continue
		}
		if _, err := l.Data(e).ReadAt(buf, int64(markSector-e.Sector)*512); err != nil {
			return nil, err
		}
		if name, ok := bytes.CutPrefix(buf, []byte(markPrefix)); ok {
			n, _, _ := bytes.Cut(name, []byte("\n"))
			marks[strings.TrimSpace(string(n))] = e.Index
		}
	}
	return marks, nil
}
