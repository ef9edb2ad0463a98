//go:build vm

package vm_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/oci"
	"github.com/ingot-linux/ingot/vm"
)

// seedFiles are an artifact directory's files as seeds: what a machine
// running that version holds in its partitions.
func seedFiles(b testing.TB, dir string) []oci.Seed {
	b.Helper()
	var seeds []oci.Seed
	for _, name := range []string{artifact.FileUsr, artifact.FileVerity, artifact.FileUKI} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		seeds = append(seeds, oci.Seed{Name: name, Path: filepath.Join(dir, name), Size: fi.Size()})
	}
	return seeds
}

// planBytes pushes dir to the registry at host and returns what a
// machine holding seedDir's version would download, and the artifact's
// size.
func planBytes(b testing.TB, host, dir, tag, seedDir string) (download, total int64) {
	b.Helper()
	ctx := context.Background()
	ref := "oci://" + host + "/ingot:" + tag
	if _, err := oci.Push(ctx, dir, ref); err != nil {
		b.Fatalf("push %s: %v", dir, err)
	}
	p, err := oci.PlanPull(ctx, ref, oci.WithSeeds(seedFiles(b, seedDir)...))
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range p.Files {
		b.Logf("%s → %s: %s %d of %d bytes (%d of %d chunks)", filepath.Base(seedDir), tag, f.Name, f.Download, f.Size, f.Missing, f.Chunks)
	}
	return p.Download, p.Total
}

// BenchmarkDeltaUpdate measures delta updates of ingot's musl base on a
// running machine, through the guest's network from a real registry: the
// same version (nothing to download), one file set changed (1 MiB in
// four files, as a rebuilt package changes them) fetched with ranges of
// up to 8 MiB, and another such change fetched with one request per chunk
// (what separate chunk blobs would cost in requests). It reports the
// bytes and the time the blob requests took.
func BenchmarkDeltaUpdate(b *testing.B) {
	v1 := baseVersion(b, "1.0.0")
	v2 := baseVersionWith(b, "2.0.0", func(o *diskimage.Options) { o.RootFS = benchRootfsChanged(b, "delta-a", 1) })
	v3 := baseVersionWith(b, "3.0.0", func(o *diskimage.Options) { o.RootFS = benchRootfsChanged(b, "delta-b", 2) })
	host, _, alog := loggedRegistry(b)
	same, _ := planBytes(b, host, v1.UpdateDir, "1.0.0", v1.UpdateDir)
	planned2, total := planBytes(b, host, v2.UpdateDir, "2.0.0", v1.UpdateDir)
	planBytes(b, host, v3.UpdateDir, "3.0.0", v1.UpdateDir)
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
		m, err := vm.Start(ctx, vm.Config{Image: v1.DiskPath, DiskSizeBytes: v1.DiskBytes + 1<<30,
			LogFile: filepath.Join(os.TempDir(), "ingot-vm-BenchmarkDeltaUpdate.log"),
			UserNet: &vm.UserNet{GuestForwards: []vm.GuestForward{{GuestAddr: "10.0.2.100", GuestPort: 5000, Target: host}}}})
		if err != nil {
			b.Fatal(err)
		}
		booted(ctx, b, m)
		waitForAddress(ctx, b, m)
		var check availability
		runJSON(ctx, b, m, "ingot update --check --json oci://10.0.2.100:5000/ingot:1.0.0", &check)
		if check.Available || check.Download != 0 {
			b.Errorf("same version: %+v", check)
		}
		runJSON(ctx, b, m, "ingot update --check --json oci://10.0.2.100:5000/ingot:2.0.0", &check)
		ranged := deltaRun(ctx, b, m, alog, "ingot update oci://10.0.2.100:5000/ingot:2.0.0")
		perChunk := deltaRun(ctx, b, m, alog, "ingot update --max-range 1 oci://10.0.2.100:5000/ingot:3.0.0")
		m.Close()
		cancel()
		b.ReportMetric(float64(same), "same-version-plan-B")
		b.ReportMetric(float64(check.Download), "one-change-check-B")
		b.ReportMetric(float64(planned2)/float64(total)*100, "one-change-%")
		b.ReportMetric(float64(ranged.bytes)/(1<<20), "ranged-MiB")
		b.ReportMetric(float64(ranged.requests), "ranged-requests")
		b.ReportMetric(ranged.wait.Seconds(), "ranged-wait-s")
		b.ReportMetric(ranged.apply.Seconds(), "ranged-apply-s")
		b.ReportMetric(float64(perChunk.bytes)/(1<<20), "per-chunk-MiB")
		b.ReportMetric(float64(perChunk.requests), "per-chunk-requests")
		b.ReportMetric(perChunk.wait.Seconds(), "per-chunk-wait-s")
		b.ReportMetric(perChunk.apply.Seconds(), "per-chunk-apply-s")
		b.ReportMetric(float64(total)/(1<<20), "artifact-MiB")
	}
}

