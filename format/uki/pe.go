package uki

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
)

// Sizes and offsets of the PE/COFF structures this package touches. The
// optional-header offsets are relative to the start of the optional header
// and are the same for PE32 and PE32+ unless the name says otherwise.
const (
	dosHeaderSize     = 64
	dosLfanewOffset   = 0x3c
	peSignatureSize   = 4
	coffHeaderSize    = 20
	sectionHeaderSize = 40
	coffSymbolSize    = 18

	// Within the COFF file header.
	coffNumberOfSections     = 2
	coffPointerToSymbolTable = 8
	coffNumberOfSymbols      = 12
	coffSizeOfOptionalHeader = 16
	coffCharacteristics      = 18

	// Within the optional header.
	optSizeOfCode            = 4
	optSizeOfInitializedData = 8
	optSectionAlignment      = 32
	optFileAlignment         = 36
	optSizeOfImage           = 56
	optSizeOfHeaders         = 60
	optCheckSum              = 64
	optSubsystem             = 68
	optMinSize               = optSubsystem + 2
	optDataDirectory64       = 112 // PE32+ only

	// Within a section header.
	shVirtualSize          = 8
	shVirtualAddress       = 12
	shSizeOfRawData        = 16
	shPointerToRawData     = 20
	shPointerToRelocations = 24
	shPointerToLinenumbers = 28
	shCharacteristics      = 36

	// Within a debug directory entry.
	debugEntrySize        = 28
	debugPointerToRawData = 24

	dataDirectorySize = 8
	dirSecurity       = 4
	dirDebug          = 6

	magicPE32     = 0x10b
	magicPE32Plus = 0x20b

	subsystemEFIApplication = 10

	fileLocalSymsStripped = 0x0008

	scnCntCode            = 0x00000020
	scnCntInitializedData = 0x00000040
	scnMemExecute         = 0x20000000
	scnMemRead            = 0x40000000
)

// rawSection is one section header exactly as stored in the file.
type rawSection struct {
	name             string // the 8-byte name up to the first NUL
	hdrOff           int64  // file offset of the section header
	virtualSize      uint32
	virtualAddress   uint32
	sizeOfRawData    uint32
	pointerToRawData uint32
	characteristics  uint32
}

// fileSize returns the number of bytes of the section that are stored in
// the file: VirtualSize when it is set and no larger than SizeOfRawData
// (the rest of the raw data is alignment padding), SizeOfRawData otherwise
// (the loader zero-fills the remainder in memory).
func (s *rawSection) fileSize() uint32 {
	if s.virtualSize == 0 || s.virtualSize > s.sizeOfRawData {
		return s.sizeOfRawData
	}
	return s.virtualSize
}

// memEnd returns the first RVA after the section's memory image. It takes
// the larger of VirtualSize and SizeOfRawData, as loaders differ in which
// one they honour.
func (s *rawSection) memEnd() uint64 {
	return uint64(s.virtualAddress) + uint64(max(s.virtualSize, s.sizeOfRawData))
}

// headers is the part of a PE image's headers this package needs.
type headers struct {
	peOff        int64 // offset of the "PE\0\0" signature (e_lfanew)
	optOff       int64 // offset of the optional header
	optSize      int64 // SizeOfOptionalHeader
	sectTabOff   int64 // offset of the section table
	magic        uint16
	subsystem    uint16
	symbolPtr    uint32 // PointerToSymbolTable
	numSymbols   uint32 // NumberOfSymbols
	sizeOfHeader uint32 // SizeOfHeaders
	sections     []rawSection
}

