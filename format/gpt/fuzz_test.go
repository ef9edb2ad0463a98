package gpt

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"reflect"
	"slices"
	"testing"
	"unicode/utf16"
)

// Fuzz flags, taken from the second fuzz argument.
const (
	fuzz4K      = 1 << iota // 4096-byte sectors instead of 512
	fuzzHuge                // claim the disk is 1 TiB larger than the data
	fuzzFixCRCs             // recompute CRCs so mutations get past them
)

// buildImage lays out a GPT by hand, bypassing Write's rules, so that seeds
// can be small (few entries) or unusual (large entries, grown disk).
// backupLBA 0 means the last sector.
func buildImage(ss int, sectors uint64, numEntries, entrySize int, backupLBA uint64, parts []Partition) []byte {
	img := make([]byte, sectors*uint64(ss))
	if backupLBA == 0 {
		backupLBA = sectors - 1
	}
	arr := make([]byte, numEntries*entrySize)
	compact, err := encodeEntries(parts, numEntries)
	if err != nil {
		panic(err)
	}
	for i := range numEntries {
		copy(arr[i*entrySize:], compact[i*EntrySize:(i+1)*EntrySize])
	}
	es := uint64((len(arr) + ss - 1) / ss)
	h := header{
		myLBA: 1, alternateLBA: backupLBA,
		firstUsable: 2 + es, lastUsable: backupLBA - 1 - es,
		diskGUID: testDiskGUID, entriesLBA: 2,
		numEntries: uint32(numEntries), entrySize: uint32(entrySize),
		entriesCRC: crc32.ChecksumIEEE(arr),
	}
	copy(img, protectiveMBR(ss, sectors-1))
	h.marshal(img[ss : 2*ss])
	copy(img[2*ss:], arr)
	h.myLBA, h.alternateLBA, h.entriesLBA = backupLBA, 1, backupLBA-es
	h.marshal(img[backupLBA*uint64(ss) : (backupLBA+1)*uint64(ss)])
	copy(img[h.entriesLBA*uint64(ss):], arr)
	return img
}

// overlayDisk is a sparse disk of a given size: zeros overlaid with writes,
// so fuzz inputs stay small whatever disk size they describe.
type overlayDisk struct {
	size   int64
	writes []chunk
}

