package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// Section is a section to add to a UKI.
//
// Its contents come from Reader, if set, or from Data. Reader suits large
// payloads such as the kernel and initrd: Build reads Size bytes at offsets
// 0 to Size-1 twice (once to compute the PE checksum, once to write), so
// Reader must return the same bytes each time.
type Section struct {
	// Name is the PE section name, such as SectionCmdline: 1 to 8
	// printable ASCII characters, no spaces, not starting with '/'.
	Name string
	// Data is the section contents when Reader is nil.
	Data []byte
	// Reader supplies the section contents when non-nil.
	Reader io.ReaderAt
	// Size is the number of bytes to read from Reader. It is ignored when
	// Reader is nil.
	Size int64
}

func (s *Section) size() int64 {
	if s.Reader != nil {
		return s.Size
	}
	return int64(len(s.Data))
}

// sectionRank orders the new sections as ukify (systemd 254/255) does:
// payload metadata first, sections unknown to ukify next, then .sbat and
// .pcrsig, and .linux last.
func sectionRank(name string) int {
	switch name {
	case SectionOSRel:
		return 0
	case SectionCmdline:
		return 1
	case SectionDTB:
		return 2
	case SectionUname:
		return 3
	case SectionSplash:
		return 4
	case SectionPCRPKey:
		return 5
	case SectionInitrd:
		return 6
	case SectionUcode:
		return 7
	case SectionSBAT:
		return 9
	case SectionPCRSig:
		return 10
	case SectionLinux:
		return 11
	}
	return 8
}

// characteristics returns the section flags for a new section. The kernel
// section is marked as code, as ukify does (objcopy's "code,readonly"
// before systemd 254, IMAGE_SCN_CNT_CODE since), because stubs that boot
// through the EFI handover protocol run the kernel's EFI entry point in
// place; everything else is read-only initialized data.
func characteristics(name string) uint32 {
	if name == SectionLinux {
		return scnCntCode | scnMemExecute | scnMemRead
	}
	return scnCntInitializedData | scnMemRead
}

// placed is a new section with its final position.
type placed struct {
	Section
	size     int64  // data length = VirtualSize
	rawSize  uint32 // SizeOfRawData
	rawPtr   uint32 // PointerToRawData
	virtAddr uint32 // VirtualAddress
}

// layout is a fully planned UKI: the (patched) stub followed by the new
// sections.
type layout struct {
	head     []byte // stub bytes with updated headers
	optOff   int64  // offset of the optional header in head
	sections []placed
}

// Build writes to w a UKI made of stub, a systemd-stub PE/COFF EFI
// application, and the given sections. The stub's own sections are kept
// unchanged; the new ones are appended in the order described in the
// package documentation, whatever their order in sections.
//
// Build fails if the stub is not a PE32+ x86-64 or AArch64 EFI application,
// if it is signed, if a name is invalid or appears twice (including in the
// stub, e.g. the stub's own .sbat), if a section is empty, or if the image
// would exceed 4 GiB.
func Build(w io.Writer, stub []byte, sections []Section) error {
	l, err := plan(stub, sections)
	if err != nil {
		return err
	}
	var sum peChecksum
	if err := l.emit(&sum); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(l.head[l.optOff+optCheckSum:], sum.value())
	return l.emit(w)
}

