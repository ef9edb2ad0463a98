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
	bootAll(b, subjects, func(s bootSubject, boot string) (string, string) {
		return fmt.Sprintf("%s, /usr %s (%d MiB disk), %s boot", s.name, s.release, s.diskBytes>>20, boot),
			metricName(s.name) + "-" + s.release + "-" + boot
	})
}
