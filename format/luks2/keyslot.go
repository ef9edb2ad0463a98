package luks2

import (
	"cmp"
	"crypto/aes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"slices"
	"strconv"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/pbkdf2"
	"golang.org/x/crypto/xts"
)

// errMismatch means a keyslot decrypted to a key that its digest rejects:
// the passphrase is wrong for that keyslot.
var errMismatch = errors.New("passphrase does not match")

// hashFunc returns the hash named as in LUKS2 metadata.
func hashFunc(name string) (func() hash.Hash, error) {
	switch name {
	case "sha1":
		return sha1.New, nil
	case "sha256":
		return sha256.New, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("hash %q: %w", name, ErrUnsupported)
}

// derive runs the key derivation on pass and returns n bytes.
func (p PBKDF) derive(pass, salt []byte, n int) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	switch p.Type {
	case KDFArgon2id:
		return argon2.IDKey(pass, salt, p.Time, p.MemoryKiB, uint8(p.Parallelism), uint32(n)), nil
	case KDFArgon2i:
		return argon2.Key(pass, salt, p.Time, p.MemoryKiB, uint8(p.Parallelism), uint32(n)), nil
	}
	h, err := hashFunc(p.Hash)
	if err != nil {
		return nil, err
	}
	return pbkdf2.Key(pass, salt, int(p.Iterations), n, h), nil
}

// verify reports whether key is the volume key the digest was made from.
func (d *jsonDigest) verify(key []byte) (bool, error) {
	h, err := hashFunc(d.Hash)
	if err != nil {
		return false, fmt.Errorf("digest: %w", err)
	}
	if d.Iterations <= 0 || d.Iterations > math.MaxInt32 {
		return false, fmt.Errorf("digest with %d iterations: %w", d.Iterations, ErrUnsupported)
	}
	got := pbkdf2.Key(key, d.Salt, d.Iterations, len(d.Digest), h)
	return subtle.ConstantTimeCompare(got, d.Digest) == 1, nil
}

// afSectors is the number of 512-byte sectors that the anti-forensic split
// of a keyBytes key into stripes takes.
func afSectors(keyBytes, stripes int) int {
	return (keyBytes*stripes + 511) / 512
}

// diffuse replaces buf by the hash of each of its digest-sized blocks,
// prefixed by the block's big-endian index; a short last block takes a
// prefix of its hash. This is the LUKS anti-forensic diffusion.
func diffuse(buf []byte, newHash func() hash.Hash) {
	h := newHash()
	var idx [4]byte
	sum := make([]byte, 0, h.Size())
	for i, off := 0, 0; off < len(buf); i, off = i+1, off+h.Size() {
		end := min(off+h.Size(), len(buf))
		h.Reset()
		binary.BigEndian.PutUint32(idx[:], uint32(i))
		h.Write(idx[:])
		h.Write(buf[off:end])
		copy(buf[off:end], h.Sum(sum[:0]))
	}
}

// afSplit spreads key over stripes blocks: all but the last are random,
// and the last is the key XOR the diffused XOR chain of the others, so that
// losing any one block loses the key.
func afSplit(key []byte, stripes int, newHash func() hash.Hash, rnd io.Reader) ([]byte, error) {
	n := len(key)
	out := make([]byte, n*stripes)
	if _, err := io.ReadFull(rnd, out[:n*(stripes-1)]); err != nil {
		return nil, fmt.Errorf("anti-forensic material: %w", err)
	}
	d := make([]byte, n)
	for i := range stripes - 1 {
		subtle.XORBytes(d, d, out[i*n:(i+1)*n])
		diffuse(d, newHash)
	}
	subtle.XORBytes(out[(stripes-1)*n:], d, key)
	wipe(d)
	return out, nil
}

// afMerge recovers the n-byte key from its split.
func afMerge(split []byte, n, stripes int, newHash func() hash.Hash) []byte {
	d := make([]byte, n)
	for i := range stripes - 1 {
		subtle.XORBytes(d, d, split[i*n:(i+1)*n])
		diffuse(d, newHash)
	}
	subtle.XORBytes(d, d, split[(stripes-1)*n:stripes*n])
	return d
}

