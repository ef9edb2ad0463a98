package gpt

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

var (
	testDiskGUID = MustParseGUID("11111111-2222-3333-4444-555555555555")
	testUsrUUID  = MustParseGUID("01020304-0506-0708-090a-0b0c0d0e0f10")
)

// testLayout lays out an ingot-like disk: ESP, usr, usr-verity and
// usr-verity-sig; with root it adds a root partition filling the rest.
func testLayout(t *testing.T, size int64, ss int, root bool) *Table {
	t.Helper()
	tab, err := New(size, ss, testDiskGUID)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	parts := []struct {
		p    Partition
		size int64
	}{
		{Partition{Type: TypeESP, UUID: guid(0xe5, 1), Name: "esp", Attributes: AttrRequired}, 8 * mib},
		{Partition{Type: TypeUsrAMD64, UUID: testUsrUUID, Name: "usr-ü-𝔘", Attributes: AttrReadOnly}, 16*mib + 512},
		{Partition{Type: TypeUsrVerityAMD64, UUID: guid(0xa7, 3), Name: "usr-verity", Attributes: AttrReadOnly}, 1 * mib},
		{Partition{Type: TypeUsrVeritySigAMD64, UUID: guid(0xa8, 4), Name: "usr-verity-sig"}, 16 * kib},
	}
	if root {
		parts = append(parts, struct {
			p    Partition
			size int64
		}{Partition{Type: TypeRootAMD64, UUID: guid(0x20, 5), Name: "root", Attributes: AttrGrowFS}, 0})
	}
	for _, x := range parts {
		if _, err := tab.Append(x.p, x.size, 0); err != nil {
			t.Fatalf("Append %q: %v", x.p.Name, err)
		}
	}
	return tab
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
		ss   int
		root bool
	}{
		{"512", 32 * mib, 512, false},
		{"512-root", 32 * mib, 512, true},
		{"4096", 32 * mib, 4096, true},
		{"512-odd-size", 32*mib + 1000, 512, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := testLayout(t, tc.size, tc.ss, tc.root)
			d := newMemDisk(tc.size)
			if err := want.Write(d, tc.size); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got, err := Read(d, tc.size, tc.ss)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if got.Source != SourcePrimary || got.PrimaryErr != nil || got.BackupErr != nil {
				t.Errorf("Source %v, PrimaryErr %v, BackupErr %v; want primary and no errors", got.Source, got.PrimaryErr, got.BackupErr)
			}
			lastLBA := uint64(tc.size/int64(tc.ss)) - 1
			if got.BackupLBA != lastLBA {
				t.Errorf("BackupLBA = %d, want %d", got.BackupLBA, lastLBA)
			}
			got.Source, got.BackupLBA = SourceNone, 0
			if !reflect.DeepEqual(got, want) {
				t.Errorf("read back\n%+v\nwant\n%+v", got, want)
			}
			for _, p := range want.Partitions {
				if p.FirstLBA*uint64(tc.ss)%mib != 0 {
					t.Errorf("%s starts at LBA %d, not 1 MiB aligned", p.label(), p.FirstLBA)
				}
			}
		})
	}
}

