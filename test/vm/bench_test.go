//go:build vm

package vm_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"debug/pe"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/oci"
	"github.com/ingot-linux/ingot/trust"
	"github.com/ingot-linux/ingot/vm"
)

// measure runs cmd and returns its wall time and peak RSS in MiB (of the
// largest process it started, as getrusage reports for children).
func measure(b *testing.B, cmd *exec.Cmd) (time.Duration, float64) {
	b.Helper()
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", cmd.Path, err, out)
	}
	d := time.Since(start)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return d, float64(ru.Maxrss) / 1024
}

// BenchmarkImageDebian compares `ingot image` on the Debian fixture with the
// same job done by the upstream host tools (test/bench/hosttools.sh), one run
// each, and reports seconds, peak RSS and the ratios.
func BenchmarkImageDebian(b *testing.B) {
	res, bin := debianImage(b)
	for i := 0; i < b.N; i++ {
		out := b.TempDir()
		cmd := exec.Command(filepath.Join(bin, "ingot"), "image", "--rootfs", shared.rootfs, "--version", "1.0.0", "--output", out,
			"--compression=none") // as hosttools.sh's mkfs.erofs: BenchmarkUsrCompression compares compressed
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
		ingotTime, ingotRSS := measure(b, cmd)

		host := exec.Command("bash", filepath.Join(repoRoot, "test/bench/hosttools.sh"), shared.rootfs, filepath.Join(b.TempDir(), "host"))
		hostTime, hostRSS := measure(b, host)

		b.ReportMetric(ingotTime.Seconds(), "ingot-s")
		b.ReportMetric(hostTime.Seconds(), "hosttools-s")
		b.ReportMetric(hostTime.Seconds()/ingotTime.Seconds(), "speedup")
		b.ReportMetric(ingotRSS, "ingot-peak-MiB")
		b.ReportMetric(hostRSS, "hosttools-peak-MiB")
		b.ReportMetric(float64(res.UsrBytes)/(1<<20), "usr-MiB")
	}
}

// BenchmarkBootToMarker measures QEMU start → boot marker on the first boot
// (root partition created) of the Debian image under TCG.
func BenchmarkBootToMarker(b *testing.B) {
	res, _ := debianImage(b)
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		start := time.Now()
		m, err := vm.Start(ctx, vm.Config{Image: res.DiskPath, DiskSizeBytes: res.DiskBytes + 3<<30})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.WaitForRegexp(ctx, markerRE, 10*time.Minute); err != nil {
			b.Fatal(err)
		}
		first := time.Since(start)
		m.Send("systemctl reboot\n")
		restart := time.Now()
		if _, err := m.WaitForRegexp(ctx, markerRE, 10*time.Minute); err != nil {
			b.Fatal(err)
		}
		second := time.Since(restart)
		m.Close()
		cancel()
		b.ReportMetric(first.Seconds(), "first-boot-s")
		b.ReportMetric(second.Seconds(), "reboot-s")
	}
}

