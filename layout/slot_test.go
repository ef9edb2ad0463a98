package layout

import (
	"testing"

	"github.com/ingot-linux/ingot/format/gpt"
)

// table lays out partitions of the given types, in order, 1 MiB each.
func table(t *testing.T, parts ...gpt.Partition) *gpt.Table {
	t.Helper()
	tab, err := gpt.New(64<<20, 512, gpt.MustParseGUID("11111111-2222-4333-8444-555555555555"))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range parts {
		p.Index = i + 1
		if _, err := tab.Append(p, 1<<20, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	return tab
}

func TestSlots(t *testing.T) {
	h := make([]byte, 32)
	h[0] = 1
	usr, ver := UsrPartUUIDs(h)
	full := table(t,
		gpt.Partition{Type: TypeESP, Name: "esp"},
		gpt.Partition{Type: TypeUsr, UUID: usr, Name: UsrLabel("1.0")},
		gpt.Partition{Type: TypeUsrVerity, UUID: ver, Name: VerityLabel("1.0")},
		gpt.Partition{Type: TypeUsrVeritySig, Name: EmptyLabel},
		gpt.Partition{Type: TypeUsr, Name: EmptyLabel},
		gpt.Partition{Type: TypeUsrVerity, Name: EmptyLabel},
		gpt.Partition{Type: TypeUsrVeritySig, Name: EmptyLabel},
	)
	ab, err := ABSlots(full)
	if err != nil {
		t.Fatal(err)
	}
	got := []int{ab[0].Usr.Index, ab[0].Verity.Index, ab[0].VeritySig.Index, ab[1].Usr.Index, ab[1].Verity.Index, ab[1].VeritySig.Index}
	want := []int{UsrAIndex, UsrVerityAIndex, UsrVeritySigIndex, UsrBIndex, UsrVerityBIndex, UsrVeritySigB}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("slot partitions %v, want %v", got, want)
		}
	}
	if ab[0].Name != "a" || ab[1].Name != "b" || ab[0].Version() != "1.0" || ab[1].Version() != "" {
		t.Errorf("slots %s (%q), %s (%q)", ab[0].Name, ab[0].Version(), ab[1].Name, ab[1].Version())
	}
	if s, ok := SlotOf(ab[:], h); !ok || s.Name != "a" {
		t.Errorf("SlotOf = %v, %v; want slot a", s.Name, ok)
	}
	oneVerity := table(t,
		gpt.Partition{Type: TypeUsr, UUID: usr},
		gpt.Partition{Type: TypeUsrVerity, UUID: ver},
		gpt.Partition{Type: TypeUsr},
	)
	if _, err := ABSlots(oneVerity); err == nil {
		t.Error("ABSlots accepted a table with one usr-verity partition")
	}
	if s := Slots(oneVerity); len(s) != 2 || s[0].Verity == nil || s[1].Verity != nil {
		t.Errorf("Slots of a table with one usr-verity partition: %+v", s)
	}
}
