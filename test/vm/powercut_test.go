//go:build vm

package vm_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/image"
	"github.com/ingot-linux/ingot/vm"
)

// TestUpdatePowerCut cuts the power at ten points of `ingot update` — while
// slot and table are rewritten, while /usr is written, around the UKI's
// rename — and checks that every restart boots a complete version, old or
// new, and that the next update (a retry, or the next version) succeeds.
//
// It takes about as long as all other VM tests together (each cut costs a
// verification, a partial write and a boot under TCG: ~15–23 min).
// INGOT_POWERCUT=0 skips it for a quicker local run; CI always runs it.
func TestUpdatePowerCut(t *testing.T) {
	if os.Getenv("INGOT_POWERCUT") == "0" && os.Getenv("CI") == "" {
		t.Skip("INGOT_POWERCUT=0")
	}
	v1, _ := debianImage(t)
	v2 := buildVersion(t, "2.0.0")
	v3 := buildVersion(t, "3.0.0")
	payload := payloadDisk(t, v2.UpdateDir, v3.UpdateDir)

	ctx, cancel := context.WithTimeout(context.Background(), 70*time.Minute)
	defer cancel()
	logPath := filepath.Join(os.TempDir(), "ingot-vm-TestUpdatePowerCut.log")
	m, err := vm.Start(ctx, vm.Config{Image: v1.DiskPath, DiskSizeBytes: v1.DiskBytes + 3<<30, ExtraDisks: []string{payload}, LogFile: logPath})
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
		"ingot: update: retired old entries",
		"ingot: update: invalidated slot",
		"ingot: update: writing usr 64/",
		"ingot: update: writing usr 320/",
		"ingot: update: writing verity",
		"ingot: update: synced slot",
		"ingot: update: labelled slot",
		"ingot: update: wrote UKI",
		"ingot: update: installed UKI",
		"ingot: update: done",
	}
	complete := map[string]string{"1.0.0": "", "2.0.0": "", "3.0.0": ""}
	marker := booted(ctx, t, m)
	runFor(ctx, t, m, "mkdir -p /var/tmp/u && tar -xf /dev/vdb -C /var/tmp/u && sync", 10*time.Minute)
	for i, point := range points {
		running := marker[1]
		if _, ok := complete[running]; !ok {
			t.Fatalf("booted unknown version %q", marker[0])
		}
		target := v2
		if running == "2.0.0" {
			target = v3
		}
		if err := m.Send(updateCommand(running, target) + "\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.WaitFor(ctx, point, 10*time.Minute); err != nil {
			t.Fatalf("cut %d: %v", i, err)
		}
		if err := m.Restart(ctx); err != nil { // power cut, power on
			t.Fatal(err)
		}
		marker = booted(ctx, t, m)
		t.Logf("cut %d at %q (running %s, updating to %s): booted %s on slot %s", i, point, running, target.Version, marker[1], marker[2])
		if marker[1] != running && marker[1] != target.Version {
			t.Fatalf("after a cut at %q booted %s, want %s or %s", point, marker[1], running, target.Version)
		}
		if got := run(ctx, t, m, "ingot status --json >/dev/null && echo ok"); got != "ok" {
			t.Fatalf("status after cut %d: %s", i, got)
		}
	}

	// A last, uninterrupted update lands and boots.
	running := marker[1]
	target := v2
	if running == "2.0.0" {
		target = v3
	}
	runFor(ctx, t, m, updateCommand(running, target), 15*time.Minute)
	m.Send("systemctl reboot\n")
	other := map[string]string{"a": "b", "b": "a"}[marker[2]]
	expectMarker(t, booted(ctx, t, m), target.Version, other)
}

// updateCommand installs target from the extracted artifacts; from 3.0.0
// back to 2.0.0 is a downgrade, which must be allowed.
func updateCommand(running string, target *image.Result) string {
	cmd := "ingot update /var/tmp/u/" + filepath.Base(target.UpdateDir)
	if running == "3.0.0" {
		cmd += " --allow-downgrade"
	}
	return cmd
}
