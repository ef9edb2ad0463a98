package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PartitionName returns the kernel name of partition index of disk ("vda2",
// "nvme0n1p2") by looking it up under sysRoot/class/block (sysRoot is "/sys"
// on a machine, a fixture directory in tests).
func PartitionName(sysRoot, disk string, index int) (string, error) {
	dir := filepath.Join(sysRoot, "class/block", disk)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		n, err := ReadInt(filepath.Join(dir, e.Name(), "partition"))
		if err == nil && int(n) == index {
			return e.Name(), nil
		}
	}
	return "", fmt.Errorf("partition %d of %s not known to the kernel", index, disk)
}

// ReadInt reads a sysfs file holding one decimal number.
func ReadInt(p string) (int64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// DiskSize returns the size of the whole disk name ("vda") and its
// logical sector size, the unit of its partition table, from
// sysRoot/class/block. sysfs counts size in 512-byte units whatever the
// sector size; a disk that does not say its sector size has 512-byte
// sectors.
func DiskSize(sysRoot, name string) (sizeBytes int64, sectorSize int, err error) {
	base := filepath.Join(sysRoot, "class/block", name)
	sectors, err := ReadInt(filepath.Join(base, "size"))
	if err != nil {
		return 0, 0, fmt.Errorf("size of %s: %w", name, err)
	}
	ss, err := ReadInt(filepath.Join(base, "queue/logical_block_size"))
	if err != nil || ss == 0 {
		ss = 512
	}
	return sectors * 512, int(ss), nil
}
