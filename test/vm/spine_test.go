//go:build vm

// Package vm_test boots real ingot images in QEMU (TCG) with OVMF and checks
// them from inside. Run with: go test -tags vm ./test/vm/ (as root: the
// Debian fixture is made with mmdebstrap).
package vm_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/vm"
)

const epoch = 1700000000

var (
	repoRoot = func() string { p, _ := filepath.Abs("../.."); return p }()
	bins     struct {
		once sync.Once
		dir  string
		err  error
	}
	shared struct {
		once     sync.Once
		err      error
		dir      string
		bin      string
		rootfs   string
		disk     string
		result   *diskimage.Result
		buildDur time.Duration
	}
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range []string{shared.dir, bins.dir, base.dir, crashRec.dir} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

// binaries builds ingot, ingot-init and ingot-agent (static, as make
// build does) once for all tests and returns their directory.
func binaries(t testing.TB) string {
	t.Helper()
	bins.once.Do(func() {
		if bins.dir, bins.err = os.MkdirTemp("", "ingot-vm-bin-*"); bins.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", bins.dir+"/", "./cmd/ingot", "./cmd/ingot-init", "./cmd/ingot-agent")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			bins.err = fmt.Errorf("build binaries: %v\n%s", err, out)
		}
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	return bins.dir
}

// debianImage builds the binaries and the image of the Debian fixture once.
func debianImage(t testing.TB) (*diskimage.Result, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("VM tests boot real machines; not in -short")
	}
	rootfs := ingottest.DebianRootfs(t, repoRoot)
	bin := binaries(t)
	shared.once.Do(func() {
		shared.rootfs = rootfs
		shared.dir, shared.err = os.MkdirTemp("", "ingot-vm-test-*")
		if shared.err != nil {
			return
		}
		shared.bin = bin
		start := time.Now()
		shared.result, shared.err = buildImage(filepath.Join(shared.dir, "out"))
		shared.buildDur = time.Since(start)
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.result, shared.bin
}

func buildImage(out string) (*diskimage.Result, error) {
	return diskimage.Build(context.Background(), diskimage.Options{
		RootFS: shared.rootfs, Version: "1.0.0", OutputDir: out, Epoch: epoch,
		InitPath: filepath.Join(shared.bin, "ingot-init"), AgentPath: filepath.Join(shared.bin, "ingot-agent"),
		Autologin: true,
	})
}

// TestDebianImageValidators checks the image of a real distribution with the
// upstream tools.
func TestDebianImageValidators(t *testing.T) {
	t.Parallel()
	res, _ := debianImage(t)
	t.Logf("image built in %v: %d MiB /usr in a %d MiB slot, UKI %d MiB", shared.buildDur.Round(time.Second),
		res.UsrBytes>>20, res.UsrSlotBytes>>20, res.UKIBytes>>20)
	d, f, err := diskimage.InspectFile(res.DiskPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if hex.EncodeToString(d.UsrHash) != res.UsrHash {
		t.Fatalf("UKI usrhash %x, built %s", d.UsrHash, res.UsrHash)
	}
	dir := t.TempDir()
	ingottest.SgdiskVerify(t, res.DiskPath)
	esp := d.Table.Partitions[0]
	ingottest.FsckVfat(t, ingottest.Extract(t, res.DiskPath, esp.Offset(512), esp.Size(512), dir, "esp.img"))
	usr := ingottest.Extract(t, res.DiskPath, d.Usr.Offset(512), d.Usr.Size(512), dir, "usr.img")
	ingottest.FsckErofs(t, usr)
	verity := ingottest.Extract(t, res.DiskPath, d.Verity.Offset(512), d.Verity.Size(512), dir, "verity.img")
	// The root hash comes from the UKI's command line, not from the build.
	ingottest.VeritySetupVerify(t, usr, verity, hex.EncodeToString(d.UsrHash))
	out := ingottest.SystemdDissect(t, res.DiskPath)
	for _, want := range []string{"usr-verity", "esp", "IMAGE_VERSION=1.0.0", "bootable system for UEFI"} {
		if !strings.Contains(out, want) {
			t.Errorf("systemd-dissect does not show %q:\n%s", want, out)
		}
	}
}

// TestDebianImageReproducible builds the Debian image a second time and
// compares the bytes.
func TestDebianImageReproducible(t *testing.T) {
	t.Parallel()
	res, _ := debianImage(t)
	again, err := buildImage(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := ingottest.FileSHA256(t, res.DiskPath), ingottest.FileSHA256(t, again.DiskPath); a != b {
		t.Fatalf("two builds of the same rootfs differ: %s vs %s", a, b)
	}
}

var markerRE = regexp.MustCompile(`ingot: boot complete version=(\S+) slot=([ab]) usrhash=([0-9a-f]{64})`)

// booted waits for the boot marker and the autologin shell, which come in
// either order.
func booted(ctx context.Context, t testing.TB, m *vm.Machine) []string {
	t.Helper()
	return bootedWithin(ctx, t, m, 8*time.Minute)
}

// bootedWithin is booted for boots that take several tries.
func bootedWithin(ctx context.Context, t testing.TB, m *vm.Machine, timeout time.Duration) []string {
	t.Helper()
	start := time.Now()
	from := m.Cursor()
	marker, err := m.WaitForRegexp(ctx, markerRE, timeout)
	if err != nil {
		t.Fatalf("no boot marker: %v", err)
	}
	t.Logf("boot marker after %v: %s", time.Since(start).Round(time.Second), marker[0])
	afterMarker := m.Cursor()
	// The autologin of this boot, not of an earlier failed try: search from
	// the last kernel start before the marker.
	if i := strings.LastIndex(m.Log()[:afterMarker], "Linux version "); i > from {
		from = i
	}
	m.SetCursor(from)
	if _, err := m.WaitFor(ctx, "(automatic login)", 3*time.Minute); err != nil {
		t.Fatalf("no autologin: %v", err)
	}
	if m.Cursor() < afterMarker {
		m.SetCursor(afterMarker)
	}
	// The first command: the shell may still be starting after the login
	// line, and some (busybox ash) drop what was typed before their prompt;
	// type it again until the shell answers.
	for try := 1; ; try++ {
		_, code, err := m.Run(ctx, "dmesg -n 1", 20*time.Second)
		if err == nil && code == 0 {
			break
		}
		if ctx.Err() != nil || try == 9 {
			t.Fatalf("the shell does not answer after the autologin: exit %d, %v", code, err)
		}
		// A command cut short before the prompt can leave the shell in an
		// open quote, waiting for more ("> "): Ctrl-C drops the line.
		if err := m.Send("\x03"); err != nil {
			t.Fatal(err)
		}
	}
	return marker
}

// startVM boots cfg, its console logged to a file named after the test
// unless cfg names one; the machine is closed when the test ends, and
// the console's tail is logged if it failed.
func startVM(ctx context.Context, t *testing.T, cfg vm.Config) *vm.Machine {
	t.Helper()
	if cfg.LogFile == "" {
		cfg.LogFile = filepath.Join(os.TempDir(), "ingot-vm-"+strings.ReplaceAll(t.Name(), "/", "_")+".log")
	}
	m, err := vm.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		if t.Failed() {
			t.Logf("console (full log in %s):\n%s", cfg.LogFile, m.Tail(8000))
		}
	})
	return m
}

// run runs a shell command in the guest and fails the test if it fails.
func run(ctx context.Context, t testing.TB, m *vm.Machine, cmd string) string {
	t.Helper()
	return runFor(ctx, t, m, cmd, 2*time.Minute)
}

// runFor is run with a timeout for slow commands (downloads, updates).
func runFor(ctx context.Context, t testing.TB, m *vm.Machine, cmd string, timeout time.Duration) string {
	t.Helper()
	out, code, err := m.Run(ctx, cmd, timeout)
	if err != nil {
		t.Fatalf("guest: %s: %v", cmd, err)
	}
	if code != 0 {
		t.Fatalf("guest: %s: exit status %d\n%s", cmd, code, out)
	}
	return strings.TrimSpace(kernelLines.ReplaceAllString(out, ""))
}

// kernelLines are console messages of the guest's kernel that land
// between a command's output lines: the serial console is shared, and an
// overloaded host makes even `dmesg -n 1` let some through (soft lockup
// reports are emergencies).
var kernelLines = regexp.MustCompile(`(?m)^\[ *[0-9]+\.[0-9]{6}\] [^\n]*\n?`)

// runJSON runs cmd in the guest and decodes its output into v.
func runJSON(ctx context.Context, t testing.TB, m *vm.Machine, cmd string, v any) {
	t.Helper()
	out := run(ctx, t, m, cmd)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
}

func bootInfo(ctx context.Context, t *testing.T, m *vm.Machine) layout.BootInfo {
	t.Helper()
	var info layout.BootInfo
	runJSON(ctx, t, m, "cat /run/ingot/boot.json", &info)
	return info
}

// TestBootDebian boots the image twice: the first boot makes the root
// partition, the second must reuse it with /etc and /var intact.
func TestBootDebian(t *testing.T) {
	t.Parallel()
	res, _ := debianImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	logPath := filepath.Join(os.TempDir(), "ingot-vm-TestBootDebian.log")
	m, err := vm.Start(ctx, vm.Config{Image: res.DiskPath, DiskSizeBytes: res.DiskBytes + 3<<30, LogFile: logPath})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console (full log in %s):\n%s", logPath, m.Tail(8000))
		}
	})

	marker := booted(ctx, t, m)
	if marker[1] != "1.0.0" || marker[2] != "a" || marker[3] != res.UsrHash {
		t.Fatalf("marker %q, want version 1.0.0 slot a usrhash %s", marker[0], res.UsrHash)
	}
	if got := run(ctx, t, m, "findmnt -no SOURCE,FSTYPE /usr"); !regexp.MustCompile(`^/dev/mapper/usr\s+erofs$`).MatchString(got) {
		t.Errorf("/usr is mounted from %q, want /dev/mapper/usr erofs", got)
	}
	if got := run(ctx, t, m, "findmnt -no OPTIONS /usr"); !strings.HasPrefix(got, "ro") {
		t.Errorf("/usr options %q, want read-only", got)
	}
	if got := run(ctx, t, m, "cat /sys/block/$(basename $(readlink -f /dev/mapper/usr))/dm/name"); got != "usr" {
		t.Errorf("dm device name %q", got)
	}
	if out, code, _ := m.Run(ctx, "touch /usr/ingot-write-test", time.Minute); code == 0 {
		t.Errorf("writing to /usr succeeded: %s", out)
	}
	if got := run(ctx, t, m, "findmnt -no FSTYPE /etc"); got != "overlay" {
		t.Errorf("/etc is %q, want an overlay", got)
	}
	if got := run(ctx, t, m, "cat /proc/1/comm"); got != "systemd" {
		t.Errorf("PID 1 is %q", got)
	}
	first := bootInfo(ctx, t, m)
	if !first.FirstBoot || first.Slot != "a" || first.RootPart == "" {
		t.Errorf("first boot record %+v", first)
	}
	if got := run(ctx, t, m, "findmnt -no SOURCE,FSTYPE /"); got != first.RootPart+" ext4" {
		t.Errorf("/ is %q, want %s ext4", got, first.RootPart)
	}
	token := fmt.Sprintf("%d", time.Now().UnixNano())
	run(ctx, t, m, "echo "+token+" > /etc/ingot-e2e && mkdir -p /var/lib/ingot-e2e && echo "+token+" > /var/lib/ingot-e2e/data && sync")
	machineID := run(ctx, t, m, "cat /etc/machine-id")
	if len(machineID) != 32 {
		t.Errorf("machine-id %q", machineID)
	}
	if failed := run(ctx, t, m, "systemctl --failed --no-legend --plain"); failed != "" {
		t.Errorf("failed units:\n%s", failed)
	}

	if err := m.Send("systemctl reboot\n"); err != nil {
		t.Fatal(err)
	}
	marker = booted(ctx, t, m)
	if marker[3] != res.UsrHash || marker[2] != "a" {
		t.Errorf("second boot marker %q", marker[0])
	}
	second := bootInfo(ctx, t, m)
	if second.FirstBoot || second.RootPart != first.RootPart {
		t.Errorf("second boot %+v did not reuse the root partition %s", second, first.RootPart)
	}
	for _, p := range []string{"/etc/ingot-e2e", "/var/lib/ingot-e2e/data"} {
		if got := run(ctx, t, m, "cat "+p); got != token {
			t.Errorf("%s = %q after reboot, want %q", p, got, token)
		}
	}
	if got := run(ctx, t, m, "cat /etc/machine-id"); got != machineID {
		t.Errorf("machine-id changed across reboot: %s → %s", machineID, got)
	}
}

