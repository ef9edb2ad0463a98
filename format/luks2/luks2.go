// Package luks2 creates and opens LUKS2 encrypted volumes in pure Go, as
// described by the LUKS2 On-Disk Format Specification, so that the initrd
// can encrypt the root partition on first boot and unlock it later without
// cryptsetup.
//
// The package writes and reads the metadata (two binary headers with their
// JSON areas), luks2 keyslots (PBKDF2 or Argon2, the LUKS1 anti-forensic
// splitter, aes-xts-plain64 keyslot areas), the pbkdf2 digest and generic
// tokens. It is a pure on-disk format package: no ioctls, no system calls.
// Data is encrypted by the kernel's dm-crypt: [Header.CryptTarget] gives
// the target (and [Header.DMTable] the table line) that
// internal/dm loads (ingot-init does it through internal/sys).
//
// Typical first boot:
//
//	key := make([]byte, 64)
//	rand.Read(key)
//	err := luks2.Format(dev, size, key, luks2.Options{Label: "root", Passphrase: recovery})
//	t, err := h.CryptTarget("/dev/vda3", size, "root", key) // h: luks2.ReadHeader(dev)
//
// and later boots:
//
//	key, slot, err := luks2.Open(dev, passphrase)
package luks2

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
)

// Device is where a LUKS2 volume lives: a block device or image file.
// *os.File implements it. If the device also has a Sync() error method, it
// is called after every metadata update.
type Device interface {
	io.ReaderAt
	io.WriterAt
}

// Errors that callers act on. They are wrapped with the operation; test for
// them with errors.Is.
var (
	// ErrWrongPassphrase means no keyslot accepted the passphrase.
	ErrWrongPassphrase = errors.New("no keyslot accepts the passphrase")
	// ErrWrongVolumeKey means a volume key does not match the header's
	// digest.
	ErrWrongVolumeKey = errors.New("volume key does not match the digest")
	// ErrNoHeader means neither copy of the metadata is a valid LUKS2
	// header.
	ErrNoHeader = errors.New("no valid LUKS2 header")
	// ErrCorrupt means a metadata copy or keyslot is damaged or inconsistent.
	ErrCorrupt = errors.New("corrupt metadata")
	// ErrUnsupported means the header uses a feature this package does not
	// implement, or an option asks for one.
	ErrUnsupported = errors.New("unsupported")
	// ErrNoSpace means there is no free keyslot, token, keyslot area or
	// room in the JSON area.
	ErrNoSpace = errors.New("no space left in the header")
)

// Sizes of the on-disk layout.
const (
	binHeaderSize   = 4096 // one binary header
	areaAlign       = 4096 // keyslot areas start and end on this
	maxKeyslots     = 32   // LUKS2 keyslot and token numbers are 0..31
	afStripes       = 4000 // anti-forensic stripes, as cryptsetup
	saltBytes       = 32   // keyslot and digest salts
	digestIter      = 1000 // PBKDF2 iterations of the digest
	keyslotCipher   = "aes-xts-plain64"
	keyslotKeyBytes = 64              // AES-256-XTS for keyslot areas
	minMetadataSize = 16 << 10        // smallest hdr_size
	maxMetadataSize = 4 << 20         // largest hdr_size
	maxArgon2Memory = 4 << 20         // KiB; refuse headers asking for more
	defaultKeyslots = 16<<20 - 32<<10 // keyslots area: data starts at 16 MiB
)

// Names of the key derivation functions.
const (
	KDFArgon2id = "argon2id"
	KDFArgon2i  = "argon2i"
	KDFPBKDF2   = "pbkdf2"
)

// PBKDF selects how a keyslot turns a passphrase into the key that encrypts
// its area. The zero value means Argon2id with the defaults described on
// each field. Tests choose cheap parameters explicitly.
type PBKDF struct {
	// Type is KDFArgon2id (default), KDFArgon2i or KDFPBKDF2.
	Type string
	// Time is the number of Argon2 passes; zero means 4.
	Time uint32
	// MemoryKiB is the Argon2 memory cost in KiB; zero means
	// DefaultArgon2MemoryKiB.
	MemoryKiB uint32
	// Parallelism is the number of Argon2 lanes; zero means the number of
	// CPUs, at most 4.
	Parallelism uint32
	// Iterations is the PBKDF2 iteration count; zero means 600000.
	Iterations uint32
	// Hash is the PBKDF2 hash: "sha256" (default), "sha512" or "sha1".
	Hash string
}

