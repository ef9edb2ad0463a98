package gpt

import (
	"flag"
	"os"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestGolden pins the bytes Write produces for an ingot-like 32 MiB disk
// (testLayout with a root partition: fixed GUIDs, a non-BMP name, an
// unaligned size) to testdata/layout.golden, which holds the image's
// non-zero sectors: protective MBR, both headers and both entry arrays.
// Rewrite it with go test -run TestGolden -update after an intended
// change, and review the diff.
func TestGolden(t *testing.T) {
	const size = 32 * mib
	path := writeImage(t, testLayout(t, size, 512, true), size)
	ingottest.SgdiskVerify(t, path)
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ingottest.SparseGolden(t, "testdata/layout.golden", img, *update)
}