// keyslotAreaSize is the size of a new keyslot's area for a keyBytes key.
func keyslotAreaSize(keyBytes int) int64 {
	return (int64(afSectors(keyBytes, afStripes))*512 + areaAlign - 1) / areaAlign * areaAlign
}

// areaCipher returns the cipher of a keyslot area. Areas are encrypted in
// 512-byte sectors numbered from 0 at the start of the area.
func areaCipher(name string, key []byte) (*xts.Cipher, error) {
	if name != keyslotCipher {
		return nil, fmt.Errorf("keyslot cipher %q: %w", name, ErrUnsupported)
	}
	if len(key) != 32 && len(key) != 64 {
		return nil, fmt.Errorf("%d-byte key for %s: %w", len(key), name, ErrUnsupported)
	}
	return xts.NewCipher(aes.NewCipher, key)
}

// Open tries the passphrase on the keyslots of the volume on dev, the high
// priority ones first, and returns the volume key and the keyslot that
// opened. If no keyslot accepts it, the error wraps ErrWrongPassphrase.
func Open(dev io.ReaderAt, passphrase []byte) (volumeKey []byte, slot int, err error) {
	h, err := readHeader(dev)
	if err != nil {
		return nil, -1, fmt.Errorf("luks2: open: read header: %w", err)
	}
	if err := h.checkRequirements(); err != nil {
		return nil, -1, fmt.Errorf("luks2: open: %w", err)
	}
	// Try the luks2 keyslots that store the data segment's key, high
	// priority first; priority 0 means "only when asked for by number".
	var bound []int
	if seg := h.cryptSegment(); seg != nil {
		for _, d := range h.Digests {
			if slices.Contains(d.Segments, seg.ID) {
				bound = append(bound, d.ID)
			}
		}
	}
	var order []Keyslot
	for prio := 2; prio >= 1; prio-- {
		for _, k := range h.Keyslots {
			if k.Priority == prio && h.keyslots[k.ID] != nil && slices.Contains(bound, k.Digest) {
				order = append(order, k)
			}
		}
	}
	errs := []error{ErrWrongPassphrase}
	for _, k := range order {
		key, err := h.openKeyslot(dev, k.ID, passphrase)
		if err == nil {
			return key, k.ID, nil
		}
		if !errors.Is(err, errMismatch) {
			errs = append(errs, fmt.Errorf("keyslot %d: %w", k.ID, err))
		}
	}
	return nil, -1, fmt.Errorf("luks2: open: %w", errors.Join(errs...))
}

// OpenKeyslot is Open restricted to one keyslot, as when a token names the
// keyslot its secret unlocks.
func OpenKeyslot(dev io.ReaderAt, slot int, passphrase []byte) (volumeKey []byte, err error) {
	h, err := readHeader(dev)
	if err != nil {
		return nil, fmt.Errorf("luks2: open keyslot %d: read header: %w", slot, err)
	}
	if err := h.checkRequirements(); err != nil {
		return nil, fmt.Errorf("luks2: open keyslot %d: %w", slot, err)
	}
	key, err := h.openKeyslot(dev, slot, passphrase)
	if errors.Is(err, errMismatch) {
		err = ErrWrongPassphrase
	}
	if err != nil {
		return nil, fmt.Errorf("luks2: open keyslot %d: %w", slot, err)
	}
	return key, nil
}

// checkRequirements refuses headers with mandatory requirements, which mark
// states (like an interrupted reencryption) this package cannot handle.
func (h *Header) checkRequirements() error {
	if len(h.Requirements) > 0 {
		return fmt.Errorf("header requires %q: %w", h.Requirements, ErrUnsupported)
	}
	return nil
}