func (d *overlayDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= d.size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > d.size-off {
		n = int(d.size - off)
	}
	clear(p[:n])
	for _, w := range d.writes {
		lo, hi := max(off, w.off), min(off+int64(n), w.off+int64(len(w.data)))
		if lo < hi {
			copy(p[lo-off:hi-off], w.data[lo-w.off:hi-w.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d *overlayDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, errors.New("write beyond the end of the disk")
	}
	d.writes = append(d.writes, chunk{"", off, slices.Clone(p)})
	return len(p), nil
}

// fixCRCs recomputes the entry array and header CRCs of every header with a
// signature at LBA 1, the last sector and the primary's alternate LBA.
func fixCRCs(d *overlayDisk, ss int) {
	sectors := uint64(d.size / int64(ss))
	if sectors < 3 {
		return
	}
	le := binary.LittleEndian
	sector := func(lba uint64) []byte {
		b := make([]byte, ss)
		d.ReadAt(b, int64(lba)*int64(ss))
		return b
	}
	lbas := []uint64{1, sectors - 1}
	if alt, ok := rawAlternateLBA(sector(1)); ok && alt > 1 && alt < sectors {
		lbas = append(lbas, alt)
	}
	for _, lba := range lbas {
		h := sector(lba)
		if string(h[:8]) != signature {
			continue
		}
		size := uint64(le.Uint32(h[12:16]))
		if size < headerSize || size > uint64(ss) {
			continue
		}
		el := le.Uint64(h[72:80])
		n := uint64(le.Uint32(h[80:84])) * uint64(le.Uint32(h[84:88]))
		if el < sectors && n <= MaxNumEntries*MaxEntrySize {
			ents := make([]byte, n)
			d.ReadAt(ents, int64(el)*int64(ss))
			le.PutUint32(h[88:92], crc32.ChecksumIEEE(ents))
		}
		clear(h[16:20])
		le.PutUint32(h[16:20], crc32.ChecksumIEEE(h[:size]))
		d.WriteAt(h, int64(lba)*int64(ss))
	}
}

// fuzzSeed is a disk image split into the bytes at its start and its end.
type fuzzSeed struct {
	head, tail []byte
	sectors    uint16
	flags      uint8
}

// split turns a whole image into a seed: head up to headLBA, tail from
// tailLBA.
func split(img []byte, ss int, headLBA, tailLBA int, flags uint8) fuzzSeed {
	return fuzzSeed{img[:headLBA*ss], img[tailLBA*ss:], uint16(len(img) / ss), flags}
}

func fuzzSeeds() []fuzzSeed {
	p := func(i int, first, last uint64, name string) Partition {
		return Partition{Index: i, Type: TypeLinuxGeneric, UUID: guid(0x10, byte(i)), Name: name, FirstLBA: first, LastLBA: last, Attributes: AttrReadOnly}
	}
	return []fuzzSeed{
		// Few entries, 512-byte sectors.
		split(buildImage(512, 24, 4, 128, 0, []Partition{p(1, 4, 8, "a"), p(3, 10, 19, "usr-ü-𝔘")}), 512, 3, 22, 0),
		// 256-byte entries.
		split(buildImage(512, 32, 4, 256, 0, []Partition{p(2, 5, 20, "big")}), 512, 4, 29, 0),
		// Grown disk: backup at LBA 30 of 40.
		split(buildImage(512, 40, 4, 128, 30, []Partition{p(1, 4, 25, "grown")}), 512, 3, 29, 0),
		// 4096-byte sectors.
		split(buildImage(4096, 8, 4, 128, 0, []Partition{p(1, 3, 4, "4k")}), 4096, 3, 6, fuzz4K),
		// 128 entries as Write makes them are covered by the round trip in
		// FuzzRead; a seed that large would make minimization crawl.
	}
}

func TestFuzzSeedsAreValid(t *testing.T) {
	for i, s := range fuzzSeeds() {
		d, size, ss := s.disk()
		tab, err := Read(d, size, ss)
		if err != nil || tab.Source != SourcePrimary || tab.BackupErr != nil || len(tab.Partitions) == 0 {
			t.Errorf("seed %d: %v %+v", i, err, tab)
		}
	}
}

// disk builds the overlay disk a fuzz input describes.
func (s fuzzSeed) disk() (d *overlayDisk, size int64, ss int) {
	ss = 512
	if s.flags&fuzz4K != 0 {
		ss = 4096
	}
	size = int64(s.sectors) * int64(ss)
	if s.flags&fuzzHuge != 0 {
		size += 1 << 40
	}
	d = &overlayDisk{size: size}
	if int64(len(s.head)) <= size {
		d.WriteAt(s.head, 0)
	}
	if int64(len(s.tail)) <= size {
		d.WriteAt(s.tail, size-int64(len(s.tail)))
	}
	if s.flags&fuzzFixCRCs != 0 {
		fixCRCs(d, ss)
	}
	return d, size, ss
}

// FuzzRead feeds arbitrary disks to Read: head and tail are the bytes at the
// start and the end of a disk of the given number of sectors, zero between.
// Read must not panic, must return only ErrNoTable or ErrCorrupt errors, and
// any table it returns must be valid; a table Write accepts must read back
// unchanged.
func FuzzRead(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s.head, s.tail, s.sectors, s.flags)
		f.Add(s.head, s.tail, s.sectors, s.flags|fuzzFixCRCs|fuzzHuge)
	}
	f.Fuzz(func(t *testing.T, head, tail []byte, sectors uint16, flags uint8) {
		d, size, ss := fuzzSeed{head, tail, sectors, flags}.disk()
		tab, err := Read(d, size, ss)
		if err != nil {
			if !errors.Is(err, ErrNoTable) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		checkTable(t, tab, size)
		out := &overlayDisk{size: size}
		if err := tab.Write(out, size); err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNoSpace) {
				t.Fatalf("unexpected Write error class: %v", err)
			}
			return
		}
		back, err := Read(out, size, ss)
		if err != nil {
			t.Fatalf("Read after Write: %v", err)
		}
		if back.Source != SourcePrimary || back.BackupErr != nil {
			t.Fatalf("Read after Write: source %v, backup error %v", back.Source, back.BackupErr)
		}
		if back.DiskGUID != tab.DiskGUID || back.FirstUsableLBA != tab.FirstUsableLBA || back.LastUsableLBA != tab.LastUsableLBA {
			t.Fatalf("header fields changed: %+v vs %+v", back, tab)
		}
		if !reflect.DeepEqual(back.Partitions, tab.Partitions) {
			t.Fatalf("partitions changed:\n%+v\n%+v", back.Partitions, tab.Partitions)
		}
	})
}

// checkTable asserts the invariants of a table returned by Read.
func checkTable(t *testing.T, tab *Table, size int64) {
	t.Helper()
	lastLBA := uint64(size/int64(tab.SectorSize)) - 1
	if tab.FirstUsableLBA < 2 || tab.FirstUsableLBA > tab.LastUsableLBA || tab.LastUsableLBA >= lastLBA {
		t.Fatalf("usable range %d-%d on a disk with last LBA %d", tab.FirstUsableLBA, tab.LastUsableLBA, lastLBA)
	}
	if tab.NumEntries < 1 || tab.NumEntries > MaxNumEntries || len(tab.Partitions) > tab.NumEntries {
		t.Fatalf("%d entries, %d partitions", tab.NumEntries, len(tab.Partitions))
	}
	if tab.Source == SourceNone || (tab.Source == SourceBackup) != (tab.PrimaryErr != nil) {
		t.Fatalf("source %v with primary error %v", tab.Source, tab.PrimaryErr)
	}
	if err := validatePartitions(tab.Partitions, tab.FirstUsableLBA, tab.LastUsableLBA, tab.NumEntries); err != nil {
		t.Fatalf("Read returned an invalid table: %v", err)
	}
	if !slices.IsSortedFunc(tab.Partitions, func(a, b Partition) int { return a.Index - b.Index }) {
		t.Fatalf("partitions not sorted by index")
	}
	for _, p := range tab.Partitions {
		if n := len(utf16.Encode([]rune(p.Name))); n > MaxNameLen {
			t.Fatalf("%s: name of %d code units", p.label(), n)
		}
	}
	if free := tab.FreeRanges(); len(free) > len(tab.Partitions)+1 {
		t.Fatalf("%d free ranges for %d partitions", len(free), len(tab.Partitions))
	}
}