// BenchmarkUpdate measures an update on a running machine: `ingot update
// oci://…` pulling the next version from a real registry through the
// guest's network and installing it, the bytes that crossed the network,
// and the reboot into the new version (reboot → boot marker).
func BenchmarkUpdate(b *testing.B) {
	v1, _ := debianImage(b)
	v2 := buildVersion(b, "2.0.0")
	registry, _ := ingottest.DockerRegistry(b)
	// Without chunk indexes: this measures a whole download
	// (BenchmarkDeltaUpdate measures deltas).
	if _, err := oci.Push(context.Background(), v2.UpdateDir, "oci://"+registry+"/ingot:2.0.0", oci.WithChunkIndex(false)); err != nil {
		b.Fatalf("push v2: %v", err)
	}
	var payload int64
	filepath.WalkDir(v2.UpdateDir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				payload += fi.Size()
			}
		}
		return nil
	})
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
		m, err := vm.Start(ctx, vm.Config{Image: v1.DiskPath, DiskSizeBytes: v1.DiskBytes + 3<<30,
			UserNet: &vm.UserNet{GuestForwards: []vm.GuestForward{{GuestAddr: "10.0.2.100", GuestPort: 5000, Target: registry}}}})
		if err != nil {
			b.Fatal(err)
		}
		booted(ctx, b, m)
		run(ctx, b, m, "dev=$(ls /sys/class/net | grep -v '^lo$' | head -1) && ip link set $dev up && ip addr add 10.0.2.15/24 dev $dev")
		start := time.Now()
		runFor(ctx, b, m, "ingot update oci://10.0.2.100:5000/ingot:2.0.0 >/dev/null 2>&1", 20*time.Minute)
		apply := time.Since(start)
		m.Send("systemctl reboot\n")
		restart := time.Now()
		marker := booted(ctx, b, m)
		reboot := time.Since(restart)
		m.Close()
		cancel()
		if marker[1] != "2.0.0" {
			b.Fatalf("rebooted into %s, want 2.0.0", marker[0])
		}
		b.ReportMetric(apply.Seconds(), "apply-s")
		b.ReportMetric(float64(payload)/(1<<20), "download-MiB")
		b.ReportMetric(float64(payload)/(1<<20)/apply.Seconds(), "MiB/s")
		b.ReportMetric(reboot.Seconds(), "reboot-to-marker-s")
	}
}

// buildResult is the part of `ingot build --json` the benchmarks read.
type buildResult struct {
	Packages []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Path   string `json:"path"`
	} `json:"packages"`
	Built  int `json:"built"`
	Cached int `json:"cached"`
}

// ingotBuild runs `ingot build --json args…` and returns its result and
// wall time.
func ingotBuild(b *testing.B, bin string, args ...string) (buildResult, time.Duration) {
	b.Helper()
	cmd := exec.Command(filepath.Join(bin, "ingot"), append([]string{"build", "--json"}, args...)...)
	cmd.Env = withoutEnv(os.Environ(), "SOURCE_DATE_EPOCH") // the store's default epoch, as the tests use
	start := time.Now()
	out, err := cmd.Output()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("ingot build %v: %v\n%s", args, err, out)
	}
	var r buildResult
	if err := json.Unmarshal(out, &r); err != nil {
		b.Fatalf("ingot build --json: %v\n%s", err, out)
	}
	return r, d
}

// freshStore is an empty store that shares the test store's fetched
// sources (hard links): the build benchmarks time building, not fetching.
func freshStore(b *testing.B, sources string) string {
	b.Helper()
	st := filepath.Join(b.TempDir(), "store")
	if err := os.MkdirAll(filepath.Join(st, "sources"), 0o755); err != nil {
		b.Fatal(err)
	}
	ents, _ := os.ReadDir(sources)
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := os.Link(filepath.Join(sources, e.Name()), filepath.Join(st, "sources", e.Name())); err != nil {
				b.Fatal(err)
			}
		}
	}
	return st
}

