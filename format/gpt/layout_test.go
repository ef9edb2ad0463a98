package gpt

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestWriteRejects(t *testing.T) {
	const size = 32 * mib
	base := func() *Table {
		tab, err := New(size, 512, testDiskGUID)
		if err != nil {
			t.Fatal(err)
		}
		tab.Partitions = []Partition{
			{Index: 1, Type: TypeESP, UUID: guid(1, 1), Name: "esp", FirstLBA: 2048, LastLBA: 4095},
			{Index: 2, Type: TypeUsrAMD64, UUID: guid(1, 2), Name: "usr", FirstLBA: 4096, LastLBA: 8191},
		}
		return tab
	}
	for _, tc := range []struct {
		name     string
		mod      func(*Table)
		diskSize int64
		wantErr  error
		want     string
	}{
		{"overlap", func(t *Table) { t.Partitions[1].FirstLBA = 4095 }, size, ErrInvalid,
			`partition 1 ("esp") (LBAs 2048-4095) and partition 2 ("usr") (LBAs 4095-8191) overlap`},
		{"before first usable", func(t *Table) { t.Partitions[0].FirstLBA = 33 }, size, ErrInvalid,
			`partition 1 ("esp"): LBAs 33-4095 outside the usable range 34-65502`},
		{"after last usable", func(t *Table) { t.Partitions[1].LastLBA = 65503 }, size, ErrInvalid,
			`partition 2 ("usr"): LBAs 4096-65503 outside the usable range 34-65502`},
		{"reversed", func(t *Table) { t.Partitions[1].LastLBA = 4000 }, size, ErrInvalid, `partition 2 ("usr"): first LBA 4096 is after last LBA 4000`},
		{"duplicate index", func(t *Table) { t.Partitions[1].Index = 1 }, size, ErrInvalid, `partition 1 ("usr"): index used twice`},
		{"index 0", func(t *Table) { t.Partitions[1].Index = 0 }, size, ErrInvalid, `partition "usr": index outside 1..128`},
		{"index 129", func(t *Table) { t.Partitions[1].Index = 129 }, size, ErrInvalid, `partition 129 ("usr"): index outside 1..128`},
		{"zero type", func(t *Table) { t.Partitions[1].Type = GUID{} }, size, ErrInvalid, `partition 2 ("usr"): type GUID is zero`},
		{"zero UUID", func(t *Table) { t.Partitions[1].UUID = GUID{} }, size, ErrInvalid, `partition 2 ("usr"): unique partition GUID is zero`},
		{"duplicate UUID", func(t *Table) { t.Partitions[1].UUID = guid(1, 1) }, size, ErrInvalid, `is also used by partition 1`},
		{"name too long", func(t *Table) { t.Partitions[1].Name = strings.Repeat("x", 37) }, size, ErrInvalid, `is 37 UTF-16 code units, at most 36 fit`},
		{"name too long (surrogates)", func(t *Table) { t.Partitions[1].Name = strings.Repeat("x", 35) + "𝔘" }, size, ErrInvalid, `is 37 UTF-16 code units`},
		{"name NUL", func(t *Table) { t.Partitions[1].Name = "a\x00b" }, size, ErrInvalid, `contains a NUL`},
		{"name invalid UTF-8", func(t *Table) { t.Partitions[1].Name = "a\xffb" }, size, ErrInvalid, `not valid UTF-8`},
		{"zero disk GUID", func(t *Table) { t.DiskGUID = GUID{} }, size, ErrInvalid, `disk GUID is zero`},
		{"sector size", func(t *Table) { t.SectorSize = 520 }, size, ErrInvalid, `sector size 520`},
		{"too many entries", func(t *Table) { t.NumEntries = 2000 }, size, ErrInvalid, `2000 partition entries`},
		{"first usable too low", func(t *Table) { t.FirstUsableLBA = 20 }, size, ErrInvalid, `first usable LBA 20 overlaps`},
		{"disk too small for table", func(*Table) {}, 16 * mib, ErrNoSpace, `disk is 16777216 bytes, table needs 33554432`},
		{"disk too small for GPT", func(*Table) {}, 512 * 60, ErrNoSpace, `disk is 30720 bytes, a GPT needs at least 34816`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := base()
			tc.mod(tab)
			cw := &countingWriter{w: newMemDisk(0), limit: -1}
			err := tab.Write(cw, tc.diskSize)
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write error\n%v\nwant %v containing\n%s", err, tc.wantErr, tc.want)
			}
			if cw.writes != 0 {
				t.Errorf("Write wrote %d chunks before failing", cw.writes)
			}
		})
	}
}

