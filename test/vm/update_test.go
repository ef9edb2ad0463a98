//go:build vm

package vm_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/agent"
	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/oci"
	"github.com/ingot-linux/ingot/vm"
)

// waitForAddress waits until networkd has an address from QEMU's DHCP
// server, and returns it.
func waitForAddress(ctx context.Context, t testing.TB, m *vm.Machine) string {
	t.Helper()
	addr := runFor(ctx, t, m, "for i in $(seq 90); do a=$(networkctl --no-pager status 2>/dev/null | awk '$1 == \"Address:\" {print $2; exit}'); [ -n \"$a\" ] && break; sleep 1; done; echo $a", 3*time.Minute)
	if !strings.HasPrefix(addr, "10.0.2.") {
		t.Fatalf("no DHCP address from networkd: %q\n%s", addr, run(ctx, t, m, "networkctl --no-pager status || true"))
	}
	return addr
}

// buildVersion builds the Debian fixture as another version.
func buildVersion(t testing.TB, version string, cmdline ...string) *diskimage.Result {
	t.Helper()
	return buildVersionWith(t, version, func(o *diskimage.Options) { o.Cmdline = cmdline })
}

// buildVersionWith builds the Debian fixture as another version, with
// options changed by mod.
func buildVersionWith(t testing.TB, version string, mod func(*diskimage.Options)) *diskimage.Result {
	t.Helper()
	o := diskimage.Options{
		RootFS: shared.rootfs, Version: version, OutputDir: filepath.Join(shared.dir, "v"+version), Epoch: epoch,
		InitPath: filepath.Join(shared.bin, "ingot-init"), AgentPath: filepath.Join(shared.bin, "ingot-agent"),
		Autologin: true,
	}
	mod(&o)
	res, err := diskimage.Build(context.Background(), o)
	if err != nil {
		t.Fatalf("build %s: %v", version, err)
	}
	return res
}

// payloadDisk packs update artifacts into a tar file that the guest reads
// as a raw disk (/dev/vdb): no network needed.
func payloadDisk(t *testing.T, dirs ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "payload.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, dir := range dirs {
		base := filepath.Dir(dir)
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			hdr, err := tar.FileInfoHeader(fi, "")
			if err != nil {
				return err
			}
			hdr.Name, _ = filepath.Rel(base, path)
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			src, err := os.Open(path)
			if err != nil {
				return err
			}
			defer src.Close()
			_, err = io.Copy(tw, src)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	// Whole sectors for the disk.
	fi, _ := f.Stat()
	f.Truncate((fi.Size() + 1<<20) / 512 * 512)
	return p
}

func status(ctx context.Context, t *testing.T, m *vm.Machine) agent.Status {
	t.Helper()
	var st agent.Status
	runJSON(ctx, t, m, "ingot status --json", &st)
	return st
}

func expectMarker(t *testing.T, marker []string, version, slot string) {
	t.Helper()
	if marker[1] != version || marker[2] != slot {
		t.Fatalf("booted %q, want version %s on slot %s", marker[0], version, slot)
	}
}