// BenchmarkDistroBuild measures ingot's own base on this machine: a cold
// build (empty store, sources already fetched), a no-op rebuild, the
// rebuild after touching one leaf recipe (openssh), the installed size of
// /usr, and whether a second cold build in another empty store gives
// byte-identical outputs (every file's sha256 in the store manifests).
func BenchmarkDistroBuild(b *testing.B) {
	bin := binaries(b)
	warm := testStore(b)
	ingotBuild(b, bin, "--store", warm) // fetch the sources once
	for i := 0; i < b.N; i++ {
		storeA := freshStore(b, filepath.Join(warm, "sources"))
		cold, coldTime := ingotBuild(b, bin, "--store", storeA)
		noop, noopTime := ingotBuild(b, bin, "--store", storeA)
		if noop.Built != 0 {
			b.Fatalf("no-op build built %d packages", noop.Built)
		}

		recipes := filepath.Join(b.TempDir(), "recipes")
		if out, err := exec.Command("cp", "-r", filepath.Join(repoRoot, "recipes"), recipes).CombinedOutput(); err != nil {
			b.Fatalf("copy recipes: %v\n%s", err, out)
		}
		leaf := filepath.Join(recipes, "openssh", "recipe.yaml")
		y, err := os.ReadFile(leaf)
		if err != nil {
			b.Fatal(err)
		}
		y = []byte(strings.Replace(string(y), "description: ", "description: (touched) ", 1))
		if err := os.WriteFile(leaf, y, 0o644); err != nil {
			b.Fatal(err)
		}
		touched, leafTime := ingotBuild(b, bin, "--store", storeA, "--recipes", recipes)
		if touched.Built != 1 {
			b.Errorf("touching openssh rebuilt %d packages, want 1", touched.Built)
		}

		rootfs := filepath.Join(b.TempDir(), "rootfs")
		ingotBuild(b, bin, "--store", storeA, "--rootfs", rootfs)
		usrBytes := dirBytes(b, filepath.Join(rootfs, "usr"))

		storeB := freshStore(b, filepath.Join(warm, "sources"))
		second, _ := ingotBuild(b, bin, "--store", storeB)
		same, differ := 0, []string{}
		for j, p := range cold.Packages {
			if outputsOf(b, p.Path) == outputsOf(b, second.Packages[j].Path) {
				same++
			} else {
				differ = append(differ, p.Name)
			}
		}
		if len(differ) > 0 {
			b.Errorf("two cold builds differ in %v", differ)
		}
		b.ReportMetric(coldTime.Seconds(), "cold-s")
		b.ReportMetric(float64(cold.Built), "packages")
		b.ReportMetric(noopTime.Seconds(), "noop-s")
		b.ReportMetric(leafTime.Seconds(), "leaf-rebuild-s")
		b.ReportMetric(float64(usrBytes)/(1<<20), "usr-MiB")
		b.ReportMetric(float64(same), "identical-packages")
	}
}

// outputsOf is the outputs section of a store entry's manifest: every
// file's path, mode and sha256.
func outputsOf(b *testing.B, entry string) string {
	b.Helper()
	m, err := os.ReadFile(filepath.Join(entry, "manifest.json"))
	if err != nil {
		b.Fatal(err)
	}
	var v struct {
		Outputs json.RawMessage `json:"outputs"`
	}
	if err := json.Unmarshal(m, &v); err != nil {
		b.Fatal(err)
	}
	return string(v.Outputs)
}

// dirBytes is the apparent size of the regular files under dir.
func dirBytes(b *testing.B, dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// testStore is the build store the distribution tests share across runs
// (outside the clone, so CI builds the base once per machine):
// INGOT_TEST_STORE, or ingot-test/store under /var/cache (root) or the
// user's cache directory.
func testStore(t testing.TB) string {
	if s := os.Getenv("INGOT_TEST_STORE"); s != "" {
		return s
	}
	if os.Geteuid() == 0 {
		return "/var/cache/ingot-test/store"
	}
	c, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(c, "ingot-test", "store")
}

// withoutEnv drops KEY from env.
func withoutEnv(env []string, key string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, key+"=") {
			out = append(out, e)
		}
	}
	return out
}

