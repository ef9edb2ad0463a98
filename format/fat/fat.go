// Package fat writes and reads FAT32 file systems in pure Go.
//
// It builds the EFI System Partition of ingot disk images without host
// tools. The writer is deterministic: the same files, directories and
// [Options] always produce the same bytes. Files are stored as contiguous
// cluster chains, names that are not plain upper-case 8.3 names get VFAT long
// file name entries plus a unique short alias, and clusters that hold no data
// are never written, so a sparse image file stays sparse.
//
//	w, err := fat.NewWriter(fat.Options{
//		SizeBytes: 256 << 20,
//		VolumeID:  volumeID,  // derived from the content by the caller
//		Time:      buildTime, // every timestamp on the volume
//	})
//	if err != nil {
//		return err
//	}
//	uki, err := os.Open("ingot.efi")
//	if err != nil {
//		return err
//	}
//	defer uki.Close()
//	st, err := uki.Stat()
//	if err != nil {
//		return err
//	}
//	if err := w.AddFile("EFI/BOOT/BOOTX64.EFI", uki, st.Size()); err != nil {
//		return err
//	}
//	// The ESP starts at byte espOffset of the disk image.
//	return w.Write(io.NewOffsetWriter(disk, espOffset))
//
// [Open] reads a FAT32 volume (for example one written by [Writer]) back as
// an [io/fs.FS]. It is meant for untrusted input: corrupt volumes yield
// errors, never panics or endless loops.
package fat

import (
	"errors"
	"fmt"
	"time"
)

// Volume layout constants of the volumes that Writer produces.
const (
	sectorSize       = 512
	reservedSectors  = 32
	numFATs          = 2
	fsInfoSector     = 1
	backupBootSector = 6
	rootCluster      = 2
	mediaDescriptor  = 0xF8
	dirEntrySize     = 32

	// minClusters is the smallest cluster count of a FAT32 volume; volumes
	// with fewer clusters are FAT12 or FAT16 by definition.
	minClusters = 65525
	// maxDirEntries is the largest number of 32-byte entries a directory may
	// hold (2 MiB).
	maxDirEntries = 65536
	// maxFileSize is the largest size of a file on FAT32.
	maxFileSize = 1<<32 - 1

	// FAT entry values.
	fatEOC  = 0x0FFFFFFF
	fatMask = 0x0FFFFFFF
)

// MinSize is the smallest volume size in bytes that holds a valid FAT32 file
// system (65525 clusters of one sector each, plus the reserved sectors and
// two FATs).
const MinSize = 66581 * sectorSize

// MaxSize is the largest volume size in bytes that Writer supports: the
// sector count must fit the 32-bit field of the boot sector.
const MaxSize = (1<<32 - 1) * sectorSize

// ErrNoSpace is returned (wrapped, with the needed and available bytes) by
// [Writer.Write] when the files and directories do not fit on the volume.
var ErrNoSpace = errors.New("not enough space on FAT volume")

// geometry describes the layout of a volume written by Writer.
type geometry struct {
	totalSectors uint32
	spc          uint32 // sectors per cluster
	fatSectors   uint32 // sectors per FAT
	clusters     uint32 // number of data clusters (numbered from 2)
}

// newGeometry chooses the cluster size and FAT size for a volume of size
// bytes. The cluster size follows Microsoft's defaults and is halved until
// the volume has enough clusters to be FAT32.
func newGeometry(size int64) (geometry, error) {
	if size%sectorSize != 0 {
		return geometry{}, fmt.Errorf("volume size %d bytes is not a multiple of %d", size, sectorSize)
	}
	if size < MinSize {
		return geometry{}, fmt.Errorf("volume size %d bytes is too small for FAT32: minimum is %d bytes", size, MinSize)
	}
	if size > MaxSize {
		return geometry{}, fmt.Errorf("volume size %d bytes is too large: maximum is %d bytes", size, int64(MaxSize))
	}
	total := uint32(size / sectorSize)
	var spc uint32
	switch {
	case total <= 532480: // 260 MB
		spc = 1
	case total <= 16777216: // 8 GiB
		spc = 8
	case total <= 33554432: // 16 GiB
		spc = 16
	case total <= 67108864: // 32 GiB
		spc = 32
	default:
		spc = 64
	}
	for ; spc >= 1; spc /= 2 {
		if g, ok := fitGeometry(total, spc); ok {
			return g, nil
		}
	}
	// Unreachable for sizes >= MinSize, which fit with one sector per cluster.
	return geometry{}, fmt.Errorf("volume size %d bytes is too small for FAT32", size)
}

// fitGeometry computes the smallest FAT for total sectors and spc sectors
// per cluster, grown so that the data region starts on a cluster boundary,
// and reports whether the result is a valid FAT32 volume.
func fitGeometry(total, spc uint32) (geometry, bool) {
	clustersFor := func(fat uint32) uint32 {
		meta := uint64(reservedSectors) + numFATs*uint64(fat)
		if meta >= uint64(total) {
			return 0
		}
		return uint32((uint64(total) - meta) / uint64(spc))
	}
	fits := func(fat uint32) bool {
		return (uint64(clustersFor(fat))+2)*4 <= uint64(fat)*sectorSize
	}
	// fits is monotone in fat: binary search its smallest true value.
	lo, hi := uint32(1), total/numFATs
	if !fits(hi) {
		return geometry{}, false
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		if fits(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	fat := lo
	for (reservedSectors+numFATs*fat)%spc != 0 {
		fat++
	}
	g := geometry{totalSectors: total, spc: spc, fatSectors: fat, clusters: clustersFor(fat)}
	if g.clusters < minClusters || g.clusters > 0x0FFFFFF5-2 {
		return geometry{}, false
	}
	return g, true
}

// clusterSize returns the size of a cluster in bytes.
func (g geometry) clusterSize() int64 { return int64(g.spc) * sectorSize }

// fatOffset returns the byte offset of FAT number i.
func (g geometry) fatOffset(i int) int64 {
	return (reservedSectors + int64(i)*int64(g.fatSectors)) * sectorSize
}

// clusterOffset returns the byte offset of data cluster c (c >= 2).
func (g geometry) clusterOffset(c uint32) int64 {
	return g.fatOffset(numFATs) + int64(c-2)*g.clusterSize()
}

// clustersFor returns the number of clusters that size bytes occupy.
func (g geometry) clustersFor(size int64) int64 {
	cs := g.clusterSize()
	return (size + cs - 1) / cs
}

// dosTime converts t (in UTC) to a FAT date, time and creation-time
// hundredths, clamped to the representable range 1980-01-01 to 2107-12-31.
func dosTime(t time.Time) (date, tm uint16, hundredths uint8) {
	t = t.UTC()
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	} else if t.Year() > 2107 {
		t = time.Date(2107, 12, 31, 23, 59, 59, 990_000_000, time.UTC)
	}
	date = uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day())
	tm = uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2)
	hundredths = uint8(t.Second()%2*100 + t.Nanosecond()/10_000_000)
	return date, tm, hundredths
}

// fromDOSTime converts a FAT date and time to a time.Time in UTC. Invalid
// fields are clamped instead of rejected.
func fromDOSTime(date, tm uint16) time.Time {
	if date == 0 {
		return time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(1980+int(date>>9), time.Month(date>>5&0xF), int(date&0x1F),
		int(tm>>11), int(tm>>5&0x3F), int(tm&0x1F)*2, 0, time.UTC)
}