// deltaResult is one update's blob traffic.
type deltaResult struct {
	bytes       int64
	requests    int
	wait, apply time.Duration
}

// deltaRun runs an update and returns its blob traffic from the
// registry's access log.
func deltaRun(ctx context.Context, b *testing.B, m *vm.Machine, alog *accessLog, cmd string) deltaResult {
	b.Helper()
	alog.reset()
	start := time.Now()
	out := runFor(ctx, b, m, cmd+" 2>&1", 20*time.Minute)
	r := deltaResult{apply: time.Since(start)}
	r.bytes, r.requests, r.wait = alog.blobTraffic()
	n, seeded, cached := downloaded(b, out)
	b.Logf("%s: %d bytes downloaded (%d seeded, %d cached), %d blob requests, %d bytes on the wire, %s waiting for ranges, %s in all",
		cmd, n, seeded, cached, r.requests, r.bytes, r.wait.Round(time.Millisecond), r.apply.Round(time.Second))
	return r
}

// benchRootfsChanged is the base with one file set of 1 MiB changed.
func benchRootfsChanged(b *testing.B, name string, seed uint64) string {
	b.Helper()
	return baseRootfsChanged(b, name, seed, 4, 256<<10)
}

// BenchmarkDeltaDebian measures what one Debian package added to the
// fixture (tree, from the archive) costs a machine running the fixture:
// the bytes of the chunks it lacks, against the whole artifact; and a
// rebuild that changes only the version. It runs no VM: the seeds are
// v1's files, which the machine's partitions hold.
func BenchmarkDeltaDebian(b *testing.B) {
	debianImage(b) // the fixture and the binaries
	dir := b.TempDir()
	cmd := exec.Command("apt-get", "download", "tree")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("apt-get download tree (the package the benchmark adds): %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "tree_*.deb"))
	if len(debs) != 1 {
		b.Fatalf("apt-get download tree gave %v", debs)
	}
	// The fixture is a tar; both versions are imaged from its extraction.
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		b.Fatal(err)
	}
	ingottest.Run(b, "tar", "-xpf", shared.rootfs, "-C", rootfs, "--numeric-owner")
	v1 := buildVersionWith(b, "1.0.0", func(o *diskimage.Options) { o.RootFS, o.OutputDir = rootfs, filepath.Join(dir, "v1") })
	v1b := buildVersionWith(b, "1.0.1", func(o *diskimage.Options) { o.RootFS, o.OutputDir = rootfs, filepath.Join(dir, "v1b") })
	ingottest.Run(b, "dpkg-deb", "-x", debs[0], rootfs)
	v2 := buildVersionWith(b, "2.0.0", func(o *diskimage.Options) { o.RootFS, o.OutputDir = rootfs, filepath.Join(dir, "v2") })
	host, _, _ := loggedRegistry(b)
	for i := 0; i < b.N; i++ {
		same, total := planBytes(b, host, v1.UpdateDir, "1.0.0", v1.UpdateDir)
		version, _ := planBytes(b, host, v1b.UpdateDir, "1.0.1", v1.UpdateDir)
		pkg, total2 := planBytes(b, host, v2.UpdateDir, "2.0.0", v1.UpdateDir)
		b.ReportMetric(float64(same), "same-version-plan-B")
		b.ReportMetric(float64(version)/(1<<20), "version-only-MiB")
		b.ReportMetric(float64(pkg)/(1<<20), "one-package-MiB")
		b.ReportMetric(float64(pkg)/float64(total2)*100, "one-package-%")
		b.ReportMetric(float64(total)/(1<<20), "artifact-MiB")
	}
}

// BenchmarkDeltaRelease measures what a machine on the previous release's
// musl base (previousRelease: its ingot built from `git archive`, its base
// built from its own recipes into the test store and imaged by it)
// downloads to update to this tree's base, from a real registry with its
// partitions as seeds. Between the two the kernel and systemd were
// rebuilt (the kernel's configuration and systemd's build changed; see
// docs/benchmarks.md) and ingot's own binaries changed: the kernel +
// systemd bump of issue 15.
func BenchmarkDeltaRelease(b *testing.B) {
	prev := previousBinaries(b)
	out := b.TempDir()
	imageWith(b, "musl base", "previous", prev, filepath.Join(out, "prev"), "--store", testStore(b))
	v1 := filepath.Join(out, "prev", artifact.DirName("1.0.0"))
	v2 := baseVersionWith(b, "2.0.0", nil)
	host, _, _ := loggedRegistry(b)
	for i := 0; i < b.N; i++ {
		download, total := planBytes(b, host, v2.UpdateDir, "2.0.0", v1)
		b.ReportMetric(float64(download)/(1<<20), "release-MiB")
		b.ReportMetric(float64(download)/float64(total)*100, "release-%")
		b.ReportMetric(float64(total)/(1<<20), "artifact-MiB")
	}
}