// plan validates the inputs and computes the layout of the output image.
func plan(stub []byte, sections []Section) (*layout, error) {
	h, err := checkStub(stub)
	if err != nil {
		return nil, err
	}
	opt := h.optOff
	le := binary.LittleEndian
	fileAlign := uint64(le.Uint32(stub[opt+optFileAlignment:]))
	sectAlign := uint64(le.Uint32(stub[opt+optSectionAlignment:]))

	newSecs, err := checkSections(h, sections)
	if err != nil {
		return nil, err
	}
	if n := len(h.sections) + len(newSecs); n > math.MaxUint16 {
		return nil, fmt.Errorf("uki: %d sections exceed the PE limit of %d", n, math.MaxUint16)
	}

	// Where the stub's section data starts and ends in the file, and where
	// its memory image starts.
	firstRaw, rawEnd := uint64(math.MaxUint64), uint64(0)
	firstVA := uint64(math.MaxUint64)
	virtEnd := uint64(le.Uint32(stub[opt+optSizeOfImage:]))
	for i := range h.sections {
		s := &h.sections[i]
		if s.sizeOfRawData > 0 {
			firstRaw = min(firstRaw, uint64(s.pointerToRawData))
			rawEnd = max(rawEnd, uint64(s.pointerToRawData)+uint64(s.sizeOfRawData))
		}
		if s.memEnd() > uint64(s.virtualAddress) {
			firstVA = min(firstVA, uint64(s.virtualAddress))
		}
		virtEnd = max(virtEnd, s.memEnd())
	}
	if rawEnd == 0 {
		return nil, errors.New("uki: stub has no section data")
	}
	if rawEnd > uint64(len(stub)) {
		return nil, fmt.Errorf("uki: stub truncated: section data ends at %#x, file is %#x bytes", rawEnd, len(stub))
	}
	if uint64(h.sizeOfHeader) > firstRaw {
		return nil, fmt.Errorf("uki: stub headers (SizeOfHeaders %#x) overlap section data at %#x", h.sizeOfHeader, firstRaw)
	}

	// Drop the COFF symbol and string tables if they form the file's tail;
	// otherwise keep whatever trails the sections, as ukify does.
	kept := uint64(len(stub))
	if h.symbolPtr != 0 && uint64(h.symbolPtr) >= rawEnd {
		end := uint64(h.symbolPtr) + uint64(h.numSymbols)*coffSymbolSize
		if end+4 <= kept {
			end += uint64(le.Uint32(stub[end:])) // string table size, includes itself
		}
		if end == kept {
			kept = uint64(h.symbolPtr)
		}
	}

	// Room for the new section headers; grow the headers if needed.
	oldTabEnd := uint64(h.sectTabOff) + uint64(len(h.sections))*sectionHeaderSize
	newTabEnd := oldTabEnd + uint64(len(newSecs))*sectionHeaderSize
	if oldTabEnd > firstRaw {
		return nil, fmt.Errorf("uki: stub section table overlaps section data at %#x", firstRaw)
	}
	sizeOfHeaders := alignUp(newTabEnd, fileAlign)
	var shift uint64
	if sizeOfHeaders > firstRaw {
		shift = alignUp(sizeOfHeaders-firstRaw, fileAlign)
	}
	sizeOfHeaders = max(sizeOfHeaders, uint64(h.sizeOfHeader))
	if sizeOfHeaders > firstVA {
		return nil, fmt.Errorf("uki: no room for %d more section headers: headers would need %#x bytes, first section is at RVA %#x",
			len(newSecs), sizeOfHeaders, firstVA)
	}
	for i, c := range stub[oldTabEnd:min(newTabEnd, firstRaw)] {
		if c != 0 {
			return nil, fmt.Errorf("uki: stub has data after its section table at offset %#x; no room for section headers",
				oldTabEnd+uint64(i))
		}
	}

	head := make([]byte, 0, kept+shift)
	head = append(head, stub[:firstRaw]...)
	head = append(head, make([]byte, shift)...)
	head = append(head, stub[firstRaw:kept]...)
	l := &layout{head: head, optOff: opt}
	if shift > 0 {
		if err := l.shiftStub(h, firstRaw, shift); err != nil {
			return nil, err
		}
	}

	// Place the new sections.
	fileEnd := uint64(len(head))
	virtEnd = alignUp(virtEnd, sectAlign)
	sizeOfCode := uint64(le.Uint32(head[opt+optSizeOfCode:]))
	sizeOfData := uint64(le.Uint32(head[opt+optSizeOfInitializedData:]))
	for i, s := range newSecs {
		p := placed{Section: s, size: s.size()}
		rawPtr := alignUp(fileEnd, fileAlign)
		rawSize := alignUp(uint64(p.size), fileAlign)
		va := virtEnd
		fileEnd = rawPtr + rawSize
		virtEnd = alignUp(va+rawSize, sectAlign)
		if characteristics(s.Name)&scnCntCode != 0 {
			sizeOfCode += rawSize
		} else {
			sizeOfData += rawSize
		}
		if fileEnd > math.MaxUint32 || virtEnd > math.MaxUint32 || sizeOfCode > math.MaxUint32 || sizeOfData > math.MaxUint32 {
			return nil, fmt.Errorf("uki: section %q: image would exceed 4 GiB", s.Name)
		}
		p.rawPtr, p.rawSize, p.virtAddr = uint32(rawPtr), uint32(rawSize), uint32(va)
		l.sections = append(l.sections, p)

		sh := head[oldTabEnd+uint64(i)*sectionHeaderSize:][:sectionHeaderSize]
		clear(sh)
		copy(sh, s.Name)
		le.PutUint32(sh[shVirtualSize:], uint32(p.size))
		le.PutUint32(sh[shVirtualAddress:], p.virtAddr)
		le.PutUint32(sh[shSizeOfRawData:], p.rawSize)
		le.PutUint32(sh[shPointerToRawData:], p.rawPtr)
		le.PutUint32(sh[shCharacteristics:], characteristics(s.Name))
	}

	coff := h.peOff + peSignatureSize
	le.PutUint16(head[coff+coffNumberOfSections:], uint16(len(h.sections)+len(newSecs)))
	le.PutUint32(head[coff+coffPointerToSymbolTable:], 0)
	le.PutUint32(head[coff+coffNumberOfSymbols:], 0)
	if h.symbolPtr != 0 || h.numSymbols != 0 {
		c := le.Uint16(head[coff+coffCharacteristics:])
		le.PutUint16(head[coff+coffCharacteristics:], c|fileLocalSymsStripped)
	}
	le.PutUint32(head[opt+optSizeOfCode:], uint32(sizeOfCode))
	le.PutUint32(head[opt+optSizeOfInitializedData:], uint32(sizeOfData))
	le.PutUint32(head[opt+optSizeOfImage:], uint32(virtEnd))
	le.PutUint32(head[opt+optSizeOfHeaders:], uint32(sizeOfHeaders))
	le.PutUint32(head[opt+optCheckSum:], 0)
	return l, nil
}

