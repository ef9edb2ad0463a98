package binaries

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// buildFlags are the fixed flags of every build, as make build uses them.
var buildFlags = []string{"-trimpath", "-ldflags=-s -w -buildid="}

// build makes both binaries from ingot's source at the running program's
// version, or returns the ones an earlier build of a released version
// left in the cache.
func build(ctx context.Context, o Options) (Paths, error) {
	bi := o.Build
	key := "devel-" + toolchain()
	if released(bi) {
		key = bi.Main.Version + "-" + toolchain()
	}
	dir := filepath.Join(o.CacheDir, key+"-linux-amd64")
	p := Paths{Init: filepath.Join(dir, InitName), Agent: filepath.Join(dir, AgentName)}
	if released(bi) && exists(p.Init) && exists(p.Agent) {
		return p, nil
	}
	goCmd, err := lookGo(o)
	if err != nil {
		return Paths{}, err
	}
	src, err := moduleDir(ctx, goCmd, o)
	if err != nil {
		return Paths{}, err
	}
	if o.Progress != nil {
		o.Progress(fmt.Sprintf("build %s and %s (%s %s) with %s", InitName, AgentName, bi.Main.Path, bi.Main.Version, toolchain()))
	}
	if err := compile(ctx, goCmd, src, dir); err != nil {
		return Paths{}, err
	}
	return p, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// lookGo finds the go command, or says what to do without one.
func lookGo(o Options) (string, error) {
	name := o.Go
	if name == "" {
		name = "go"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s and %s are not beside %s, and there is %w to build them (%w): install Go (https://go.dev/dl/), or pass --init and --agent (make build puts all three in bin/)",
			InitName, AgentName, o.Executable, ErrNoToolchain, err)
	}
	return path, nil
}

// goEnv is the environment of every go command run here: the running
// program's Go release, static linux/amd64 binaries, and nothing from the
// user's GOFLAGS, workspace or experiments, so the bytes depend only on
// the source and the toolchain.
func goEnv() []string {
	return append(os.Environ(), "GOTOOLCHAIN="+toolchain(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64",
		"GOAMD64=v1", "GOFLAGS=-mod=readonly", "GOWORK=off", "GOEXPERIMENT=")
}

// moduleDir is ingot's source: for a released version the module cache's
// copy (downloaded if need be), otherwise the checkout around o.Dir.
func moduleDir(ctx context.Context, goCmd string, o Options) (string, error) {
	mod := o.Build.Main.Path
	if released(o.Build) {
		out, err := runGo(ctx, goCmd, os.TempDir(), "mod", "download", "-json", mod+"@"+o.Build.Main.Version)
		var info struct{ Dir, Error string }
		if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
			err = errors.New(info.Error)
		}
		if err != nil {
			return "", fmt.Errorf("download %s@%s to build %s and %s: %w", mod, o.Build.Main.Version, InitName, AgentName, err)
		}
		return info.Dir, nil
	}
	out, err := runGo(ctx, goCmd, o.Dir, "list", "-m", "-f", "{{.Path}} {{.Dir}}")
	path, dir, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if err != nil || path != mod {
		return "", fmt.Errorf("this ingot was built from a source tree (%s %s) and %s and %s are not beside it: run it inside ingot's source tree to build them, or pass --init and --agent (make build puts all three in bin/)",
			mod, o.Build.Main.Version, InitName, AgentName)
	}
	return dir, nil
}

// compile builds both commands in src into dir: into a new directory
// beside it first, then renamed into place one file at a time.
func compile(ctx context.Context, goCmd, src, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cache directory: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".build-*")
	if err != nil {
		return fmt.Errorf("cache directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	args := append(append([]string{"build"}, buildFlags...), "-o", tmp+string(filepath.Separator), initPkg, agentPkg)
	if _, err := runGo(ctx, goCmd, src, args...); err != nil {
		return fmt.Errorf("build %s and %s: %w", InitName, AgentName, err)
	}
	for _, name := range []string{InitName, AgentName} {
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("build %s: %w", name, err)
		}
	}
	return nil
}

// runGo runs the go command in dir with goEnv and returns its standard
// output; a failure carries what it printed on stderr.
func runGo(ctx context.Context, goCmd, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir, cmd.Env = dir, goEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
