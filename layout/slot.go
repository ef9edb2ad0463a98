package layout

import (
	"fmt"
	"strings"

	"github.com/ingot-linux/ingot/format/gpt"
)

// Slot is one A/B slot: the n-th usr partition of the table with the n-th
// usr-verity and the n-th usr-verity-sig partition, as the image lays
// them out (partitions 2–4 are slot a, 5–7 slot b).
type Slot struct {
	// Name is "a" or "b".
	Name string
	Usr  gpt.Partition
	// Verity and VeritySig are nil when the table has no n-th partition
	// of their type.
	Verity, VeritySig *gpt.Partition
}

// Version returns the version the slot's usr partition name says, or ""
// for an empty slot.
func (s Slot) Version() string {
	v, ok := strings.CutPrefix(s.Usr.Name, Name+"_")
	if !ok || s.Usr.Name == EmptyLabel {
		return ""
	}
	return v
}

// Slots returns the slots of t in table order, one for each usr
// partition, each paired with the verity and verity-sig partitions of
// the same ordinal.
func Slots(t *gpt.Table) []Slot {
	usr := t.ByType(TypeUsr)
	ver := t.ByType(TypeUsrVerity)
	sig := t.ByType(TypeUsrVeritySig)
	out := make([]Slot, len(usr))
	for i := range usr {
		out[i] = Slot{Name: SlotName(i + 1), Usr: usr[i]}
		if i < len(ver) {
			out[i].Verity = &ver[i]
		}
		if i < len(sig) {
			out[i].VeritySig = &sig[i]
		}
	}
	return out
}

// ABSlots returns slots a and b of a table that has both: two usr and two
// usr-verity partitions. The verity-sig partitions are paired only when
// there are two.
func ABSlots(t *gpt.Table) ([2]Slot, error) {
	var ab [2]Slot
	s := Slots(t)
	nver := len(t.ByType(TypeUsrVerity))
	if len(s) != 2 || nver != 2 {
		return ab, fmt.Errorf("want two usr and two usr-verity partitions (slots a and b), found %d and %d", len(s), nver)
	}
	if len(t.ByType(TypeUsrVeritySig)) != 2 {
		s[0].VeritySig, s[1].VeritySig = nil, nil
	}
	return [2]Slot{s[0], s[1]}, nil
}

// SlotOf returns the slot whose usr partition has the PARTUUID that
// rootHash gives (UsrPartUUIDs).
func SlotOf(slots []Slot, rootHash []byte) (Slot, bool) {
	usr, _ := UsrPartUUIDs(rootHash)
	for _, s := range slots {
		if s.Usr.UUID == usr {
			return s, true
		}
	}
	return Slot{}, false
}
