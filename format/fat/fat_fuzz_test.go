package fat

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"testing"
)

// compactImage shrinks a tinyImage for fuzzing: one reserved sector, one
// FAT and only the used clusters, 8 KiB in all. Small inputs keep the
// fuzzer fast, in particular when it minimizes interesting inputs.
func compactImage(t testing.TB, img []byte, usedClusters int) []byte {
	t.Helper()
	v, err := openVolume(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	out := bytes.Clone(img[:sectorSize])
	out = append(out, img[v.fatOffset:v.fatOffset+sectorSize]...)
	out = append(out, img[v.dataOffset:v.dataOffset+int64(usedClusters)*v.clusterSize]...)
	le := binary.LittleEndian
	le.PutUint16(out[14:], 1)                                 // reserved sectors
	out[16] = 1                                               // FATs
	le.PutUint32(out[32:], uint32(len(out)/sectorSize))       // total sectors
	le.PutUint16(out[48:], 0)                                 // no FSInfo
	le.PutUint16(out[50:], 0)                                 // no backup boot sector
	if _, err := openVolume(bytes.NewReader(out)); err != nil { // still valid
		t.Fatal(err)
	}
	return out
}

// FuzzOpen feeds damaged volumes to Open and reads everything it finds. It
// must not panic or hang; walkAll reports inconsistent reads.
func FuzzOpen(f *testing.F) {
	w := tinyWriter(f)
	img := compactImage(f, tinyImage(f), int(w.Used()/sectorSize))
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
