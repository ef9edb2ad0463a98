//go:build vm

package vm_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
)

// BenchmarkBootCompression (issue 15: "boot to the marker not slower than
// uncompressed") boots each image twice, first and later boot, with an
// uncompressed /usr and with --compression=auto (the musl base's 7.2
// kernel: zstd; the Debian fixture's 6.1: LZ4HC), one machine after the
// other in this one invocation, and prints BenchmarkBootTime's timeline
// for each. INGOT_BENCH_BOOT=musl or =debian boots only that image.
func BenchmarkBootCompression(b *testing.B) {
	bin := binaries(b)
	out := b.TempDir()
	which := os.Getenv("INGOT_BENCH_BOOT")
	var subjects []bootSubject
	for _, comp := range []string{"none", "auto"} {
		if which != "debian" {
			baseRootfs(b)
			subjects = append(subjects, imageWith(b, "musl base", comp, bin, filepath.Join(out, "base-"+comp),
				"--store", testStore(b), "--compression="+comp))
		}
		if which != "musl" {
			debian := ingottest.DebianRootfs(b, repoRoot)
			subjects = append(subjects, imageWith(b, "Debian", comp, bin, filepath.Join(out, "debian-"+comp),
				"--rootfs", debian, "--compression="+comp))
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, s := range subjects {
			first, later := bootTwice(b, s)
			for _, f := range []struct {
				boot string
				f    bootFigures
			}{{"first", first}, {"later", later}} {
				fmt.Println(f.f.report(fmt.Sprintf("%s, /usr %s (%d MiB disk), %s boot", s.name, s.release, s.diskBytes>>20, f.boot)))
				b.ReportMetric(f.f.total.Seconds(), fmt.Sprintf("%s-%s-%s-s", metricName(s.name), s.release, f.boot))
			}
		}
	}
}

// metricName is a subject's name as a metric's first word ("musl",
// "debian").
func metricName(name string) string {
	if name == "Debian" {
		return "debian"
	}
	return "musl"
}
