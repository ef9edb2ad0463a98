package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/builder"
	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/distro"
	"github.com/ingot-linux/ingot/recipes"
)

func newBuildCmd(g *globals) *cobra.Command {
	var (
		jobs       int
		storeDir   string
		recipesDir string
		keepGoing  bool
		rootfs     string
		sbomFile   string
	)
	cmd := &cobra.Command{
		Use:   "build [PACKAGE|SET…]",
		Short: "Build packages from their recipes into the content-addressed store",
		Long: `Build packages (default: the base set) and everything they need from
pinned upstream sources, each in a sandbox without network, in parallel.
Packages whose key (recipe, sources, inputs, toolchain) is already in the
store are not rebuilt.

Recipes come from the distribution built into ingot, or from --recipes DIR
(one directory per package with a recipe.yaml, and sets.yaml).
SOURCE_DATE_EPOCH, when set, is the timestamp of every output file.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := buildOptions(g, jobs, storeDir, recipesDir)
			if err != nil {
				return err
			}
			o.KeepGoing = keepGoing
			pr := newBuildProgress(g.Stderr)
			o.Progress = pr.update
			stop := pr.run(cmd.Context())
			out, err := distro.Build(cmd.Context(), args, distro.BuildOptions{Build: o, RootFS: rootfs, SBOMPath: sbomFile, Tool: "ingot-" + Version})
			stop()
			if out == nil {
				return err
			}
			if rerr := g.Render(out, func(w io.Writer) { printBuildResult(w, out) }); rerr != nil {
				return rerr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVarP(&jobs, "jobs", "j", 0, "packages to build at once (default: the number of CPUs)")
	f.StringVar(&storeDir, "store", "", "store directory (default: ingot/store in the user's cache directory)")
	f.StringVar(&recipesDir, "recipes", "", "recipe directory (default: the distribution built into ingot)")
	f.BoolVarP(&keepGoing, "keep-going", "k", false, "after a failure, build what does not depend on it")
	f.StringVar(&rootfs, "rootfs", "", "assemble the runtime outputs of the targets and their runtime dependencies into this new directory")
	f.StringVar(&sbomFile, "sbom", "", "write an SPDX 2.3 JSON SBOM of the targets to this file")
	return cmd
}

// buildOptions loads the distribution (built in, or from recipesDir) and
// opens the store (default: the user's cache directory).
func buildOptions(g *globals, jobs int, storeDir, recipesDir string) (builder.Options, error) {
	o := builder.Options{Jobs: jobs, Logger: g.Logger()}
	var err error
	label := "recipes"
	o.Recipes = recipes.FS()
	if recipesDir != "" {
		o.Recipes, label = os.DirFS(recipesDir), recipesDir
	}
	if o.Distribution, err = builder.LoadDistribution(o.Recipes, label); err != nil {
		return o, err
	}
	if storeDir == "" {
		if storeDir, err = defaultStore(); err != nil {
			return o, err
		}
	}
	o.Store = storeDir
	if o.Epoch, _, err = sourceDateEpoch(); err != nil {
		return o, err
	}
	return o, nil
}

func defaultStore() (string, error) {
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("default store: %w (use --store)", err)
	}
	return filepath.Join(c, "ingot", "store"), nil
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH, the one place ingot does:
// unset or empty is (0, false); otherwise it must be whole seconds since
// 1970, not negative. Every verb passes the value down: build (0 there
// means builder.DefaultEpoch), image and the SBOMs, so they cannot disagree.
// imageEpoch is the Epoch of an image or extension: SOURCE_DATE_EPOCH if
// set, else diskimage.EpochFromContent.
func imageEpoch() (int64, error) {
	epoch, set, err := sourceDateEpoch()
	if err != nil || !set {
		return diskimage.EpochFromContent, err
	}
	return epoch, nil
}

func sourceDateEpoch() (epoch int64, set bool, err error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
	}
	return n, true, nil
}

func printBuildResult(w io.Writer, res *distro.BuildResult) {
	for _, p := range res.Packages {
		where := p.Path
		if p.Status == "failed" || p.Status == "skipped" {
			where = p.Log
		}
		fmt.Fprintf(w, "%-16s %-12s %-8s %7.1fs  %s\n", p.Name, p.Version, p.Status, p.Seconds, where)
	}
	fmt.Fprintf(w, "%d built, %d cached, %d failed, %d skipped in %.1fs\n", res.Built, res.Cached, res.Failed, res.Skipped, res.Seconds)
	if res.RootFS != "" {
		fmt.Fprintf(w, "rootfs %s\n", res.RootFS)
	}
	if res.SBOM != "" {
		fmt.Fprintf(w, "sbom   %s\n", res.SBOM)
	}
}

// buildProgress shows a run's progress on stderr: a line per finished
// package, and the packages building now with done/total and the elapsed
// time — a live status line on a terminal, a line every 30 s otherwise.
type buildProgress struct {
	w     io.Writer
	tty   bool
	start time.Time
	mu    sync.Mutex
	st    builder.Status
	any   bool
}

func newBuildProgress(w io.Writer) *buildProgress {
	p := &buildProgress{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.tty = err == nil
	}
	return p
}

func (p *buildProgress) update(s builder.Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st, p.any = s, true
	p.clear()
	switch s.Event {
	case "start":
		if !p.tty {
			fmt.Fprintf(p.w, "[%6.1fs] %d/%d start %s\n", s.Elapsed.Seconds(), s.Done, s.Total, s.Package)
		}
	default:
		fmt.Fprintf(p.w, "[%6.1fs] %d/%d %s %s\n", s.Elapsed.Seconds(), s.Done, s.Total, s.Event, s.Package)
	}
	p.status()
}

func (p *buildProgress) clear() {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// status draws the live line on a terminal.
func (p *buildProgress) status() {
	if !p.tty || len(p.st.Running) == 0 {
		return
	}
	fmt.Fprintf(p.w, "[%6.1fs] %d/%d building %s", time.Since(p.start).Seconds(), p.st.Done, p.st.Total, strings.Join(p.st.Running, ", "))
}

// run refreshes the status until the returned stop is called.
func (p *buildProgress) run(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		every := 30 * time.Second
		if p.tty {
			every = time.Second
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			p.mu.Lock()
			if p.any && len(p.st.Running) > 0 {
				p.clear()
				if p.tty {
					p.status()
				} else {
					fmt.Fprintf(p.w, "[%6.1fs] %d/%d building %s\n", time.Since(p.start).Seconds(), p.st.Done, p.st.Total, strings.Join(p.st.Running, ", "))
				}
			}
			p.mu.Unlock()
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		p.mu.Lock()
		p.clear()
		p.mu.Unlock()
	}
}
