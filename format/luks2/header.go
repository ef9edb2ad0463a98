package luks2

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Binary header field offsets and lengths (big-endian integers).
const (
	offMagic     = 0
	offVersion   = 6
	offHdrSize   = 8
	offSeqID     = 16
	offLabel     = 24
	offCsumAlg   = 72
	offSalt      = 104
	offUUID      = 168
	offSubsystem = 208
	offHdrOffset = 256
	offCsum      = 448

	labelBytes   = 48
	csumAlgBytes = 32
	headerSalt   = 64
	uuidBytes    = 40
	csumBytes    = 64
)

var (
	magicPrimary   = []byte("LUKS\xba\xbe")
	magicSecondary = []byte("SKUL\xba\xbe")
)

// Header is a validated LUKS2 header: the binary header fields of the copy
// in use and the JSON metadata. Keyslots, Segments, Digests and Tokens are
// sorted by ID.
type Header struct {
	// UUID, Label and Subsystem come from the binary header.
	UUID      string
	Label     string
	Subsystem string
	// SeqID is the sequence number of the copy in use; it grows with every
	// update.
	SeqID uint64
	// MetadataSize is the size of one binary header plus JSON area
	// (hdr_size); the secondary copy starts there.
	MetadataSize int64
	// KeyslotsSize is the size of the keyslots area, which follows the
	// secondary copy.
	KeyslotsSize int64
	// DataOffset is where the encrypted data (the first crypt segment)
	// starts, in bytes.
	DataOffset int64
	// SectorSize is the encryption sector size of that segment in bytes.
	SectorSize int
	// Cipher is that segment's cipher, such as "aes-xts-plain64".
	Cipher string
	// Flags are the persistent activation flags (config.flags), such as
	// "allow-discards".
	Flags []string
	// Requirements are the mandatory requirements (such as
	// "online-reencrypt"); Open, AddKeyslot and AddToken refuse a header
	// that has any.
	Requirements []string

	// Keyslots, Segments, Digests and Tokens are the metadata's objects.
	Keyslots []Keyslot
	Segments []Segment
	Digests  []Digest
	Tokens   []Token

	meta     *metadata
	keyslots map[int]*jsonKeyslot // luks2 keyslots
	digests  map[int]*jsonDigest  // pbkdf2 digests
	salts    [2][]byte            // binary header salts; nil for a damaged copy
	csumAlg  string
}

// diskCopy is one copy of the metadata as read from disk.
type diskCopy struct {
	hdrSize   int64
	seqID     uint64
	label     string
	subsystem string
	uuid      string
	csumAlg   string
	salt      []byte
	json      []byte
}

// ReadHeader reads and validates both metadata copies of the LUKS2 volume
// on dev and returns the valid one with the higher sequence ID. A damaged
// copy is ignored; if neither is valid the error wraps ErrNoHeader.
func ReadHeader(dev io.ReaderAt) (*Header, error) {
	h, err := readHeader(dev)
	if err != nil {
		return nil, fmt.Errorf("luks2: read header: %w", err)
	}
	return h, nil
}

func readHeader(dev io.ReaderAt) (*Header, error) {
	var (
		copies [2]*diskCopy
		hdrs   [2]*Header
		errs   [2]error
	)
	copies[0], errs[0] = readCopy(dev, 0, false)
	if errs[0] == nil {
		hdrs[0], errs[0] = parseCopy(copies[0])
	}
	// The secondary copy follows the primary; if the primary is unusable,
	// look at every offset the specification allows.
	if copies[0] != nil {
		copies[1], errs[1] = readCopy(dev, copies[0].hdrSize, true)
	} else {
		for size := int64(minMetadataSize); size <= maxMetadataSize; size *= 2 {
			copies[1], errs[1] = readCopy(dev, size, true)
			if errs[1] == nil {
				break
			}
		}
	}
	if errs[1] == nil {
		hdrs[1], errs[1] = parseCopy(copies[1])
	}
	var use int
	switch {
	case hdrs[0] != nil && hdrs[1] != nil:
		if hdrs[1].SeqID > hdrs[0].SeqID {
			use = 1
		}
	case hdrs[0] != nil:
		use = 0
	case hdrs[1] != nil:
		use = 1
	default:
		return nil, errors.Join(ErrNoHeader,
			fmt.Errorf("primary: %w", errs[0]), fmt.Errorf("secondary: %w", errs[1]))
	}
	h := hdrs[use]
	for i, c := range copies {
		// Keep the salt of every copy that is intact, so that a rewrite
		// changes it only where it repairs.
		if hdrs[i] != nil {
			h.salts[i] = c.salt
		}
	}
	return h, nil
}

