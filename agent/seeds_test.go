package agent

import (
	"encoding/binary"
	"os"
	"testing"
)

// TestUpdateSeeds: both slots' usr and verity partitions and the ESP, at
// their places on the disk, the booted slot first.
func TestUpdateSeeds(t *testing.T) {
	m := newMachine(t, "1.0.0")
	// Slot a holds an EROFS image of 1 MiB (its superblock says 256
	// blocks of 4 KiB); slot b no file system.
	sb := make([]byte, 40)
	binary.LittleEndian.PutUint32(sb, 0xe0f5e1e2)
	sb[12] = 12
	binary.LittleEndian.PutUint32(sb[36:], 256)
	f, err := os.OpenFile(m.disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(sb, 2*mib+1024); err != nil {
		t.Fatal(err)
	}
	f.Close()
	seeds, err := m.agent(nil).UpdateSeeds()
	if err != nil {
		t.Fatal(err)
	}
	want := []Seed{
		{Name: "slot a usr", Offset: 2 * mib, Size: mib},
		{Name: "slot a usr-verity", Offset: 5 * mib, Size: mib},
		{Name: "slot b usr", Offset: 7 * mib, Size: 3 * mib},
		{Name: "slot b usr-verity", Offset: 10 * mib, Size: mib},
		{Name: "ESP", Offset: mib, Size: mib},
	}
	if len(seeds) != len(want) {
		t.Fatalf("seeds %+v", seeds)
	}
	for i, w := range want {
		w.Path = m.disk
		if seeds[i] != w {
			t.Errorf("seed %d: %+v, want %+v", i, seeds[i], w)
		}
	}
}
