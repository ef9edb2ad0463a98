package kernel

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDiskSize(t *testing.T) {
	root := t.TempDir()
	write := func(rel, s string) {
		p := filepath.Join(root, "class/block", rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("vda/size", "2048\n")
	write("sda/size", "2048\n")
	write("sda/queue/logical_block_size", "4096\n")
	tests := []struct {
		name       string
		size       int64
		sectorSize int
	}{
		{"vda", 1 << 20, 512},
		{"sda", 1 << 20, 4096},
	}
	for _, tc := range tests {
		size, ss, err := DiskSize(root, tc.name)
		if err != nil || size != tc.size || ss != tc.sectorSize {
			t.Errorf("DiskSize(%s) = %d, %d, %v; want %d, %d", tc.name, size, ss, err, tc.size, tc.sectorSize)
		}
	}
	if _, _, err := DiskSize(root, "vdb"); err == nil {
		t.Error("DiskSize of a missing disk: no error")
	}
}
