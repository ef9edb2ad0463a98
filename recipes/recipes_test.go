package recipes_test

import (
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/builder"
	"github.com/ingot-linux/ingot/recipes"
)

// TestDistribution: the embedded recipes validate, the base set resolves
// (no unknown dependency, no cycle), and every upstream source is pinned
// and has a mirror this machine can use.
func TestDistribution(t *testing.T) {
	d, err := builder.LoadDistribution(recipes.FS(), "recipes")
	if err != nil {
		t.Fatal(err)
	}
	order, err := d.Resolve([]string{"base"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"musl", "linux", "systemd", "busybox", "openssh", "e2fsprogs", "base-files"} {
		if !strings.Contains(" "+strings.Join(order, " ")+" ", " "+want+" ") {
			t.Errorf("base lacks %s: %v", want, order)
		}
	}
	for _, n := range order {
		r := d.Recipe(n)
		for i, s := range r.Sources {
			if len(s.SHA256) != 64 {
				t.Errorf("%s: source %d is not pinned", n, i)
			}
			if len(s.Mirrors) == 0 {
				t.Errorf("%s: source %d has no mirror", n, i)
			}
		}
	}
}
