package vm

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/ingottest"
)

// requireQEMU skips (or, with INGOT_REQUIRE_TOOLS=1, fails) a test that
// needs QEMU, qemu-img and OVMF when one is missing.
func requireQEMU(t *testing.T) {
	t.Helper()
	requireTool(t, DefaultQEMU, "qemu-system-x86")
	requireTool(t, DefaultQEMUImg, "qemu-utils")
	if _, err := findFirmware(firmwareCandidates(false)); err != nil {
		ingottest.Skip(t, "%v", err)
	}
}

// startOVMF boots OVMF on an empty 16 MiB raw disk: there is nothing to
// boot, so it falls through to the UEFI shell on the serial console.
func startOVMF(t *testing.T, ctx context.Context, cfg Config) *Machine {
	t.Helper()
	requireQEMU(t)
	dir := t.TempDir()
	if cfg.Image == "" {
		cfg.Image = writeFile(t, filepath.Join(dir, "empty.raw"), nil, 16<<20)
	}
	if testing.Verbose() {
		cfg.Output = LineWriter(func(s string) { t.Log("console: " + s) })
	}
	start := time.Now()
	m, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	t.Logf("qemu up in %v: %s", time.Since(start).Round(time.Millisecond), strings.Join(m.Args(), " "))
	return m
}

// waitFor is WaitFor that fails the test and logs how long it took.
func waitFor(t *testing.T, ctx context.Context, m *Machine, s string, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	if _, err := m.WaitFor(ctx, s, timeout); err != nil {
		t.Fatal(err)
	}
	t.Logf("%q after %v", s, time.Since(start).Round(time.Millisecond))
}

// banner is printed once per boot, after all of OVMF's BdsDxe lines.
const banner = "UEFI Interactive Shell"

// bootShell waits for one boot of OVMF to reach the UEFI shell.
func bootShell(t *testing.T, ctx context.Context, m *Machine) {
	t.Helper()
	waitFor(t, ctx, m, banner, 60*time.Second)
	waitFor(t, ctx, m, "Press ESC in", 20*time.Second)
	if err := m.Send(" "); err != nil { // skip the countdown
		t.Fatal(err)
	}
	waitFor(t, ctx, m, "Shell> ", 20*time.Second)
}

// TestOVMFConsole proves firmware discovery, the overlay, serial capture,
// typing on the console, a guest-initiated reboot in the same QEMU process,
// and Kill.
func TestOVMFConsole(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	img := writeFile(t, filepath.Join(dir, "empty.raw"), nil, 16<<20)
	m := startOVMF(t, ctx, Config{Image: img})

	if _, err := os.Stat(filepath.Join(m.RunDir(), overlayName)); err != nil {
		t.Errorf("no overlay: %v", err)
	}
	if _, err := os.Stat(filepath.Join(m.RunDir(), varsName)); err != nil {
		t.Errorf("no nvram copy: %v", err)
	}
	bootShell(t, ctx, m)

	// Typed input reaches the guest; the answer is distinguishable from
	// the echo of what was typed.
	if err := m.Send("set ingotvar ingot\r"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, m, "Shell> ", 10*time.Second)
	if err := m.Send("echo %ingotvar%-probe\r"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, m, "ingot-probe", 10*time.Second)

	// A reboot from inside the guest keeps QEMU and boots again.
	if err := m.Send("reset\r"); err != nil {
		t.Fatal(err)
	}
	got, err := m.WaitForRegexp(ctx, regexp.MustCompile(`BdsDxe: (\w+)`), 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second boot: %q", got[0])
	waitFor(t, ctx, m, banner, 60*time.Second)
	if !m.Running() {
		t.Fatal("qemu exited on a guest reboot")
	}
	if n := strings.Count(m.Log(), banner); n != 2 {
		t.Errorf("log has %d boots, want 2", n)
	}

	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Wait after Kill = %v", err)
	}
	if st, err := os.Stat(img); err != nil || st.Size() != 16<<20 {
		t.Errorf("image changed: %v, %v", st, err)
	}
	run := m.RunDir()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(run); !os.IsNotExist(err) {
		t.Errorf("run dir left after Close: %v", err)
	}
}

// TestOVMFPowerCycle talks QMP to a real QEMU and power-cycles it with Kill
// and Restart, on a persistent image with persistent NVRAM.
func TestOVMFPowerCycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	img := writeFile(t, filepath.Join(dir, "disk.raw"), nil, 8<<20)
	m := startOVMF(t, ctx, Config{
		Image:          img,
		Persist:        true,
		DiskSizeBytes:  32 << 20,
		PersistentVars: filepath.Join(dir, "vars.fd"),
		RunDir:         filepath.Join(dir, "run"),
	})
	if st, err := os.Stat(img); err != nil || st.Size() != 32<<20 {
		t.Fatalf("persistent image not grown to 32 MiB: %v, %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "vars.fd")); err != nil {
		t.Fatalf("persistent nvram not created: %v", err)
	}
	status, err := m.QMP(ctx, "query-status", nil)
	if err != nil || !strings.Contains(string(status), `"running"`) {
		t.Fatalf("query-status = %s, %v", status, err)
	}
	waitFor(t, ctx, m, banner, 60*time.Second)

	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := m.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, m, banner, 60*time.Second)
	if n := strings.Count(m.Log(), banner); n != 2 {
		t.Errorf("log has %d boots, want 2", n)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "run", logName)); err != nil {
		t.Errorf("log in a given run dir removed: %v", err)
	}
}

// TestOVMFSecureBootTPM boots the Secure Boot firmware with a TPM: QEMU
// must see the emulated TPM, the firmware must start measuring (swtpm
// writes its state), and swtpm must stop with QEMU; its state stays next
// to the persistent NVRAM.
func TestOVMFSecureBootTPM(t *testing.T) {
	requireTool(t, DefaultSWTPM, "swtpm")
	if _, err := findFirmware(firmwareCandidates(true)); err != nil {
		ingottest.Skip(t, "%v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	m := startOVMF(t, ctx, Config{SecureBoot: true, TPM: true, PersistentVars: filepath.Join(dir, "vars.fd")})
	tpm, err := m.QMP(ctx, "query-tpm", nil)
	if err != nil || !strings.Contains(string(tpm), `"emulator"`) || !strings.Contains(string(tpm), `"tpm-tis"`) {
		t.Fatalf("query-tpm = %s, %v", tpm, err)
	}
	waitFor(t, ctx, m, banner, 90*time.Second)
	p := m.current().tpm
	if p == nil {
		t.Fatal("no swtpm process")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	default:
		t.Error("swtpm still runs after Close")
	}
	if _, err := os.Stat(filepath.Join(dir, "vars.fd.tpm", "tpm2-00.permall")); err != nil {
		t.Errorf("no TPM state next to the NVRAM: %v", err)
	}
}
