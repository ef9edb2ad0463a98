package builder

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/builder/sandbox/sandboxtest"
	"github.com/ingot-linux/ingot/builder/store"
	"github.com/ingot-linux/ingot/builder/toolchain"
	"github.com/ingot-linux/ingot/ingottest"
)

// TestSandboxBuild builds the fixture — a static library and a (patched) C
// program linked against it with musl-gcc — in real sandboxes, runs the program,
// rebuilds after a change to the library, and checks that a second store
// gets the same bytes.
func TestSandboxBuild(t *testing.T) {
	requireStage0(t)
	r := sandboxtest.Require(t)
	fx := newFixture(t)
	fx.patch = true
	ctx := context.Background()
	st := t.TempDir()
	o := fx.options(t, st, r)
	o.Toolchain = nil // the real stage-0 toolchain
	res, err := Build(ctx, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	hello := filepath.Join(res.Packages[1].Path, "runtime/usr/bin/hello")
	out, err := exec.Command(hello).CombinedOutput()
	if err != nil || string(out) != "hello from ingot!\n" {
		t.Fatalf("hello: %q %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(res.Packages[1].Path, "doc/usr/share/doc/hello/example.c")); err != nil {
		t.Errorf("doc output: %v", err)
	}
	if _, err := os.Stat(filepath.Join(res.Packages[0].Path, "dev/usr/include/greet.h")); err != nil {
		t.Errorf("dev output: %v", err)
	}
	log, _ := os.ReadFile(res.Packages[1].Log)
	if !strings.Contains(string(log), "-static -o hello hello.c") {
		t.Errorf("the log lacks the compiler command:\n%s", log)
	}

	// Same inputs into another store: the same bytes.
	o2 := fx.options(t, t.TempDir(), r)
	o2.Toolchain = nil
	res2, err := Build(ctx, nil, o2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range res.Packages {
		a, b := manifestJSON(t, st, res.Packages[i].Key), manifestJSON(t, o2.Store, res2.Packages[i].Key)
		if a != b {
			t.Errorf("%s is not reproducible:\n%s\n%s", res.Packages[i].Name, a, b)
		}
	}

	// A changed library rebuilds the program that links it.
	fx.greetC = strings.Replace(fx.greetC, "hello from ingot", "hi again", 1)
	o = fx.options(t, st, r)
	o.Toolchain = nil
	if res, err = Build(ctx, nil, o); err != nil || statuses(res) != "libgreet=built hello=built" {
		t.Fatalf("rebuild: %v %s", err, statuses(res))
	}
	out, err = exec.Command(filepath.Join(res.Packages[1].Path, "runtime/usr/bin/hello")).CombinedOutput()
	if err != nil || string(out) != "hi again!\n" {
		t.Fatalf("rebuilt hello: %q %v", out, err)
	}
}

// TestSandboxBuildFailure checks that a failing compiler in the sandbox
// gives the log's last lines and leaves nothing in the store.
func TestSandboxBuildFailure(t *testing.T) {
	requireStage0(t)
	r := sandboxtest.Require(t)
	fx := newFixture(t)
	fx.greetC = "this is not C\n"
	st := t.TempDir()
	o := fx.options(t, st, r)
	o.Toolchain = nil
	_, err := Build(context.Background(), nil, o)
	if err == nil || !strings.Contains(err.Error(), "| greet.c:1:") || !strings.Contains(err.Error(), "build libgreet: exit status 2") {
		t.Fatalf("err = %v, want the compiler's complaint", err)
	}
	checkNoPartial(t, st)
}

// requireStage0 skips (fails under INGOT_REQUIRE_TOOLS=1) when a part of
// the stage-0 toolchain is not installed, naming its Debian package.
func requireStage0(t *testing.T) {
	t.Helper()
	_, err := toolchain.Detect(context.Background(), toolchain.Stage0(), nil)
	var me *toolchain.MissingError
	switch {
	case err == nil:
		return
	case errors.As(err, &me):
		ingottest.Skip(t, "stage-0 toolchain incomplete: %v", err)
	default:
		t.Fatalf("stage-0 toolchain: %v", err)
	}
}

func manifestJSON(t *testing.T, dir, key string) string {
	t.Helper()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Lookup(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m.Outputs)
	return string(b)
}
