package binaries

import (
	"context"
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// copyTo writes the running test binary (a Go program of this module)
// to dir/name.
func copyTo(t *testing.T, dir, name string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func ownBuild(t *testing.T, version string) *debug.BuildInfo {
	t.Helper()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build information")
	}
	c := *bi
	if version != "" {
		c.Main.Version = version
		c.Settings = nil
	}
	return &c
}

func TestFind(t *testing.T) {
	bin := t.TempDir()
	copyTo(t, bin, InitName)
	copyTo(t, bin, AgentName)
	exe := filepath.Join(bin, "ingot")
	cache := t.TempDir()
	cached := filepath.Join(cache, "v9.9.8-"+toolchain()+"-linux-amd64")
	if err := os.MkdirAll(cached, 0o755); err != nil {
		t.Fatal(err)
	}
	copyTo(t, cached, InitName)
	copyTo(t, cached, AgentName)
	given := copyTo(t, t.TempDir(), "my-init")
	tests := []struct {
		name    string
		o       Options
		want    Paths
		wantErr string
	}{
		{"given", Options{Init: given, Agent: given, Executable: "/nonexistent"}, Paths{given, given}, ""},
		{"given missing", Options{Init: "/nonexistent-init"}, Paths{}, "ingot-init binary (--init)"},
		{"beside", Options{Executable: exe, Build: ownBuild(t, "")}, Paths{filepath.Join(bin, InitName), filepath.Join(bin, AgentName)}, ""},
		{"given and beside", Options{Init: given, Executable: exe, Build: ownBuild(t, "")}, Paths{given, filepath.Join(bin, AgentName)}, ""},
		{"cached release", Options{Executable: exe, Build: ownBuild(t, "v9.9.8"), CacheDir: cache, Go: "/nonexistent-go"},
			Paths{filepath.Join(cached, InitName), filepath.Join(cached, AgentName)}, ""},
		{"stale beside, no toolchain", Options{Executable: exe, Build: ownBuild(t, "v9.9.9"), CacheDir: cache, Go: "/nonexistent-go"},
			Paths{}, "install Go (https://go.dev/dl/), or pass --init and --agent"},
		{"source build outside its tree", Options{Executable: "/nonexistent/ingot", Build: ownBuild(t, "(devel)"), CacheDir: cache, Dir: t.TempDir()},
			Paths{}, "run it inside ingot's source tree"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Find(context.Background(), tc.o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Find: %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Find = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestNoToolchainIsErrNoToolchain(t *testing.T) {
	_, err := Find(context.Background(), Options{Executable: "/nonexistent/ingot", Build: ownBuild(t, "v9.9.9"), CacheDir: t.TempDir(), Go: "/nonexistent-go"})
	if !errors.Is(err, ErrNoToolchain) {
		t.Errorf("Find: %v, want ErrNoToolchain", err)
	}
}

// TestBuildFromSourceTree builds both binaries from this checkout, as a
// workstation ingot built from source does when they are not beside it.
func TestBuildFromSourceTree(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ingot-init and ingot-agent")
	}
	got, err := Find(context.Background(), Options{Executable: "/nonexistent/ingot", Build: ownBuild(t, "(devel)"), CacheDir: t.TempDir(), Dir: "../.."})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{got.Init, got.Agent} {
		f, err := elf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked", p)
			}
		}
		f.Close()
	}
}
