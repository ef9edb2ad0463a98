package luks2

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// dmFlags maps persistent LUKS2 activation flags to dm-crypt optional
// parameters, in the order dm-crypt tables list them.
var dmFlags = []struct{ luks, dm string }{
	{"allow-discards", "allow_discards"},
	{"same-cpu-crypt", "same_cpu_crypt"},
	{"submit-from-crypt-cpus", "submit_from_crypt_cpus"},
	{"no-read-workqueue", "no_read_workqueue"},
	{"no-write-workqueue", "no_write_workqueue"},
}

// cryptSegment returns the first crypt segment, which holds the data.
func (h *Header) cryptSegment() *Segment {
	for i := range h.Segments {
		if h.Segments[i].Type == "crypt" {
			return &h.Segments[i]
		}
	}
	return nil
}

// DataSectors returns the length of the decrypted device, in 512-byte
// sectors, for a LUKS2 device of deviceBytes bytes: the data segment's size,
// or for a dynamic segment everything after DataOffset, rounded down to a
// whole encryption sector. It is 0 if there is no data.
func (h *Header) DataSectors(deviceBytes int64) uint64 {
	s := h.cryptSegment()
	if s == nil {
		return 0
	}
	n := s.Size
	if n < 0 {
		n = deviceBytes - s.Offset
	}
	if n <= 0 {
		return 0
	}
	n -= n % int64(s.SectorSize)
	return uint64(n / 512)
}

// DMTable returns the device-mapper table line that maps the data of the
// LUKS2 device at path dev with volumeKey:
//
//	0 <sizeSectors> crypt aes-xts-plain64 <hexkey> <iv_tweak> <dev> <offsetSectors> [<n> <options>]
//
// where the options are the persistent flags (allow_discards, ...) and
// sector_size:<n> when the sector size is not 512. sizeSectors is the
// mapping's length in 512-byte sectors, normally DataSectors of the device
// size. The text after "crypt " is the dm-crypt target's parameters. The
// line contains the key: do not log it.
func (h *Header) DMTable(dev string, sizeSectors uint64, volumeKey []byte) string {
	b := []byte("0 ")
	b = strconv.AppendUint(b, sizeSectors, 10)
	b = append(b, " crypt "...)
	b = h.appendCryptParams(b, dev, volumeKey)
	s := string(b)
	wipe(b)
	return s
}

// appendCryptParams appends the dm-crypt target parameters to b.
func (h *Header) appendCryptParams(b []byte, dev string, volumeKey []byte) []byte {
	s := h.cryptSegment()
	if s == nil {
		s = &Segment{Cipher: h.Cipher, Offset: h.DataOffset, SectorSize: h.SectorSize}
	}
	b = append(b, s.Cipher...)
	b = append(b, ' ')
	b = hex.AppendEncode(b, volumeKey)
	b = append(b, ' ')
	b = strconv.AppendUint(b, s.IVTweak, 10)
	b = append(b, ' ')
	b = append(b, dev...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, s.Offset/512, 10)
	var opts []string
	for _, f := range dmFlags {
		if slices.Contains(h.Flags, f.luks) {
			opts = append(opts, f.dm)
		}
	}
	if s.SectorSize != 0 && s.SectorSize != 512 {
		opts = append(opts, "sector_size:"+strconv.Itoa(s.SectorSize))
	}
	if len(opts) > 0 {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(len(opts)), 10)
		for _, o := range opts {
			b = append(b, ' ')
			b = append(b, o...)
		}
	}
	return b
}

// CryptTarget is what dm-crypt needs to map a LUKS2 volume's data (see
// Header.CryptTarget).
type CryptTarget struct {
	// Sectors is the mapping's length in 512-byte sectors.
	Sectors uint64
	// Params are the dm-crypt target parameters. They hold the volume
	// key: wipe them after use, never log them.
	Params []byte
	// UUID is the device-mapper UUID cryptsetup gives the mapping:
	// CRYPT-LUKS2-<uuid without dashes>-<name>.
	UUID string
}

// CryptTarget checks volumeKey against the header's digest (so a wrong key
// fails here instead of mapping garbage) and returns the dm-crypt target
// that maps the data of the LUKS2 device at path dev, deviceBytes long, as
// device-mapper device name.
func (h *Header) CryptTarget(dev string, deviceBytes int64, name string, volumeKey []byte) (*CryptTarget, error) {
	if err := h.checkRequirements(); err != nil {
		return nil, err
	}
	seg := h.cryptSegment()
	if seg == nil {
		return nil, fmt.Errorf("header has no crypt segment: %w", ErrUnsupported)
	}
	if err := h.checkVolumeKey(seg.ID, volumeKey); err != nil {
		return nil, err
	}
	sectors := h.DataSectors(deviceBytes)
	if sectors == 0 {
		return nil, fmt.Errorf("device of %d bytes has no data after offset %d", deviceBytes, seg.Offset)
	}
	return &CryptTarget{
		Sectors: sectors,
		Params:  h.appendCryptParams(nil, dev, volumeKey),
		UUID:    "CRYPT-LUKS2-" + strings.ReplaceAll(h.UUID, "-", "") + "-" + name,
	}, nil
}
