package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/layout"
)

// TestUpdateInstalls is the good path on the test machine: slot b holds
// 2.0.0, labelled, and its UKI is on the ESP.
func TestUpdateInstalls(t *testing.T) {
	m := newMachine(t, "1.0.0")
	dir := m.artifact(t, "2.0.0", nil)
	res, err := m.agent(nil).Update(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Slot != "b" || res.Version != "2.0.0" || res.FromVersion != "1.0.0" {
		t.Errorf("result %+v", res)
	}
	usr := m.table(t).ByType(layout.TypeUsr)
	if usr[1].Name != layout.UsrLabel("2.0.0") {
		t.Errorf("slot b is named %q", usr[1].Name)
	}
	if got := tree(t, m.esp); len(got) != 2 {
		t.Errorf("ESP holds %v, want the booted and the new UKI", keys(got))
	}
	if !strings.Contains(res.NextBoot, "newest") {
		t.Errorf("NextBoot %q", res.NextBoot)
	}
}
