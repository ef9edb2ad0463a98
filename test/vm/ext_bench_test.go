//go:build vm

package vm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/trust"
	"github.com/ingot-linux/ingot/vm"
)

// BenchmarkExtensionBoot boots the signed musl base with no extensions
// and with three (two sysexts, one confext, shipped in the image with
// --extension), side by side: QEMU start → marker on the first boot and on
// a reboot. ingot-init verifies each extension by reading it through
// dm-verity, so the difference is the extensions' cost at boot.
func BenchmarkExtensionBoot(b *testing.B) {
	dir := b.TempDir()
	keyDir := filepath.Join(dir, "keys")
	keys, err := trust.InitKeys(keyDir, trust.KeyOptions{Name: "ingot bench"})
	if err != nil {
		b.Fatal(err)
	}
	rootfs := baseRootfs(b)
	ingot := filepath.Join(binaries(b), "ingot")
	var files []string
	for i, kind := range []ext.Kind{ext.Sysext, ext.Sysext, ext.Confext} {
		name := fmt.Sprintf("bench%d", i)
		src := filepath.Join(dir, "src", name)
		p := filepath.Join(src, "usr/share", name, "data")
		if kind == ext.Confext {
			p = filepath.Join(src, "etc", name+".conf")
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(strings.Repeat(name+" payload line\n", 1<<16)), 0o644) // ~1 MiB
		ingottest.Run(b, ingot, "ext", "build", "--name", name, "--version", "1", "--type", string(kind), "--dir", src,
			"--keys", keyDir, "--for", "1.0.0", "--base", rootfs, "--output", filepath.Join(dir, "out"))
		files = append(files, filepath.Join(dir, "out", ext.FileName(name, "1")))
	}
	plain := baseVersionWith(b, "1.0.0", func(o *diskimage.Options) {
		o.Keys, o.KeyDir, o.OutputDir = keys, keyDir, filepath.Join(dir, "plain")
	})
	with := baseVersionWith(b, "1.0.0", func(o *diskimage.Options) {
		o.Keys, o.KeyDir, o.OutputDir, o.Extensions = keys, keyDir, filepath.Join(dir, "with"), files
	})
	for i := 0; i < b.N; i++ {
		for _, c := range []struct {
			name string
			res  *diskimage.Result
		}{{"0ext", plain}, {"3ext", with}} {
			first, again := markerTwice(b, c.res)
			b.ReportMetric(first.Seconds(), c.name+"-first-boot-s")
			b.ReportMetric(again.Seconds(), c.name+"-reboot-s")
		}
	}
}

// markerTwice boots a copy of the image to the marker, reboots it to the
// marker again, and returns both times.
func markerTwice(b *testing.B, res *diskimage.Result) (first, again time.Duration) {
	b.Helper()
	disk := filepath.Join(b.TempDir(), "disk.raw")
	ingottest.Run(b, "cp", "--sparse=always", res.DiskPath, disk)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	m, err := vm.Start(ctx, vm.Config{Image: disk, Persist: true, DiskSizeBytes: res.DiskBytes + 1<<30})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if _, err := m.WaitForRegexp(ctx, markerRE, 10*time.Minute); err != nil {
		b.Fatal(err)
	}
	first = time.Since(start)
	if strings.Contains(m.Log(), " refused: ") {
		b.Fatalf("an extension was refused:\n%s", m.Tail(4000))
	}
	// The reboot is typed into the autologin shell, which may come up
	// after the marker.
	m.SetCursor(0)
	booted(ctx, b, m)
	m.Send("systemctl reboot\n")
	restart := time.Now()
	if _, err := m.WaitForRegexp(ctx, markerRE, 10*time.Minute); err != nil {
		b.Fatal(err)
	}
	return first, time.Since(restart)
}
