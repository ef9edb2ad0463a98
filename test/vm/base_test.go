//go:build vm

package vm_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/ingottest"
)

// base is ingot's own musl base, built into the test store and assembled
// into a directory once per run: every test that boots the base images
// that directory (or the store, through the CLI), and none builds it
// twice, even when they run in parallel.
var base struct {
	once   sync.Once
	err    error
	dir    string // holds rootfs/ and the versions' outputs
	rootfs string
}

// baseRootfs builds the base into the test store (a cold store builds the
// whole base from source) and assembles it, once.
func baseRootfs(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("VM tests boot real machines; not in -short")
	}
	bin := binaries(t)
	base.once.Do(func() {
		if base.dir, base.err = os.MkdirTemp("", "ingot-vm-base-*"); base.err != nil {
			return
		}
		base.rootfs = filepath.Join(base.dir, "rootfs")
		cmd := exec.Command(filepath.Join(bin, "ingot"), "build", "--store", testStore(t), "--rootfs", base.rootfs)
		cmd.Env = withoutEnv(os.Environ(), "SOURCE_DATE_EPOCH")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		base.err = cmd.Run()
	})
	if base.err != nil {
		t.Fatalf("build the base into %s: %v", testStore(t), base.err)
	}
	return base.rootfs
}

// baseVersion images the base as version (autologin, for the harness).
func baseVersion(t testing.TB, version string) *diskimage.Result {
	t.Helper()
	return baseVersionWith(t, version, nil)
}

// baseVersionWith images the base as version, with options changed by
// mod (nil for none).
func baseVersionWith(t testing.TB, version string, mod func(*diskimage.Options)) *diskimage.Result {
	t.Helper()
	rootfs := baseRootfs(t)
	bin := binaries(t)
	o := diskimage.Options{
		RootFS: rootfs, Version: version, OutputDir: filepath.Join(base.dir, t.Name(), "v"+version), Epoch: epoch,
		InitPath: filepath.Join(bin, "ingot-init"), AgentPath: filepath.Join(bin, "ingot-agent"),
		Autologin: true,
	}
	if mod != nil {
		mod(&o)
	}
	res, err := diskimage.Build(context.Background(), o)
	if err != nil {
		t.Fatalf("image the base as %s: %v", version, err)
	}
	return res
}

// baseRootfsWith copies the assembled base and adds files (path →
// content, mode 0644).
func baseRootfsWith(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	ingottest.Run(t, "cp", "-a", baseRootfs(t), dir)
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
