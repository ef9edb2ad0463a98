package ext

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/go-dmverity/pkg/verity"

	"github.com/ingot-linux/ingot/format/gpt"
)

// fakeImage writes an unsigned extension image of data (4096-byte
// blocks) with its real verity tree, as the builder does.
func fakeImage(t testing.TB, data []byte, sig []byte) ([]byte, []byte) {
	t.Helper()
	dir := t.TempDir()
	dataPath, hashPath := filepath.Join(dir, "d"), filepath.Join(dir, "h")
	if err := os.WriteFile(dataPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	p := verity.DefaultParams()
	p.DataBlockSize, p.HashBlockSize = 4096, 4096
	p.DataBlocks = uint64(len(data) / 4096)
	salt := sha256.Sum256(data)
	p.Salt, p.SaltSize = salt[:], 32
	p.HashAreaOffset = 4096
	p.UUID = [16]byte{1, 2, 3}
	root, err := verity.Create(&p, dataPath, hashPath)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := os.ReadFile(hashPath)
	if err != nil {
		t.Fatal(err)
	}
	var buf writerAt
	n, err := Write(&buf, Parts{Name: "x", RootHash: root, Data: bytes.NewReader(data), DataBytes: int64(len(data)),
		Hash: bytes.NewReader(hash), HashBytes: int64(len(hash)), Sig: sig})
	if err != nil {
		t.Fatal(err)
	}
	return buf.b[:n], root
}

// writerAt is an in-memory io.WriterAt.
type writerAt struct{ b []byte }

func (w *writerAt) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(w.b)) {
		w.b = append(w.b, make([]byte, end-int64(len(w.b)))...)
	}
	return copy(w.b[off:], p), nil
}

func TestOpenUnsigned(t *testing.T) {
	img, root := fakeImage(t, bytes.Repeat([]byte{7}, 3*4096), nil)
	im, err := Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(im.RootHash, root) || im.Sig != nil {
		t.Errorf("root hash %x sig %v, want %x and none", im.RootHash, im.Sig != nil, root)
	}
	if _, err := im.Verify(nil); !errors.Is(err, ErrUnsigned) {
		t.Errorf("Verify of an unsigned image: %v, want ErrUnsigned", err)
	}
}

func TestOpenBad(t *testing.T) {
	img, _ := fakeImage(t, bytes.Repeat([]byte{7}, 3*4096), nil)
	noVerity := rootOnly(t)
	for name, b := range map[string][]byte{
		"truncated": img[:len(img)/2],
		"empty":     nil,
		"no verity": noVerity,
		"zeros":     make([]byte, len(img)),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Open(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrMalformed) {
				t.Errorf("Open: %v, want ErrMalformed", err)
			}
		})
	}
}

// rootOnly is a disk with a root partition and no verity partition.
func rootOnly(t *testing.T) []byte {
	tab, err := gpt.New(1<<20, sectorSize, gpt.GUID{1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tab.Append(gpt.Partition{Index: 1, Type: gpt.TypeRootAMD64, UUID: gpt.GUID{2}, Name: "x"}, 64<<10, 4096); err != nil {
		t.Fatal(err)
	}
	var w writerAt
	if err := tab.Write(&w, 1<<20); err != nil {
		t.Fatal(err)
	}
	return w.b
}

func FuzzOpen(f *testing.F) {
	img, _ := fakeImage(f, bytes.Repeat([]byte{7}, 4096), nil)
	f.Add(img)
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		_, _ = im.Verify(nil)
	})
}
