// Package gpt reads and writes GUID Partition Tables (UEFI specification,
// chapter 5) in pure Go.
//
// It serves two callers: the image builder, which lays out a fresh disk
// image, and the initrd, which finds partitions by PARTUUID or type and, on
// the first boot of a grown disk, moves the backup GPT to the new end of the
// disk and adds a partition in the new free space.
//
// The package is deterministic: it never generates GUIDs. The disk GUID and
// every partition's unique GUID are set by the caller.
//
// Building an image:
//
//	t, err := gpt.New(size, 512, diskGUID)
//	if err != nil { ... }
//	esp, err := t.Append(gpt.Partition{Type: gpt.TypeESP, UUID: espUUID, Name: "esp"}, 100<<20, 0)
//	if err != nil { ... }
//	// ... write the file system at esp.Offset(512), then:
//	if err := t.Write(f, size); err != nil { ... }
//
// Growing a disk on the device:
//
//	t, err := gpt.Read(dev, size, 512)
//	if err != nil { ... }
//	grew, err := t.Grow(size)
//	if err != nil { ... }
//	if grew {
//		free, ok := t.LargestFree(0) // 1 MiB aligned
//		if ok {
//			_, err = t.Add(gpt.Partition{Type: gpt.TypeRootAMD64, UUID: u, Name: "root",
//				FirstLBA: free.FirstLBA, LastLBA: free.LastLBA})
//		}
//		// ...
//		err = t.Write(dev, size) // backup first, then primary
//	}
//
// Only 512-byte and larger power-of-two logical sectors are supported; the
// sector size is a field of [Table] so 4096-byte sectors work too.
package gpt

import (
	"errors"
	"fmt"
)

// Errors callers can act on. Errors returned by this package wrap one of
// these where it applies; test with [errors.Is].
var (
	// ErrNoTable means neither the primary nor the backup location holds a
	// GPT header signature: the disk is not partitioned with GPT.
	ErrNoTable = errors.New("no GUID partition table")
	// ErrCorrupt means a GPT header was found but neither copy is valid,
	// or (in Table.BackupErr) that the backup copy is damaged or stale.
	ErrCorrupt = errors.New("corrupt GUID partition table")
	// ErrInvalid means a table or partition given by the caller breaks a
	// GPT rule (overlap, out of range, duplicate index, name too long, ...).
	ErrInvalid = errors.New("invalid partition table")
	// ErrNoSpace means the disk is too small for the requested layout.
	ErrNoSpace = errors.New("not enough space on disk")
)

const (
	// DefaultNumEntries is the number of partition entries Write reserves
	// when Table.NumEntries is smaller, as the UEFI specification requires
	// at least 16384 bytes of entry array.
	DefaultNumEntries = 128
	// MaxNumEntries is the largest partition entry count Read accepts and
	// Write produces.
	MaxNumEntries = 1024
	// EntrySize is the size in bytes of a partition entry written by Write.
	EntrySize = 128
	// MaxEntrySize is the largest partition entry size Read accepts.
	MaxEntrySize = 4096
	// MaxNameLen is the longest partition name, in UTF-16 code units.
	MaxNameLen = 36
	// DefaultAlign is the partition alignment used when an alignment of 0 is
	// given: 1 MiB.
	DefaultAlign = 1 << 20
	// MaxSectorSize is the largest logical sector size supported.
	MaxSectorSize = 64 << 10
)

// Partition attribute bits (UEFI specification table 5.8 and the UAPI
// Discoverable Partitions Specification).
const (
	// AttrRequired marks a partition required for the platform to function.
	AttrRequired uint64 = 1 << 0
	// AttrNoBlockIOProtocol asks firmware not to produce an EFI_BLOCK_IO
	// protocol for the partition.
	AttrNoBlockIOProtocol uint64 = 1 << 1
	// AttrLegacyBIOSBootable marks a partition bootable by legacy BIOS.
	AttrLegacyBIOSBootable uint64 = 1 << 2
	// AttrGrowFS asks systemd to grow the file system to the partition size.
	AttrGrowFS uint64 = 1 << 59
	// AttrReadOnly asks systemd to mount the partition read-only.
	AttrReadOnly uint64 = 1 << 60
	// AttrNoAuto excludes the partition from systemd's automatic discovery.
	AttrNoAuto uint64 = 1 << 63
)

// Partition is one used entry of a partition table.
type Partition struct {
	// Index is the 1-based number of the entry (the N in /dev/sdaN).
	Index int
	// Type is the partition type GUID; the zero GUID marks an unused entry
	// and is not allowed for a Partition.
	Type GUID
	// UUID is the unique partition GUID (PARTUUID).
	UUID GUID
	// Name is the partition label; at most MaxNameLen UTF-16 code units.
	Name string
	// FirstLBA and LastLBA are the first and last sector, inclusive.
	FirstLBA, LastLBA uint64
	// Attributes holds the attribute bits, see AttrRequired and friends.
	Attributes uint64
}

// Sectors returns the number of sectors p spans.
func (p Partition) Sectors() uint64 {
	if p.LastLBA < p.FirstLBA {
		return 0
	}
	return p.LastLBA - p.FirstLBA + 1
}

