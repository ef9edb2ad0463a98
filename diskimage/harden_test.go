package diskimage_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/layout"
)

// TestHarden10DebugShellWithEncryptedRoot: ingot.debug=shell on an
// image with an encrypted root would give a shell with the root unlocked
// and PCR 11 still in the initrd phase. ingot image refuses the pair.
func TestHarden10DebugShellWithEncryptedRoot(t *testing.T) {
	for _, mode := range []string{layout.EncryptTPM, layout.EncryptIfTPM} {
		out := filepath.Join(t.TempDir(), "out")
		_, err := diskimage.Build(context.Background(), diskimage.Options{
			RootFS: "/nonexistent", Version: "1.0.0", OutputDir: out,
			EncryptRoot: mode, Cmdline: []string{"console=ttyS0 ingot.debug=shell"},
		})
		if err == nil || !strings.Contains(err.Error(), "ingot.debug=shell with an encrypted root") {
			t.Fatalf("%s: %v", mode, err)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: output directory made for a refused build", mode)
		}
	}
}

// TestContentEpochIgnoresTopDirectory: with EpochFromContent, two images
// of the same root filesystem directory are the same even when the
// directory itself was made at another time (an assembled base is put in
// a fresh directory each run), which once made every ingot image of the
// base differ.
func TestContentEpochIgnoresTopDirectory(t *testing.T) {
	dir := t.TempDir()
	tarball := filepath.Join(dir, "rootfs.tar")
	writeTar(t, tarball, fixture(t))
	var hashes []string
	for i, top := range []time.Time{time.Unix(1700000000, 0), time.Unix(1800000000, 0)} {
		root := filepath.Join(dir, fmt.Sprint("rootfs", i))
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		ingottest.Run(t, "tar", "-xpf", tarball, "-C", root)
		// Directories tar makes on its own get the time of extraction.
		ingottest.Run(t, "find", root, "-mindepth", "1", "-exec", "touch", "-h", "-d", "@1600000000", "{}", "+")
		if err := os.Chtimes(root, top, top); err != nil {
			t.Fatal(err)
		}
		res, err := build(t, root, filepath.Join(dir, fmt.Sprint("out", i)), func(o *diskimage.Options) { o.Epoch = diskimage.EpochFromContent })
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, ingottest.FileSHA256(t, res.DiskPath))
	}
	if hashes[0] != hashes[1] {
		t.Fatalf("the same content gave two images (%s, %s): the top directory's time counted", hashes[0], hashes[1])
	}
}
