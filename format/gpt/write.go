package gpt

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// syncer is implemented by *os.File.
type syncer interface {
	Sync() error
}

// chunk is one contiguous write.
type chunk struct {
	what string
	off  int64
	data []byte
}

// Write stores t on a disk of diskSizeBytes bytes: a protective MBR at LBA 0
// (one 0xEE partition from LBA 1 covering the disk, capped at 0xFFFFFFFF
// sectors), the primary header at LBA 1 with the entry array from LBA 2, and
// the backup entry array and header ending at the last sector. Entries are
// 128 bytes; the array has max(NumEntries, DefaultNumEntries) of them.
//
// Zero FirstUsableLBA and LastUsableLBA are derived from the disk size (34
// and last sector − 33 for 512-byte sectors); non-zero values are kept and
// must leave room for the entry arrays. Write never changes t.
//
// Everything is validated before the first byte is written: sector size,
// non-zero disk GUID, partitions with a type, non-zero unique UUID, unique
// index within the entry count, range within the usable area, no overlap,
// and names of at most 36 UTF-16 code units. Errors wrap ErrInvalid or
// ErrNoSpace and name the offending partition.
//
// Write order, for power-loss safety when rewriting a disk in place (e.g.
// after Grow): first the backup entries and then the backup header at the
// end of the disk; then, after syncing when w has a Sync method (as *os.File
// does), the primary entries, the primary header and the protective MBR,
// followed by a final sync. Until the primary header is rewritten the old
// primary and its old backup stay intact and consistent; if power fails
// while the primary is being rewritten, its CRCs no longer match and Read
// falls back to the new backup at the last sector. A single-sector header
// write is assumed to be atomic.
func (t *Table) Write(w io.WriterAt, diskSizeBytes int64) error {
	chunks, err := t.encode(diskSizeBytes)
	if err != nil {
		return err
	}
	s, canSync := w.(syncer)
	for i, c := range chunks {
		if _, err := w.WriteAt(c.data, c.off); err != nil {
			return fmt.Errorf("gpt: write %s at offset %d: %w", c.what, c.off, err)
		}
		if canSync && (i == 1 || i == len(chunks)-1) {
			if err := s.Sync(); err != nil {
				return fmt.Errorf("gpt: sync after %s: %w", c.what, err)
			}
		}
	}
	return nil
}

// encode validates t and returns the writes Write performs, in order: backup
// entries, backup header, primary entries, primary header, protective MBR.
func (t *Table) encode(diskSize int64) ([]chunk, error) {
	ss := t.SectorSize
	if err := checkSectorSize(ss); err != nil {
		return nil, err
	}
	n := t.writeNumEntries()
	if n > MaxNumEntries {
		return nil, fmt.Errorf("gpt: %w: %d partition entries, at most %d supported", ErrInvalid, n, MaxNumEntries)
	}
	minFirst, maxLast, err := t.usableRange(diskSize)
	if err != nil {
		return nil, err
	}
	first, last := t.FirstUsableLBA, t.LastUsableLBA
	if first == 0 {
		first = minFirst
	}
	if last == 0 {
		last = maxLast
	}
	switch {
	case first < minFirst:
		return nil, fmt.Errorf("gpt: %w: first usable LBA %d overlaps the primary partition entries (must be at least %d)", ErrInvalid, first, minFirst)
	case last > maxLast:
		return nil, fmt.Errorf("gpt: %w: disk is %d bytes, table needs %d (last usable LBA %d)", ErrNoSpace, diskSize, t.diskBytesFor(last), last)
	case first > last:
		return nil, fmt.Errorf("gpt: %w: first usable LBA %d is after last usable LBA %d", ErrInvalid, first, last)
	}
	if t.DiskGUID.IsZero() {
		return nil, fmt.Errorf("gpt: %w: disk GUID is zero", ErrInvalid)
	}
	if err := validatePartitions(t.Partitions, first, last, n); err != nil {
		return nil, fmt.Errorf("gpt: %w: %w", ErrInvalid, err)
	}
	if err := validateUUIDs(t.Partitions); err != nil {
		return nil, fmt.Errorf("gpt: %w: %w", ErrInvalid, err)
	}
	entries, err := encodeEntries(t.Partitions, n)
	if err != nil {
		return nil, fmt.Errorf("gpt: %w: %w", ErrInvalid, err)
	}

	lastLBA := uint64(diskSize/int64(ss)) - 1
	es := entrySectors(n, ss)
	h := header{
		myLBA:        1,
		alternateLBA: lastLBA,
		firstUsable:  first,
		lastUsable:   last,
		diskGUID:     t.DiskGUID,
		entriesLBA:   2,
		numEntries:   uint32(n),
		entrySize:    EntrySize,
		entriesCRC:   crc32.ChecksumIEEE(entries),
	}
	primary := make([]byte, ss)
	h.marshal(primary)
	h.myLBA, h.alternateLBA, h.entriesLBA = lastLBA, 1, lastLBA-es
	backup := make([]byte, ss)
	h.marshal(backup)

	// Pad the entry array to whole sectors so stale bytes never follow it.
	padded := make([]byte, es*uint64(ss))
	copy(padded, entries)
	off := func(lba uint64) int64 { return int64(lba) * int64(ss) }
	return []chunk{
		{"backup partition entries", off(lastLBA - es), padded},
		{"backup header", off(lastLBA), backup},
		{"primary partition entries", off(2), padded},
		{"primary header", off(1), primary},
		{"protective MBR", 0, protectiveMBR(ss, lastLBA)},
	}, nil
}

// protectiveMBR returns sector 0: an MBR with one 0xEE partition from LBA 1
// to the end of the disk (capped at 0xFFFFFFFF sectors), no boot code.
func protectiveMBR(ss int, lastLBA uint64) []byte {
	b := make([]byte, ss)
	e := b[446:462]
	e[0] = 0x00                               // not bootable
	e[1], e[2], e[3] = 0x00, 0x02, 0x00       // start CHS: cylinder 0, head 0, sector 2
	e[4] = mbrTypeGPT                         //
	e[5], e[6], e[7] = 0xFF, 0xFF, 0xFF       // end CHS: not representable
	binary.LittleEndian.PutUint32(e[8:12], 1) // first LBA
	binary.LittleEndian.PutUint32(e[12:16], uint32(min(lastLBA, 0xFFFFFFFF)))
	b[mbrSigOffset], b[mbrSigOffset+1] = 0x55, 0xAA
	return b
}
