package trust

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
)

// PE/COFF header offsets used for Authenticode. Everything is
// bounds-checked: the parser runs on untrusted update payloads.
const (
	peDOSLfanew      = 0x3c
	peCOFFSize       = 20
	peOptMagic32     = 0x10b
	peOptMagic64     = 0x20b
	peOptChecksum    = 64 // same in PE32 and PE32+
	peOptHeaderSize  = 60 // SizeOfHeaders
	peSectionHdrSize = 40
	peDirSecurity    = 4
	peDirEntrySize   = 8
	winCertHdrSize   = 8
	winCertRevision  = 0x0200
	winCertTypePKCS  = 0x0002
	peMaxSections    = 96 * 1024 // more than the format allows (65535)
)

// peFile is the layout of a PE image that Authenticode needs.
type peFile struct {
	b             []byte
	checksumOff   int // offset of the optional header's CheckSum
	certDirOff    int // offset of the certificate table data directory entry
	sizeOfHeaders int
	sections      []span // raw data of sections with SizeOfRawData > 0, by file offset
	certOff       int    // certificate table, if certSize is not 0
	certSize      int    // 0 if the image is unsigned
}

type span struct{ off, size int }

// parsePE reads the headers of the PE image b.
func parsePE(b []byte) (*peFile, error) {
	le := binary.LittleEndian
	bad := func(format string, args ...any) error {
		return fmt.Errorf("PE image: "+format+": %w", append(args, ErrMalformed)...)
	}
	if len(b) < 0x40 || b[0] != 'M' || b[1] != 'Z' {
		return nil, bad("no MZ header")
	}
	peOff := int(le.Uint32(b[peDOSLfanew:]))
	if peOff < 0x40 || peOff > len(b)-4-peCOFFSize || string(b[peOff:peOff+4]) != "PE\x00\x00" {
		return nil, bad("no PE signature")
	}
	coff := peOff + 4
	nsect := int(le.Uint16(b[coff+2:]))
	optSize := int(le.Uint16(b[coff+16:]))
	opt := coff + peCOFFSize
	if opt+optSize > len(b) || optSize < 2 {
		return nil, bad("optional header truncated")
	}
	var ddOff, numDirsOff int
	switch le.Uint16(b[opt:]) {
	case peOptMagic32:
		numDirsOff, ddOff = 92, 96
	case peOptMagic64:
		numDirsOff, ddOff = 108, 112
	default:
		return nil, bad("unknown optional header magic %#x", le.Uint16(b[opt:]))
	}
	certDir := ddOff + peDirSecurity*peDirEntrySize
	if optSize < certDir+peDirEntrySize {
		return nil, bad("optional header has no certificate table entry")
	}
	if le.Uint32(b[opt+numDirsOff:]) <= peDirSecurity {
		return nil, bad("optional header has %d data directories, no certificate table", le.Uint32(b[opt+numDirsOff:]))
	}
	p := &peFile{
		b:             b,
		checksumOff:   opt + peOptChecksum,
		certDirOff:    opt + certDir,
		sizeOfHeaders: int(le.Uint32(b[opt+peOptHeaderSize:])),
		certOff:       int(le.Uint32(b[opt+certDir:])),
		certSize:      int(le.Uint32(b[opt+certDir+4:])),
	}
	secTab := opt + optSize
	if nsect > peMaxSections || secTab+nsect*peSectionHdrSize > len(b) {
		return nil, bad("section table truncated")
	}
	if p.sizeOfHeaders < secTab+nsect*peSectionHdrSize || p.sizeOfHeaders > len(b) {
		return nil, bad("SizeOfHeaders %#x does not cover the section table or exceeds the file", p.sizeOfHeaders)
	}
	end := len(b)
	if p.certSize != 0 {
		if p.certOff <= 0 || p.certSize < winCertHdrSize || p.certOff > len(b) || p.certSize != len(b)-p.certOff {
			return nil, bad("certificate table at %#x+%#x is not at the end of the %#x-byte file", p.certOff, p.certSize, len(b))
		}
		end = p.certOff
	}
	for i := range nsect {
		h := b[secTab+i*peSectionHdrSize:]
		size, off := int(le.Uint32(h[16:])), int(le.Uint32(h[20:]))
		if size == 0 {
			continue
		}
		if off < 0 || size < 0 || off > end || size > end-off {
			return nil, bad("section %d data at %#x+%#x lies outside the image", i, off, size)
		}
		p.sections = append(p.sections, span{off, size})
	}
	slices.SortStableFunc(p.sections, func(a, c span) int { return a.off - c.off })
	if p.hashedEnd() > end {
		return nil, bad("headers and sections (%#x bytes) overlap the certificate table at %#x", p.hashedEnd(), end)
	}
	return p, nil
}

// hashedEnd is SUM_OF_BYTES_HASHED after the sections: where the hash of
// the trailing data starts.
func (p *peFile) hashedEnd() int {
	n := p.sizeOfHeaders
	for _, s := range p.sections {
		n += s.size
	}
	return n
}

// signed reports whether the image has a certificate table.
func (p *peFile) signed() bool { return p.certSize != 0 }

// digest returns the Authenticode SHA-256 digest of the image: the
// headers without the checksum and the certificate table entry, the
// sections in file order, and the data after them up to the certificate
// table (or the end of the file).
func (p *peFile) digest() []byte {
	h := sha256.New()
	b := p.b
	h.Write(b[:p.checksumOff])
	h.Write(b[p.checksumOff+4 : p.certDirOff])
	h.Write(b[p.certDirOff+peDirEntrySize : p.sizeOfHeaders])
	for _, s := range p.sections {
		h.Write(b[s.off : s.off+s.size])
	}
	end := len(b)
	if p.signed() {
		end = p.certOff
	}
	if sum := p.hashedEnd(); end > sum {
		h.Write(b[sum:end])
	}
	return h.Sum(nil)
}

// winCertificates returns the PKCS#7 blobs of the image's certificate
// table (WIN_CERTIFICATE entries of type PKCS_SIGNED_DATA; others are
// skipped).
func (p *peFile) winCertificates() ([][]byte, error) {
	le := binary.LittleEndian
	tab := p.b[p.certOff : p.certOff+p.certSize]
	var sigs [][]byte
	for len(tab) >= winCertHdrSize {
		n := int(le.Uint32(tab))
		if n < winCertHdrSize || n > len(tab) {
			return nil, fmt.Errorf("PE certificate table entry of %d bytes in %d: %w", n, len(tab), ErrMalformed)
		}
		if le.Uint16(tab[4:]) == winCertRevision && le.Uint16(tab[6:]) == winCertTypePKCS {
			sigs = append(sigs, tab[winCertHdrSize:n])
		}
		tab = tab[min(len(tab), (n+7)&^7):]
	}
	return sigs, nil
}

// peChecksum computes the PE header checksum of b, whose CheckSum field
// must be zero: the 16-bit sum of the file's little-endian words with the
// carries folded back in, plus the file length.
func peChecksum(b []byte) uint32 {
	var sum uint64
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint64(binary.LittleEndian.Uint16(b[i:]))
		sum = (sum & 0xffff) + (sum >> 16)
	}
	if len(b)%2 == 1 {
		sum += uint64(b[len(b)-1])
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return uint32(sum) + uint32(len(b))
}
