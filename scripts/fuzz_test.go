// Package scripts_test checks the repository's scripts.
package scripts_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
)

var fuzzFunc = regexp.MustCompile(`(?m)^func (Fuzz[A-Za-z0-9_]*)\(`)

// fuzzTargets returns "./pkg FuzzName" for every fuzz target under root.
func fuzzTargets(t *testing.T, root string) []string {
	t.Helper()
	var got []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		for _, m := range fuzzFunc.FindAllSubmatch(b, -1) {
			got = append(got, "./"+filepath.ToSlash(rel)+" "+string(m[1]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return slices.Compact(got)
}

func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/local/go/bin/go"); err == nil {
		return "/usr/local/go/bin/go"
	}
	ingottest.Skip(t, "go is not on PATH: cannot list the fuzz targets through scripts/fuzz")
	return ""
}

// TestHarden16FuzzEveryTargetBounded: make fuzz runs every fuzz target in
// the tree, found anew each time, each with a bounded minimisation, so no
// target is forgotten and none spends its time minimising.
func TestHarden16FuzzEveryTargetBounded(t *testing.T) {
	script, err := os.ReadFile("fuzz")
	if err != nil {
		t.Fatalf("scripts/fuzz: %v", err)
	}
	if !strings.Contains(string(script), "-fuzzminimizetime") {
		t.Error("scripts/fuzz does not bound minimisation (-fuzzminimizetime)")
	}
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if _, recipe, _ := strings.Cut(string(mk), "\nfuzz:\n"); !strings.HasPrefix(strings.TrimSpace(recipe), "GO=$(GO) scripts/fuzz") {
		t.Error("make fuzz does not run scripts/fuzz")
	}
	cmd := exec.Command("bash", "fuzz", "--list")
	cmd.Env = append(os.Environ(), "GO="+goTool(t))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/fuzz --list: %v", err)
	}
	got := strings.Fields(strings.ReplaceAll(string(out), " ", "/"))
	want := fuzzTargets(t, "..")
	for i := range want {
		want[i] = strings.ReplaceAll(want[i], " ", "/")
	}
	if !slices.Equal(got, want) {
		t.Errorf("scripts/fuzz --list = %q, want every fuzz target in the tree: %q", got, want)
	}
}