// Options control Format. The zero value formats a volume as cryptsetup
// would by default, apart from the key derivation cost.
type Options struct {
	// UUID is the volume UUID (36 characters, like
	// "0a1b2c3d-..."); empty means a random version 4 UUID drawn from Rand,
	// so a seeded Rand gives a reproducible UUID.
	UUID string
	// Label and Subsystem are the optional labels shown by blkid (at most
	// 47 bytes each).
	Label     string
	Subsystem string
	// Cipher is the data cipher; only "aes-xts-plain64" (default) is
	// supported.
	Cipher string
	// KeyBytes is the volume key length: 64 (default, AES-256-XTS) or 32
	// (AES-128-XTS). The volume key passed to Format must have this length.
	KeyBytes int
	// SectorSize is the encryption sector size: 512 (default), 1024, 2048
	// or 4096 bytes. The data area must be a multiple of it.
	SectorSize int
	// MetadataSize is the size of one binary header plus JSON area: 16 KiB
	// (default), 32 KiB, ... up to 4 MiB.
	MetadataSize int64
	// KeyslotsAreaSize is the size of the area holding keyslot material,
	// a multiple of 4096; zero means 16 MiB - 32 KiB, as cryptsetup uses,
	// so that with the default MetadataSize the data starts at 16 MiB.
	KeyslotsAreaSize int64
	// Passphrase, if not nil, makes Format add keyslot 0 for it with PBKDF,
	// as AddKeyslot does. Without it the volume has no keyslot.
	Passphrase []byte
	// PBKDF is the key derivation for the Passphrase keyslot.
	PBKDF PBKDF
	// Rand is the source of salts, the UUID and anti-forensic material;
	// nil means crypto/rand. Only tests should set it.
	Rand io.Reader
}

// KeyslotOptions control AddKeyslot.
type KeyslotOptions struct {
	// PBKDF is the key derivation for the new keyslot.
	PBKDF PBKDF
	// Rand is the source of the salt and anti-forensic material; nil means
	// crypto/rand. Only tests should set it.
	Rand io.Reader
}

func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// DefaultArgon2MemoryKiB is the Argon2 memory cost when PBKDF.MemoryKiB
// is 0: 1 GiB, cryptsetup's upper bound. cryptsetup also caps it at half
// the machine's memory; this package reads nothing of the machine, so a
// caller on a small machine sets MemoryKiB itself.
const DefaultArgon2MemoryKiB = 1 << 20

// withDefaults fills in the zero fields of p.
func (p PBKDF) withDefaults() PBKDF {
	if p.Type == "" {
		p.Type = KDFArgon2id
	}
	switch p.Type {
	case KDFArgon2id, KDFArgon2i:
		if p.Time == 0 {
			p.Time = 4
		}
		if p.MemoryKiB == 0 {
			p.MemoryKiB = DefaultArgon2MemoryKiB
		}
		if p.Parallelism == 0 {
			p.Parallelism = uint32(min(4, runtime.NumCPU()))
		}
	case KDFPBKDF2:
		if p.Iterations == 0 {
			p.Iterations = 600000
		}
		if p.Hash == "" {
			p.Hash = "sha256"
		}
	}
	return p
}

