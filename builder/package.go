package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ingot-linux/ingot/builder/fetch"
	"github.com/ingot-linux/ingot/builder/sandbox"
	"github.com/ingot-linux/ingot/builder/store"
	"github.com/ingot-linux/ingot/builder/toolchain"
	"github.com/ingot-linux/ingot/cookbook"
)

// tailLines is how many lines of a failed build's log an error shows.
const tailLines = 25

// BuildError is a package that failed to build. Its log stays at Log.
type BuildError struct {
	Package string
	// Log is the build log's path ("" when the build did not start).
	Log string
	// Tail are the log's last lines.
	Tail []string
	Err  error
}

func (e *BuildError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "build %s: %v", e.Package, e.Err)
	if e.Log != "" {
		fmt.Fprintf(&b, "\n  log: %s", e.Log)
	}
	if len(e.Tail) > 0 {
		b.WriteString("\n  last lines:")
		for _, l := range e.Tail {
			b.WriteString("\n  | " + l)
		}
	}
	return b.String()
}

func (e *BuildError) Unwrap() error { return e.Err }

// computeKeys computes every package's key, build inputs first.
func (b *builder) computeKeys(ctx context.Context, order []string) error {
	for _, n := range order {
		r := b.o.Distribution.Recipe(n)
		in := &keyInput{recipe: r, script: Script(r), env: b.env, toolchain: b.ident.Digest(), epoch: b.o.Epoch}
		names, _ := recipeFiles(r)
		for _, f := range names {
			data, err := fs.ReadFile(b.o.Recipes, path.Join(n, f))
			if err != nil {
				return fmt.Errorf("%s: %w", r.File(), err)
			}
			sum := sha256.Sum256(data)
			in.files = append(in.files, fileDigest{f, hex.EncodeToString(sum[:])})
		}
		for _, i := range b.o.Distribution.BuildInputs(n) {
			in.inputs = append(in.inputs, inputKey{i, b.keys[i]})
		}
		tools := map[string]bool{}
		for _, t := range append(implicitTools(r.Builder.Type), r.Tools...) {
			tools[t] = true
		}
		for _, t := range sortedSet(tools) {
			c, err := b.tool(ctx, t)
			if err != nil {
				return fmt.Errorf("%s needs %w", n, err)
			}
			in.tools = append(in.tools, c)
		}
		k, err := in.key()
		if err != nil {
			return err
		}
		b.keys[n] = k
	}
	return nil
}

func (b *builder) tool(ctx context.Context, name string) (toolchain.Component, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.tools[name]; ok {
		return c, nil
	}
	c, err := toolchain.Tool(ctx, name, b.hashes)
	if err != nil {
		return c, err
	}
	b.tools[name] = c
	return c, nil
}

// buildOne brings one package into the store, or finds it there.
func (b *builder) buildOne(ctx context.Context, pk *Package, p *progress) error {
	if b.store.Has(pk.Key) {
		pk.Status, pk.Path = "cached", b.store.Path(pk.Key)
		p.event(pk.Name, "cached", false)
		return nil
	}
	p.event(pk.Name, "start", true)
	t0 := time.Now()
	cached, err := b.build(ctx, b.o.Distribution.Recipe(pk.Name), pk.Key)
	pk.Seconds = time.Since(t0).Seconds()
	if err != nil {
		var be *BuildError
		if errors.As(err, &be) {
			pk.Log = be.Log
		}
		p.event(pk.Name, "failed", false)
		return err
	}
	pk.Status, pk.Path = "built", b.store.Path(pk.Key)
	if cached {
		pk.Status = "cached" // another process built it while we waited
	} else {
		pk.Log = b.store.LogPath(pk.Name, pk.Key)
	}
	p.event(pk.Name, pk.Status, false)
	return nil
}

// build builds r into the store under key; cached reports that another
// process committed the key while this one waited for its lock.
func (b *builder) build(ctx context.Context, r *cookbook.Recipe, key string) (cached bool, err error) {
	fail := func(log string, err error) error {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		be := &BuildError{Package: r.Name, Log: log, Err: err}
		if log != "" {
			be.Tail = tail(log, tailLines)
		}
		return be
	}
	unlock, err := b.store.Lock(ctx, key)
	if err != nil {
		return false, fail("", err)
	}
	defer unlock()
	if b.store.Has(key) {
		return true, nil
	}
	tmp, err := b.store.TempDir(key)
	if err != nil {
		return false, fail("", err)
	}
	defer os.RemoveAll(tmp)
	logPath := b.store.LogPath(r.Name, key)
	logf, err := os.Create(logPath)
	if err != nil {
		return false, fail("", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "ingot: build %s %s, key %s\n", r.Name, r.Version, key)

	work := filepath.Join(tmp, "build")
	for _, d := range []string{"src", "out", "home", "recipe"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return false, fail("", err)
		}
	}
	if err := b.prepareSources(ctx, r, filepath.Join(work, "src"), logf); err != nil {
		return false, fail("", err)
	}
	if err := b.copyRecipeFiles(r, filepath.Join(work, "recipe")); err != nil {
		return false, fail("", err)
	}
	var inputs []input
	for _, i := range b.o.Distribution.BuildInputs(r.Name) {
		inputs = append(inputs, input{name: i, dir: b.store.Path(b.keys[i])})
	}
	sysroot := filepath.Join(tmp, "sysroot")
	if err := composeSysroot(sysroot, inputs); err != nil {
		return false, fail("", err)
	}
	if err := os.WriteFile(filepath.Join(work, "build.sh"), []byte(Script(r)), 0o644); err != nil {
		return false, fail("", err)
	}
	mounts, files, err := sandbox.HostSystem()
	if err != nil {
		return false, fail("", err)
	}
	mounts = append(mounts,
		sandbox.Mount{Source: work, Target: "/build", Writable: true},
		sandbox.Mount{Source: filepath.Join(work, "recipe"), Target: RecipeDir},
		sandbox.Mount{Source: sysroot, Target: SysrootDir},
	)
	env := append(append([]string{}, b.env...), "JOBS="+strconv.Itoa(b.cpus))
	fmt.Fprintf(logf, "ingot: running the build script in the sandbox\n")
	err = b.runner.Run(ctx, &sandbox.Spec{
		Mounts: mounts, Files: files, Dir: SrcDir,
		Args: []string{"/bin/sh", "/build/build.sh"}, Env: env,
		Stdout: logf, Stderr: logf,
	})
	if err != nil {
		return false, fail(logPath, err)
	}
	entry := filepath.Join(tmp, "entry")
	m, err := b.collect(r, key, inputs, filepath.Join(work, "out"), entry)
	if err != nil {
		fmt.Fprintf(logf, "ingot: %v\n", err)
		return false, fail(logPath, err)
	}
	fmt.Fprintf(logf, "ingot: committing %s\n", b.store.Path(key))
	if err := logf.Sync(); err != nil {
		return false, fail(logPath, err)
	}
	if err := os.Link(logPath, filepath.Join(entry, "build.log")); err != nil {
		return false, fail(logPath, err)
	}
	if err := b.store.Commit(entry, m); err != nil {
		return false, fail(logPath, err)
	}
	return false, nil
}

