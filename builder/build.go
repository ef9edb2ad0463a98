// Package builder turns recipes into packages: it resolves the dependency
// graph, computes a content key per package (recipe, sources, build inputs'
// keys, toolchain identity), and builds what the store lacks in parallel,
// each in its own sandbox, committing normalized outputs atomically.
//
//	dist, err := build.LoadDistribution(recipes.FS(), "recipes")
//	res, err := build.Build(ctx, []string{"base"}, build.Options{
//		Distribution: dist, Recipes: recipes.FS(), Store: dir, Jobs: 2,
//	})
package builder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ingot-linux/ingot/builder/fetch"
	"github.com/ingot-linux/ingot/builder/sandbox"
	"github.com/ingot-linux/ingot/builder/store"
	"github.com/ingot-linux/ingot/builder/toolchain"
	"github.com/ingot-linux/ingot/cookbook"
)

// DefaultEpoch is SOURCE_DATE_EPOCH when Options.Epoch is 0: 1980-01-01.
const DefaultEpoch = 315532800

// Options configure Build. Distribution, Recipes and Store are required;
// the zero value of every other field means its default.
type Options struct {
	// Distribution is the validated recipe set (see LoadDistribution).
	Distribution *cookbook.Distribution
	// Recipes holds each recipe's directory (patches, files).
	Recipes fs.FS
	// Store is the store directory.
	Store string
	// Jobs is how many packages build at once (default: the CPU count).
	Jobs int
	// KeepGoing builds what it can after a failure.
	KeepGoing bool
	// Epoch is SOURCE_DATE_EPOCH (default DefaultEpoch).
	Epoch int64
	// Runner runs build scripts (default: sandbox.Namespaces).
	Runner sandbox.Runner
	// Toolchain are the probes of the toolchain identity (default:
	// toolchain.Stage0()).
	Toolchain []toolchain.Probe
	// Env are KEY=VALUE defaults for every build, before the recipe's own
	// (default: CC=musl-gcc, the stage-0 compiler).
	Env []string
	// Debian fetches Debian source packages for debian: mirrors (default:
	// fetch.AptSource).
	Debian func(ctx context.Context, pkg, version, dir string) error
	// Progress is told about every start and finish (default: nothing).
	Progress func(Status)
	// Logger receives details (default: discarded).
	Logger *slog.Logger
}

// Status is the state of a run when a package starts or finishes.
type Status struct {
	// Package is the package that started or finished, and Event what
	// happened: "start", "built", "cached", "failed" or "skipped".
	Package string
	Event   string
	// Done counts finished packages (any outcome) out of Total.
	Done, Total int
	// Running are the packages building now, sorted.
	Running []string
	// Elapsed is the time since the run started.
	Elapsed time.Duration
}

// Result is the outcome of a run. Field names are stable (--json).
type Result struct {
	// Packages in build order.
	Packages []Package `json:"packages"`
	Built    int       `json:"built"`
	Cached   int       `json:"cached"`
	Failed   int       `json:"failed"`
	Skipped  int       `json:"skipped"`
	// Seconds is the run's wall time.
	Seconds float64 `json:"seconds"`
	// Store is the store directory.
	Store string `json:"store"`
}

// Keys returns each package's store key, e.g. for sbom.FromDistribution.
func (r *Result) Keys() map[string]string {
	k := map[string]string{}
	for _, p := range r.Packages {
		k[p.Name] = p.Key
	}
	return k
}

