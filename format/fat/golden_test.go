package fat

import (
	"flag"
	"os"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestGolden pins the bytes Write produces for a small ESP to
// testdata/esp.golden, which holds the volume's non-zero sectors: boot
// sector, FSInfo and their backups, the heads of both FATs, the
// directories and the file data. The content covers a two-cluster file, a
// long name with its short alias, an empty file and an empty directory.
// Rewrite it with go test -run TestGolden -update after an intended
// change, and review the diff.
func TestGolden(t *testing.T) {
	boot := make([]byte, sectorSize+8) // spills into a second cluster
	copy(boot, "MZ")
	copy(boot[sectorSize:], "cluster2")
	spec := volumeSpec{
		name: "golden",
		opts: Options{SizeBytes: MinSize, Label: "ingot esp", VolumeID: 0x1D600001, Time: testTime, HiddenSectors: 2048},
		files: []tfile{
			{"EFI/BOOT/BOOTX64.EFI", boot},
			{"EFI/Linux/ingot_1.0.0+3-0.efi", []byte("MZ a unified kernel image")},
			{"loader/loader.conf", []byte("timeout 0\n")},
			{"loader/random-seed", nil},
		},
		dirs: []string{"loader/entries"},
	}
	path, _ := spec.write(t)
	ingottest.FsckVfat(t, path)
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ingottest.SparseGolden(t, "testdata/esp.golden", img, *update)
}