// Offset returns the byte offset of p on a disk with the given sector size.
func (p Partition) Offset(sectorSize int) int64 {
	return int64(p.FirstLBA) * int64(sectorSize)
}

// Size returns the size of p in bytes on a disk with the given sector size.
func (p Partition) Size(sectorSize int) int64 {
	return int64(p.Sectors()) * int64(sectorSize)
}

// label names p in error messages.
func (p Partition) label() string {
	if p.Index == 0 {
		return fmt.Sprintf("partition %q", p.Name)
	}
	if p.Name == "" {
		return fmt.Sprintf("partition %d", p.Index)
	}
	return fmt.Sprintf("partition %d (%q)", p.Index, p.Name)
}

// Source tells which copy of the GPT Read used.
type Source int

const (
	// SourceNone is the Source of a table not produced by Read.
	SourceNone Source = iota
	// SourcePrimary means the primary header at LBA 1 was valid and used.
	SourcePrimary
	// SourceBackup means the primary was unusable and the backup was used.
	SourceBackup
)

// String returns "none", "primary" or "backup".
func (s Source) String() string {
	switch s {
	case SourceNone:
		return "none"
	case SourcePrimary:
		return "primary"
	case SourceBackup:
		return "backup"
	}
	return fmt.Sprintf("Source(%d)", int(s))
}

// Table is a GUID partition table.
//
// Create one with New (image building) or Read (existing disk), change
// Partitions directly or with Add and Append, and store it with Write.
type Table struct {
	// SectorSize is the logical sector size in bytes (512 or 4096 usually).
	SectorSize int
	// DiskGUID identifies the disk; Write refuses the zero GUID.
	DiskGUID GUID
	// Partitions holds the used entries. Read returns them sorted by Index;
	// Write accepts any order and puts each in entry slot Index.
	Partitions []Partition
	// FirstUsableLBA and LastUsableLBA bound the sectors partitions may use.
	// Write derives them from the disk size when they are zero.
	FirstUsableLBA, LastUsableLBA uint64
	// NumEntries is the number of partition entries in the array. Write uses
	// at least DefaultNumEntries.
	NumEntries int

	// Source tells which copy Read used.
	Source Source
	// PrimaryErr is why Read rejected the primary copy, or nil.
	PrimaryErr error
	// BackupErr is why the backup copy is unusable or does not match the
	// primary, or nil. Read only checks the backup when the primary is
	// valid; when Source is SourceBackup, BackupErr is nil.
	BackupErr error
	// BackupLBA is the sector of the backup header as recorded by the
	// primary header, or where Read found the backup. On a disk that grew
	// since the table was written it is before the last sector.
	BackupLBA uint64
}

// entrySectors returns how many sectors an entry array of n 128-byte entries
// occupies with sector size ss.
func entrySectors(n, ss int) uint64 {
	return uint64((n*EntrySize + ss - 1) / ss)
}

// writeNumEntries is the entry count Write uses for t.
func (t *Table) writeNumEntries() int {
	return max(t.NumEntries, DefaultNumEntries)
}

// checkSectorSize reports whether ss is a supported sector size.
func checkSectorSize(ss int) error {
	if ss < 512 || ss > MaxSectorSize || ss&(ss-1) != 0 {
		return fmt.Errorf("gpt: %w: sector size %d is not a power of two between 512 and %d", ErrInvalid, ss, MaxSectorSize)
	}
	return nil
}

// New returns an empty table for a disk of diskSizeBytes bytes with
// DefaultNumEntries entries: FirstUsableLBA is 34 and LastUsableLBA is the
// last sector minus 33 for 512-byte sectors.
func New(diskSizeBytes int64, sectorSize int, diskGUID GUID) (*Table, error) {
	if err := checkSectorSize(sectorSize); err != nil {
		return nil, err
	}
	t := &Table{SectorSize: sectorSize, DiskGUID: diskGUID, NumEntries: DefaultNumEntries}
	first, last, err := t.usableRange(diskSizeBytes)
	if err != nil {
		return nil, err
	}
	t.FirstUsableLBA, t.LastUsableLBA = first, last
	return t, nil
}

// usableRange returns the largest usable range a disk of diskSize bytes
// offers with t's sector size and Write's entry count.
func (t *Table) usableRange(diskSize int64) (first, last uint64, err error) {
	ss := t.SectorSize
	es := entrySectors(t.writeNumEntries(), ss)
	minSectors := 2 + 2*es + 2 // MBR, 2 headers, 2 arrays, 1 usable sector
	if diskSize < 0 || uint64(diskSize/int64(ss)) < minSectors {
		return 0, 0, fmt.Errorf("gpt: %w: disk is %d bytes, a GPT needs at least %d", ErrNoSpace, diskSize, minSectors*uint64(ss))
	}
	lastLBA := uint64(diskSize/int64(ss)) - 1
	return 2 + es, lastLBA - 1 - es, nil
}

// diskBytesFor returns the size of a disk whose last usable LBA is last.
func (t *Table) diskBytesFor(last uint64) uint64 {
	es := entrySectors(t.writeNumEntries(), t.SectorSize)
	return (last + 1 + es + 1) * uint64(t.SectorSize)
}
