package diskimage

import (
	"io/fs"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/diskimage/rootfs"
)

// TestUnitTemplates: every file in units/ is used, and the per-image
// values reach the drop-ins that read them.
func TestUnitTemplates(t *testing.T) {
	set := ingotUnits(90*time.Second, []string{"a.service", "b.service"}, true)
	used := map[string]bool{}
	for _, f := range set.files {
		used[f.template] = true
	}
	entries, err := fs.ReadDir(unitFS, "units")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !used[e.Name()] {
			t.Errorf("units/%s is embedded but never written", e.Name())
		}
	}
	tree := rootfs.New()
	if err := set.put(tree, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, want string }{
		{"boot-complete.target.d/50-ingot-deadline.conf", "[Unit]\nJobTimeoutSec=90\nJobTimeoutAction=reboot-force\n"},
		{"boot-complete.target.d/60-ingot-health.conf", "[Unit]\nRequires=ingot-health.service a.service b.service\nAfter=ingot-health.service a.service b.service\n"},
		{"b.service.d/50-ingot-health.conf", "[Unit]\nBefore=boot-complete.target\nFailureAction=reboot\n"},
	}
	for _, tc := range tests {
		got, err := tree.ReadFile(systemDir + tc.path)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("%s = %q, want %q", tc.path, got, tc.want)
		}
	}
}
