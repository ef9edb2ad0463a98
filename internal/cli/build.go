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

	"github.com/ingot-linux/ingot/build"
	"github.com/ingot-linux/ingot/recipes"
)

func newBuildCmd(g *globals) *cobra.Command {
	var (
		jobs       int
		storeDir   string
		recipesDir string
		keepGoing  bool
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
			o := build.Options{Jobs: jobs, KeepGoing: keepGoing, Logger: g.logger()}
			var err error
			label := "recipes"
			o.Recipes = recipes.FS()
			if recipesDir != "" {
				o.Recipes, label = os.DirFS(recipesDir), recipesDir
			}
			if o.Distribution, err = build.LoadDistribution(o.Recipes, label); err != nil {
				return err
			}
			if storeDir == "" {
				if storeDir, err = defaultStore(); err != nil {
					return err
				}
			}
			o.Store = storeDir
			if o.Epoch, err = buildEpoch(); err != nil {
				return err
			}
			pr := newBuildProgress(g.stderr)
			o.Progress = pr.update
			stop := pr.run(cmd.Context())
			res, err := build.Build(cmd.Context(), args, o)
			stop()
			if res == nil {
				return err
			}
			if rerr := g.render(res, func(w io.Writer) { printBuildResult(w, res) }); rerr != nil {
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
	return cmd
}

func defaultStore() (string, error) {
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("default store: %w (use --store)", err)
	}
	return filepath.Join(c, "ingot", "store"), nil
}

// buildEpoch reads SOURCE_DATE_EPOCH; unset means build.DefaultEpoch.
func buildEpoch() (int64, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
	}
	return n, nil
}

func printBuildResult(w io.Writer, res *build.Result) {
	for _, p := range res.Packages {
		where := p.Path
		if p.Status == "failed" || p.Status == "skipped" {
			where = p.Log
		}
		fmt.Fprintf(w, "%-16s %-12s %-8s %7.1fs  %s\n", p.Name, p.Version, p.Status, p.Seconds, where)
	}
	fmt.Fprintf(w, "%d built, %d cached, %d failed, %d skipped in %.1fs\n", res.Built, res.Cached, res.Failed, res.Skipped, res.Seconds)
}

// buildProgress shows a run's progress on stderr: a line per finished
// package, and the packages building now with done/total and the elapsed
// time — a live status line on a terminal, a line every 30 s otherwise.
type buildProgress struct {
	w     io.Writer
	tty   bool
	start time.Time
	mu    sync.Mutex
	st    build.Status
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

func (p *buildProgress) update(s build.Status) {
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
