package luks2

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// compact returns the metadata copy at off of img as the fuzz target takes
// it: the 512 bytes of its binary header that are not padding, then its
// JSON text.
func compact(img []byte, off int64) []byte {
	return append(bytes.Clone(img[off:off+512]), jsonText(img, off)...)
}

// expand lays out the copies the fuzz target gets as a device: each binary
// header padded to 4096 bytes and followed by its JSON area, the secondary
// at the primary's size when that is valid and at 16 KiB otherwise.
func expand(primary, secondary []byte) []byte {
	size := int64(minMetadataSize)
	if len(primary) >= offHdrSize+8 {
		if n := int64(min(be64(primary[offHdrSize:]), 1<<40)); validMetadataSize(n) {
			size = n
		}
	}
	img := make([]byte, 2*size)
	for i, c := range [][]byte{primary, secondary} {
		copyArea := img[int64(i)*size : int64(i+1)*size]
		copy(copyArea, c[:min(len(c), 512)])
		if len(c) > 512 {
			copy(copyArea[binHeaderSize:], c[512:])
		}
	}
	return img
}

// fuzzSeeds returns pairs of metadata copies, in the form compact gives, of
// volumes with various contents.
func fuzzSeeds(f *testing.F) [][2][]byte {
	var seeds [][2][]byte
	add := func(dev *memDevice) {
		seeds = append(seeds, [2][]byte{compact(dev.b, 0), compact(dev.b, secondary)})
	}
	dev := newMemDevice(smallDevice)
	key := testKey(60, 64)
	o := smallOptions(60)
	o.Passphrase = nil
	if err := Format(dev, smallDevice, key, o); err != nil {
		f.Fatal(err)
	}
	add(dev)
	for i, p := range []PBKDF{cheapPBKDF2, cheapArgon2} {
		if _, err := AddKeyslot(dev, key, []byte("p"), KeyslotOptions{PBKDF: p, Rand: seeded(byte(61 + i))}); err != nil {
			f.Fatal(err)
		}
	}
	if _, err := AddToken(dev, json.RawMessage(`{"type":"systemd-tpm2","keyslots":["1"],"tpm2-pcrs":[7]}`)); err != nil {
		f.Fatal(err)
	}
	add(dev)
	// The same with a damaged primary copy, so the secondary is parsed.
	dev.b[binHeaderSize] = 'x'
	add(dev)
	return seeds
}

// FuzzReadHeader parses arbitrary metadata: two copies, each a binary
// header and a JSON area. With fix set, checksums are recomputed first so
// that mutations reach the JSON parser. A header that parses must be
// self-consistent and survive a rewrite unchanged.
func FuzzReadHeader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s[0], s[1], false)
		f.Add(s[0], s[1], true)
	}
	f.Fuzz(func(t *testing.T, primary, secondary []byte, fix bool) {
		img := expand(primary, secondary)
		if fix {
			fixChecksums(img)
		}
		h, err := ReadHeader(bytes.NewReader(img))
		if err != nil {
			if !errors.Is(err, ErrNoHeader) {
				t.Fatalf("error does not wrap ErrNoHeader: %v", err)
			}
			return
		}
		if !validMetadataSize(h.MetadataSize) || h.KeyslotsSize < 0 {
			t.Fatalf("sizes %d, %d", h.MetadataSize, h.KeyslotsSize)
		}
		for _, k := range h.Keyslots {
			if k.AreaSize > 0 && (k.AreaOffset < 2*h.MetadataSize || k.AreaOffset+k.AreaSize > 2*h.MetadataSize+h.KeyslotsSize) {
				t.Fatalf("keyslot %d area outside the keyslots area: %+v", k.ID, k)
			}
		}
		if err := checkOverlaps(h.Keyslots); err != nil {
			t.Fatal(err)
		}
		_ = h.DMTable("/dev/x", h.DataSectors(1<<40), []byte{1, 2})

		// Rewrite the header and read it back.
		out := newMemDevice(int(2 * h.MetadataSize))
		if err := h.commit(out, seeded(0)); err != nil {
			if errors.Is(err, ErrNoSpace) {
				return // re-encoding may grow odd JSON
			}
			t.Fatalf("rewrite: %v", err)
		}
		back, err := ReadHeader(out)
		if err != nil {
			t.Fatalf("read rewritten header: %v", err)
		}
		for _, c := range []struct {
			name      string
			got, want any
		}{
			{"UUID", back.UUID, h.UUID}, {"label", back.Label, h.Label}, {"subsystem", back.Subsystem, h.Subsystem},
			{"seqid", back.SeqID, h.SeqID}, {"keyslots", back.Keyslots, h.Keyslots},
			{"segments", back.Segments, h.Segments}, {"digests", back.Digests, h.Digests},
			{"flags", back.Flags, h.Flags}, {"requirements", back.Requirements, h.Requirements},
			{"tokens", len(back.Tokens), len(h.Tokens)},
		} {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Fatalf("%s after rewrite = %v, want %v", c.name, c.got, c.want)
			}
		}
	})
}
