// Package logwrites reads and writes logs in the format of Linux's
// dm-log-writes target (drivers/md/dm-log-writes.c), which QEMU's
// blklogwrites block driver also writes: every write, flush, FUA write and
// discard a disk saw, in the order they completed, with the written data.
//
// Replaying a prefix of such a log onto a copy of the disk as it was when
// logging began gives the disk as it was after that prefix; crash-state
// enumeration builds on that.
//
//	l, err := logwrites.Open(f)
//	if err != nil { ... }
//	for e, err := range l.Entries() {
//		if err != nil { ... }
//		if e.Flags&logwrites.Flush != 0 { ... }
//		data := l.Data(e) // an io.SectionReader over the written bytes
//	}
//
// # Format
//
// All fields are little-endian. Log sector 0 holds the superblock: magic
// (8 bytes), version 1 (8), the number of entries (8) and the log sector
// size (4). Each entry starts on the next log sector with its header:
// sector (8), number of sectors (8), flags (8) and data length (8, zero in
// logs QEMU writes); the rest of that sector is padding. The data, number
// of sectors times the sector size bytes, follows in the next sectors,
// except for discards, which carry none. Sectors are counted in the log's
// sector size.
//
// QEMU updates the superblock's entry count only on a flush, so entries
// after the last flush are not counted there; [Log.Entries] reads them too
// when asked with [WithUncounted].
package logwrites

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
)

// Magic and Version identify a log superblock.
const (
	Magic   = 0x6a736677736872
	Version = 1
)

// Flags of an entry.
const (
	Flush   uint64 = 1 << 0 // a cache flush (no data); everything logged before it is durable
	FUA     uint64 = 1 << 1 // a write that was durable when it completed
	Discard uint64 = 1 << 2 // the sectors' contents became undefined (no data)
	Mark    uint64 = 1 << 3 // a named point in the log (data: the name)
	// Metadata is set by dm-log-writes for file system metadata writes; QEMU
	// never sets it.
	Metadata uint64 = 1 << 4

	knownFlags = Flush | FUA | Discard | Mark | Metadata
)

// Limits that keep a corrupt log from making the reader allocate or loop
// without bound.
const (
	// MaxSectorSize is the largest log sector size Open accepts.
	MaxSectorSize = 64 << 10
	// MaxEntrySectors is the largest number of sectors one entry may write
	// (1 GiB at 512-byte sectors).
	MaxEntrySectors = 1 << 21
	// MaxMarkBytes is the longest mark name read.
	MaxMarkBytes = 4096
)

// Errors callers can act on; returned errors wrap them.
var (
	// ErrNotLog means the superblock does not have the magic and version.
	ErrNotLog = errors.New("not a dm-log-writes log")
	// ErrCorrupt means an entry is malformed.
	ErrCorrupt = errors.New("corrupt dm-log-writes log")
)

// superSize is the encoded size of the superblock.
const superSize = 28

// entrySize is the encoded size of an entry header.
const entrySize = 32

// Entry is one logged request.
type Entry struct {
	// Index is the entry's position in the log, from 0.
	Index int
	// Sector is the first sector written or discarded, in units of the
	// log's sector size.
	Sector uint64
	// Sectors is how many sectors were written or discarded.
	Sectors uint64
	// Flags are Flush, FUA, Discard, Mark and Metadata bits.
	Flags uint64
	// DataOffset is where the entry's data starts in the log, in bytes;
	// DataBytes is its length (0 for flushes and discards).
	DataOffset, DataBytes int64
}

// IsWrite reports whether e carries data written to the disk.
func (e Entry) IsWrite() bool {
	return e.Flags&(Discard|Mark) == 0 && e.Sectors > 0
}

// Log is an opened log.
type Log struct {
	r          io.ReaderAt
	sectorSize int64
	counted    uint64
}

