package gpt

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

const (
	signature    = "EFI PART"
	revision     = 0x00010000
	headerSize   = 92
	nameOffset   = 56
	mbrTypeGPT   = 0xEE
	mbrSigOffset = 510
)

// errNoSignature marks a header location without the "EFI PART" signature.
var errNoSignature = errors.New("no GPT signature")

// header is a decoded GPT header.
type header struct {
	myLBA, alternateLBA     uint64
	firstUsable, lastUsable uint64
	diskGUID                GUID
	entriesLBA              uint64
	numEntries, entrySize   uint32
	entriesCRC              uint32
	entriesSectors          uint64 // derived from numEntries and entrySize
	entriesBytes            int    // derived from numEntries and entrySize
}

// rawAlternateLBA returns the AlternateLBA field of a sector that carries a
// GPT signature, without validating anything else.
func rawAlternateLBA(sector []byte) (uint64, bool) {
	if len(sector) < headerSize || string(sector[0:8]) != signature {
		return 0, false
	}
	return binary.LittleEndian.Uint64(sector[32:40]), true
}

// parseHeader decodes and validates the header in sector, which was read from
// LBA at on a disk whose last sector is lastLBA.
func parseHeader(sector []byte, at, lastLBA uint64, primary bool) (*header, error) {
	ss := len(sector)
	if string(sector[0:8]) != signature {
		return nil, errNoSignature
	}
	le := binary.LittleEndian
	if rev := le.Uint32(sector[8:12]); rev>>16 != 1 {
		return nil, fmt.Errorf("unsupported revision %#08x", rev)
	}
	size := le.Uint32(sector[12:16])
	if size < headerSize || uint64(size) > uint64(ss) {
		return nil, fmt.Errorf("header size %d outside %d..%d", size, headerSize, ss)
	}
	want := le.Uint32(sector[16:20])
	buf := make([]byte, size)
	copy(buf, sector[:size])
	clear(buf[16:20])
	if got := crc32.ChecksumIEEE(buf); got != want {
		return nil, fmt.Errorf("header CRC32 is %#08x, computed %#08x", want, got)
	}
	h := &header{
		myLBA:        le.Uint64(sector[24:32]),
		alternateLBA: le.Uint64(sector[32:40]),
		firstUsable:  le.Uint64(sector[40:48]),
		lastUsable:   le.Uint64(sector[48:56]),
		diskGUID:     getGUID(sector[56:72]),
		entriesLBA:   le.Uint64(sector[72:80]),
		numEntries:   le.Uint32(sector[80:84]),
		entrySize:    le.Uint32(sector[84:88]),
		entriesCRC:   le.Uint32(sector[88:92]),
	}
	if h.myLBA != at {
		return nil, fmt.Errorf("header at LBA %d claims to be at LBA %d", at, h.myLBA)
	}
	if h.numEntries == 0 || h.numEntries > MaxNumEntries {
		return nil, fmt.Errorf("partition entry count %d outside 1..%d", h.numEntries, MaxNumEntries)
	}
	if h.entrySize < EntrySize || h.entrySize > MaxEntrySize || h.entrySize&(h.entrySize-1) != 0 {
		return nil, fmt.Errorf("partition entry size %d is not a power of two in %d..%d", h.entrySize, EntrySize, MaxEntrySize)
	}
	h.entriesBytes = int(h.numEntries) * int(h.entrySize)
	h.entriesSectors = uint64((h.entriesBytes + ss - 1) / ss)
	if h.firstUsable < 2 || h.firstUsable > h.lastUsable || h.lastUsable >= lastLBA {
		return nil, fmt.Errorf("usable range %d-%d is not within 2-%d", h.firstUsable, h.lastUsable, lastLBA-1)
	}
	if primary {
		if h.alternateLBA <= h.lastUsable || h.alternateLBA > lastLBA {
			return nil, fmt.Errorf("backup header LBA %d is not between the usable range end %d and the last LBA %d", h.alternateLBA, h.lastUsable, lastLBA)
		}
		if h.entriesLBA < 2 || h.entriesLBA >= h.firstUsable || h.entriesLBA+h.entriesSectors > h.firstUsable {
			return nil, fmt.Errorf("partition entries at LBA %d (%d sectors) are not between the header and the first usable LBA %d", h.entriesLBA, h.entriesSectors, h.firstUsable)
		}
	} else {
		if h.entriesLBA <= h.lastUsable || h.entriesLBA >= at || h.entriesLBA+h.entriesSectors > at {
			return nil, fmt.Errorf("partition entries at LBA %d (%d sectors) are not between the last usable LBA %d and the header", h.entriesLBA, h.entriesSectors, h.lastUsable)
		}
	}
	return h, nil
}

// marshal encodes h into sector (one whole sector, zero-filled) with CRC.
func (h *header) marshal(sector []byte) {
	clear(sector)
	le := binary.LittleEndian
	copy(sector[0:8], signature)
	le.PutUint32(sector[8:12], revision)
	le.PutUint32(sector[12:16], headerSize)
	le.PutUint64(sector[24:32], h.myLBA)
	le.PutUint64(sector[32:40], h.alternateLBA)
	le.PutUint64(sector[40:48], h.firstUsable)
	le.PutUint64(sector[48:56], h.lastUsable)
	putGUID(sector[56:72], h.diskGUID)
	le.PutUint64(sector[72:80], h.entriesLBA)
	le.PutUint32(sector[80:84], h.numEntries)
	le.PutUint32(sector[84:88], h.entrySize)
	le.PutUint32(sector[88:92], h.entriesCRC)
	le.PutUint32(sector[16:20], crc32.ChecksumIEEE(sector[:headerSize]))
}