// TestHeaderFields checks the raw on-disk bytes against the UEFI layout.
func TestHeaderFields(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(strconv.Itoa(ss), func(t *testing.T) {
			const size = 64 * mib
			tab := testLayout(t, size, ss, true)
			d := newMemDisk(size)
			if err := tab.Write(d, size); err != nil {
				t.Fatal(err)
			}
			le := binary.LittleEndian
			lastLBA := uint64(size/ss) - 1
			es := uint64(128 * 128 / ss)

			mbr := d.b[:512]
			if mbr[510] != 0x55 || mbr[511] != 0xAA {
				t.Errorf("MBR signature %x %x", mbr[510], mbr[511])
			}
			if mbr[446+4] != 0xEE || le.Uint32(mbr[446+8:]) != 1 || le.Uint32(mbr[446+12:]) != uint32(lastLBA) {
				t.Errorf("protective MBR entry %x", mbr[446:462])
			}
			for i := 462; i < 510; i++ {
				if mbr[i] != 0 {
					t.Fatalf("MBR partition entries 2-4 not empty")
				}
			}

			for _, c := range []struct {
				name                 string
				lba, alt, entriesLBA uint64
			}{
				{"primary", 1, lastLBA, 2},
				{"backup", lastLBA, 1, lastLBA - es},
			} {
				h := d.b[c.lba*uint64(ss) : (c.lba+1)*uint64(ss)]
				check := func(field string, got, want uint64) {
					if got != want {
						t.Errorf("%s %s = %d, want %d", c.name, field, got, want)
					}
				}
				if string(h[:8]) != "EFI PART" {
					t.Errorf("%s signature %q", c.name, h[:8])
				}
				check("revision", uint64(le.Uint32(h[8:])), 0x00010000)
				check("header size", uint64(le.Uint32(h[12:])), 92)
				tmp := append([]byte(nil), h[:92]...)
				clear(tmp[16:20])
				check("header CRC", uint64(le.Uint32(h[16:])), uint64(crc32.ChecksumIEEE(tmp)))
				check("reserved", uint64(le.Uint32(h[20:])), 0)
				check("my LBA", le.Uint64(h[24:]), c.lba)
				check("alternate LBA", le.Uint64(h[32:]), c.alt)
				check("first usable LBA", le.Uint64(h[40:]), 2+es)
				check("last usable LBA", le.Uint64(h[48:]), lastLBA-1-es)
				if ss == 512 {
					check("first usable LBA (512)", le.Uint64(h[40:]), 34)
					check("last usable LBA (512)", le.Uint64(h[48:]), lastLBA-33)
				}
				check("entries LBA", le.Uint64(h[72:]), c.entriesLBA)
				check("entry count", uint64(le.Uint32(h[80:])), 128)
				check("entry size", uint64(le.Uint32(h[84:])), 128)
				ents := d.b[c.entriesLBA*uint64(ss) : c.entriesLBA*uint64(ss)+128*128]
				check("entries CRC", uint64(le.Uint32(h[88:])), uint64(crc32.ChecksumIEEE(ents)))
				for i := 92; i < ss; i++ {
					if h[i] != 0 {
						t.Fatalf("%s header byte %d not zero", c.name, i)
					}
				}
				// The disk GUID 11111111-2222-3333-... is mixed-endian on disk.
				wantGUID := []byte{0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55}
				if string(h[56:72]) != string(wantGUID) {
					t.Errorf("%s disk GUID bytes %x", c.name, h[56:72])
				}
				// Entry 2 is usr with UUID 01020304-0506-0708-090a-0b0c0d0e0f10.
				e := ents[128:256]
				wantUUID := []byte{4, 3, 2, 1, 6, 5, 8, 7, 9, 10, 11, 12, 13, 14, 15, 16}
				if string(e[16:32]) != string(wantUUID) {
					t.Errorf("%s usr entry UUID bytes %x, want %x", c.name, e[16:32], wantUUID)
				}
				wantType := []byte{0x0c, 0x68, 0x84, 0x84, 0x21, 0x95, 0xc6, 0x48, 0x9c, 0x11, 0xb0, 0x72, 0x06, 0x56, 0xf6, 0x9e}
				if string(e[0:16]) != string(wantType) {
					t.Errorf("%s usr entry type bytes %x, want %x", c.name, e[0:16], wantType)
				}
				if string(e[56:62]) != "u\x00s\x00r\x00" {
					t.Errorf("%s usr name bytes %q", c.name, e[56:62])
				}
			}
		})
	}
}

func TestProtectiveMBRCap(t *testing.T) {
	for _, tc := range []struct {
		lastLBA uint64
		want    uint32
	}{
		{131071, 131071},
		{0xFFFFFFFE, 0xFFFFFFFE},
		{0xFFFFFFFF, 0xFFFFFFFF},
		{1 << 40, 0xFFFFFFFF},
	} {
		b := protectiveMBR(512, tc.lastLBA)
		if got := binary.LittleEndian.Uint32(b[446+12:]); got != tc.want {
			t.Errorf("lastLBA %d: MBR size %#x, want %#x", tc.lastLBA, got, tc.want)
		}
	}
}

