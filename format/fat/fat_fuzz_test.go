package fat

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"testing"
	"testing/fstest"
)

// fuzzSeed returns a small valid volume for fuzzing: the structure of a
// tinyImage with fewer files, one reserved sector, one FAT and only the used
// clusters, 6 KiB in all. Small inputs keep the fuzzer fast.
func fuzzSeed(t testing.TB) []byte {
	t.Helper()
	w, err := NewWriter(Options{SizeBytes: MinSize, Label: "FUZZ", Time: testTime})
	if err != nil {
		t.Fatal(err)
	}
	w.geo = geometry{totalSectors: reservedSectors + 2 + 16, spc: 1, fatSectors: 1, clusters: 16}
	w.opts.SizeBytes = int64(w.geo.totalSectors) * sectorSize
	for _, f := range []tfile{
		{"EFI/BOOT/BOOTX64.EFI", pattern(40, 600)},
		{"loader/Long Name.conf", []byte("timeout 3\n")},
		{"a/b/x", []byte("x")},
		{"empty", nil},
	} {
		if err := w.AddFile(f.path, bytes.NewReader(f.data), int64(len(f.data))); err != nil {
			t.Fatal(err)
		}
	}
	var m memAt
	if err := w.Write(&m); err != nil {
		t.Fatal(err)
	}
	img := m.b
	g := w.geo
	out := bytes.Clone(img[:sectorSize])
	out = append(out, img[g.fatOffset(0):g.fatOffset(0)+sectorSize]...)
	data := g.clusterOffset(rootCluster)
	out = append(out, img[data:data+w.Used()]...)
	le := binary.LittleEndian
	le.PutUint16(out[14:], 1)                           // reserved sectors
	out[16] = 1                                         // FATs
	le.PutUint32(out[32:], uint32(len(out)/sectorSize)) // total sectors
	le.PutUint16(out[48:], 0)                           // no FSInfo
	le.PutUint16(out[50:], 0)                           // no backup boot sector
	fsys, err := Open(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(fsys, "EFI/BOOT/BOOTX64.EFI", "loader/Long Name.conf", "a/b/x"); err != nil {
		t.Fatal(err)
	}
	return out
}

// FuzzOpen feeds damaged volumes to Open and reads everything it finds. It
// must not panic or hang; walkAll reports inconsistent reads.
func FuzzOpen(f *testing.F) {
	img := fuzzSeed(f)
	f.Add(img)
	f.Add(img[:len(img)/2])
	le := binary.LittleEndian
	// A file chain that loops.
	v, err := openVolume(bytes.NewReader(img))
	if err != nil {
		f.Fatal(err)
	}
	boot, err := v.lookup("EFI/BOOT/BOOTX64.EFI")
	if err != nil {
		f.Fatal(err)
	}
	loop := bytes.Clone(img)
	le.PutUint32(loop[v.fatOffset+int64(boot.cluster+1)*4:], boot.cluster)
	f.Add(loop)
	// Two sectors per cluster and an active FAT selected by the flags.
	alt := bytes.Clone(img)
	alt[13] = 2
	le.PutUint16(alt[40:], 0x80)
	f.Add(alt)

	f.Fuzz(func(t *testing.T, data []byte) {
		fsys, err := Open(bytes.NewReader(data))
		if err != nil {
			return
		}
		walkAll(t, fsys)
		_, _ = fs.ReadFile(fsys, "efi/boot/bootx64.efi")
		_, _ = fs.Glob(fsys, "*/*")
	})
}