// checkStub checks that stub is a PE32+ x86-64 or AArch64 EFI application
// this package can extend, and returns its headers.
func checkStub(stub []byte) (*headers, error) {
	f, err := pe.NewFile(bytes.NewReader(stub))
	if err != nil {
		return nil, fmt.Errorf("uki: stub: %w", err)
	}
	defer f.Close()
	switch f.Machine {
	case pe.IMAGE_FILE_MACHINE_AMD64, pe.IMAGE_FILE_MACHINE_ARM64:
	default:
		return nil, fmt.Errorf("uki: stub: unsupported machine type %#x, want x86-64 or AArch64", f.Machine)
	}
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok {
		return nil, errors.New("uki: stub: not a PE32+ image")
	}
	if oh.Subsystem != pe.IMAGE_SUBSYSTEM_EFI_APPLICATION {
		return nil, fmt.Errorf("uki: stub: not an EFI application (subsystem %d)", oh.Subsystem)
	}
	if !isPow2(oh.FileAlignment) || !isPow2(oh.SectionAlignment) || oh.FileAlignment > 1<<16 || oh.SectionAlignment > 1<<16 {
		return nil, fmt.Errorf("uki: stub: unsupported alignment (file %#x, section %#x)", oh.FileAlignment, oh.SectionAlignment)
	}
	if oh.NumberOfRvaAndSizes > dirSecurity && oh.DataDirectory[dirSecurity].Size != 0 {
		return nil, errors.New("uki: stub: image is signed; sign the UKI instead")
	}

	h, err := parseHeaders(bytes.NewReader(stub), int64(len(stub)))
	if err != nil {
		return nil, fmt.Errorf("uki: stub: %w", err)
	}
	if h.magic != magicPE32Plus || len(h.sections) != len(f.Sections) {
		return nil, errors.New("uki: stub: inconsistent headers")
	}
	for _, s := range h.sections {
		if len(s.name) > 0 && s.name[0] == '/' {
			return nil, fmt.Errorf("uki: stub: section %q uses a COFF string table name; unsupported", s.name)
		}
	}
	return h, nil
}