// Package is the outcome for one package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Key     string `json:"key"`
	// Status is "built", "cached", "failed" or "skipped".
	Status string `json:"status"`
	// Path is the store entry (built or cached packages).
	Path string `json:"path,omitempty"`
	// Log is the build log (built or failed packages).
	Log     string  `json:"log,omitempty"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
}

// Build builds targets (package or set names; none means the "base" set)
// and everything they need. It returns the result of every package and,
// when some failed, an error joining their *BuildError values.
func Build(ctx context.Context, targets []string, o Options) (*Result, error) {
	start := time.Now()
	b, err := newBuilder(ctx, o)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		targets = []string{"base"}
	}
	order, err := o.Distribution.Resolve(targets)
	if err != nil {
		return nil, err
	}
	if err := b.computeKeys(ctx, order); err != nil {
		return nil, err
	}
	deps := map[string][]string{}
	for _, n := range order {
		deps[n] = o.Distribution.BuildInputs(n)
	}
	pkgs := map[string]*Package{}
	for _, n := range order {
		r := o.Distribution.Recipe(n)
		pkgs[n] = &Package{Name: n, Version: r.Version, Key: b.keys[n]}
	}
	p := &progress{fn: o.Progress, start: start, total: len(order), running: map[string]bool{}}
	results := schedule(ctx, order, deps, b.jobs, o.KeepGoing, func(ctx context.Context, n string) error {
		return b.buildOne(ctx, pkgs[n], p)
	})
	res := &Result{Store: b.store.Dir()}
	var errs []error
	for _, n := range order {
		pk := pkgs[n]
		err := results[n]
		var se *SkippedError
		switch {
		case err == nil:
		case errors.As(err, &se):
			pk.Status, pk.Error = "skipped", err.Error()
			p.event(n, "skipped", false)
		default:
			pk.Status, pk.Error = "failed", err.Error()
			errs = append(errs, err)
		}
		switch pk.Status {
		case "built":
			res.Built++
		case "cached":
			res.Cached++
		case "failed":
			res.Failed++
		case "skipped":
			res.Skipped++
		}
		res.Packages = append(res.Packages, *pk)
	}
	res.Seconds = time.Since(start).Seconds()
	if err := b.hashes.Save(filepath.Join(b.store.Dir(), "toolchain-hashes.json")); err != nil {
		b.log.Warn("toolchain hash cache", "err", err)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, errors.Join(errs...)
}

// builder is one run's shared state.
type builder struct {
	o       Options
	log     *slog.Logger
	store   *store.Store
	fetcher *fetch.Fetcher
	runner  sandbox.Runner
	hashes  *toolchain.HashCache
	ident   *toolchain.Identity
	env     []string // fixed environment without JOBS
	jobs    int
	cpus    int

	mu    sync.Mutex
	keys  map[string]string
	tools map[string]toolchain.Component
}

func newBuilder(ctx context.Context, o Options) (*builder, error) {
	if o.Distribution == nil || o.Recipes == nil || o.Store == "" {
		return nil, fmt.Errorf("build: Distribution, Recipes and Store are required")
	}
	st, err := store.Open(o.Store)
	if err != nil {
		return nil, err
	}
	b := &builder{o: o, store: st, log: o.Logger, runner: o.Runner, keys: map[string]string{},
		tools: map[string]toolchain.Component{}, jobs: o.Jobs, cpus: runtime.NumCPU()}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.runner == nil {
		b.runner = sandbox.Namespaces{}
	}
	if b.jobs <= 0 {
		b.jobs = b.cpus
	}
	if b.o.Epoch == 0 {
		b.o.Epoch = DefaultEpoch
	}
	probes := o.Toolchain
	if probes == nil {
		probes = toolchain.Stage0()
	}
	b.hashes = toolchain.LoadHashCache(filepath.Join(st.Dir(), "toolchain-hashes.json"))
	if b.ident, err = toolchain.Detect(ctx, probes, b.hashes); err != nil {
		return nil, err
	}
	b.fetcher = &fetch.Fetcher{Dir: st.SourcesDir(), Debian: o.Debian, Logger: b.log}
	env := o.Env
	if env == nil {
		env = []string{"CC=musl-gcc"}
	}
	b.env = mergeEnv([]string{
		"PATH=" + toolchain.SearchPath,
		"HOME=" + HomeDir,
		"TMPDIR=/tmp",
		"SOURCE_DATE_EPOCH=" + strconv.FormatInt(b.o.Epoch, 10),
		"TZ=UTC",
		"LC_ALL=C",
		"LANG=C",
		"SRC=" + SrcDir,
		"DESTDIR=" + DestDir,
		"RECIPE=" + RecipeDir,
		"SYSROOT=" + SysrootDir,
		"CPPFLAGS=-I" + SysrootDir + "/usr/include",
		"LDFLAGS=-L" + SysrootDir + "/usr/lib",
		"PKG_CONFIG_LIBDIR=" + SysrootDir + "/usr/lib/pkgconfig:" + SysrootDir + "/usr/share/pkgconfig",
		"PKG_CONFIG_SYSROOT_DIR=" + SysrootDir,
	}, env)
	return b, nil
}

// progress serializes Status reports.
type progress struct {
	mu      sync.Mutex
	fn      func(Status)
	start   time.Time
	total   int
	done    int
	running map[string]bool
}

func (p *progress) event(name, ev string, starting bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if starting {
		p.running[name] = true
	} else {
		delete(p.running, name)
		p.done++
	}
	if p.fn == nil {
		return
	}
	var run []string
	for n := range p.running {
		run = append(run, n)
	}
	sort.Strings(run)
	p.fn(Status{Package: name, Event: ev, Done: p.done, Total: p.total, Running: run, Elapsed: time.Since(p.start)})
}

// mergeEnv appends over to base, a later KEY replacing an earlier one in
// place.
func mergeEnv(base, over []string) []string {
	out := append([]string{}, base...)
	for _, e := range over {
		k, _, _ := strings.Cut(e, "=")
		replaced := false
		for i, o := range out {
			if ok, _, _ := strings.Cut(o, "="); ok == k {
				out[i], replaced = e, true
				break
			}
		}
		if !replaced {
			out = append(out, e)
		}
	}
	return out
}