// TestUpdateRollbackReset walks a machine of ingot's musl base through v1 → v2 (slot b, pulled
// from a real registry) → v3 (slot a), a manual rollback to v2, a v4 whose
// /usr has one flipped byte on disk (dm-verity refuses it, the boot fails
// three times, automatic fallback to v2), a v5 that hangs (the boot
// deadline, fallback again) and a factory reset.
func TestUpdateRollbackReset(t *testing.T) {
	t.Parallel()
	v1 := baseVersion(t, "1.0.0")
	v2 := baseVersion(t, "2.0.0")
	v3 := baseVersion(t, "3.0.0")
	// v4 is sound; the test corrupts it on the disk after installing it.
	v4 := baseVersion(t, "4.0.0")
	// v5's boot hangs: a health check of its own never finishes, so the
	// boot deadline reboots it.
	hangRootfs := baseRootfsWith(t, map[string]string{"usr/lib/systemd/system/ingot-test-hang.service": "[Unit]\nDescription=a health check that never ends\n\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'while :; do sleep 3600; done'\nTimeoutStartSec=infinity\n"})
	v5 := baseVersionWith(t, "5.0.0", func(o *diskimage.Options) {
		o.RootFS, o.HealthChecks, o.BootDeadline = hangRootfs, []string{"ingot-test-hang.service"}, 50*time.Second
	})
	payload := payloadDisk(t, v1.UpdateDir, v3.UpdateDir, v4.UpdateDir, v5.UpdateDir)

	// v2 comes from a real registry on the host's loopback, which the guest
	// reaches through one guestfwd and nothing else (restrict=on).
	registry, _ := ingottest.DockerRegistry(t)
	if _, err := oci.Push(context.Background(), v2.UpdateDir, "oci://"+registry+"/ingot:2.0.0"); err != nil {
		t.Fatalf("push v2: %v", err)
	}
	const guestRegistry = "10.0.2.100:5000"

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	logPath := filepath.Join(os.TempDir(), "ingot-vm-TestUpdateRollbackReset.log")
	m, err := vm.Start(ctx, vm.Config{Image: v1.DiskPath, DiskSizeBytes: v1.DiskBytes + 2<<30, ExtraDisks: []string{payload}, LogFile: logPath,
		UserNet: &vm.UserNet{GuestForwards: []vm.GuestForward{{GuestAddr: "10.0.2.100", GuestPort: 5000, Target: registry}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console (full log in %s):\n%s", logPath, m.Tail(8000))
		}
	})

	expectMarker(t, booted(ctx, t, m), "1.0.0", "a")
	runFor(ctx, t, m, "mkdir -p /var/tmp/u && tar -xf /dev/vdb -C /var/tmp/u && echo kept > /etc/ingot-update-test && echo kept > /var/lib/ingot-update-test", 10*time.Minute)

	// The running version is refused and nothing changes.
	out, code, err := m.Run(ctx, "ingot update /var/tmp/u/"+filepath.Base(v1.UpdateDir), 5*time.Minute)
	if err != nil || code == 0 || !strings.Contains(out, "already running") {
		t.Errorf("update to the running version: exit %d, %v:\n%s", code, err, out)
	}
	// networkd's DHCP address (QEMU's user network) reaches the forward.
	waitForAddress(ctx, t, m)
	runFor(ctx, t, m, "ingot update oci://"+guestRegistry+"/ingot:2.0.0", 15*time.Minute)
	st := status(ctx, t, m)
	if st.Version != "1.0.0" || st.Slot != "a" || st.OtherSlotVersion != "2.0.0" || st.Pending != "2.0.0" {
		t.Errorf("status after installing v2: %+v", st)
	}
	m.Send("systemctl reboot\n")
	expectMarker(t, booted(ctx, t, m), "2.0.0", "b")
	for _, p := range []string{"/etc/ingot-update-test", "/var/lib/ingot-update-test"} {
		if got := run(ctx, t, m, "cat "+p); got != "kept" {
			t.Errorf("%s = %q after the update", p, got)
		}
	}

	runFor(ctx, t, m, "ingot update /var/tmp/u/"+filepath.Base(v3.UpdateDir), 15*time.Minute)
	m.Send("systemctl reboot\n")
	expectMarker(t, booted(ctx, t, m), "3.0.0", "a")
	st = status(ctx, t, m)
	if st.OtherSlotVersion != "2.0.0" || len(st.Entries) != 2 {
		t.Errorf("status on v3: %+v", st)
	}

	// Manual rollback: v2 (slot b) boots next.
	run(ctx, t, m, "ingot rollback")
	m.Send("systemctl reboot\n")
	expectMarker(t, booted(ctx, t, m), "2.0.0", "b")

	// v4 (into slot a), with one byte of its /usr flipped on the disk:
	// dm-verity refuses the block, ingot-init cannot mount /usr and
	// reboots, three times; then systemd-boot falls back to v2 on its own.
	runFor(ctx, t, m, "ingot update /var/tmp/u/"+filepath.Base(v4.UpdateDir), 15*time.Minute)
	usrA := fmt.Sprintf("/dev/vda%d", layout.UsrAIndex)
	flipped := run(ctx, t, m, `f=`+usrA+` && off=1024 && b=$(od -An -tu1 -j $off -N 1 "$f" | tr -d ' ') && `+
		`printf "\\$(printf %03o $((b ^ 255)))" | dd of="$f" bs=1 seek=$off count=1 conv=notrunc status=none && `+
		`sync && echo "$f byte $off was $b, now $(od -An -tu1 -j $off -N 1 "$f" | tr -d ' ')"`)
	t.Logf("corrupted v4: %s", flipped)
	logBefore := len(m.Log())
	m.Send("systemctl reboot\n")
	expectMarker(t, bootedWithin(ctx, t, m, 15*time.Minute), "2.0.0", "b")
	st = status(ctx, t, m)
	if st.RolledBack == nil || st.RolledBack.From != "4.0.0" {
		t.Errorf("status after the corrupted v4 does not report the rollback: %+v", st)
	}
	since := m.Log()[logBefore:]
	if n := strings.Count(since, "ingot-init: FAILED: mount /usr"); n != 3 {
		t.Errorf("v4 failed to mount /usr %d times, want 3 tries", n)
	}
	if !regexp.MustCompile(`verity.*(corrupt|error)|(corrupt|error).*verity`).MatchString(since) {
		t.Error("the console does not show dm-verity refusing the corrupted block")
	}
	if !strings.Contains(m.Log(), "ingot: rolled back from 4.0.0") {
		t.Error("the console does not say the machine rolled back")
	}

	// v5 (into slot a) hangs before boot-complete: the boot deadline
	// reboots it three times, then systemd-boot falls back to v2.
	runFor(ctx, t, m, "ingot update /var/tmp/u/"+filepath.Base(v5.UpdateDir), 15*time.Minute)
	logBefore = len(m.Log())
	m.Send("systemctl reboot\n")
	// Three tries that each run into the deadline, then v2.
	expectMarker(t, bootedWithin(ctx, t, m, 20*time.Minute), "2.0.0", "b")
	st = status(ctx, t, m)
	if st.RolledBack == nil || st.RolledBack.From != "5.0.0" {
		t.Errorf("status after the hanging v5 does not report the rollback: %+v", st)
	}
	// Three tries of v5 that the deadline ended (a systemd shutdown each,
	// no panic) while the health check hung. (Our own reboot from v2 is
	// not on the console: booted set the console log level to 1.)
	since = m.Log()[logBefore:]
	if n := strings.Count(since, "systemd-shutdown[1]: Rebooting."); n != 3 {
		t.Errorf("%d deadline reboots of v5, want 3", n)
	}
	if strings.Contains(since, "Kernel panic") {
		t.Error("v5 panicked instead of hanging")
	}
	// systemd names the job by its unit or its description, depending on
	// the version and the console's width.
	if !strings.Contains(since, "ingot-test-hang") && !strings.Contains(since, "a health check that never ends") {
		t.Error("v5 never started its hanging health check")
	}
	// Booting v2 passed ingot's own health check.
	if got := run(ctx, t, m, "systemctl is-active ingot-health.service"); got != "active" {
		t.Errorf("ingot-health.service on v2 is %q", got)
	}

	// Factory reset: same version, fresh root.
	before := run(ctx, t, m, "cat /etc/machine-id")
	run(ctx, t, m, "ingot reset")
	m.Send("systemctl reboot\n")
	expectMarker(t, booted(ctx, t, m), "2.0.0", "b")
	if info := bootInfo(ctx, t, m); !info.FirstBoot {
		t.Errorf("after reset the root partition was not made anew: %+v", info)
	}
	if out, code, _ := m.Run(ctx, "cat /etc/ingot-update-test", time.Minute); code == 0 {
		t.Errorf("/etc change survived the reset: %s", out)
	}
	if after := run(ctx, t, m, "cat /etc/machine-id"); after == before {
		t.Errorf("machine-id %s survived the reset", after)
	}
}