// prepareSources fetches, verifies and unpacks every source into src. All
// writes go through an os.Root of src, so no source (nor a link an earlier
// one shipped) places a file outside it.
func (b *builder) prepareSources(ctx context.Context, r *cookbook.Recipe, src string, log io.Writer) error {
	tree, err := os.OpenRoot(src)
	if err != nil {
		return err
	}
	defer tree.Close()
	for _, s := range r.Sources {
		fmt.Fprintf(log, "ingot: source %s (sha256 %s)\n", s.URL, s.SHA256)
		p, err := b.fetcher.Fetch(ctx, s)
		if err != nil {
			return err
		}
		if err := placeSource(p, tree, s); err != nil {
			return fmt.Errorf("source %s: %w", s.URL, err)
		}
	}
	return nil
}

// placeSource unpacks the fetched source file p into tree at s.Dest, or
// copies it there when it is not an archive.
func placeSource(p string, tree *os.Root, s cookbook.Source) error {
	isArchive, err := fetch.IsArchive(p)
	if err != nil {
		return err
	}
	if isArchive {
		return fetch.Unpack(p, tree, s.Dest)
	}
	dir, err := fetch.MakeDest(tree, s.Dest)
	if err != nil {
		return err
	}
	in, err := os.Open(p)
	if err != nil {
		return err
	}
	defer in.Close()
	w, err := tree.OpenFile(path.Join(dir, path.Base(s.URL)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, in)
	return errors.Join(err, w.Close())
}

func (b *builder) copyRecipeFiles(r *cookbook.Recipe, dst string) error {
	names, _ := recipeFiles(r)
	for _, n := range names {
		data, err := fs.ReadFile(b.o.Recipes, path.Join(r.Name, n))
		if err != nil {
			return fmt.Errorf("%s: %w", r.File(), err)
		}
		p := filepath.Join(dst, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// collect splits and normalizes the install tree into entry and returns
// the entry's manifest.
func (b *builder) collect(r *cookbook.Recipe, key string, inputs []input, out, entry string) (*store.Manifest, error) {
	if _, err := os.Lstat(filepath.Join(out, "sysroot")); err == nil {
		return nil, fmt.Errorf("%s installed files under /sysroot, the dependencies' prefix in the sandbox (a path taken from a dependency's pkg-config file, usually): install them under /usr, or move them there in post-install", r.Name)
	}
	if err := splitOutputs(out, entry, r.Outputs); err != nil {
		return nil, err
	}
	m := &store.Manifest{Name: r.Name, Version: r.Version, Licence: r.Licence, Key: key,
		Deps: r.Deps, Toolchain: b.ident.Digest(), Epoch: b.o.Epoch, Outputs: map[string][]store.FileEntry{},
		Sources: []store.Source{}, Inputs: []store.Input{}}
	for _, s := range r.Sources {
		m.Sources = append(m.Sources, store.Source{URL: s.URL, SHA256: s.SHA256})
	}
	for _, i := range inputs {
		m.Inputs = append(m.Inputs, store.Input{Name: i.name, Key: b.keys[i.name]})
	}
	for _, o := range []string{cookbook.Runtime, cookbook.Dev, cookbook.Doc} {
		files, err := store.Normalize(filepath.Join(entry, o), b.o.Epoch)
		if err != nil {
			return nil, err
		}
		if files == nil {
			files = []store.FileEntry{}
		}
		m.Outputs[o] = files
	}
	if len(m.Outputs[cookbook.Runtime])+len(m.Outputs[cookbook.Dev])+len(m.Outputs[cookbook.Doc]) == 0 {
		return nil, fmt.Errorf("the build installed nothing into $DESTDIR")
	}
	return m, nil
}

// tail returns the last n lines of a file.
func tail(file string, n int) []string {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	const window = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		f.Seek(fi.Size()-window, io.SeekStart)
	}
	data, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(bytes.ToValidUTF8(data, []byte("?"))), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

func sortedSet(m map[string]bool) []string {
	s := make([]string, 0, len(m))
	for k := range m {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}
