//go:build vm

package vm_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/vm"
)

// TestUpdatePowerCut cuts the power of a real machine twice during
// `ingot update` of ingot's musl base — in the middle of writing /usr, and
// right after the UKI's rename — and checks that each restart boots a
// complete version, old or new, and that the next update succeeds. It is
// the end-to-end check that the crash-state enumeration's model (test/vm
// crash tests: every write and flush of every verb) matches a real boot.
func TestUpdatePowerCut(t *testing.T) {
	t.Parallel()
	v1 := baseVersion(t, "1.0.0")
	v2 := baseVersion(t, "2.0.0")
	// The last update goes to a version newer than either of the first
	// two, so it is an upgrade whichever of them the cuts left running.
	v3 := baseVersion(t, "3.0.0")
	payload := payloadDisk(t, v2.UpdateDir, v3.UpdateDir)

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	logPath := filepath.Join(os.TempDir(), "ingot-vm-TestUpdatePowerCut.log")
	m, err := vm.Start(ctx, vm.Config{Image: v1.DiskPath, DiskSizeBytes: v1.DiskBytes + 1<<30, ExtraDisks: []string{payload}, LogFile: logPath})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console (full log in %s):\n%s", logPath, m.Tail(8000))
		}
	})

	// Where to cut: each is a line `ingot update` prints just after the step.
	points := []string{
		"ingot: update: writing usr 64/",
		"ingot: update: installed UKI",
	}
	marker := booted(ctx, t, m)
	expectMarker(t, marker, "1.0.0", "a")
	runFor(ctx, t, m, "mkdir -p /var/tmp/u && tar -xf /dev/vdb -C /var/tmp/u && sync", 10*time.Minute)
	for i, point := range points {
		running := marker[1]
		if err := m.Send("ingot update /var/tmp/u/" + filepath.Base(v2.UpdateDir) + "\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.WaitFor(ctx, point, 10*time.Minute); err != nil {
			t.Fatalf("cut %d: %v", i, err)
		}
		if err := m.Restart(ctx); err != nil { // power cut, power on
			t.Fatal(err)
		}
		marker = booted(ctx, t, m)
		t.Logf("cut %d at %q (running %s, updating to 2.0.0): booted %s on slot %s", i, point, running, marker[1], marker[2])
		if marker[1] != running && marker[1] != "2.0.0" {
			t.Fatalf("after a cut at %q booted %s, want %s or 2.0.0", point, marker[1], running)
		}
		if i == 0 && marker[1] != "1.0.0" {
			t.Fatalf("a cut while /usr was written booted %s, want 1.0.0", marker[1])
		}
		if got := run(ctx, t, m, "ingot status --json >/dev/null && echo ok"); got != "ok" {
			t.Fatalf("status after cut %d: %s", i, got)
		}
	}

	// A last, uninterrupted update lands and boots.
	runFor(ctx, t, m, "ingot update /var/tmp/u/"+filepath.Base(v3.UpdateDir), 15*time.Minute)
	m.Send("systemctl reboot\n")
	other := map[string]string{"a": "b", "b": "a"}[marker[2]]
	expectMarker(t, booted(ctx, t, m), "3.0.0", other)
}