// checkSections validates the new sections against each other and the
// stub, and returns them in layout order.
func checkSections(h *headers, sections []Section) ([]Section, error) {
	inStub := make(map[string]bool, len(h.sections))
	for _, s := range h.sections {
		inStub[s.name] = true
	}
	seen := make(map[string]bool, len(sections))
	for _, s := range sections {
		if err := checkName(s.Name); err != nil {
			return nil, err
		}
		if inStub[s.Name] {
			return nil, fmt.Errorf("uki: section %q: duplicate section name: the stub already has one", s.Name)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("uki: section %q: duplicate section name: given twice", s.Name)
		}
		seen[s.Name] = true
		if s.Reader != nil && s.Data != nil {
			return nil, fmt.Errorf("uki: section %q: both Data and Reader set", s.Name)
		}
		if n := s.size(); n <= 0 {
			return nil, fmt.Errorf("uki: section %q: empty or negative size %d", s.Name, n)
		} else if n > math.MaxUint32 {
			return nil, fmt.Errorf("uki: section %q: %d bytes is too large", s.Name, n)
		}
	}
	sorted := slices.Clone(sections)
	slices.SortStableFunc(sorted, func(a, b Section) int {
		return sectionRank(a.Name) - sectionRank(b.Name)
	})
	return sorted, nil
}

// checkName reports whether name can be used as a section name: 1 to 8
// printable ASCII characters without spaces, not starting with '/' (which
// tools read as a reference to the COFF string table).
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("uki: empty section name")
	case len(name) > 8:
		return fmt.Errorf("uki: section name %q longer than 8 bytes", name)
	case name[0] == '/':
		return fmt.Errorf("uki: section name %q starts with '/'", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("uki: section name %q contains byte %#x; want printable ASCII without spaces", name, c)
		}
	}
	return nil
}

// shiftStub moves the stub's section data (everything from firstRaw on)
// back by shift bytes in l.head, which the caller has already done for
// the bytes, and fixes the file offsets that point into it: the section
// headers' raw data, relocation and line-number pointers, and the debug
// directory's data pointers.
func (l *layout) shiftStub(h *headers, firstRaw, shift uint64) error {
	le := binary.LittleEndian
	bump := func(off uint64) error {
		v := uint64(le.Uint32(l.head[off:]))
		if v == 0 || v < firstRaw {
			return nil
		}
		if v+shift > math.MaxUint32 {
			return errors.New("uki: stub too large to grow its headers")
		}
		le.PutUint32(l.head[off:], uint32(v+shift))
		return nil
	}
	for _, s := range h.sections {
		for _, f := range []uint64{shPointerToRawData, shPointerToRelocations, shPointerToLinenumbers} {
			if err := bump(uint64(s.hdrOff) + f); err != nil {
				return err
			}
		}
	}

	// The debug directory holds file offsets too.
	opt := uint64(l.optOff)
	if uint64(h.optSize) < optDataDirectory64+(dirDebug+1)*dataDirectorySize {
		return nil
	}
	if numDirs := le.Uint32(l.head[opt+optDataDirectory64-4:]); numDirs <= dirDebug {
		return nil
	}
	dd := l.head[opt+optDataDirectory64+dirDebug*dataDirectorySize:]
	rva, size := uint64(le.Uint32(dd)), uint64(le.Uint32(dd[4:]))
	if size == 0 {
		return nil
	}
	off, ok := rvaToOffset(h, rva, size)
	if !ok {
		return errors.New("uki: stub: cannot locate debug directory to move it")
	}
	if off >= firstRaw {
		off += shift
	}
	for e := uint64(0); e+debugEntrySize <= size; e += debugEntrySize {
		if err := bump(off + e + debugPointerToRawData); err != nil {
			return err
		}
	}
	return nil
}

