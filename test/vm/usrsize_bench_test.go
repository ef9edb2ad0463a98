//go:build vm

package vm_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/diskimage/rootfs"
	"github.com/ingot-linux/ingot/format/erofs"
	"github.com/ingot-linux/ingot/ingottest"
)

// BenchmarkUsrCompression compares /usr as ingot writes it compressed
// (lz4hc, zstd) with mkfs.erofs -zlz4hc and mksquashfs -comp zstd on the
// same tree, for the musl base and the Debian fixture, side by side in one
// run: sizes, their ratios (targets: ingot lz4hc ≤ 1.0× mkfs.erofs,
// ingot zstd ≤ 1.05× mksquashfs) and ingot's wall and CPU time against
// mkfs.erofs's (target wall ≤ 0.5×). Every ingot image is checked with
// fsck.erofs.
func BenchmarkUsrCompression(b *testing.B) {
	for _, tr := range []struct {
		name   string
		rootfs func(testing.TB) string
	}{
		{"base", func(t testing.TB) string {
			// An assembled base rootfs, to measure without building one.
			if dir := os.Getenv("INGOT_BENCH_BASE_ROOTFS"); dir != "" {
				return dir
			}
			return baseRootfs(t)
		}},
		{"debian", func(t testing.TB) string { return ingottest.DebianRootfs(t, repoRoot) }},
	} {
		b.Run(tr.name, func(b *testing.B) {
			root := usrTree(b, tr.rootfs(b))
			for range b.N {
				benchUsr(b, root)
			}
		})
	}
}

// usrTree returns a directory holding the root filesystem's /usr: src
// itself, or its usr extracted from a tarball.
func usrTree(b *testing.B, src string) string {
	b.Helper()
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		return src
	}
	dir := b.TempDir()
	ingottest.Run(b, "tar", "-xf", src, "-C", dir, "./usr")
	return dir
}

// cost is one way of writing /usr.
type cost struct {
	bytes     int64
	wall, cpu time.Duration
}

func benchUsr(b *testing.B, root string) {
	b.Helper()
	out := b.TempDir()
	lz4 := ingotUsr(b, root, filepath.Join(out, "lz4.erofs"), erofs.Compression{Algorithm: erofs.LZ4HC})
	zstd := ingotUsr(b, root, filepath.Join(out, "zstd.erofs"), erofs.Compression{Algorithm: erofs.Zstd})
	mkfs := toolUsr(b, "erofs-utils", filepath.Join(out, "mkfs.erofs"), "mkfs.erofs", "-zlz4hc", filepath.Join(out, "mkfs.erofs"), filepath.Join(root, "usr"))
	sq := toolUsr(b, "squashfs-tools", filepath.Join(out, "usr.squashfs"), "mksquashfs", filepath.Join(root, "usr"), filepath.Join(out, "usr.squashfs"),
		"-comp", "zstd", "-noappend", "-quiet", "-no-progress")
	mib := func(c cost) float64 { return float64(c.bytes) / (1 << 20) }
	b.ReportMetric(mib(lz4), "ingot-lz4hc-MiB")
	b.ReportMetric(mib(mkfs), "mkfs-lz4hc-MiB")
	b.ReportMetric(mib(zstd), "ingot-zstd-MiB")
	b.ReportMetric(mib(sq), "squashfs-zstd-MiB")
	b.ReportMetric(mib(lz4)/mib(mkfs), "lz4hc/mkfs")
	b.ReportMetric(mib(zstd)/mib(sq), "zstd/squashfs")
	b.ReportMetric(lz4.wall.Seconds()/mkfs.wall.Seconds(), "lz4hc-wall/mkfs")
	b.ReportMetric(zstd.wall.Seconds()/mkfs.wall.Seconds(), "zstd-wall/mkfs")
	b.ReportMetric(lz4.cpu.Seconds()/mkfs.cpu.Seconds(), "lz4hc-cpu/mkfs")
	for _, c := range []struct {
		name string
		c    cost
	}{{"ingot lz4hc", lz4}, {"ingot zstd", zstd}, {"mkfs.erofs -zlz4hc", mkfs}, {"mksquashfs -comp zstd", sq}} {
		b.Logf("%-22s %8.1f MiB  wall %6.1f s  cpu %6.1f s", c.name, mib(c.c), c.c.wall.Seconds(), c.c.cpu.Seconds())
	}
}

// ingotUsr loads root and writes its /usr compressed with c, as ingot image
// does, and checks the result with fsck.erofs.
func ingotUsr(b *testing.B, root, img string, c erofs.Compression) cost {
	b.Helper()
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	t, err := rootfs.Load(root, rootfs.Options{TempDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer t.Close()
	f, err := os.Create(img)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	n, err := t.WriteCompressedEROFS(f, "usr", epoch, c)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		b.Fatalf("%v: %v", c, err)
	}
	wall := time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	ingottest.FsckErofs(b, img)
	return cost{bytes: n, wall: wall, cpu: rusageCPU(after) - rusageCPU(before)}
}

// toolUsr runs an upstream tool that writes img and returns its cost.
func toolUsr(b *testing.B, pkg, img, tool string, args ...string) cost {
	b.Helper()
	ingottest.LookTool(b, tool, pkg)
	cmd := exec.Command(tool, args...)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", tool, err, out)
	}
	wall := time.Since(start)
	fi, err := os.Stat(img)
	if err != nil {
		b.Fatal(err)
	}
	return cost{bytes: fi.Size(), wall: wall, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
}

func rusageCPU(r syscall.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