// parseHeaders reads and checks the DOS, COFF, optional and section headers
// of a PE image. size is the length of the input, or -1 if unknown. All
// offsets are bounds-checked; it never allocates more than the section
// table (at most 65535 entries) plus one optional header.
func parseHeaders(r io.ReaderAt, size int64) (*headers, error) {
	var dos [dosHeaderSize]byte
	if err := readFull(r, dos[:], 0); err != nil {
		return nil, fmt.Errorf("uki: reading DOS header: %w", err)
	}
	if dos[0] != 'M' || dos[1] != 'Z' {
		return nil, errors.New("uki: not a PE image: missing MZ signature")
	}
	h := &headers{peOff: int64(binary.LittleEndian.Uint32(dos[dosLfanewOffset:]))}

	var coff [peSignatureSize + coffHeaderSize]byte
	if err := readFull(r, coff[:], h.peOff); err != nil {
		return nil, fmt.Errorf("uki: reading PE header at offset %#x: %w", h.peOff, err)
	}
	if string(coff[:peSignatureSize]) != "PE\x00\x00" {
		return nil, fmt.Errorf("uki: not a PE image: no PE signature at offset %#x", h.peOff)
	}
	fh := coff[peSignatureSize:]
	numSections := int64(binary.LittleEndian.Uint16(fh[coffNumberOfSections:]))
	h.symbolPtr = binary.LittleEndian.Uint32(fh[coffPointerToSymbolTable:])
	h.numSymbols = binary.LittleEndian.Uint32(fh[coffNumberOfSymbols:])
	h.optSize = int64(binary.LittleEndian.Uint16(fh[coffSizeOfOptionalHeader:]))
	h.optOff = h.peOff + peSignatureSize + coffHeaderSize
	h.sectTabOff = h.optOff + h.optSize

	if h.optSize < optMinSize {
		return nil, fmt.Errorf("uki: optional header too small (%d bytes)", h.optSize)
	}
	opt := make([]byte, h.optSize)
	if err := readFull(r, opt, h.optOff); err != nil {
		return nil, fmt.Errorf("uki: reading optional header: %w", err)
	}
	h.magic = binary.LittleEndian.Uint16(opt)
	if h.magic != magicPE32 && h.magic != magicPE32Plus {
		return nil, fmt.Errorf("uki: unknown optional header magic %#x", h.magic)
	}
	h.subsystem = binary.LittleEndian.Uint16(opt[optSubsystem:])
	if h.subsystem != subsystemEFIApplication {
		return nil, fmt.Errorf("uki: not an EFI application (subsystem %d)", h.subsystem)
	}
	h.sizeOfHeader = binary.LittleEndian.Uint32(opt[optSizeOfHeaders:])

	if numSections == 0 {
		return nil, errors.New("uki: image has no sections")
	}
	tab := make([]byte, numSections*sectionHeaderSize)
	if err := readFull(r, tab, h.sectTabOff); err != nil {
		return nil, fmt.Errorf("uki: reading section table: %w", err)
	}
	h.sections = make([]rawSection, numSections)
	for i := range h.sections {
		b := tab[i*sectionHeaderSize:]
		s := &h.sections[i]
		s.name = cString(b[:8])
		s.hdrOff = h.sectTabOff + int64(i)*sectionHeaderSize
		s.virtualSize = binary.LittleEndian.Uint32(b[shVirtualSize:])
		s.virtualAddress = binary.LittleEndian.Uint32(b[shVirtualAddress:])
		s.sizeOfRawData = binary.LittleEndian.Uint32(b[shSizeOfRawData:])
		s.pointerToRawData = binary.LittleEndian.Uint32(b[shPointerToRawData:])
		s.characteristics = binary.LittleEndian.Uint32(b[shCharacteristics:])
		if n := s.fileSize(); n > 0 && size >= 0 && int64(s.pointerToRawData)+int64(n) > size {
			return nil, fmt.Errorf("uki: section %q: data at %#x+%#x extends past end of file (%#x bytes)",
				s.name, s.pointerToRawData, n, size)
		}
	}
	return h, nil
}

// cString returns b up to its first NUL byte.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// readFull reads exactly len(p) bytes at off. A short read is reported as
// io.ErrUnexpectedEOF.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	if off < 0 || off > math.MaxInt64-int64(len(p)) {
		return fmt.Errorf("offset %#x out of range", off)
	}
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readChunk is the largest buffer readAt allocates before it has seen the
// bytes to fill it, so that a forged size cannot make it allocate far more
// memory than the input holds.
const readChunk = 1 << 20

// readAt reads n bytes at off, growing its buffer as data arrives.
func readAt(r io.ReaderAt, off, n int64) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("negative length %d", n)
	}
	buf := make([]byte, 0, min(n, readChunk))
	for int64(len(buf)) < n {
		k := int(min(n-int64(len(buf)), readChunk))
		start := len(buf)
		if cap(buf)-start < k {
			grown := make([]byte, start, start+max(k, start)) // double, at least one chunk
			copy(grown, buf)
			buf = grown
		}
		buf = buf[:start+k]
		if err := readFull(r, buf[start:], off+int64(start)); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// inputSize returns the size of r if it can tell cheaply, or -1.
func inputSize(r io.ReaderAt) int64 {
	switch v := r.(type) {
	case interface{ Size() int64 }:
		return v.Size()
	case interface{ Stat() (fs.FileInfo, error) }:
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	}
	return -1
}
