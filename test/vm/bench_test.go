//go:build vm

package vm_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/oci"
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
		cmd := exec.Command(filepath.Join(bin, "ingot"), "image", "--rootfs", shared.rootfs, "--version", "1.0.0", "--output", out)
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
	if _, err := oci.Push(context.Background(), v2.UpdateDir, "oci://"+registry+"/ingot:2.0.0"); err != nil {
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
	bin := b.TempDir()
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin+"/", "./cmd/ingot")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build ingot: %v\n%s", err, out)
	}
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