// openKeyslot decrypts keyslot id with passphrase and checks the result
// against the keyslot's digest.
func (h *Header) openKeyslot(dev io.ReaderAt, id int, passphrase []byte) ([]byte, error) {
	k := h.keyslots[id]
	i := slices.IndexFunc(h.Keyslots, func(k Keyslot) bool { return k.ID == id })
	if k == nil || i < 0 {
		return nil, fmt.Errorf("no luks2 keyslot %d", id)
	}
	pub := h.Keyslots[i]
	d := h.digests[pub.Digest]
	if d == nil {
		return nil, fmt.Errorf("keyslot %d has no pbkdf2 digest", id)
	}
	// Keyslots whose digest is not bound to the data segment hold other
	// keys (as during reencryption); they do not unlock the volume.
	seg := h.cryptSegment()
	di := slices.IndexFunc(h.Digests, func(d Digest) bool { return d.ID == pub.Digest })
	if seg == nil || !slices.Contains(h.Digests[di].Segments, seg.ID) {
		return nil, fmt.Errorf("keyslot %d does not unlock the data segment", id)
	}
	afHash, err := hashFunc(k.AF.Hash)
	if err != nil {
		return nil, fmt.Errorf("anti-forensic %w", err)
	}
	areaKey, err := pub.PBKDF.derive(passphrase, k.KDF.Salt, k.Area.KeySize)
	if err != nil {
		return nil, err
	}
	defer wipe(areaKey)
	c, err := areaCipher(k.Area.Encryption, areaKey)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, afSectors(k.KeySize, k.AF.Stripes)*512)
	defer wipe(buf)
	if _, err := dev.ReadAt(buf, int64(k.Area.Offset)); err != nil {
		return nil, fmt.Errorf("read keyslot area at %d: %w", k.Area.Offset, err)
	}
	for s := range len(buf) / 512 {
		sec := buf[s*512 : (s+1)*512]
		c.Decrypt(sec, sec, uint64(s))
	}
	key := afMerge(buf, k.KeySize, k.AF.Stripes, afHash)
	ok, err := d.verify(key)
	if err != nil || !ok {
		wipe(key)
		if err == nil {
			err = errMismatch
		}
		return nil, err
	}
	return key, nil
}

