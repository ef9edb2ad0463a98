package gpt

import (
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestSgdisk checks images written by this package with an independent
// implementation: sgdisk must find no problems and must decode GUIDs, types,
// sectors, attributes and names exactly as written. This proves the
// mixed-endian GUID encoding.
func TestSgdisk(t *testing.T) {
	requireTool(t, "sgdisk")
	const size = 64 * mib
	tab, err := New(size, 512, testDiskGUID)
	if err != nil {
		t.Fatal(err)
	}
	// Names stay in the BMP: sgdisk 1.0.9 prints surrogate pairs garbled.
	typeNames := make(map[int]string) // partition index -> sgdisk's type name
	for _, x := range []struct {
		p     Partition
		size  int64
		sgdsk string // sgdisk's name for the type, proving the type GUID
	}{
		{Partition{Type: TypeESP, UUID: MustParseGUID("c0ffee00-0000-4000-8000-000000000001"), Name: "esp", Attributes: AttrRequired}, 8 * mib, "EFI system partition"},
		{Partition{Type: TypeXBOOTLDR, UUID: MustParseGUID("c0ffee00-0000-4000-8000-000000000002"), Name: "xbootldr"}, 1 * mib, "XBOOTLDR partition"},
		{Partition{Type: TypeUsrAMD64, UUID: testUsrUUID, Name: "usr-ärger", Attributes: AttrReadOnly}, 4 * mib, "Linux x86-64 /usr"},
		{Partition{Type: TypeUsrVerityAMD64, UUID: MustParseGUID("f0e0d0c0-b0a0-9080-7060-504030201000"), Name: "usr-verity"}, 1 * mib, "Linux x86-64 /usr verity"},
		{Partition{Type: TypeUsrVeritySigAMD64, UUID: MustParseGUID("c0ffee00-0000-4000-8000-000000000005"), Name: "usr-verity-sig"}, 16 * kib, ""}, // unknown to sgdisk 1.0.9
		{Partition{Type: TypeRootVerityAMD64, UUID: MustParseGUID("c0ffee00-0000-4000-8000-000000000006"), Name: "root-verity"}, 1 * mib, "Linux x86-64 root verity"},
		{Partition{Type: TypeRootVeritySigAMD64, UUID: MustParseGUID("c0ffee00-0000-4000-8000-000000000007"), Name: "root-verity-sig"}, 16 * kib, ""},
		{Partition{Type: TypeLinuxGeneric, UUID: MustParseGUID("c0ffee00-0000-4000-8000-000000000008"), Name: "data"}, 1 * mib, "Linux filesystem"},
		{Partition{Type: TypeRootAMD64, UUID: MustParseGUID("c0ffee00-0000-4000-8000-000000000009"), Name: "root-with-a-thirty-six-char-long-nam", Attributes: AttrGrowFS | AttrNoAuto}, 0, "Linux x86-64 root (/)"},
	} {
		p, err := tab.Append(x.p, x.size, 0)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		typeNames[p.Index] = x.sgdsk
	}
	path := writeImage(t, tab, size)
	sgdiskVerify(t, path)
	back, err := readImage(t, path, 512)
	if err != nil || !reflect.DeepEqual(back.Partitions, tab.Partitions) {
		t.Fatalf("read back: %v\n%+v\nwant\n%+v", err, back, tab.Partitions)
	}

	out := sgdisk(t, "-p", path)
	if !strings.Contains(out, "Disk identifier (GUID): 11111111-2222-3333-4444-555555555555") {
		t.Errorf("sgdisk -p shows another disk GUID:\n%s", out)
	}
	if !strings.Contains(out, "First usable sector is 34, last usable sector is "+strconv.Itoa(size/512-34)) {
		t.Errorf("sgdisk -p shows another usable range:\n%s", out)
	}

	for _, p := range tab.Partitions {
		info := sgdiskInfo(t, path, p.Index)
		wantType := strings.ToUpper(p.Type.String()) + " (" + typeNames[p.Index] + ")"
		if typeNames[p.Index] == "" {
			wantType = strings.ToUpper(p.Type.String()) + " (Unknown)"
		}
		for key, want := range map[string]string{
			"Partition GUID code":   wantType,
			"Partition unique GUID": strings.ToUpper(p.UUID.String()),
			"Attribute flags":       strings.Repeat("0", 16-len(strconv.FormatUint(p.Attributes, 16))) + strconv.FormatUint(p.Attributes, 16),
			"Partition name":        "'" + p.Name + "'",
		} {
			if got := info[key]; got != want {
				t.Errorf("%s: %s = %q, want %q", p.label(), key, got, want)
			}
		}
		if got := info["First sector"]; !strings.HasPrefix(got, strconv.FormatUint(p.FirstLBA, 10)+" ") {
			t.Errorf("%s: first sector %q, want %d", p.label(), got, p.FirstLBA)
		}
		if got := info["Last sector"]; !strings.HasPrefix(got, strconv.FormatUint(p.LastLBA, 10)+" ") {
			t.Errorf("%s: last sector %q, want %d", p.label(), got, p.LastLBA)
		}
	}
	if got := sgdiskInfo(t, path, 3)["Partition unique GUID"]; got != "01020304-0506-0708-090A-0B0C0D0E0F10" {
		t.Errorf("usr PARTUUID shown by sgdisk as %q", got)
	}
}

// TestGrowDisk follows the initrd's first boot on a grown disk: an image
// written for 64 MiB lands on a 128 MiB disk; the backup GPT moves to the
// new end and a root partition fills the new space.
func TestGrowDisk(t *testing.T) {
	const small, big = 64 * mib, 128 * mib
	for _, tc := range []struct {
		name           string
		corruptPrimary bool
	}{
		{"intact", false},
		{"corrupt-primary", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireTool(t, "sgdisk") // TestPowerLoss covers growing without it
			path := writeImage(t, testLayout(t, small, 512, false), small)
			sgdiskVerify(t, path)
			if err := os.Truncate(path, big); err != nil {
				t.Fatal(err)
			}
			// sgdisk itself notices the backup is not at the end.
			if out := sgdisk(t, "-v", path); strings.Contains(out, "No problems found") {
				t.Errorf("sgdisk -v finds no problem on the grown disk:\n%s", out)
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if tc.corruptPrimary {
				if _, err := f.WriteAt([]byte{0xff}, 512+48); err != nil {
					t.Fatal(err)
				}
			}

			tab, err := Read(f, big, 512)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			wantSource := SourcePrimary
			if tc.corruptPrimary {
				wantSource = SourceBackup
			}
			if tab.Source != wantSource || tab.BackupErr != nil || tab.BackupLBA != small/512-1 {
				t.Fatalf("Source %v, BackupErr %v, BackupLBA %d; want %v, nil, %d", tab.Source, tab.BackupErr, tab.BackupLBA, wantSource, small/512-1)
			}
			grew, err := tab.Grow(big)
			if err != nil || !grew {
				t.Fatalf("Grow = %v, %v; want true, nil", grew, err)
			}
			if tab.LastUsableLBA != big/512-34 {
				t.Errorf("LastUsableLBA = %d, want %d", tab.LastUsableLBA, big/512-34)
			}
			free, ok := tab.LargestFree(0)
			if !ok || free.FirstLBA%2048 != 0 || free.LastLBA != tab.LastUsableLBA || free.FirstLBA*512 > small {
				t.Fatalf("LargestFree = %+v, %v", free, ok)
			}
			root, err := tab.Add(Partition{Type: TypeRootAMD64, UUID: guid(0x20, 5), Name: "root", Attributes: AttrGrowFS,
				FirstLBA: free.FirstLBA, LastLBA: free.LastLBA})
			if err != nil {
				t.Fatalf("Add: %v", err)
			}
			if root.Index != 5 {
				t.Errorf("root got index %d, want 5", root.Index)
			}
			if err := tab.Write(f, big); err != nil {
				t.Fatalf("Write: %v", err)
			}
			sgdiskVerify(t, path)
			info := sgdiskInfo(t, path, root.Index)
			if got := info["Partition unique GUID"]; got != strings.ToUpper(root.UUID.String()) {
				t.Errorf("root UUID %q", got)
			}
			if got := info["Last sector"]; !strings.HasPrefix(got, strconv.Itoa(big/512-34)+" ") {
				t.Errorf("root last sector %q", got)
			}

			again, err := Read(f, big, 512)
			if err != nil || again.Source != SourcePrimary || again.BackupErr != nil || again.BackupLBA != big/512-1 {
				t.Fatalf("re-read: %v %+v", err, again)
			}
			if !reflect.DeepEqual(again.Partitions, tab.Partitions) {
				t.Errorf("re-read partitions differ")
			}
			if grew, err := again.Grow(big); grew || err != nil {
				t.Errorf("second Grow = %v, %v; want false, nil", grew, err)
			}
			if _, err := again.Grow(small); !errors.Is(err, ErrNoSpace) {
				t.Errorf("Grow to a smaller disk: %v", err)
			}
		})
	}
}
