//go:build vm

package vm_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/diskimage/rootfs"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/vm"
)

// usrCompression reads the EROFS superblock of the disk's /usr and returns
// its compression algorithms; it fails the test when /usr is not
// compressed.
func usrCompression(t *testing.T, disk string) string {
	t.Helper()
	d, f, err := diskimage.InspectFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sb := make([]byte, 128)
	if _, err := f.ReadAt(sb, d.Usr.Offset(512)+1024); err != nil {
		t.Fatal(err)
	}
	const comprCfgs = 0x2
	incompat, algs := binary.LittleEndian.Uint32(sb[80:]), binary.LittleEndian.Uint16(sb[84:])
	if binary.LittleEndian.Uint32(sb) != 0xE0F5E1E2 || incompat&comprCfgs == 0 || algs == 0 {
		t.Fatalf("/usr is not a compressed EROFS image (incompat %#x, algorithms %#x)", incompat, algs)
	}
	names := map[uint16]string{1: "lz4", 2: "lzma", 4: "deflate", 8: "zstd"}
	return "compressed with " + names[algs]
}

// TestDebianCompressedBoot images the Debian fixture with
// --compression=auto (its 6.1 kernel: LZ4HC, big pclusters) and boots it:
// the oldest kernel ingot supports mounts the compressed /usr, reaches the
// boot marker and reads large compressed files back as they are in the
// root filesystem.
func TestDebianCompressedBoot(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("VM tests boot real machines; not in -short")
	}
	fixture := ingottest.DebianRootfs(t, repoRoot)
	bin := binaries(t)
	out := t.TempDir()
	res, err := diskimage.Build(context.Background(), diskimage.Options{
		RootFS: fixture, Version: "1.0.0", OutputDir: out, Epoch: epoch,
		InitPath: filepath.Join(bin, "ingot-init"), AgentPath: filepath.Join(bin, "ingot-agent"),
		Autologin: true, Compression: diskimage.CompressionAuto,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("/usr %d MiB, %s", res.UsrBytes>>20, usrCompression(t, res.DiskPath))
	want := wantSums(t, fixture, "usr/lib/udev/hwdb.bin", "usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-252.so")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	m := startVM(ctx, t, vm.Config{Image: res.DiskPath, DiskSizeBytes: res.DiskBytes + 1<<30})
	expectMarker(t, booted(ctx, t, m), "1.0.0", "a")
	for p, sum := range want {
		if got := run(ctx, t, m, "sha256sum /"+p+" | cut -d' ' -f1"); got != sum {
			t.Errorf("/%s in the guest: sha256 %s, want %s", p, got, sum)
		}
	}
}

// wantSums returns the sha256 of files of the Debian fixture (a file
// missing from it fails the test).
func wantSums(t *testing.T, fixture string, paths ...string) map[string]string {
	t.Helper()
	tr, err := rootfs.Load(fixture, rootfs.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	sums := map[string]string{}
	for _, p := range paths {
		b, err := tr.ReadFile(p)
		if err != nil {
			t.Fatalf("fixture: %v", err)
		}
		sum := sha256.Sum256(b)
		sums[p] = hex.EncodeToString(sum[:])
	}
	return sums
}