// checkVolumeKey fails unless key matches a pbkdf2 digest bound to segment.
func (h *Header) checkVolumeKey(segment int, key []byte) error {
	for _, d := range h.Digests {
		jd := h.digests[d.ID]
		if jd == nil || !slices.Contains(d.Segments, segment) {
			continue
		}
		ok, err := jd.verify(key)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	return ErrWrongVolumeKey
}

// AddKeyslot adds a luks2 keyslot that stores volumeKey under passphrase
// and returns its number, the lowest free one. volumeKey must match the
// header's digest (else the error wraps ErrWrongVolumeKey). The keyslot
// material is written and flushed before the metadata that refers to it.
func AddKeyslot(dev Device, volumeKey, passphrase []byte, o KeyslotOptions) (int, error) {
	slot, err := addKeyslot(dev, volumeKey, passphrase, o)
	if err != nil {
		return -1, fmt.Errorf("luks2: add keyslot: %w", err)
	}
	return slot, nil
}

func addKeyslot(dev Device, volumeKey, passphrase []byte, o KeyslotOptions) (int, error) {
	rnd := randOrDefault(o.Rand)
	p := o.PBKDF.withDefaults()
	if err := p.validate(); err != nil {
		return -1, err
	}
	h, err := readHeader(dev)
	if err != nil {
		return -1, fmt.Errorf("read header: %w", err)
	}
	if err := h.checkRequirements(); err != nil {
		return -1, err
	}
	digest := -1
	for _, d := range h.Digests {
		jd := h.digests[d.ID]
		if jd == nil || len(d.Segments) == 0 {
			continue
		}
		ok, err := jd.verify(volumeKey)
		if err != nil {
			return -1, err
		}
		if ok {
			digest = d.ID
			break
		}
	}
	if digest < 0 {
		return -1, ErrWrongVolumeKey
	}
	slot := -1
	for i := range maxKeyslots {
		if _, used := h.meta.keyslots[strconv.Itoa(i)]; !used {
			slot = i
			break
		}
	}
	if slot < 0 {
		return -1, fmt.Errorf("all %d keyslots are in use: %w", maxKeyslots, ErrNoSpace)
	}
	matBytes := afSectors(len(volumeKey), afStripes) * 512
	areaSize := keyslotAreaSize(len(volumeKey))
	off, err := h.freeArea(areaSize)
	if err != nil {
		return -1, err
	}

	salt := make([]byte, saltBytes)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return -1, fmt.Errorf("keyslot salt: %w", err)
	}
	split, err := afSplit(volumeKey, afStripes, sha256.New, rnd)
	if err != nil {
		return -1, err
	}
	buf := make([]byte, matBytes)
	copy(buf, split)
	wipe(split)
	defer wipe(buf)
	areaKey, err := p.derive(passphrase, salt, keyslotKeyBytes)
	if err != nil {
		return -1, err
	}
	c, err := areaCipher(keyslotCipher, areaKey)
	wipe(areaKey)
	if err != nil {
		return -1, err
	}
	for s := range len(buf) / 512 {
		sec := buf[s*512 : (s+1)*512]
		c.Encrypt(sec, sec, uint64(s))
	}
	if _, err := dev.WriteAt(buf, off); err != nil {
		return -1, fmt.Errorf("write keyslot area at %d: %w", off, err)
	}
	if err := syncDevice(dev); err != nil {
		return -1, fmt.Errorf("sync keyslot area: %w", err)
	}

	jk := jsonKeyslot{
		Type:    "luks2",
		KeySize: len(volumeKey),
		AF:      jsonAF{Type: "luks1", Stripes: afStripes, Hash: "sha256"},
		Area: jsonArea{Type: "raw", Offset: uint64(off), Size: uint64(areaSize),
			Encryption: keyslotCipher, KeySize: keyslotKeyBytes},
		KDF: jsonKDF{Type: p.Type, Salt: salt},
	}
	if p.Type == KDFPBKDF2 {
		jk.KDF.Hash, jk.KDF.Iterations = p.Hash, p.Iterations
	} else {
		jk.KDF.Time, jk.KDF.Memory, jk.KDF.CPUs = p.Time, p.MemoryKiB, p.Parallelism
	}
	raw, err := marshal(jk)
	if err != nil {
		return -1, err
	}
	h.meta.keyslots[strconv.Itoa(slot)] = raw
	if err := bindKeyslot(h.meta, digest, slot); err != nil {
		return -1, err
	}
	if err := h.commit(dev, rnd); err != nil {
		return -1, err
	}
	return slot, nil
}

// bindKeyslot adds slot to the keyslots of digest, keeping the digest's
// other fields as they are.
func bindKeyslot(m *metadata, digest, slot int) error {
	name := strconv.Itoa(digest)
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(m.digests[name], &obj); err != nil {
		return fmt.Errorf("digest %d: %w", digest, err)
	}
	var ks []string
	if err := json.Unmarshal(obj["keyslots"], &ks); err != nil {
		return fmt.Errorf("digest %d keyslots: %w", digest, err)
	}
	raw, err := marshal(append(ks, strconv.Itoa(slot)))
	if err != nil {
		return err
	}
	obj["keyslots"] = raw
	if m.digests[name], err = marshal(obj); err != nil {
		return err
	}
	return nil
}

// freeArea returns the offset of the first gap of size bytes in the
// keyslots area, aligned to 4096 bytes.
func (h *Header) freeArea(size int64) (int64, error) {
	used := slices.Clone(h.Keyslots)
	slices.SortFunc(used, func(a, b Keyslot) int { return cmp.Compare(a.AreaOffset, b.AreaOffset) })
	off := 2 * h.MetadataSize
	end := off + h.KeyslotsSize
	for _, k := range used {
		if k.AreaSize == 0 {
			continue
		}
		if k.AreaOffset-off >= size {
			break
		}
		off = max(off, (k.AreaOffset+k.AreaSize+areaAlign-1)/areaAlign*areaAlign)
	}
	if end-off < size {
		return 0, fmt.Errorf("no free %d bytes in the keyslots area: %w", size, ErrNoSpace)
	}
	return off, nil
}