// BenchmarkTrustBoot measures what trusted boot costs on the Debian
// fixture (issue "trusted boot"), comparing the image built unsigned with
// the same image (same version) signed with keys from trust.InitKeys:
//
//   - boot time, QEMU start → boot marker, of a boot after the first: the
//     unsigned image on the plain firmware without a TPM, and the signed
//     one on Secure Boot firmware with a TPM after systemd-boot enrolled
//     its keys. Each machine boots once (the signed one enrolls the keys,
//     resets and boots), powers off, and is started again on the same
//     disk, NVRAM and TPM state (vm.Machine.Restart): that second start is
//     timed;
//   - the bytes signing adds: the UKI on the ESP (.pcrsig, .pcrpkey, the
//     Authenticode signature and the certificates the signed initrd
//     carries), systemd-boot (its Authenticode signature), and the
//     usr-verity-sig content (trust.SignRootHash's JSON, without the NUL
//     padding).
func BenchmarkTrustBoot(b *testing.B) {
	unsigned, _ := debianImage(b)
	ingottest.LookTool(b, "mcopy", "mtools")
	ingottest.LookTool(b, "swtpm", "swtpm")
	dir := b.TempDir()
	keyDir := filepath.Join(dir, "keys")
	keys, err := trust.InitKeys(keyDir, trust.KeyOptions{Name: "ingot bench"})
	if err != nil {
		b.Fatal(err)
	}
	// The version of debianImage's build, so that only signing differs.
	signed := buildVersionWith(b, "1.0.0", func(o *diskimage.Options) {
		o.Keys, o.KeyDir, o.OutputDir = keys, keyDir, filepath.Join(dir, "signed")
	})

	uName, uUKI, uLoader := espBinaries(b, unsigned.DiskPath)
	sName, sUKI, sLoader := espBinaries(b, signed.DiskPath)
	if uName != sName {
		b.Fatalf("the UKIs are named %s (unsigned) and %s (signed)", uName, sName)
	}
	sig := veritySigContent(b, signed.DiskPath)
	root, err := trust.VerifyRootHashSig(sig, []*x509.Certificate{keys.Verity.Cert})
	if err != nil || hex.EncodeToString(root) != signed.UsrHash {
		b.Fatalf("usr-verity-sig: root hash %x, %v; want %s", root, err, signed.UsrHash)
	}
	ukiSig := len(sUKI) - len(uUKI)
	loaderSig := len(sLoader) - len(uLoader)
	b.Logf("UKI %s: %d bytes unsigned, %d signed (+%d: %s)", sName, len(uUKI), len(sUKI), ukiSig, ukiDelta(b, uUKI, sUKI))
	b.Logf("systemd-boot: %d bytes unsigned, %d signed (+%d; Authenticode certificate table %d)",
		len(uLoader), len(sLoader), loaderSig, authenticodeBytes(b, sLoader))
	b.Logf("usr-verity-sig: %d bytes of JSON (%d with the NUL padding, in a %d-byte partition)",
		len(sig), (len(sig)/trust.VeritySigAlign+1)*trust.VeritySigAlign, sigPartitionBytes(b, signed.DiskPath))

	stubVersion := forceEnrollment(b, signed.DiskPath)

	b.ResetTimer()
	var unsignedSum, signedSum time.Duration
	for i := 0; i < b.N; i++ {
		d, analyze := trustBootOnce(b, "unsigned", vm.Config{Image: unsigned.DiskPath, DiskSizeBytes: unsigned.DiskBytes + 3<<30})
		unsignedSum += d
		b.Logf("unsigned, no Secure Boot, no TPM: QEMU start → boot marker %.1fs; systemd-analyze: %s", d.Seconds(), analyze)
		d, analyze = trustBootOnce(b, "signed", vm.Config{Image: signed.DiskPath, DiskSizeBytes: signed.DiskBytes + 3<<30, SecureBoot: true, TPM: true})
		signedSum += d
		b.Logf("signed, Secure Boot on, TPM (systemd-boot %d): QEMU start → boot marker %.1fs; systemd-analyze: %s", stubVersion, d.Seconds(), analyze)
	}
	b.StopTimer()
	u, s := unsignedSum.Seconds()/float64(b.N), signedSum.Seconds()/float64(b.N)
	b.ReportMetric(u, "unsigned-boot-s")
	b.ReportMetric(s, "signed-sb-tpm-boot-s")
	b.ReportMetric(s/u, "ratio")
	b.ReportMetric(float64(ukiSig), "uki-sig-bytes")
	b.ReportMetric(float64(loaderSig), "bootloader-sig-bytes")
	b.ReportMetric(float64(len(sig)), "verity-sig-bytes")
	b.Logf("trusted boot: %.1fs → %.1fs (×%.2f) from QEMU start to the boot marker; signatures add %d bytes to the UKI, %d to systemd-boot, %d of usr-verity-sig",
		u, s, s/u, ukiSig, loaderSig, len(sig))
}