// TestInitFailureReboots breaks the verity superblock of a copy of the
// image: ingot-init must name the step and the cause on the console, then
// reboot (so boot counting can fall back).
func TestInitFailureReboots(t *testing.T) {
	t.Parallel()
	res, _ := debianImage(t)
	broken := filepath.Join(t.TempDir(), "broken.raw")
	if out, err := exec.Command("cp", "--sparse=always", res.DiskPath, broken).CombinedOutput(); err != nil {
		t.Fatalf("copy image: %v\n%s", err, out)
	}
	d, f, err := diskimage.InspectFile(broken)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	w, err := os.OpenFile(broken, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(make([]byte, 4096), d.Verity.Offset(512)); err != nil {
		t.Fatal(err)
	}
	w.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	m, err := vm.Start(ctx, vm.Config{Image: broken, DiskSizeBytes: res.DiskBytes + 1<<30})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	line, err := m.WaitForRegexp(ctx, regexp.MustCompile(`ingot-init: FAILED: set up dm-verity for /usr: read verity superblock of /dev/vda3: [^\n]+`), 8*time.Minute)
	if err != nil {
		t.Fatalf("no failure line: %v", err)
	}
	t.Logf("console: %s", line[0])
	if _, err := m.WaitFor(ctx, "ingot-init: rebooting in", time.Minute); err != nil {
		t.Fatal(err)
	}
	// The firmware starts again: the machine rebooted instead of hanging.
	if _, err := m.WaitFor(ctx, "BdsDxe", 3*time.Minute); err != nil {
		t.Fatalf("no reboot after the failure: %v", err)
	}
}