// Open reads the superblock of the log in r.
func Open(r io.ReaderAt) (*Log, error) {
	var sb [superSize]byte
	if _, err := r.ReadAt(sb[:], 0); err != nil {
		return nil, fmt.Errorf("read log superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint64(sb[0:]) != Magic || le.Uint64(sb[8:]) != Version {
		return nil, fmt.Errorf("%w: magic %#x version %d", ErrNotLog, le.Uint64(sb[0:]), le.Uint64(sb[8:]))
	}
	ss := int64(le.Uint32(sb[24:]))
	if ss < entrySize || ss > MaxSectorSize || ss&(ss-1) != 0 {
		return nil, fmt.Errorf("%w: sector size %d", ErrCorrupt, ss)
	}
	return &Log{r: r, sectorSize: ss, counted: le.Uint64(sb[16:])}, nil
}

// SectorSize is the log's sector size in bytes: the unit of Entry.Sector.
func (l *Log) SectorSize() int64 { return l.sectorSize }

// Counted is the number of entries the superblock records.
func (l *Log) Counted() uint64 { return l.counted }

// Data returns the data of e.
func (l *Log) Data(e Entry) *io.SectionReader {
	return io.NewSectionReader(l.r, e.DataOffset, e.DataBytes)
}

// Option changes how Entries reads.
type Option func(*readConfig)

type readConfig struct{ uncounted bool }

// WithUncounted makes Entries go on past the superblock's entry count
// while whole, well-formed entries follow (QEMU counts entries only at
// flushes); it stops quietly at the end of the log or at the first
// malformed header.
func WithUncounted() Option { return func(c *readConfig) { c.uncounted = true } }

// Entries returns the log's entries in order. An error ends the sequence.
func (l *Log) Entries(opts ...Option) iter.Seq2[Entry, error] {
	var cfg readConfig
	for _, o := range opts {
		o(&cfg)
	}
	return func(yield func(Entry, error) bool) {
		pos := l.sectorSize
		for i := 0; ; i++ {
			counted := uint64(i) < l.counted
			if !counted && !cfg.uncounted {
				return
			}
			e, next, err := l.readEntry(i, pos)
			if err != nil {
				if !counted {
					return // the torn or absent tail after the count
				}
				yield(Entry{}, err)
				return
			}
			if !yield(e, nil) {
				return
			}
			pos = next
		}
	}
}

// ReadAll returns all entries Entries yields, or the first error.
func (l *Log) ReadAll(opts ...Option) ([]Entry, error) {
	var out []Entry
	for e, err := range l.Entries(opts...) {
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// readEntry decodes the entry whose header is at byte pos and returns the
// position of the next one.
func (l *Log) readEntry(i int, pos int64) (Entry, int64, error) {
	var h [entrySize]byte
	if _, err := l.r.ReadAt(h[:], pos); err != nil {
		return Entry{}, 0, fmt.Errorf("%w: entry %d at byte %d: %w", ErrCorrupt, i, pos, err)
	}
	le := binary.LittleEndian
	e := Entry{Index: i, Sector: le.Uint64(h[0:]), Sectors: le.Uint64(h[8:]), Flags: le.Uint64(h[16:])}
	dataLen := le.Uint64(h[24:])
	if err := l.check(e, dataLen); err != nil {
		return Entry{}, 0, fmt.Errorf("%w: entry %d at byte %d: %w", ErrCorrupt, i, pos, err)
	}
	e.DataOffset = pos + l.sectorSize
	switch {
	case e.Flags&Mark != 0:
		e.DataBytes = int64(dataLen)
	case e.Flags&Discard == 0:
		e.DataBytes = int64(e.Sectors) * l.sectorSize
	}
	stored := (e.DataBytes + l.sectorSize - 1) / l.sectorSize * l.sectorSize
	if e.DataBytes > 0 {
		// The data must be there: its last byte is readable.
		var b [1]byte
		if _, err := l.r.ReadAt(b[:], e.DataOffset+e.DataBytes-1); err != nil {
			return Entry{}, 0, fmt.Errorf("%w: entry %d: data of %d bytes at byte %d: %w", ErrCorrupt, i, e.DataBytes, e.DataOffset, err)
		}
	}
	return e, e.DataOffset + stored, nil
}

func (l *Log) check(e Entry, dataLen uint64) error {
	if e.Flags&^knownFlags != 0 {
		return fmt.Errorf("unknown flags %#x", e.Flags)
	}
	if e.Sectors > MaxEntrySectors {
		return fmt.Errorf("%d sectors in one entry", e.Sectors)
	}
	if e.Flags&Mark != 0 && dataLen > MaxMarkBytes {
		return fmt.Errorf("mark of %d bytes", dataLen)
	}
	if e.Sector > (1<<63-1)/uint64(l.sectorSize)-e.Sectors {
		return fmt.Errorf("sector %d beyond any disk", e.Sector)
	}
	return nil
}

// ByteOffset is where e starts on the disk, in bytes.
func (l *Log) ByteOffset(e Entry) int64 { return int64(e.Sector) * l.sectorSize }

// ByteLen is how many bytes of the disk e covers.
func (l *Log) ByteLen(e Entry) int64 { return int64(e.Sectors) * l.sectorSize }
