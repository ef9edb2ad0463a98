package logwrites

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Writer writes a log: the recording side, for tests and for tools that
// record writes made through Go (see Recorder).
type Writer struct {
	w          io.WriterAt
	sectorSize int64
	pos        int64
	n          uint64
}

// NewWriter starts a log in w with the given sector size (512 unless the
// disk's logical sectors are larger). Close writes the final entry count.
func NewWriter(w io.WriterAt, sectorSize int) (*Writer, error) {
	ss := int64(sectorSize)
	if ss < entrySize || ss > MaxSectorSize || ss&(ss-1) != 0 {
		return nil, fmt.Errorf("log sector size %d: want a power of two from %d to %d", sectorSize, entrySize, MaxSectorSize)
	}
	lw := &Writer{w: w, sectorSize: ss, pos: ss}
	return lw, lw.writeSuper()
}

func (lw *Writer) writeSuper() error {
	sb := make([]byte, lw.sectorSize)
	le := binary.LittleEndian
	le.PutUint64(sb[0:], Magic)
	le.PutUint64(sb[8:], Version)
	le.PutUint64(sb[16:], lw.n)
	le.PutUint32(sb[24:], uint32(lw.sectorSize))
	if _, err := lw.w.WriteAt(sb, 0); err != nil {
		return fmt.Errorf("write log superblock: %w", err)
	}
	return nil
}

func (lw *Writer) entry(sector, sectors, flags uint64, data []byte) error {
	stored := (int64(len(data)) + lw.sectorSize - 1) / lw.sectorSize * lw.sectorSize
	buf := make([]byte, lw.sectorSize+stored)
	le := binary.LittleEndian
	le.PutUint64(buf[0:], sector)
	le.PutUint64(buf[8:], sectors)
	le.PutUint64(buf[16:], flags)
	if flags&Mark != 0 {
		le.PutUint64(buf[24:], uint64(len(data)))
	}
	copy(buf[lw.sectorSize:], data)
	if _, err := lw.w.WriteAt(buf, lw.pos); err != nil {
		return fmt.Errorf("write log entry %d: %w", lw.n, err)
	}
	lw.pos += int64(len(buf))
	lw.n++
	return nil
}

// Write logs a write of data (whole sectors) at byte offset off of the
// disk; flags may hold FUA.
func (lw *Writer) Write(off int64, data []byte, flags uint64) error {
	if off%lw.sectorSize != 0 || int64(len(data))%lw.sectorSize != 0 || len(data) == 0 {
		return fmt.Errorf("write of %d bytes at %d: not whole %d-byte sectors", len(data), off, lw.sectorSize)
	}
	return lw.entry(uint64(off/lw.sectorSize), uint64(int64(len(data))/lw.sectorSize), flags&(FUA|Metadata), data)
}

// Flush logs a cache flush.
func (lw *Writer) Flush() error { return lw.entry(0, 0, Flush, nil) }

// Discard logs a discard of n bytes at off (whole sectors).
func (lw *Writer) Discard(off, n int64) error {
	if off%lw.sectorSize != 0 || n%lw.sectorSize != 0 {
		return fmt.Errorf("discard of %d bytes at %d: not whole %d-byte sectors", n, off, lw.sectorSize)
	}
	return lw.entry(uint64(off/lw.sectorSize), uint64(n/lw.sectorSize), Discard, nil)
}

// Mark logs a named point.
func (lw *Writer) Mark(name string) error {
	if len(name) > MaxMarkBytes {
		return fmt.Errorf("mark name of %d bytes: at most %d", len(name), MaxMarkBytes)
	}
	return lw.entry(0, 0, Mark, []byte(name))
}

// Close records the number of entries in the superblock.
func (lw *Writer) Close() error { return lw.writeSuper() }
