package luks2

import (
	"encoding/hex"
	"slices"
	"strconv"
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
