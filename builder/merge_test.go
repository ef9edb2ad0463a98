package builder

import (
	"path/filepath"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
)

// TestMergedTreeStaysInside: even a link the conflict check does not know
// about (planted in the destination) leads no write out of it.
func TestMergedTreeStaysInside(t *testing.T) {
	dir := t.TempDir()
	victim, untouched := ingottest.Victim(t, dir)
	dst := filepath.Join(dir, "dst")
	writeTree(t, dst, map[string]string{"usr": "->" + victim})
	src := filepath.Join(dir, "src")
	writeTree(t, src, map[string]string{"usr/file": "pwned"})
	tr, err := openMergedTree(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	a := &assembly{tree: tr}
	if err := tr.add("p", src, a.put); err == nil {
		t.Error("merged a tree through a planted link")
	}
	untouched()
}
