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

// fat12Seed is a FAT12 volume built by hand, 3.5 KiB: one reserved
// sector, one FAT sector, a one-sector fixed root directory with a
// two-cluster file and a subdirectory holding a one-cluster file.
func fat12Seed(t testing.TB) []byte {
	t.Helper()
	const sectors = 7
	img := make([]byte, sectors*sectorSize)
	le := binary.LittleEndian
	b := img[:sectorSize]
	copy(b, []byte{0xEB, 0x3C, 0x90})
	le.PutUint16(b[11:], sectorSize)
	b[13], b[16], b[21] = 1, 1, 0xF8      // sectors per cluster, FATs, media
	le.PutUint16(b[14:], 1)               // reserved sectors
	le.PutUint16(b[17:], 16)              // root directory entries
	le.PutUint16(b[19:], sectors)         // total sectors
	le.PutUint16(b[22:], 1)               // FAT sectors
	copy(b[0x2B:], "CIDATA     FAT12   ") // label, type
	b[510], b[511] = 0x55, 0xAA
	// Clusters 2→3→end (the file), 4 (the directory), 5 (its file).
	entries := []uint16{0xFF8, 0xFFF, 3, 0xFFF, 0xFFF, 0xFFF}
	fat := img[sectorSize:]
	for i := 0; i < len(entries); i += 2 {
		e0, e1 := entries[i], entries[i+1]
		o := i * 3 / 2
		fat[o], fat[o+1], fat[o+2] = byte(e0), byte(e0>>8&0xF|e1<<4), byte(e1>>4)
	}
	dirent := func(b []byte, name string, attr byte, cluster uint16, size uint32) {
		copy(b, name)
		b[11] = attr
		le.PutUint16(b[26:], cluster)
		le.PutUint32(b[28:], size)
	}
	root := img[2*sectorSize:]
	dirent(root, "USERDATA   ", 0, 2, 600)
	dirent(root[32:], "SUB        ", attrDirectory, 4, 0)
	sub := img[(3+2)*sectorSize:]
	dirent(sub, ".          ", attrDirectory, 4, 0)
	dirent(sub[32:], "..         ", attrDirectory, 0, 0)
	dirent(sub[64:], "X          ", 0, 5, 1)
	copy(img[3*sectorSize:], pattern(12, 600))
	img[(3+3)*sectorSize] = 'x'
	fsys, err := Open(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := fs.ReadFile(fsys, "USERDATA"); err != nil || !bytes.Equal(got, pattern(12, 600)) {
		t.Fatalf("the FAT12 seed: %d bytes, %v", len(got), err)
	}
	if err := fstest.TestFS(fsys, "USERDATA", "SUB/X"); err != nil {
		t.Fatal(err)
	}
	return img
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
	// FAT12 with its fixed root directory (FAT16 shares that code).
	f.Add(fat12Seed(f))

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