func TestFallbackToBackup(t *testing.T) {
	const size = 32 * mib
	lastLBA := uint64(size/512) - 1
	for _, tc := range []struct {
		name       string
		corrupt    func(b []byte)
		wantSource Source
		wantErr    error // from Read
		backupErr  bool
	}{
		{"intact", func([]byte) {}, SourcePrimary, nil, false},
		{"primary header CRC", func(b []byte) { b[512+40]++ }, SourceBackup, nil, false},
		{"primary signature", func(b []byte) { b[512] = 'X' }, SourceBackup, nil, false},
		{"primary zeroed", func(b []byte) { clear(b[512 : 34*512]) }, SourceBackup, nil, false},
		{"primary entries CRC", func(b []byte) { b[2*512+200]++ }, SourceBackup, nil, false},
		{"backup header CRC", func(b []byte) { b[lastLBA*512+40]++ }, SourcePrimary, nil, true},
		{"backup entries CRC", func(b []byte) { b[(lastLBA-32)*512+7]++ }, SourcePrimary, nil, true},
		{"both corrupt", func(b []byte) { b[512+40]++; b[lastLBA*512+40]++ }, SourceNone, ErrCorrupt, false},
		{"no table", func(b []byte) { clear(b) }, SourceNone, ErrNoTable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := testLayout(t, size, 512, true)
			d := newMemDisk(size)
			if err := want.Write(d, size); err != nil {
				t.Fatal(err)
			}
			tc.corrupt(d.b)
			got, err := Read(d, size, 512)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Read error %v, want %v", err, tc.wantErr)
				}
				if tc.wantErr == ErrCorrupt && errors.Is(err, ErrNoTable) {
					t.Errorf("corrupt table reported as ErrNoTable: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if got.Source != tc.wantSource {
				t.Errorf("Source = %v, want %v", got.Source, tc.wantSource)
			}
			if (got.Source == SourceBackup) != (got.PrimaryErr != nil) {
				t.Errorf("PrimaryErr = %v with Source %v", got.PrimaryErr, got.Source)
			}
			if got.PrimaryErr != nil && !errors.Is(got.PrimaryErr, ErrCorrupt) {
				t.Errorf("PrimaryErr %v does not match ErrCorrupt", got.PrimaryErr)
			}
			if (got.BackupErr != nil) != tc.backupErr {
				t.Errorf("BackupErr = %v, want error: %v", got.BackupErr, tc.backupErr)
			}
			if !reflect.DeepEqual(got.Partitions, want.Partitions) {
				t.Errorf("partitions differ:\n%+v\n%+v", got.Partitions, want.Partitions)
			}
			// Writing the table back repairs both copies.
			if err := got.Write(d, size); err != nil {
				t.Fatalf("repair Write: %v", err)
			}
			again, err := Read(d, size, 512)
			if err != nil || again.Source != SourcePrimary || again.BackupErr != nil {
				t.Fatalf("after repair: err %v, table %+v", err, again)
			}
		})
	}
}

func TestReadRejects(t *testing.T) {
	const size = 32 * mib
	le := binary.LittleEndian
	// fix recomputes the primary header CRC after a field change so that
	// the semantic check, not the CRC, rejects it; the backup is wiped so
	// no fallback hides the error.
	fix := func(b []byte) {
		h := b[512:1024]
		clear(h[16:20])
		le.PutUint32(h[16:20], crc32.ChecksumIEEE(h[:le.Uint32(h[12:16])]))
		clear(b[len(b)-512:])
	}
	for _, tc := range []struct {
		name string
		mod  func(b []byte)
		want string
	}{
		{"header CRC", func(b []byte) { b[512+40]++; clear(b[len(b)-512:]) }, "header CRC32"},
		{"revision", func(b []byte) { le.PutUint32(b[512+8:], 0x00020000); fix(b) }, "revision"},
		{"header size small", func(b []byte) { le.PutUint32(b[512+12:], 91); fix(b) }, "header size"},
		{"header size big", func(b []byte) { le.PutUint32(b[512+12:], 513); le.PutUint32(b[512+16:], 0); clear(b[len(b)-512:]) }, "header size"},
		{"my LBA", func(b []byte) { le.PutUint64(b[512+24:], 2); fix(b) }, "claims to be at LBA"},
		{"entry count 0", func(b []byte) { le.PutUint32(b[512+80:], 0); fix(b) }, "entry count"},
		{"entry count huge", func(b []byte) { le.PutUint32(b[512+80:], 1<<31); fix(b) }, "entry count"},
		{"entry size 100", func(b []byte) { le.PutUint32(b[512+84:], 100); fix(b) }, "entry size"},
		{"entry size huge", func(b []byte) { le.PutUint32(b[512+84:], 1<<30); fix(b) }, "entry size"},
		{"last usable beyond disk", func(b []byte) { le.PutUint64(b[512+48:], 1<<40); fix(b) }, "usable range"},
		{"first after last", func(b []byte) { le.PutUint64(b[512+40:], size/512-33); fix(b) }, "usable range"},
		{"entries overlap usable", func(b []byte) { le.PutUint64(b[512+40:], 20); fix(b) }, "partition entries at LBA"},
		{"alternate beyond disk", func(b []byte) { le.PutUint64(b[512+32:], 1<<40); fix(b) }, "backup header LBA"},
		{"entries CRC", func(b []byte) { b[2*512+200]++; clear(b[len(b)-512:]) }, "entries CRC32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := testLayout(t, size, 512, false)
			d := newMemDisk(size)
			if err := tab.Write(d, size); err != nil {
				t.Fatal(err)
			}
			tc.mod(d.b)
			_, err := Read(d, size, 512)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read error %v, want ErrCorrupt mentioning %q", err, tc.want)
			}
		})
	}
}

