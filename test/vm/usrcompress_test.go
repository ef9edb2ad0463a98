//go:build vm

package vm_test

import (
	"encoding/binary"
	"testing"

	"github.com/ingot-linux/ingot/diskimage"
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
