package bootcheck_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/bootcheck"
	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/layout"
)

func TestCheck(t *testing.T) {
	v1 := buildVersion(t, "1.0.0")
	tests := []struct {
		name    string
		mutate  func(t *testing.T, f *os.File, tab *gpt.Table)
		opts    bootcheck.Options
		version string // "" when nothing boots
		errHas  string
	}{
		{name: "fresh", version: "1.0.0"},
		{name: "efi default unknown", opts: bootcheck.Options{LoaderEntryDefault: "other.efi"}, version: "1.0.0"},
		{name: "primary GPT lost", mutate: zeroAt(512, 512), version: "1.0.0"},
		{name: "both GPTs lost", mutate: func(t *testing.T, f *os.File, _ *gpt.Table) {
			zeroAt(512, 512)(t, f, nil)
			zeroAt(diskBytes-512, 512)(t, f, nil)
		}, errHas: "read partition table"},
		{name: "usr block flipped", mutate: func(t *testing.T, f *os.File, tab *gpt.Table) {
			zeroAt(tab.Partitions[1].Offset(512)+4096, 1)(t, f, nil)
		}, errHas: "boot loop"},
		{name: "UKI tail lost", mutate: func(t *testing.T, f *os.File, tab *gpt.Table) {
			zeroAt(ukiOffset(t, f, tab, v1)+int64(len(v1.uki))-4096, 4096)(t, f, nil)
		}, errHas: "not whole"},
		{name: "root without a file system", mutate: addRoot(layout.RootLabel), errHas: "neither an ext4"},
		{name: "root setup unfinished", mutate: addRoot(layout.RootSetupLabel), version: "1.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, tab := writeDisk(t, v1, "timeout 0\n")
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if tt.mutate != nil {
				tt.mutate(t, f, tab)
			}
			res := bootcheck.New(tt.opts).Check(f, diskBytes)
			if res.Version != tt.version {
				t.Errorf("boots %q, want %q: %v", res.Version, tt.version, res)
			}
			if tt.errHas != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tt.errHas)) {
				t.Errorf("error %v, want one saying %q", res.Err, tt.errHas)
			}
			if tt.version != "" {
				if err := bootcheck.Updatable(f, diskBytes, v1.rootHash); err != nil {
					t.Errorf("not updatable: %v", err)
				}
			}
		})
	}
}

func zeroAt(off, n int64) func(*testing.T, *os.File, *gpt.Table) {
	return func(t *testing.T, f *os.File, _ *gpt.Table) {
		if _, err := f.WriteAt(make([]byte, n), off); err != nil {
			t.Fatal(err)
		}
	}
}

func addRoot(name string) func(*testing.T, *os.File, *gpt.Table) {
	return func(t *testing.T, f *os.File, tab *gpt.Table) {
		if _, err := tab.Append(gpt.Partition{Index: layout.RootIndex, Type: layout.TypeRoot, UUID: gpt.MustParseGUID("0000000a-0000-4000-8000-000000000001"), Name: name}, 260<<20, 0); err != nil {
			t.Fatal(err)
		}
		if err := tab.Write(f, diskBytes); err != nil {
			t.Fatal(err)
		}
	}
}

// ukiOffset finds where v's UKI starts on the disk.
func ukiOffset(t *testing.T, f *os.File, tab *gpt.Table, v *version) int64 {
	t.Helper()
	esp := tab.Partitions[0]
	buf := make([]byte, esp.Size(512))
	if _, err := f.ReadAt(buf, esp.Offset(512)); err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(buf), string(v.uki[:4096]))
	if i < 0 {
		t.Fatal("UKI not found on the ESP")
	}
	return esp.Offset(512) + int64(i)
}

func TestUpdatableRefuses(t *testing.T) {
	v1 := buildVersion(t, "1.0.0")
	p, tab := writeDisk(t, v1, "timeout 0\n")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab.Partitions[4].Type = layout.TypeRoot // slot b's usr is gone
	if err := tab.Write(f, diskBytes); err != nil {
		t.Fatal(err)
	}
	if err := bootcheck.Updatable(f, diskBytes, v1.rootHash); err == nil || !strings.Contains(err.Error(), "two usr") {
		t.Errorf("Updatable: %v", err)
	}
	if err := bootcheck.Updatable(f, diskBytes, make([]byte, 32)); err == nil {
		t.Error("a disk without the booted /usr is updatable")
	}
	var be *bootcheck.Error
	res := bootcheck.New(bootcheck.Options{}).Check(f, 4096)
	if !errors.As(res.Err, &be) || be.Step != "read partition table" {
		t.Errorf("a disk of 4096 bytes: %v", res.Err)
	}
}
