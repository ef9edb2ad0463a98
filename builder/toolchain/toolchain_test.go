package toolchain

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
)

func TestDetectStage0(t *testing.T) {
	cache := &HashCache{}
	id, err := Detect(context.Background(), Stage0(), cache)
	var me *MissingError
	if errors.As(err, &me) {
		ingottest.Skip(t, "stage-0 toolchain incomplete: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Component{}
	for _, c := range id.Components {
		byName[c.Name] = c
		if len(c.SHA256) != 64 || !filepath.IsAbs(c.Path) {
			t.Errorf("component %+v", c)
		}
	}
	if v := byName["musl"].Version; !strings.HasPrefix(v, "Version 1.") {
		t.Errorf("musl version %q", v)
	}
	if v := byName["ld"].Version; !strings.Contains(v, "Binutils") {
		t.Errorf("ld version %q", v)
	}
	if !strings.HasSuffix(byName["cc1"].Path, "/cc1") {
		t.Errorf("cc1 at %q", byName["cc1"].Path)
	}
	again, err := Detect(context.Background(), Stage0(), cache)
	if err != nil || again.Digest() != id.Digest() {
		t.Errorf("second detection differs: %v", err)
	}
}

func TestMissing(t *testing.T) {
	_, err := Detect(context.Background(), []Probe{{Name: "frobcc", Path: "frobcc-does-not-exist", Package: "frob"}}, nil)
	var me *MissingError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "install Debian's frob") {
		t.Fatalf("err = %v, want a MissingError naming the package", err)
	}
}

func TestHashCache(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tool")
	os.WriteFile(p, []byte("v1"), 0o755)
	file := filepath.Join(dir, "cache.json")
	c := LoadHashCache(file)
	id1, err := Detect(context.Background(), []Probe{{Name: "tool", Path: p}}, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Save(file); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, []byte("v2"), 0o755) // same size, new content
	c = LoadHashCache(file)
	id2, err := Detect(context.Background(), []Probe{{Name: "tool", Path: p}}, c)
	if err != nil {
		t.Fatal(err)
	}
	if id1.Digest() == id2.Digest() {
		t.Error("a changed tool kept its identity")
	}
}