// rvaToOffset maps the size bytes at rva to their original file offset.
func rvaToOffset(h *headers, rva, size uint64) (uint64, bool) {
	if rva+size <= uint64(h.sizeOfHeader) {
		return rva, true
	}
	for _, s := range h.sections {
		va := uint64(s.virtualAddress)
		if rva >= va && rva+size <= va+uint64(s.sizeOfRawData) {
			return uint64(s.pointerToRawData) + rva - va, true
		}
	}
	return 0, false
}

// emit writes the image to w.
func (l *layout) emit(w io.Writer) error {
	if _, err := w.Write(l.head); err != nil {
		return fmt.Errorf("uki: writing stub: %w", err)
	}
	off := int64(len(l.head))
	for _, s := range l.sections {
		if err := writeZeros(w, int64(s.rawPtr)-off); err != nil {
			return fmt.Errorf("uki: writing section %q: %w", s.Name, err)
		}
		var n int64
		var err error
		if s.Reader != nil {
			n, err = io.Copy(w, io.NewSectionReader(s.Reader, 0, s.size))
		} else {
			var k int
			k, err = w.Write(s.Data)
			n = int64(k)
		}
		if err == nil && n != s.size {
			err = fmt.Errorf("got %d bytes, want %d", n, s.size)
		}
		if err == nil {
			err = writeZeros(w, int64(s.rawSize)-s.size)
		}
		if err != nil {
			return fmt.Errorf("uki: writing section %q: %w", s.Name, err)
		}
		off = int64(s.rawPtr) + int64(s.rawSize)
	}
	return nil
}

// writeZeros writes n zero bytes to w.
func writeZeros(w io.Writer, n int64) error {
	var zeros [4096]byte
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := w.Write(zeros[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

func alignUp(v, a uint64) uint64 {
	return (v + a - 1) &^ (a - 1)
}

func isPow2(v uint32) bool {
	return v != 0 && v&(v-1) == 0
}

// peChecksum computes the PE image checksum (as ImageHlp's CheckSumMappedFile
// does) of the bytes written to it: the one's-complement-style sum of all
// little-endian 16-bit words, folded to 16 bits, plus the file length. The
// CheckSum field must be zero in the data written.
type peChecksum struct {
	sum  uint64
	n    uint64
	odd  bool
	last byte
}

func (c *peChecksum) Write(p []byte) (int, error) {
	c.n += uint64(len(p))
	i := 0
	if c.odd && len(p) > 0 {
		c.sum += uint64(c.last) | uint64(p[0])<<8
		c.odd = false
		i = 1
	}
	for ; i+8 <= len(p); i += 8 {
		v := binary.LittleEndian.Uint64(p[i:])
		c.sum += v&0xffff + v>>16&0xffff + v>>32&0xffff + v>>48
	}
	for ; i+2 <= len(p); i += 2 {
		c.sum += uint64(binary.LittleEndian.Uint16(p[i:]))
	}
	if i < len(p) {
		c.last, c.odd = p[i], true
	}
	return len(p), nil
}

func (c *peChecksum) value() uint32 {
	s := c.sum
	if c.odd {
		s += uint64(c.last)
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint32(s) + uint32(c.n)
}
