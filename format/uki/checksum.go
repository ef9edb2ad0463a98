package uki

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrChecksum is returned, wrapped, by VerifyChecksum when the PE checksum
// in the header does not match the file.
var ErrChecksum = errors.New("uki: PE checksum mismatch")

// peCheckSumOff is the offset of CheckSum in the optional header.
const peCheckSumOff = 64

// VerifyChecksum checks the PE header CheckSum of the size bytes of r
// against their contents, which shows whether a UKI that Build (or a
// signer that updates the checksum) wrote is whole. A zero CheckSum (not
// computed by the writer) passes.
func VerifyChecksum(r io.ReaderAt, size int64) error {
	var hdr [0x40]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return fmt.Errorf("uki: read DOS header: %w", err)
	}
	lfanew := int64(binary.LittleEndian.Uint32(hdr[0x3c:]))
	off := lfanew + 24 + peCheckSumOff
	if hdr[0] != 'M' || hdr[1] != 'Z' || off+4 > size {
		return errors.New("uki: not a PE file")
	}
	var stored [4]byte
	if _, err := r.ReadAt(stored[:], off); err != nil {
		return fmt.Errorf("uki: read CheckSum: %w", err)
	}
	want := binary.LittleEndian.Uint32(stored[:])
	if want == 0 {
		return nil
	}
	var sum peChecksum
	if _, err := io.Copy(&sum, io.NewSectionReader(r, 0, off)); err != nil {
		return fmt.Errorf("uki: read image: %w", err)
	}
	sum.Write(make([]byte, 4))
	if _, err := io.Copy(&sum, io.NewSectionReader(r, off+4, size-off-4)); err != nil {
		return fmt.Errorf("uki: read image: %w", err)
	}
	if got := sum.value(); got != want {
		return fmt.Errorf("%w: header says %#x, the %d bytes sum to %#x", ErrChecksum, want, size, got)
	}
	return nil
}
