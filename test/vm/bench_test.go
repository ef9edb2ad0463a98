//go:build vm

package vm_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

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