// validate checks p after withDefaults, for both new keyslots and keyslots
// read from a header (which may come from anywhere).
func (p PBKDF) validate() error {
	switch p.Type {
	case KDFArgon2id, KDFArgon2i:
		if p.Time == 0 {
			return fmt.Errorf("%s time 0: %w", p.Type, ErrUnsupported)
		}
		if p.Parallelism == 0 || p.Parallelism > 255 {
			return fmt.Errorf("%s parallelism %d: %w", p.Type, p.Parallelism, ErrUnsupported)
		}
		if p.MemoryKiB < 8*p.Parallelism || p.MemoryKiB > maxArgon2Memory {
			return fmt.Errorf("%s memory %d KiB: %w", p.Type, p.MemoryKiB, ErrUnsupported)
		}
	case KDFPBKDF2:
		if p.Iterations == 0 || p.Iterations > math.MaxInt32 {
			return fmt.Errorf("pbkdf2 with %d iterations: %w", p.Iterations, ErrUnsupported)
		}
		if _, err := hashFunc(p.Hash); err != nil {
			return err
		}
	default:
		return fmt.Errorf("key derivation %q: %w", p.Type, ErrUnsupported)
	}
	return nil
}

// withDefaults fills in the zero fields of o.
func (o Options) withDefaults() Options {
	if o.Cipher == "" {
		o.Cipher = keyslotCipher
	}
	if o.KeyBytes == 0 {
		o.KeyBytes = 64
	}
	if o.SectorSize == 0 {
		o.SectorSize = 512
	}
	if o.MetadataSize == 0 {
		o.MetadataSize = minMetadataSize
	}
	if o.KeyslotsAreaSize == 0 {
		o.KeyslotsAreaSize = defaultKeyslots
	}
	o.Rand = randOrDefault(o.Rand)
	return o
}

// validate checks o after withDefaults.
func (o Options) validate() error {
	if o.Cipher != keyslotCipher {
		return fmt.Errorf("cipher %q: %w", o.Cipher, ErrUnsupported)
	}
	if o.KeyBytes != 32 && o.KeyBytes != 64 {
		return fmt.Errorf("%d-byte key for %s: %w", o.KeyBytes, o.Cipher, ErrUnsupported)
	}
	switch o.SectorSize {
	case 512, 1024, 2048, 4096:
	default:
		return fmt.Errorf("sector size %d: %w", o.SectorSize, ErrUnsupported)
	}
	if !validMetadataSize(o.MetadataSize) {
		return fmt.Errorf("metadata size %d: %w", o.MetadataSize, ErrUnsupported)
	}
	if o.KeyslotsAreaSize <= 0 || o.KeyslotsAreaSize%areaAlign != 0 || o.KeyslotsAreaSize > 1<<30 {
		return fmt.Errorf("keyslots area size %d is not a positive multiple of %d up to 1 GiB", o.KeyslotsAreaSize, areaAlign)
	}
	if off := 2*o.MetadataSize + o.KeyslotsAreaSize; off%int64(o.SectorSize) != 0 {
		return fmt.Errorf("data offset %d is not a multiple of the sector size %d", off, o.SectorSize)
	}
	if o.UUID != "" && !validUUID(o.UUID) {
		return fmt.Errorf("UUID %q is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", o.UUID)
	}
	for _, l := range []struct{ name, v string }{{"label", o.Label}, {"subsystem", o.Subsystem}} {
		if len(l.v) > labelBytes-1 {
			return fmt.Errorf("%s %q is longer than %d bytes", l.name, l.v, labelBytes-1)
		}
		for i := range len(l.v) {
			if l.v[i] == 0 {
				return fmt.Errorf("%s %q contains a NUL byte", l.name, l.v)
			}
		}
	}
	return nil
}

// validMetadataSize reports whether n is a power of two from 16 KiB to
// 4 MiB, the hdr_size values the specification allows.
func validMetadataSize(n int64) bool {
	return n >= minMetadataSize && n <= maxMetadataSize && n&(n-1) == 0
}

// validUUID reports whether s looks like 8-4-4-4-12 hex digits.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// newUUID draws a random (version 4) UUID from r.
func newUUID(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("random UUID: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// syncDevice flushes dev if it can be flushed.
func syncDevice(dev Device) error {
	if s, ok := dev.(interface{ Sync() error }); ok {
		return s.Sync()
	}
	return nil
}

// wipe overwrites b, which held key material.
func wipe(b []byte) { clear(b) }
