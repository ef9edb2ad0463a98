package luks2

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/pbkdf2"
)

// Format writes a new LUKS2 header for volumeKey on the first size bytes of
// dev: both metadata copies, a zeroed keyslots area, a pbkdf2 digest of the
// key, and crypt segment 0 that covers the rest of the device ("dynamic").
// With o.Passphrase it also adds keyslot 0; otherwise the volume has no
// keyslot until AddKeyslot. Anything on dev before the data offset is lost.
func Format(dev Device, size int64, volumeKey []byte, o Options) error {
	if err := format(dev, size, volumeKey, o); err != nil {
		return fmt.Errorf("luks2: format: %w", err)
	}
	return nil
}

func format(dev Device, size int64, volumeKey []byte, o Options) error {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return err
	}
	if len(volumeKey) != o.KeyBytes {
		return fmt.Errorf("volume key has %d bytes, want %d", len(volumeKey), o.KeyBytes)
	}
	if o.Passphrase != nil {
		if err := o.PBKDF.withDefaults().validate(); err != nil {
			return err
		}
		if n := keyslotAreaSize(o.KeyBytes); n > o.KeyslotsAreaSize {
			return fmt.Errorf("keyslots area of %d bytes cannot hold a %d-byte keyslot: %w", o.KeyslotsAreaSize, n, ErrNoSpace)
		}
	}
	dataOffset := 2*o.MetadataSize + o.KeyslotsAreaSize
	if size < dataOffset+int64(o.SectorSize) {
		return fmt.Errorf("device of %d bytes is too small: the data would start at %d", size, dataOffset)
	}
	uuid := strings.ToLower(o.UUID)
	if uuid == "" {
		var err error
		if uuid, err = newUUID(o.Rand); err != nil {
			return err
		}
	}
	var salts [2][]byte
	for i := range salts {
		salts[i] = make([]byte, headerSalt)
		if _, err := io.ReadFull(o.Rand, salts[i]); err != nil {
			return fmt.Errorf("header salt: %w", err)
		}
	}
	dsalt := make([]byte, saltBytes)
	if _, err := io.ReadFull(o.Rand, dsalt); err != nil {
		return fmt.Errorf("digest salt: %w", err)
	}

	seg, err := marshal(jsonSegment{
		Type:       "crypt",
		Offset:     uint64(dataOffset),
		Size:       "dynamic",
		IVTweak:    0,
		Encryption: o.Cipher,
		SectorSize: o.SectorSize,
	})
	if err != nil {
		return err
	}
	dig, err := marshal(jsonDigest{
		Type:       "pbkdf2",
		Keyslots:   []string{},
		Segments:   []string{"0"},
		Hash:       "sha256",
		Iterations: digestIter,
		Salt:       dsalt,
		Digest:     pbkdf2.Key(volumeKey, dsalt, digestIter, sha256.Size, sha256.New),
	})
	if err != nil {
		return err
	}
	cfg, err := marshal(jsonConfig{
		JSONSize:     uint64(o.MetadataSize - binHeaderSize),
		KeyslotsSize: uint64(o.KeyslotsAreaSize),
	})
	if err != nil {
		return err
	}
	h := &Header{
		UUID:         uuid,
		Label:        o.Label,
		Subsystem:    o.Subsystem,
		MetadataSize: o.MetadataSize,
		salts:        salts,
		csumAlg:      "sha256",
		meta: &metadata{
			top:      map[string]json.RawMessage{"config": cfg},
			keyslots: map[string]json.RawMessage{},
			tokens:   map[string]json.RawMessage{},
			segments: map[string]json.RawMessage{"0": seg},
			digests:  map[string]json.RawMessage{"0": dig},
		},
	}

	// Zero the keyslots area, which also removes the secondary header of an
	// earlier LUKS2 volume with larger metadata.
	if err := zero(dev, 2*o.MetadataSize, o.KeyslotsAreaSize); err != nil {
		return err
	}
	if err := h.commit(dev, o.Rand); err != nil {
		return err
	}
	if o.Passphrase != nil {
		if _, err := addKeyslot(dev, volumeKey, o.Passphrase, KeyslotOptions{PBKDF: o.PBKDF, Rand: o.Rand}); err != nil {
			return fmt.Errorf("keyslot 0: %w", err)
		}
	}
	return nil
}

// zero writes n zero bytes at off.
func zero(dev Device, off, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		chunk := buf[:min(n, int64(len(buf)))]
		if _, err := dev.WriteAt(chunk, off); err != nil {
			return fmt.Errorf("zero keyslots area at %d: %w", off, err)
		}
		off += int64(len(chunk))
		n -= int64(len(chunk))
	}
	return nil
}