// readCopy reads the metadata copy at off and checks its binary header and
// checksum.
func readCopy(dev io.ReaderAt, off int64, secondary bool) (*diskCopy, error) {
	which := "primary"
	if secondary {
		which = "secondary"
	}
	bin := make([]byte, binHeaderSize)
	if _, err := dev.ReadAt(bin, off); err != nil {
		return nil, fmt.Errorf("read %s binary header at %d: %w", which, off, err)
	}
	magic := magicPrimary
	if secondary {
		magic = magicSecondary
	}
	if !bytes.Equal(bin[offMagic:offMagic+len(magic)], magic) {
		return nil, fmt.Errorf("%s header at %d has no LUKS2 magic: %w", which, off, ErrCorrupt)
	}
	if v := binary.BigEndian.Uint16(bin[offVersion:]); v != 2 {
		return nil, fmt.Errorf("%s header at %d has version %d, want 2: %w", which, off, v, ErrUnsupported)
	}
	hdrSize := binary.BigEndian.Uint64(bin[offHdrSize:])
	if !validMetadataSize(int64(min(hdrSize, 1<<62))) {
		return nil, fmt.Errorf("%s header at %d has invalid size %d: %w", which, off, hdrSize, ErrCorrupt)
	}
	if got := binary.BigEndian.Uint64(bin[offHdrOffset:]); got != uint64(off) {
		return nil, fmt.Errorf("%s header at %d says it is at %d: %w", which, off, got, ErrCorrupt)
	}
	if secondary && int64(hdrSize) != off {
		return nil, fmt.Errorf("secondary header at %d has size %d: %w", off, hdrSize, ErrCorrupt)
	}
	// As in cryptsetup, the last byte of each string field counts as NUL.
	c := &diskCopy{
		hdrSize:   int64(hdrSize),
		seqID:     binary.BigEndian.Uint64(bin[offSeqID:]),
		label:     cString(bin[offLabel : offLabel+labelBytes-1]),
		subsystem: cString(bin[offSubsystem : offSubsystem+labelBytes-1]),
		uuid:      cString(bin[offUUID : offUUID+uuidBytes-1]),
		csumAlg:   cString(bin[offCsumAlg : offCsumAlg+csumAlgBytes-1]),
		salt:      bytes.Clone(bin[offSalt : offSalt+headerSalt]),
	}
	all := make([]byte, hdrSize)
	copy(all, bin)
	if _, err := dev.ReadAt(all[binHeaderSize:], off+binHeaderSize); err != nil {
		return nil, fmt.Errorf("read %s JSON area at %d: %w", which, off+binHeaderSize, err)
	}
	want := bytes.Clone(all[offCsum : offCsum+csumBytes])
	got, err := checksum(c.csumAlg, all)
	if err != nil {
		return nil, fmt.Errorf("%s header at %d: %w", which, off, err)
	}
	if subtle.ConstantTimeCompare(want, got) != 1 {
		return nil, fmt.Errorf("%s header at %d: checksum mismatch: %w", which, off, ErrCorrupt)
	}
	c.json = all[binHeaderSize:]
	return c, nil
}