func TestWriteOrderAndSync(t *testing.T) {
	const size = 32 * mib
	tab := testLayout(t, size, 512, true)
	var offs []int64
	rec := &recorder{w: newMemDisk(size), offs: &offs}
	cw := &countingWriter{w: rec, limit: -1}
	if err := tab.Write(cw, size); err != nil {
		t.Fatal(err)
	}
	last := int64(size/512 - 1)
	want := []int64{(last - 32) * 512, last * 512, 2 * 512, 512, 0}
	if !reflect.DeepEqual(offs, want) {
		t.Errorf("write offsets %v, want %v (backup entries, backup header, primary entries, primary header, MBR)", offs, want)
	}
	if cw.syncs != 2 {
		t.Errorf("%d syncs, want 2", cw.syncs)
	}
}

type recorder struct {
	w    *memDisk
	offs *[]int64
}

func (r *recorder) WriteAt(p []byte, off int64) (int, error) {
	*r.offs = append(*r.offs, off)
	return r.w.WriteAt(p, off)
}

// TestPowerLoss interrupts the Write of a grown table after every write and
// checks that the disk still reads as either the old or the new table, and
// that redoing the first-boot steps then produces the new table.
func TestPowerLoss(t *testing.T) {
	const small, big = 4 * mib, 8 * mib
	base := newMemDisk(big)
	tab0, err := New(small, 512, testDiskGUID)
	if err != nil {
		t.Fatal(err)
	}
	for i, typ := range []GUID{TypeESP, TypeUsrAMD64} {
		if _, err := tab0.Append(Partition{Type: typ, UUID: guid(0x30, byte(i)), Name: typ.String()[:8]}, 1*mib, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := tab0.Write(base, small); err != nil {
		t.Fatal(err)
	}
	old, err := Read(base, big, 512)
	if err != nil {
		t.Fatal(err)
	}
	firstBoot := func(t *testing.T, tab *Table, d *memDisk, limit int) error {
		t.Helper()
		if _, err := tab.Grow(big); err != nil {
			t.Fatal(err)
		}
		if len(tab.ByType(TypeRootAMD64)) == 0 {
			free, ok := tab.LargestFree(0)
			if !ok {
				t.Fatal("no free space")
			}
			if _, err := tab.Add(Partition{Type: TypeRootAMD64, UUID: guid(0x20, 5), Name: "root", FirstLBA: free.FirstLBA, LastLBA: free.LastLBA}); err != nil {
				t.Fatal(err)
			}
		}
		return tab.Write(&countingWriter{w: d, limit: limit}, big)
	}
	final := newMemDisk(big)
	copy(final.b, base.b)
	tabNew, _ := Read(final, big, 512)
	if err := firstBoot(t, tabNew, final, -1); err != nil {
		t.Fatal(err)
	}
	for limit := 0; limit <= 5; limit++ {
		d := base.clone()
		tab, _ := Read(d, big, 512)
		err := firstBoot(t, tab, d, limit)
		if limit < 5 && !errors.Is(err, errPowerLoss) || limit == 5 && err != nil {
			t.Fatalf("limit %d: Write: %v", limit, err)
		}
		got, err := Read(d, big, 512)
		if err != nil {
			t.Fatalf("limit %d: Read after power loss: %v", limit, err)
		}
		wantParts := old.Partitions
		if limit >= 3 { // primary entries or header already new
			wantParts = tabNew.Partitions
		}
		if !reflect.DeepEqual(got.Partitions, wantParts) {
			t.Fatalf("limit %d: read %d partitions (source %v), want %d", limit, len(got.Partitions), got.Source, len(wantParts))
		}
		// Rebooting redoes the first-boot steps and converges.
		if err := firstBoot(t, got, d, -1); err != nil {
			t.Fatalf("limit %d: redo: %v", limit, err)
		}
		if !bytes.Equal(d.b, final.b) {
			t.Errorf("limit %d: disk after redo differs from an uninterrupted first boot", limit)
		}
	}
}

func TestAppendErrors(t *testing.T) {
	tab, err := New(16*mib, 512, testDiskGUID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tab.Append(Partition{Type: TypeESP, Name: "esp"}, 8*mib, 0); err != nil {
		t.Fatal(err)
	}
	_, err = tab.Append(Partition{Type: TypeUsrAMD64, Name: "usr"}, 8*mib, 0)
	want := `gpt: append partition "usr": not enough space on disk: disk is 16777216 bytes, partitions need 17842688`
	if !errors.Is(err, ErrNoSpace) || err.Error() != want {
		t.Errorf("Append error\n%v\nwant\n%s", err, want)
	}
	for _, tc := range []struct {
		name  string
		p     Partition
		size  int64
		align int64
		want  error
	}{
		{"negative size", Partition{Type: TypeESP}, -1, 0, ErrInvalid},
		{"bad alignment", Partition{Type: TypeESP}, 512, 1000, ErrInvalid},
		{"zero type", Partition{}, 512, 0, ErrInvalid},
		{"index taken", Partition{Index: 1, Type: TypeESP}, 512, 0, ErrInvalid},
		{"duplicate UUID", Partition{Type: TypeESP, UUID: guid(9, 9)}, 512, 512, ErrInvalid},
		{"long name", Partition{Type: TypeESP, Name: strings.Repeat("n", 40)}, 512, 0, ErrInvalid},
		{"fill without room", Partition{Type: TypeESP}, 0, 8 * mib, ErrNoSpace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, _ := New(16*mib, 512, testDiskGUID)
			if _, err := tab.Append(Partition{Type: TypeESP, UUID: guid(9, 9)}, 8*mib, 0); err != nil {
				t.Fatal(err)
			}
			before := len(tab.Partitions)
			if _, err := tab.Append(tc.p, tc.size, tc.align); !errors.Is(err, tc.want) {
				t.Errorf("Append error %v, want %v", err, tc.want)
			}
			if len(tab.Partitions) != before {
				t.Errorf("failed Append changed the table")
			}
		})
	}
}

func TestAppendPlacement(t *testing.T) {
	tab, err := New(64*mib, 4096, testDiskGUID)
	if err != nil {
		t.Fatal(err)
	}
	if tab.FirstUsableLBA != 6 || tab.LastUsableLBA != 64*mib/4096-6 {
		t.Errorf("4096-byte sectors: usable %d-%d", tab.FirstUsableLBA, tab.LastUsableLBA)
	}
	a, _ := tab.Append(Partition{Type: TypeESP, UUID: guid(1, 1)}, 4097, 0)
	b, _ := tab.Append(Partition{Type: TypeUsrAMD64, UUID: guid(1, 2)}, 1*mib, 64*kib)
	c, _ := tab.Append(Partition{Type: TypeRootAMD64, UUID: guid(1, 3)}, 0, 0)
	want := []Partition{
		{Index: 1, Type: TypeESP, UUID: guid(1, 1), FirstLBA: 256, LastLBA: 257},
		{Index: 2, Type: TypeUsrAMD64, UUID: guid(1, 2), FirstLBA: 272, LastLBA: 527},
		{Index: 3, Type: TypeRootAMD64, UUID: guid(1, 3), FirstLBA: 768, LastLBA: tab.LastUsableLBA},
	}
	if got := []Partition{a, b, c}; !reflect.DeepEqual(got, want) || !reflect.DeepEqual(tab.Partitions, want) {
		t.Errorf("placed\n%+v\nwant\n%+v", got, want)
	}
	if a.Offset(4096) != 1*mib || b.Size(4096) != 1*mib {
		t.Errorf("Offset/Size: %d %d", a.Offset(4096), b.Size(4096))
	}
	if free := tab.FreeRanges(); !reflect.DeepEqual(free, []Range{{6, 255}, {258, 271}, {528, 767}}) {
		t.Errorf("FreeRanges = %v", free)
	}
	if r, ok := tab.LargestFree(0); ok {
		t.Errorf("LargestFree(1 MiB) = %v, want none", r)
	}
	if r, ok := tab.LargestFree(4096); !ok || r != (Range{6, 255}) {
		t.Errorf("LargestFree(4096) = %v, %v", r, ok)
	}
}

func TestFreeRanges(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parts [][2]uint64
		want  []Range
	}{
		{"empty", nil, []Range{{34, 1000}}},
		{"full", [][2]uint64{{34, 1000}}, nil},
		{"middle", [][2]uint64{{100, 199}}, []Range{{34, 99}, {200, 1000}}},
		{"unsorted", [][2]uint64{{500, 1000}, {34, 99}, {200, 299}}, []Range{{100, 199}, {300, 499}}},
		{"adjacent", [][2]uint64{{34, 99}, {100, 199}}, []Range{{200, 1000}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := &Table{SectorSize: 512, FirstUsableLBA: 34, LastUsableLBA: 1000}
			for i, p := range tc.parts {
				tab.Partitions = append(tab.Partitions, Partition{Index: i + 1, Type: TypeESP, FirstLBA: p[0], LastLBA: p[1]})
			}
			if got := tab.FreeRanges(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("FreeRanges = %v, want %v", got, tc.want)
			}
		})
	}
	if got := (&Table{}).FreeRanges(); got != nil {
		t.Errorf("zero Table: %v", got)
	}
}

func TestFind(t *testing.T) {
	tab := testLayout(t, 64*mib, 512, true)
	if p, ok := tab.ByUUID(testUsrUUID); !ok || p.Index != 2 || p.Type != TypeUsrAMD64 {
		t.Errorf("ByUUID = %+v, %v", p, ok)
	}
	if _, ok := tab.ByUUID(guid(7, 7)); ok {
		t.Errorf("ByUUID found a missing UUID")
	}
	if ps := tab.ByType(TypeRootAMD64); len(ps) != 1 || ps[0].Name != "root" {
		t.Errorf("ByType = %+v", ps)
	}
	if ps := tab.ByType(TypeXBOOTLDR); ps != nil {
		t.Errorf("ByType(XBOOTLDR) = %+v", ps)
	}
	if p, ok := tab.Find(func(p Partition) bool { return p.Name == "usr-verity" }); !ok || p.Index != 3 {
		t.Errorf("Find = %+v, %v", p, ok)
	}
}

func TestNew(t *testing.T) {
	if _, err := New(1*mib, 500, testDiskGUID); !errors.Is(err, ErrInvalid) {
		t.Errorf("sector size 500: %v", err)
	}
	if _, err := New(20*kib, 512, testDiskGUID); !errors.Is(err, ErrNoSpace) {
		t.Errorf("20 KiB disk: %v", err)
	}
	tab, err := New(64*mib, 512, testDiskGUID)
	if err != nil || tab.FirstUsableLBA != 34 || tab.LastUsableLBA != 64*mib/512-34 || tab.NumEntries != 128 {
		t.Errorf("New = %+v, %v", tab, err)
	}
}

func TestGrowErrors(t *testing.T) {
	tab, _ := New(64*mib, 512, testDiskGUID)
	if _, err := tab.Grow(32 * mib); !errors.Is(err, ErrNoSpace) {
		t.Errorf("shrink: %v", err)
	}
	if _, err := tab.Grow(1024); !errors.Is(err, ErrNoSpace) {
		t.Errorf("tiny: %v", err)
	}
	if grew, err := tab.Grow(64*mib + 511); grew || err != nil {
		t.Errorf("partial sector: %v, %v", grew, err)
	}
}