// rewriteEntries replaces the partition entries of both copies on d with
// parts, bypassing Write's validation, and fixes all CRCs.
func rewriteEntries(t *testing.T, d *memDisk, parts []Partition) {
	t.Helper()
	le := binary.LittleEndian
	ents := make([]byte, 128*128)
	for _, p := range parts {
		e := ents[(p.Index-1)*128:]
		putGUID(e[0:], p.Type)
		putGUID(e[16:], p.UUID)
		le.PutUint64(e[32:], p.FirstLBA)
		le.PutUint64(e[40:], p.LastLBA)
	}
	crc := crc32.ChecksumIEEE(ents)
	for _, lba := range []int64{1, d.size()/512 - 1} {
		h := d.b[lba*512 : lba*512+512]
		el := int64(le.Uint64(h[72:]))
		copy(d.b[el*512:], ents)
		le.PutUint32(h[88:], crc)
		clear(h[16:20])
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	}
}

func TestReadRejectsBadPartitions(t *testing.T) {
	const size = 32 * mib
	for _, tc := range []struct {
		name  string
		parts []Partition
		want  string
	}{
		{"overlap", []Partition{
			{Index: 1, Type: TypeESP, UUID: guid(1, 1), FirstLBA: 2048, LastLBA: 4095},
			{Index: 2, Type: TypeESP, UUID: guid(1, 2), FirstLBA: 4095, LastLBA: 5000},
		}, "overlap"},
		{"before first usable", []Partition{{Index: 1, Type: TypeESP, UUID: guid(1, 1), FirstLBA: 33, LastLBA: 100}}, "outside the usable range"},
		{"after last usable", []Partition{{Index: 1, Type: TypeESP, UUID: guid(1, 1), FirstLBA: 2048, LastLBA: size/512 - 33}}, "outside the usable range"},
		{"reversed", []Partition{{Index: 1, Type: TypeESP, UUID: guid(1, 1), FirstLBA: 3000, LastLBA: 2048}}, "is after last LBA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := testLayout(t, size, 512, false)
			d := newMemDisk(size)
			if err := tab.Write(d, size); err != nil {
				t.Fatal(err)
			}
			rewriteEntries(t, d, tc.parts)
			_, err := Read(d, size, 512)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read error %v, want ErrCorrupt mentioning %q", err, tc.want)
			}
		})
	}
}

func TestReadArguments(t *testing.T) {
	d := newMemDisk(1 * mib)
	if _, err := Read(d, d.size(), 500); !errors.Is(err, ErrInvalid) {
		t.Errorf("sector size 500: %v", err)
	}
	if _, err := Read(d, 1024, 512); !errors.Is(err, ErrNoTable) {
		t.Errorf("tiny disk: %v", err)
	}
	if _, err := Read(d, -1, 512); !errors.Is(err, ErrNoTable) {
		t.Errorf("negative size: %v", err)
	}
	// A disk that claims to be larger than the data: the backup read is
	// short, which must be an error, not a panic.
	tab := testLayout(t, 32*mib, 512, false)
	if err := tab.Write(d, 32*mib); err != nil {
		t.Fatal(err)
	}
	d.b = d.b[:2*mib]
	got, err := Read(d, 32*mib, 512)
	if err != nil {
		t.Fatalf("truncated disk: %v", err)
	}
	if got.BackupErr == nil {
		t.Errorf("truncated disk: BackupErr is nil")
	}
}

func TestSourceString(t *testing.T) {
	for s, want := range map[Source]string{SourceNone: "none", SourcePrimary: "primary", SourceBackup: "backup", Source(7): "Source(7)"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", int(s), s.String(), want)
		}
	}
}