// trustBootOnce boots a machine once (for a signed image: systemd-boot
// enrolls the keys and resets first), powers it off, starts it again on
// the same disk, NVRAM and TPM, and returns the time from that start to
// the boot marker, with the guest's `systemd-analyze time`.
func trustBootOnce(b *testing.B, name string, cfg vm.Config) (time.Duration, string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	cfg.LogFile = filepath.Join(os.TempDir(), "ingot-vm-BenchmarkTrustBoot-"+name+".log")
	m, err := vm.Start(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	defer func() {
		if b.Failed() {
			b.Logf("%s console (full log in %s):\n%s", name, cfg.LogFile, m.Tail(8000))
		}
	}()
	if cfg.SecureBoot {
		if _, err := m.WaitFor(ctx, "Enrolling secure boot keys", 8*time.Minute); err != nil {
			b.Fatalf("systemd-boot did not enroll the keys: %v", err)
		}
	}
	booted(ctx, b, m)

	if err := m.Send("systemctl poweroff\n"); err != nil {
		b.Fatal(err)
	}
	select {
	case <-m.Done():
	case <-time.After(5 * time.Minute):
		b.Fatalf("%s: the machine did not power off", name)
	}
	m.SkipOutput()
	from := m.Cursor()
	start := time.Now()
	if err := m.Restart(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := m.WaitForRegexp(ctx, markerRE, 10*time.Minute); err != nil {
		b.Fatalf("%s: no boot marker after the restart: %v", name, err)
	}
	d := time.Since(start)
	// The shell: its autologin comes before or after the marker.
	afterMarker := m.Cursor()
	m.SetCursor(from)
	if _, err := m.WaitFor(ctx, "(automatic login)", 3*time.Minute); err != nil {
		b.Fatalf("%s: no autologin after the restart: %v", name, err)
	}
	if m.Cursor() < afterMarker {
		m.SetCursor(afterMarker)
	}
	run(ctx, b, m, "dmesg -n 1")

	const efiGlobal = "-8be4df61-93ca-11d2-aa0d-00e098032b8c"
	sb := strings.Fields(run(ctx, b, m, "od -An -tx1 /sys/firmware/efi/efivars/SecureBoot"+efiGlobal+" 2>/dev/null || true"))
	sbOn := len(sb) > 0 && sb[len(sb)-1] == "01"
	tpm := run(ctx, b, m, "test -e /sys/class/tpm/tpm0 && echo yes || echo no") == "yes"
	if sbOn != cfg.SecureBoot || tpm != cfg.TPM {
		b.Fatalf("%s: Secure Boot %v, TPM %v; want %v, %v", name, sbOn, tpm, cfg.SecureBoot, cfg.TPM)
	}
	analyze, _, err := m.Run(ctx, "systemd-analyze time 2>&1 | head -n 1", 2*time.Minute)
	if err != nil {
		analyze = err.Error()
	}
	return d, strings.TrimSpace(analyze)
}

// espBinaries returns the name and bytes of the only UKI on a disk image's
// ESP, and systemd-boot's bytes.
func espBinaries(b *testing.B, disk string) (string, []byte, []byte) {
	b.Helper()
	d, f, err := diskimage.InspectFile(disk)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if len(d.UKIs) != 1 {
		b.Fatalf("%s has UKIs %v, want one", disk, d.UKIs)
	}
	u, err := fs.ReadFile(d.ESP, "EFI/Linux/"+d.UKIs[0])
	if err != nil {
		b.Fatal(err)
	}
	l, err := fs.ReadFile(d.ESP, layout.BootLoaderPath)
	if err != nil {
		b.Fatal(err)
	}
	return d.UKIs[0], u, l
}

// veritySigPartition returns slot A's usr-verity-sig partition.
func veritySigPartition(b *testing.B, d *diskimage.Disk) gpt.Partition {
	b.Helper()
	for _, p := range d.Table.Partitions {
		if p.Index == layout.UsrVeritySigIndex && p.Type == layout.TypeUsrVeritySig {
			return p
		}
	}
	b.Fatal("no usr-verity-sig partition in slot A")
	return gpt.Partition{}
}

// veritySigContent is the content of slot A's usr-verity-sig partition up
// to the first NUL: the JSON that trust.SignRootHash made.
func veritySigContent(b *testing.B, disk string) []byte {
	b.Helper()
	d, f, err := diskimage.InspectFile(disk)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	p := veritySigPartition(b, d)
	blob := make([]byte, p.Size(512))
	if _, err := f.ReadAt(blob, p.Offset(512)); err != nil {
		b.Fatal(err)
	}
	if n := bytes.IndexByte(blob, 0); n >= 0 {
		blob = blob[:n]
	}
	return blob
}

// sigPartitionBytes is the size of slot A's usr-verity-sig partition.
func sigPartitionBytes(b *testing.B, disk string) int64 {
	b.Helper()
	d, f, err := diskimage.InspectFile(disk)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	return veritySigPartition(b, d).Size(512)
}

// ukiDelta describes where a signed UKI's extra bytes are: the sections
// only it has, the sections that grew, and its Authenticode signature.
func ukiDelta(b *testing.B, unsigned, signed []byte) string {
	b.Helper()
	ui, err := uki.Open(bytes.NewReader(unsigned))
	if err != nil {
		b.Fatal(err)
	}
	si, err := uki.Open(bytes.NewReader(signed))
	if err != nil {
		b.Fatal(err)
	}
	var parts []string
	for _, name := range si.Sections() {
		sb, err := si.Section(name)
		if err != nil {
			b.Fatal(err)
		}
		ub, err := ui.Section(name)
		switch {
		case err != nil:
			parts = append(parts, fmt.Sprintf("%s %d", name, len(sb)))
		case len(sb) != len(ub):
			parts = append(parts, fmt.Sprintf("%s %+d", name, len(sb)-len(ub)))
		}
	}
	parts = append(parts, fmt.Sprintf("Authenticode certificate table %d", authenticodeBytes(b, signed)))
	return strings.Join(parts, ", ") + "; the rest is alignment"
}

// authenticodeBytes is the size of a PE image's certificate table (the
// security data directory): its Authenticode signatures.
func authenticodeBytes(b *testing.B, img []byte) uint32 {
	b.Helper()
	f, err := pe.NewFile(bytes.NewReader(img))
	if err != nil {
		b.Fatal(err)
	}
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok || oh.NumberOfRvaAndSizes <= pe.IMAGE_DIRECTORY_ENTRY_SECURITY {
		return 0
	}
	return oh.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_SECURITY].Size
}

// forceEnrollment makes the signed image's systemd-boot enroll its keys
// without asking, as enrollOnFirstBoot does for the tests: systemd-boot
// older than 253 rejects "secure-boot-enroll if-safe", so loader.conf gets
// "force". It returns the systemd-stub version.
func forceEnrollment(b *testing.B, disk string) int {
	b.Helper()
	d, f, err := diskimage.InspectFile(disk)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ukiBytes, err := fs.ReadFile(d.ESP, "EFI/Linux/"+d.UKIs[0])
	if err != nil {
		b.Fatal(err)
	}
	img, err := uki.Open(bytes.NewReader(ukiBytes))
	if err != nil {
		b.Fatal(err)
	}
	stubVersion, err := trust.StubVersion(img)
	if err != nil {
		b.Fatal(err)
	}
	conf, err := fs.ReadFile(d.ESP, layout.LoaderConfPath)
	if err != nil {
		b.Fatal(err)
	}
	if !bytes.Contains(conf, []byte("secure-boot-enroll if-safe")) {
		b.Fatalf("loader.conf does not ask for enrollment:\n%s", conf)
	}
	if stubVersion >= 253 {
		return stubVersion
	}
	conf = bytes.ReplaceAll(conf, []byte("secure-boot-enroll if-safe"), []byte("secure-boot-enroll force"))
	local := filepath.Join(b.TempDir(), "loader.conf")
	if err := os.WriteFile(local, conf, 0o644); err != nil {
		b.Fatal(err)
	}
	esp := d.Table.ByType(layout.TypeESP)[0]
	cmd := exec.Command("mcopy", "-o", "-i", disk+"@@"+strconv.FormatInt(esp.Offset(512), 10), local, "::/"+layout.LoaderConfPath)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("mcopy: %v\n%s", err, out)
	}
	return stubVersion
}