// parseCopy validates the JSON metadata of c and builds a Header.
func parseCopy(c *diskCopy) (*Header, error) {
	m, err := decodeMetadata(c.json)
	if err != nil {
		return nil, err
	}
	h := &Header{
		UUID:         c.uuid,
		Label:        c.label,
		Subsystem:    c.subsystem,
		SeqID:        c.seqID,
		MetadataSize: c.hdrSize,
		csumAlg:      c.csumAlg,
	}
	if err := h.load(m); err != nil {
		return nil, err
	}
	return h, nil
}

// checksum returns the checksum of a metadata copy (binary header and JSON
// area) computed with the checksum field taken as zero, padded to the
// field's 64 bytes.
func checksum(alg string, all []byte) ([]byte, error) {
	newHash, err := hashFunc(alg)
	if err != nil {
		return nil, fmt.Errorf("checksum: %w", err)
	}
	h := newHash()
	h.Write(all[:offCsum])
	h.Write(make([]byte, csumBytes))
	h.Write(all[offCsum+csumBytes:])
	sum := make([]byte, csumBytes)
	copy(sum, h.Sum(nil))
	return sum, nil
}

// cString returns b up to its first NUL byte.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// commit validates the header's metadata, then writes both copies with the
// next sequence ID: the primary first, then the secondary, each flushed
// before the next, as cryptsetup does. A crash in between leaves one copy
// with the new and one with the old sequence ID, and readers take the newer
// one that is intact. A copy that was damaged gets a new salt from rnd.
func (h *Header) commit(dev Device, rnd io.Reader) error {
	if err := h.load(h.meta); err != nil {
		return fmt.Errorf("new metadata: %w", err)
	}
	js, err := h.meta.encode()
	if err != nil {
		return err
	}
	if int64(len(js)) >= h.MetadataSize-binHeaderSize {
		return fmt.Errorf("%d bytes of JSON do not fit the %d-byte JSON area: %w",
			len(js), h.MetadataSize-binHeaderSize, ErrNoSpace)
	}
	if h.csumAlg == "" {
		h.csumAlg = "sha256"
	}
	if _, err := hashFunc(h.csumAlg); err != nil {
		h.csumAlg = "sha256"
	}
	for i := range h.salts {
		if h.salts[i] == nil {
			salt := make([]byte, headerSalt)
			if _, err := io.ReadFull(rnd, salt); err != nil {
				return fmt.Errorf("header salt: %w", err)
			}
			h.salts[i] = salt
		}
	}
	seq := h.SeqID + 1
	for i, off := range []int64{0, h.MetadataSize} {
		all := make([]byte, h.MetadataSize)
		magic := magicPrimary
		if i == 1 {
			magic = magicSecondary
		}
		copy(all[offMagic:], magic)
		binary.BigEndian.PutUint16(all[offVersion:], 2)
		binary.BigEndian.PutUint64(all[offHdrSize:], uint64(h.MetadataSize))
		binary.BigEndian.PutUint64(all[offSeqID:], seq)
		copy(all[offLabel:offLabel+labelBytes-1], h.Label)
		copy(all[offCsumAlg:offCsumAlg+csumAlgBytes-1], h.csumAlg)
		copy(all[offSalt:offSalt+headerSalt], h.salts[i])
		copy(all[offUUID:offUUID+uuidBytes-1], h.UUID)
		copy(all[offSubsystem:offSubsystem+labelBytes-1], h.Subsystem)
		binary.BigEndian.PutUint64(all[offHdrOffset:], uint64(off))
		copy(all[binHeaderSize:], js)
		sum, err := checksum(h.csumAlg, all)
		if err != nil {
			return err
		}
		copy(all[offCsum:], sum)
		if _, err := dev.WriteAt(all, off); err != nil {
			return fmt.Errorf("write metadata copy at %d: %w", off, err)
		}
		if err := syncDevice(dev); err != nil {
			return fmt.Errorf("sync metadata copy at %d: %w", off, err)
		}
	}
	h.SeqID = seq
	return nil
}
