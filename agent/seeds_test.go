package agent

import (
	"testing"
)

// TestUpdateSeeds: both slots' usr and verity partitions and the ESP, at
// their places on the disk, the booted slot first.
func TestUpdateSeeds(t *testing.T) {
	m := newMachine(t, "1.0.0")
	seeds, err := m.agent(nil).UpdateSeeds()
	if err != nil {
		t.Fatal(err)
	}
	want := []Seed{
		{Name: "slot a usr", Offset: 2 * mib, Size: 3 * mib},
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
