package luks2

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// Cheap key derivations: tests must not spend a second per keyslot.
var (
	cheapPBKDF2  = PBKDF{Type: KDFPBKDF2, Iterations: 1000}
	cheapArgon2  = PBKDF{Type: KDFArgon2id, Time: 1, MemoryKiB: 64, Parallelism: 1}
	cheapArgon2i = PBKDF{Type: KDFArgon2i, Time: 2, MemoryKiB: 32, Parallelism: 2}
)

// Small layout for in-memory tests: 16 KiB metadata copies and room for
// three 64-byte-key keyslots, so the data starts at 32 KiB + 3 * 252 KiB.
const (
	smallKeyslots = 3 * 258048
	smallData     = 2*16<<10 + smallKeyslots
	smallDevice   = smallData + 64<<10
)

// memDevice is a fixed-size in-memory Device.
type memDevice struct{ b []byte }

func newMemDevice(size int) *memDevice { return &memDevice{b: make([]byte, size)} }

func (m *memDevice) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memDevice) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, errors.New("write beyond the end of the device")
	}
	return copy(m.b[off:], p), nil
}

// seeded returns a deterministic random source.
func seeded(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

// testKey returns a deterministic n-byte volume key.
func testKey(seed byte, n int) []byte {
	k := make([]byte, n)
	io.ReadFull(seeded(100+seed), k)
	return k
}

// smallOptions formats a small in-memory volume with a passphrase.
func smallOptions(seed byte) Options {
	return Options{
		KeyslotsAreaSize: smallKeyslots,
		Passphrase:       []byte("correct horse"),
		PBKDF:            cheapPBKDF2,
		Rand:             seeded(seed),
	}
}

// formatSmall returns an in-memory volume made with smallOptions.
func formatSmall(t *testing.T, seed byte) (*memDevice, []byte) {
	t.Helper()
	dev := newMemDevice(smallDevice)
	key := testKey(seed, 64)
	if err := Format(dev, smallDevice, key, smallOptions(seed)); err != nil {
		t.Fatalf("Format: %v", err)
	}
	return dev, key
}

// fixChecksums recomputes the checksums of both metadata copies in img, as
// far as their binary headers allow, so that edits of the JSON area get
// past them.
func fixChecksums(img []byte) {
	for _, off := range []int64{0, -1} {
		if off < 0 {
			if len(img) < binHeaderSize {
				return
			}
			off = int64(be64(img[offHdrSize:]))
		}
		if off < 0 || off > int64(len(img))-binHeaderSize {
			continue
		}
		size := be64(img[off+offHdrSize:])
		if size < binHeaderSize || size > uint64(len(img))-uint64(off) {
			continue
		}
		all := img[off : off+int64(size)]
		sum, err := checksum(cString(all[offCsumAlg:offCsumAlg+csumAlgBytes]), all)
		if err == nil {
			copy(all[offCsum:], sum)
		}
	}
}

func be64(b []byte) uint64 {
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

// setJSON replaces the JSON text of the copy at off and fixes its checksum.
func setJSON(t *testing.T, img []byte, off int64, js []byte) {
	t.Helper()
	size := int64(be64(img[off+offHdrSize:]))
	area := img[off+binHeaderSize : off+size]
	if len(js) >= len(area) {
		t.Fatalf("JSON of %d bytes does not fit", len(js))
	}
	clear(area)
	copy(area, js)
	all := img[off : off+size]
	sum, err := checksum("sha256", all)
	if err != nil {
		t.Fatal(err)
	}
	copy(all[offCsum:], sum)
}

// jsonText returns the JSON text of the copy at off.
func jsonText(img []byte, off int64) []byte {
	size := int64(be64(img[off+offHdrSize:]))
	area := img[off+binHeaderSize : off+size]
	return bytes.Clone(area[:bytes.IndexByte(area, 0)])
}

// writeFile writes b to a new file in a temporary directory.
func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func jsonUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func jsonMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
