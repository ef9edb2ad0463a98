package gpt

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// copyError is why one copy (primary or backup) of a GPT is unusable. It
// matches ErrCorrupt with errors.Is without repeating its text.
type copyError struct {
	which string // "primary" or "backup"
	lba   uint64
	err   error
}

func (e *copyError) Error() string {
	return fmt.Sprintf("%s header at LBA %d: %v", e.which, e.lba, e.err)
}

func (e *copyError) Unwrap() error { return e.err }

func (e *copyError) Is(target error) bool { return target == ErrCorrupt }

// Read reads the GPT of a disk of diskSizeBytes bytes with the given logical
// sector size.
//
// It validates the primary copy (header at LBA 1): signature, revision,
// header size, header CRC32, entry array CRC32, the usable range, entry
// count and size (at most MaxNumEntries entries of 128..MaxEntrySize bytes),
// and that partitions lie within the usable range and do not overlap. If the
// primary is valid, Read also checks the backup copy it points to and
// records any problem in Table.BackupErr. If the primary is unusable, Read
// falls back to the backup header at the last sector or, on a grown disk,
// at the location the damaged primary still names; Table.Source and
// Table.PrimaryErr tell what happened.
//
// Read never reads more than a few sectors plus one entry array (at most
// 4 MiB) per copy, whatever the disk says. It returns an error wrapping
// ErrNoTable when neither location has a GPT signature, ErrCorrupt when no
// copy is valid (I/O errors stay visible to errors.Is), and ErrInvalid for an
// unsupported sector size.
func Read(r io.ReaderAt, diskSizeBytes int64, sectorSize int) (*Table, error) {
	if err := checkSectorSize(sectorSize); err != nil {
		return nil, err
	}
	ss := int64(sectorSize)
	if diskSizeBytes/ss < 4 {
		return nil, fmt.Errorf("gpt: %w: disk is %d bytes, too small for a GPT", ErrNoTable, diskSizeBytes)
	}
	lastLBA := uint64(diskSizeBytes/ss) - 1

	h, sector, perr := readHeader(r, 1, lastLBA, sectorSize, true)
	if perr == nil {
		var t *Table
		t, perr = readCopy(r, h, sectorSize)
		if perr == nil {
			t.Source = SourcePrimary
			t.BackupLBA = h.alternateLBA
			t.BackupErr = checkBackup(r, h, lastLBA, sectorSize)
			return t, nil
		}
		perr = &copyError{"primary", 1, perr}
	}

	candidates := []uint64{lastLBA}
	if alt, ok := rawAlternateLBA(sector); ok && alt > 2 && alt < lastLBA {
		candidates = append(candidates, alt)
	}
	var berr error
	for _, lba := range candidates {
		t, err := readBackup(r, lba, lastLBA, sectorSize)
		if err == nil {
			t.Source = SourceBackup
			t.PrimaryErr = perr
			t.BackupLBA = lba
			return t, nil
		}
		if berr == nil {
			berr = err
		} else {
			berr = fmt.Errorf("%w; %w", berr, err)
		}
	}
	if errors.Is(perr, errNoSignature) && errors.Is(berr, errNoSignature) {
		return nil, fmt.Errorf("gpt: %w: no signature at LBA 1 nor at LBA %d", ErrNoTable, lastLBA)
	}
	return nil, fmt.Errorf("gpt: %w: %w; %w", ErrCorrupt, perr, berr)
}

// readHeader reads and validates the header at LBA lba. It also returns the
// raw sector, nil if it could not be read.
func readHeader(r io.ReaderAt, lba, lastLBA uint64, ss int, primary bool) (*header, []byte, error) {
	which := "backup"
	if primary {
		which = "primary"
	}
	sector := make([]byte, ss)
	if err := readAt(r, sector, int64(lba)*int64(ss)); err != nil {
		return nil, nil, &copyError{which, lba, err}
	}
	h, err := parseHeader(sector, lba, lastLBA, primary)
	if err != nil {
		return nil, sector, &copyError{which, lba, err}
	}
	return h, sector, nil
}

// readBackup reads and validates a whole backup copy at LBA lba.
func readBackup(r io.ReaderAt, lba, lastLBA uint64, ss int) (*Table, error) {
	h, _, err := readHeader(r, lba, lastLBA, ss, false)
	if err != nil {
		return nil, err
	}
	t, err := readCopy(r, h, ss)
	if err != nil {
		return nil, &copyError{"backup", lba, err}
	}
	return t, nil
}

// readEntries reads the entry array h describes and checks its CRC32.
func readEntries(r io.ReaderAt, h *header, ss int) ([]byte, error) {
	// parseHeader bounded entriesBytes to MaxNumEntries*MaxEntrySize and
	// placed the array inside the disk, so neither the allocation nor the
	// offset can overflow.
	buf := make([]byte, h.entriesBytes)
	if err := readAt(r, buf, int64(h.entriesLBA)*int64(ss)); err != nil {
		return nil, fmt.Errorf("partition entries: %w", err)
	}
	if got := crc32.ChecksumIEEE(buf); got != h.entriesCRC {
		return nil, fmt.Errorf("partition entries CRC32 is %#08x, computed %#08x", h.entriesCRC, got)
	}
	return buf, nil
}

// readCopy reads the entry array of a validated header and builds a Table.
func readCopy(r io.ReaderAt, h *header, ss int) (*Table, error) {
	buf, err := readEntries(r, h, ss)
	if err != nil {
		return nil, err
	}
	parts := decodeEntries(buf, int(h.entrySize))
	if err := validatePartitions(parts, h.firstUsable, h.lastUsable, int(h.numEntries)); err != nil {
		return nil, err
	}
	return &Table{
		SectorSize:     ss,
		DiskGUID:       h.diskGUID,
		Partitions:     parts,
		FirstUsableLBA: h.firstUsable,
		LastUsableLBA:  h.lastUsable,
		NumEntries:     int(h.numEntries),
	}, nil
}

// checkBackup verifies the backup copy named by the valid primary header p.
func checkBackup(r io.ReaderAt, p *header, lastLBA uint64, ss int) error {
	h, _, err := readHeader(r, p.alternateLBA, lastLBA, ss, false)
	if err != nil {
		return err
	}
	if _, err := readEntries(r, h, ss); err != nil {
		return &copyError{"backup", h.myLBA, err}
	}
	if h.diskGUID != p.diskGUID || h.firstUsable != p.firstUsable || h.lastUsable != p.lastUsable ||
		h.numEntries != p.numEntries || h.entrySize != p.entrySize || h.entriesCRC != p.entriesCRC {
		return &copyError{"backup", h.myLBA, errors.New("does not match the primary")}
	}
	return nil
}

// readAt fills buf from r at off, turning short reads into errors.
func readAt(r io.ReaderAt, buf []byte, off int64) error {
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at offset %d: %w", len(buf), off, err)
}
