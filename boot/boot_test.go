package boot

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/layout"
)

const hash = "c87e212239020fcd6f8982d446964d092064678c94a79551a04b0a9f50f7fd14"

func FuzzParseCmdline(f *testing.F) {
	f.Add("usrhash=" + hash + " console=ttyS0")
	f.Add(`a="b c" usrhash=` + hash + ` init=/x`)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := layout.ParseBoot(s)
		if err == nil && len(p.UsrHash) < 32 {
			t.Fatalf("accepted a short usrhash: %q", s)
		}
	})
}

func TestPlanOrder(t *testing.T) {
	var names []string
	for _, s := range Plan() {
		names = append(names, s.Name)
	}
	want := "mount API filesystems, measure enter-initrd, read kernel command line, load kernel modules, mount efivarfs, find usr partitions, verify usr signature, " +
		"set up dm-verity for /usr, mount /usr, prepare root partition, mount root, populate root, " +
		"activate extensions, mount /etc overlay, apply machine configuration, set machine-id, record boot, measure leave-initrd, switch root"
	if got := strings.Join(names, ", "); got != want {
		t.Errorf("plan:\n got %s\nwant %s", got, want)
	}
}

// fakeDisk writes an ingot-like partition table to a file of size bytes.
func fakeDisk(t *testing.T, path string, size int64, usrHash []byte) *gpt.Table {
	t.Helper()
	tab, err := gpt.New(size, 512, gpt.MustParseGUID("11111111-2222-4333-8444-555555555555"))
	if err != nil {
		t.Fatal(err)
	}
	usr, verity := layout.UsrPartUUIDs(usrHash)
	parts := []gpt.Partition{
		{Index: 1, Type: layout.TypeESP, UUID: gpt.MustParseGUID("00000000-0000-4000-8000-000000000001"), Name: "esp"},
		{Index: 2, Type: layout.TypeUsr, UUID: usr, Name: "ingot_1"},
		{Index: 3, Type: layout.TypeUsrVerity, UUID: verity, Name: "ingot_1_verity"},
		{Index: 5, Type: layout.TypeUsr, UUID: gpt.MustParseGUID("00000000-0000-4000-8000-000000000005"), Name: "_empty"},
	}
	for _, p := range parts {
		if _, err := tab.Append(p, 1<<20, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := tab.Write(f, size); err != nil {
		t.Fatal(err)
	}
	return tab
}

// fakeSys lays out /sys/class/block for disk vda with the given partitions.
func fakeSys(t *testing.T, root string, sizeBytes int64, parts ...int) {
	t.Helper()
	fakeSysDisk(t, root, "vda", sizeBytes, parts...)
}

// fakeSysDisk lays out /sys/class/block for disk name with the given
// partitions.
func fakeSysDisk(t *testing.T, root, name string, sizeBytes int64, parts ...int) {
	t.Helper()
	base := filepath.Join(root, "sys/class/block", name)
	write := func(p, v string) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(base, "size"), itoa(sizeBytes/512))
	write(filepath.Join(base, "queue/logical_block_size"), "512")
	for _, n := range parts {
		write(filepath.Join(base, name+itoa(int64(n)), "partition"), itoa(int64(n)))
	}
	// A partition appears as its own entry too, and must be skipped.
	write(filepath.Join(root, "sys/class/block", name+"2/partition"), "2")
	write(filepath.Join(root, "sys/class/block", name+"2/size"), "2048")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestFindUsr(t *testing.T) {
	root := t.TempDir()
	const size = 64 << 20
	h := bytes.Repeat([]byte{0xab}, 16)
	h = append(h, bytes.Repeat([]byte{0xcd}, 16)...)
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	fakeDisk(t, filepath.Join(root, "dev/vda"), size, h)
	fakeSys(t, root, size, 1, 2, 3, 5)

	s := &State{Config: Config{Root: root, Console: &bytes.Buffer{}}, Params: layout.DefaultBoot()}
	s.Params.UsrHash = h
	s.Params.DeviceTimeout = time.Second
	if err := findUsr(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if s.Disk != "/dev/vda" || s.UsrPart != "/dev/vda2" || s.VerityPart != "/dev/vda3" || s.Slot != "a" {
		t.Errorf("found disk %s usr %s verity %s slot %s", s.Disk, s.UsrPart, s.VerityPart, s.Slot)
	}

	s.Params.UsrHash = bytes.Repeat([]byte{0x11}, 32)
	err := findUsr(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "no disk has a usr partition with PARTUUID 11111111-1111-1111-1111-111111111111") {
		t.Errorf("unknown usrhash: %v", err)
	}
}

// TestAddRootPartition grows a table onto a larger disk and adds root, as
// the first boot does; sgdisk must accept the result.
func TestAddRootPartition(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.img")
	h := append(bytes.Repeat([]byte{0x42}, 16), bytes.Repeat([]byte{0x24}, 16)...)
	fakeDisk(t, path, 16<<20, h)
	const grown = 600 << 20
	if err := os.Truncate(path, grown); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := gpt.Read(f, grown, 512)
	if err != nil {
		t.Fatal(err)
	}
	p, err := addRootPartition(tab, f, grown)
	if err != nil {
		t.Fatal(err)
	}
	if p.Index != layout.RootIndex || p.Type != layout.TypeRoot || p.Size(512) < 500<<20 {
		t.Errorf("root partition %+v", p)
	}
	back, err := gpt.Read(f, grown, 512)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := findRoot(back); err != nil || r.UUID != p.UUID {
		t.Errorf("root partition not found after writing: %v", err)
	}
	ingottest.SgdiskVerify(t, path)

	// The same disk gets the same root UUID: derived, not random.
	if layout.DeriveGUID(back.DiskGUID[:], layout.PurposeRoot) != p.UUID {
		t.Error("root PARTUUID is not derived from the disk GUID")
	}

	// A disk without room fails with advice.
	small := filepath.Join(dir, "small.img")
	fakeDisk(t, small, 16<<20, h)
	sf, _ := os.OpenFile(small, os.O_RDWR, 0)
	defer sf.Close()
	stab, _ := gpt.Read(sf, 16<<20, 512)
	if _, err := addRootPartition(stab, sf, 16<<20); err == nil || !strings.Contains(err.Error(), "--disk-size") {
		t.Errorf("full disk: %v", err)
	}
}