// decodeEntries decodes the used entries of an entry array. It only checks
// what is needed to decode; validatePartitions checks the layout.
func decodeEntries(buf []byte, entrySize int) []Partition {
	var parts []Partition
	le := binary.LittleEndian
	for i := 0; i+entrySize <= len(buf); i += entrySize {
		e := buf[i : i+entrySize]
		typ := getGUID(e[0:16])
		if typ.IsZero() {
			continue
		}
		parts = append(parts, Partition{
			Index:      i/entrySize + 1,
			Type:       typ,
			UUID:       getGUID(e[16:32]),
			FirstLBA:   le.Uint64(e[32:40]),
			LastLBA:    le.Uint64(e[40:48]),
			Attributes: le.Uint64(e[48:56]),
			Name:       decodeName(e[nameOffset : nameOffset+2*MaxNameLen]),
		})
	}
	return parts
}

// decodeName decodes a NUL-terminated UTF-16LE name; unpaired surrogates
// become U+FFFD.
func decodeName(b []byte) string {
	u := make([]uint16, 0, MaxNameLen)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// encodeName encodes name as UTF-16LE into b (2*MaxNameLen bytes, zeroed).
func encodeName(b []byte, name string) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("name %q is not valid UTF-8", name)
	}
	u := utf16.Encode([]rune(name))
	if len(u) > MaxNameLen {
		return fmt.Errorf("name %q is %d UTF-16 code units, at most %d fit", name, len(u), MaxNameLen)
	}
	for i, c := range u {
		if c == 0 {
			return fmt.Errorf("name %q contains a NUL character", name)
		}
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return nil
}

// encodeEntries encodes parts into an array of n 128-byte entries, each at
// slot Index-1. parts must have passed validatePartitions.
func encodeEntries(parts []Partition, n int) ([]byte, error) {
	buf := make([]byte, n*EntrySize)
	le := binary.LittleEndian
	for _, p := range parts {
		e := buf[(p.Index-1)*EntrySize : p.Index*EntrySize]
		putGUID(e[0:16], p.Type)
		putGUID(e[16:32], p.UUID)
		le.PutUint64(e[32:40], p.FirstLBA)
		le.PutUint64(e[40:48], p.LastLBA)
		le.PutUint64(e[48:56], p.Attributes)
		if err := encodeName(e[nameOffset:nameOffset+2*MaxNameLen], p.Name); err != nil {
			return nil, fmt.Errorf("%s: %w", p.label(), err)
		}
	}
	return buf, nil
}

// validatePartitions checks that every partition has a type, a unique index
// in 1..numEntries, lies within first..last and overlaps no other.
func validatePartitions(parts []Partition, first, last uint64, numEntries int) error {
	seen := make(map[int]bool, len(parts))
	for _, p := range parts {
		switch {
		case p.Type.IsZero():
			return fmt.Errorf("%s: type GUID is zero (that marks an unused entry)", p.label())
		case p.Index < 1 || p.Index > numEntries:
			return fmt.Errorf("%s: index outside 1..%d", p.label(), numEntries)
		case seen[p.Index]:
			return fmt.Errorf("%s: index used twice", p.label())
		case p.FirstLBA > p.LastLBA:
			return fmt.Errorf("%s: first LBA %d is after last LBA %d", p.label(), p.FirstLBA, p.LastLBA)
		case p.FirstLBA < first || p.LastLBA > last:
			return fmt.Errorf("%s: LBAs %d-%d outside the usable range %d-%d", p.label(), p.FirstLBA, p.LastLBA, first, last)
		}
		seen[p.Index] = true
	}
	sorted := slices.Clone(parts)
	slices.SortFunc(sorted, func(a, b Partition) int {
		return cmp.Or(cmp.Compare(a.FirstLBA, b.FirstLBA), cmp.Compare(a.Index, b.Index))
	})
	for i := 1; i < len(sorted); i++ {
		if a, b := sorted[i-1], sorted[i]; b.FirstLBA <= a.LastLBA {
			return fmt.Errorf("%s (LBAs %d-%d) and %s (LBAs %d-%d) overlap", a.label(), a.FirstLBA, a.LastLBA, b.label(), b.FirstLBA, b.LastLBA)
		}
	}
	return nil
}

// validateUUIDs checks that every partition has a non-zero, unique UUID.
func validateUUIDs(parts []Partition) error {
	seen := make(map[GUID]int, len(parts))
	for _, p := range parts {
		if p.UUID.IsZero() {
			return fmt.Errorf("%s: unique partition GUID is zero", p.label())
		}
		if other, ok := seen[p.UUID]; ok {
			return fmt.Errorf("%s: unique partition GUID %s is also used by partition %d", p.label(), p.UUID, other)
		}
		seen[p.UUID] = p.Index
	}
	return nil
}
