package agent

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/layout"
)

// labelSlotB gives slot b version v, as an update does.
func (m *machine) labelSlotB(t *testing.T, v string) {
	t.Helper()
	tab := m.table(t)
	f, err := os.OpenFile(m.disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, p := range tab.Partitions {
		switch p.Index {
		case layout.UsrBIndex:
			tab.Partitions[i].Name = layout.UsrLabel(v)
		case layout.UsrVerityBIndex:
			tab.Partitions[i].Name = layout.VerityLabel(v)
		}
	}
	if err := tab.Write(f, diskBytes); err != nil {
		t.Fatal(err)
	}
}

// TestExtPrune keeps the running version's and the other slot's
// extension sets and removes the rest, but nothing while an update holds
// its lock, and never what is not a version's set.
func TestExtPrune(t *testing.T) {
	for _, tc := range []struct {
		name    string
		slotB   string // "" leaves slot b empty
		locked  bool
		removed []string
		left    []string
	}{
		{"other slot kept", "0.9.0", false, []string{"0.8.0"}, []string{"0.9.0", "1.0.0", "x.json"}},
		{"empty other slot", "", false, []string{"0.8.0", "0.9.0"}, []string{"1.0.0", "x.json"}},
		{"update running", "0.9.0", true, nil, []string{"0.8.0", "0.9.0", "1.0.0", "x.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t, "1.0.0")
			if tc.slotB != "" {
				m.labelSlotB(t, tc.slotB)
			}
			dir := filepath.Join(m.root, layout.ExtensionsDir)
			for _, v := range []string{"0.8.0", "0.9.0", "1.0.0"} {
				mustWrite(t, filepath.Join(dir, v, "tools.raw"), []byte("image"))
			}
			mustWrite(t, filepath.Join(dir, "x.json"), []byte("{}"))
			a := m.agent(nil)
			if tc.locked {
				unlock, err := a.lock()
				if err != nil {
					t.Fatal(err)
				}
				defer unlock()
			}
			removed, err := a.ExtPrune()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(removed, tc.removed) {
				t.Errorf("removed %v, want %v", removed, tc.removed)
			}
			var left []string
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				left = append(left, e.Name())
			}
			if !reflect.DeepEqual(left, tc.left) {
				t.Errorf("left %v, want %v", left, tc.left)
			}
		})
	}
}

// TestExtListOtherSlot lists the set staged for the other slot's version
// with the reason it is not merged.
func TestExtListOtherSlot(t *testing.T) {
	m := newMachine(t, "1.0.0")
	m.labelSlotB(t, "2.0.0")
	mustWrite(t, filepath.Join(m.root, layout.ExtensionsDir, "2.0.0", "tools.raw"), []byte("not an image"))
	list, err := m.agent(nil).ExtList()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "tools" || list[0].OSVersion != "2.0.0" || list[0].Merged ||
		!strings.Contains(list[0].Why, "staged for 2.0.0 (the other slot), and refused") {
		t.Errorf("list %+v", list)
	}
}
