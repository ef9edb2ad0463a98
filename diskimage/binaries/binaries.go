// Package binaries finds, or builds with the Go toolchain, the two
// programs every image carries: ingot-init (the initrd's /init) and the
// device's ingot (cmd/ingot-agent, installed as /usr/bin/ingot).
//
// Each is taken, in this order, from the path the caller gives, from
// beside the running program when that one was built from the same module
// version, or else built from ingot's source at the running program's own
// version with its own Go release and fixed flags, into the user cache
// directory. So a plain `go install …/cmd/ingot@vX` makes images, and the
// device bytes are the same on every machine.
package binaries

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
)

// The binaries' names beside the workstation ingot and in the cache.
const (
	InitName  = "ingot-init"
	AgentName = "ingot-agent"
)

// The commands that build them, inside ingot's module.
const (
	initPkg  = "./cmd/ingot-init"
	agentPkg = "./cmd/ingot-agent"
)

// ErrNoToolchain says a build was needed and no go command was found.
var ErrNoToolchain = errors.New("no Go toolchain")

// Options say where to look. The zero value looks beside the running
// program and builds into the user cache directory.
type Options struct {
	// Init and Agent are given paths; each one set is used as it is.
	Init, Agent string
	// Executable is the running program (default: os.Executable).
	Executable string
	// Build says how the running program was built (default:
	// debug.ReadBuildInfo).
	Build *debug.BuildInfo
	// CacheDir receives what is built (default: ingot/bin in the user
	// cache directory).
	CacheDir string
	// Go is the go command (default: go, looked up in PATH).
	Go string
	// Dir is where a source checkout is looked for when the running
	// program was built from one (default: the working directory).
	Dir string
	// Progress is told before a build starts.
	Progress func(step string)
}

// Paths are the binaries an image needs.
type Paths struct {
	Init  string
	Agent string
}

// Find returns the two binaries, building them when they are neither
// given nor beside the running program.
func Find(ctx context.Context, o Options) (Paths, error) {
	p, err := given(o)
	if err != nil || p.Init != "" && p.Agent != "" {
		return p, err
	}
	if err := o.defaults(); err != nil {
		return Paths{}, err
	}
	p = beside(o, p)
	if p.Init != "" && p.Agent != "" {
		return p, nil
	}
	built, err := build(ctx, o)
	if err != nil {
		return Paths{}, err
	}
	if p.Init == "" {
		p.Init = built.Init
	}
	if p.Agent == "" {
		p.Agent = built.Agent
	}
	return p, nil
}

// given checks the paths the caller set.
func given(o Options) (Paths, error) {
	for _, b := range []struct{ path, what, flag string }{{o.Init, InitName, "--init"}, {o.Agent, "device ingot", "--agent"}} {
		if b.path == "" {
			continue
		}
		if _, err := os.Stat(b.path); err != nil {
			return Paths{}, fmt.Errorf("%s binary (%s): %w", b.what, b.flag, err)
		}
	}
	return Paths{Init: o.Init, Agent: o.Agent}, nil
}

func (o *Options) defaults() error {
	if o.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the running program: %w", err)
		}
		o.Executable = exe
	}
	if o.Build == nil {
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			return errors.New("the running program has no build information: pass --init and --agent")
		}
		o.Build = bi
	}
	if o.CacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("no cache directory to build %s and %s into (%w): pass --init and --agent", InitName, AgentName, err)
		}
		o.CacheDir = filepath.Join(dir, "ingot", "bin")
	}
	return nil
}

// beside fills in what p lacks from the running program's directory,
// when a binary there was built from the same module version (a stale
// one from an earlier install is passed over).
func beside(o Options, p Paths) Paths {
	dir := filepath.Dir(o.Executable)
	for _, b := range []struct {
		dst  *string
		name string
	}{{&p.Init, InitName}, {&p.Agent, AgentName}} {
		path := filepath.Join(dir, b.name)
		if *b.dst == "" && sameModule(path, o.Build) {
			*b.dst = path
		}
	}
	return p
}

// sameModule reports whether the program at path was built from the
// module version bi names.
func sameModule(path string, bi *debug.BuildInfo) bool {
	info, err := buildinfo.ReadFile(path)
	return err == nil && info.Main.Path == bi.Main.Path && info.Main.Version == bi.Main.Version
}

// released reports whether bi names a module version the module proxy
// serves (go install …@vX), rather than a build from a source tree (which
// has no version, or one stamped from its VCS checkout).
func released(bi *debug.BuildInfo) bool {
	for _, s := range bi.Settings {
		if s.Key == "vcs" {
			return false
		}
	}
	v := bi.Main.Version
	return v != "" && v != "(devel)" && !strings.HasSuffix(v, "+dirty")
}

// toolchain is the GOTOOLCHAIN that pins the build to the running
// program's own Go release ("local" for a development toolchain).
func toolchain() string {
	v := strings.Fields(runtime.Version())
	if len(v) == 0 || !strings.HasPrefix(v[0], "go") {
		return "local"
	}
	return v[0]
}
