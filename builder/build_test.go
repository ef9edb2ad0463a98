package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ingot-linux/ingot/builder/fetch"
	"github.com/ingot-linux/ingot/builder/sandbox"
	"github.com/ingot-linux/ingot/builder/store"
	"github.com/ingot-linux/ingot/builder/toolchain"
	"github.com/ingot-linux/ingot/cookbook"
	"github.com/ingot-linux/ingot/recipes"
)

// tarball makes a .tar.gz with one top-level directory.
func tarball(t testing.TB, top string, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: top + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1e9, 0)})
	for _, name := range sortedSet(keys(files)) {
		body := files[name]
		tw.WriteHeader(&tar.Header{Name: top + "/" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1e9, 0)})
		io.WriteString(tw, body)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func keys(m map[string]string) map[string]bool {
	s := map[string]bool{}
	for k := range m {
		s[k] = true
	}
	return s
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// upstream is an httptest server of source files that counts requests.
type upstream struct {
	srv   *httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	hits  atomic.Int32
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{files: map[string][]byte{}}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		b, ok := u.files[r.URL.Path]
		u.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// add serves data at /name and returns its URL and sha256.
func (u *upstream) add(name string, data []byte) (string, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.files["/"+name] = data
	return u.srv.URL + "/" + name, sha(data)
}

// fixture is a two-package distribution: hello build-depends on libgreet.
type fixture struct {
	up      *upstream
	fsys    fstest.MapFS
	greetV  string
	helloV  string
	greetC  string
	greetIn string // the sha the greet recipe pins ("" = the right one)
	patch   bool   // patch hello to exclaim
}

// exclaimPatch makes hello print an exclamation mark.
const exclaimPatch = `--- a/hello.c
+++ b/hello.c
@@ -1,3 +1,3 @@
 #include <stdio.h>
 #include <greet.h>
-int main(void) { puts(greeting()); return 0; }
+int main(void) { printf("%s!\n", greeting()); return 0; }
`

func newFixture(t testing.TB) *fixture {
	return &fixture{up: newUpstream(t), greetV: "1.0", helloV: "1.0",
		greetC: `const char *greeting(void) { return "hello from ingot"; }` + "\n"}
}

// recipes (re)writes the recipe tree from the fixture's fields.
func (f *fixture) recipes(t testing.TB) fstest.MapFS {
	t.Helper()
	greetURL, greetSHA := f.up.add("libgreet-"+f.greetV+".tar.gz", tarball(t, "libgreet-"+f.greetV, map[string]string{
		"greet.c": f.greetC,
		"greet.h": "const char *greeting(void);\n",
		"Makefile": "all: libgreet.a\nlibgreet.a: greet.o\n\t$(AR) rcs $@ greet.o\n" +
			"greet.o: greet.c\n\t$(CC) $(CFLAGS) -c greet.c\n" +
			"install:\n\tinstall -D -m 0644 libgreet.a $(DESTDIR)$(PREFIX)/lib/libgreet.a\n" +
			"\tinstall -D -m 0644 greet.h $(DESTDIR)$(PREFIX)/include/greet.h\n",
	}))
	if f.greetIn != "" {
		greetSHA = f.greetIn
	}
	helloURL, helloSHA := f.up.add("hello-"+f.helloV+".tar.gz", tarball(t, "hello-"+f.helloV, map[string]string{
		"hello.c": "#include <stdio.h>\n#include <greet.h>\nint main(void) { puts(greeting()); return 0; }\n",
		"Makefile": "hello: hello.c\n\t$(CC) $(CPPFLAGS) -static -o hello hello.c $(LDFLAGS) -lgreet\n" +
			"install:\n\tinstall -D -m 0755 hello $(DESTDIR)$(PREFIX)/bin/hello\n" +
			"\tinstall -D -m 0644 hello.c $(DESTDIR)$(PREFIX)/share/doc/hello/example.c\n",
	}))
	f.fsys = fstest.MapFS{
		"sets.yaml": {Data: []byte("base: [hello]\n")},
		"libgreet/recipe.yaml": {Data: []byte(fmt.Sprintf(`name: libgreet
version: "%s"
licence: MIT
sources: [{url: "%s", sha256: %s}]
deps: []
builder: {type: make}
`, f.greetV, greetURL, greetSHA))},
		"hello/recipe.yaml": {Data: []byte(fmt.Sprintf(`name: hello
version: "%s"
licence: GPL-2.0-only
sources: [{url: "%s", sha256: %s}]
build-deps: [libgreet]
builder: {type: make}
`, f.helloV, helloURL, helloSHA))},
	}
	if f.patch {
		f.fsys["hello/recipe.yaml"].Data = append(f.fsys["hello/recipe.yaml"].Data, "patches: [exclaim.patch]\n"...)
		f.fsys["hello/exclaim.patch"] = &fstest.MapFile{Data: []byte(exclaimPatch)}
	}
	return f.fsys
}

func (f *fixture) options(t testing.TB, st string, r sandbox.Runner) Options {
	t.Helper()
	fsys := f.recipes(t)
	d, err := LoadDistribution(fsys, "testrecipes")
	if err != nil {
		t.Fatal(err)
	}
	return Options{Distribution: d, Recipes: fsys, Store: st, Runner: r, Jobs: 2,
		Toolchain: []toolchain.Probe{{Name: "sh", Path: "sh"}}}
}

// fakeRunner "builds" without a sandbox: it writes usr/bin/<name> (listing
// the sysroot it saw) and a header into the install tree.
type fakeRunner struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]bool
	block bool
	// leak makes these packages install a file under /sysroot.
	leak map[string]bool
}

func mountOf(s *sandbox.Spec, target string) string {
	for _, m := range s.Mounts {
		if m.Target == target {
			return m.Source
		}
	}
	return ""
}

func (f *fakeRunner) Run(ctx context.Context, s *sandbox.Spec) error {
	work := mountOf(s, "/build")
	script, err := os.ReadFile(filepath.Join(work, "build.sh"))
	if err != nil {
		return err
	}
	name := strings.Fields(strings.SplitN(string(script), "\n", 2)[0])[5]
	f.mu.Lock()
	f.calls = append(f.calls, name)
	fail, block, leak := f.fail[name], f.block, f.leak[name]
	f.mu.Unlock()
	fmt.Fprintf(s.Stdout, "+ make\ncompiling %s\n", name)
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	if fail {
		fmt.Fprintf(s.Stderr, "%s.c:1: error: expected ';'\nmake: *** [hello] Error 1\n", name)
		return &sandbox.ExitError{Code: 2}
	}
	var seen []string
	filepath.Walk(mountOf(s, "/sysroot"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			seen = append(seen, filepath.Base(p))
		}
		return nil
	})
	out := filepath.Join(work, "out")
	os.MkdirAll(filepath.Join(out, "usr/bin"), 0o755)
	os.MkdirAll(filepath.Join(out, "usr/include"), 0o775)
	os.WriteFile(filepath.Join(out, "usr/bin", name), []byte("saw "+strings.Join(seen, ",")+"\n"), 0o775)
	os.WriteFile(filepath.Join(out, "usr/include", name+".h"), []byte("/* header */\n"), 0o644)
	if leak {
		os.MkdirAll(filepath.Join(out, "sysroot/usr/lib/systemd/system"), 0o755)
		os.WriteFile(filepath.Join(out, "sysroot/usr/lib/systemd/system", name+".service"), nil, 0o644)
	}
	return nil
}

func (f *fakeRunner) took() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := append([]string{}, f.calls...)
	f.calls = nil
	return c
}

func statuses(res *Result) string {
	var s []string
	for _, p := range res.Packages {
		s = append(s, p.Name+"="+p.Status)
	}
	return strings.Join(s, " ")
}

func TestBuildCachingAndDependents(t *testing.T) {
	fx := newFixture(t)
	st := t.TempDir()
	run := &fakeRunner{}
	ctx := context.Background()
	var events []string
	o := fx.options(t, st, run)
	o.Progress = func(s Status) {
		events = append(events, fmt.Sprintf("%s %s %d/%d", s.Event, s.Package, s.Done, s.Total))
	}
	res, err := Build(ctx, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); got != "libgreet=built hello=built" {
		t.Fatalf("first build: %s", got)
	}
	if got := strings.Join(events, "; "); got != "start libgreet 0/2; built libgreet 1/2; start hello 1/2; built hello 2/2" {
		t.Errorf("progress: %s", got)
	}
	// The store entry: split, normalized, with a manifest.
	hello := res.Packages[1]
	m, err := store.Open(st)
	if err != nil {
		t.Fatal(err)
	}
	man, err := m.Lookup(hello.Key)
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Outputs["runtime"]) != 3 || man.Outputs["runtime"][2].Path != "usr/bin/hello" || man.Outputs["runtime"][2].Mode != 0o755 {
		t.Errorf("runtime output: %+v", man.Outputs["runtime"])
	}
	if len(man.Outputs["dev"]) != 3 || man.Inputs[0].Name != "libgreet" {
		t.Errorf("dev output %+v, inputs %+v", man.Outputs["dev"], man.Inputs)
	}
	b, _ := os.ReadFile(filepath.Join(hello.Path, "runtime/usr/bin/hello"))
	if string(b) != "saw libgreet,libgreet.h\n" {
		t.Errorf("hello saw the sysroot %q", b)
	}
	fi, _ := os.Stat(filepath.Join(hello.Path, "runtime/usr/bin/hello"))
	if fi.ModTime().Unix() != DefaultEpoch {
		t.Errorf("mtime %v, want the epoch", fi.ModTime())
	}
	if _, err := os.Stat(filepath.Join(hello.Path, "build.log")); err != nil {
		t.Error(err)
	}

	// The runtime outputs assemble into a root file system.
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := Assemble(st, res.Keys(), []string{"hello", "libgreet"}, rootfs); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(rootfs, "usr/bin/hello")); err != nil || !strings.HasPrefix(string(b), "saw ") {
		t.Errorf("assembled hello: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "usr/include")); err == nil {
		t.Error("dev output in the root file system")
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "usr/bin")); err != nil || fi.ModTime().Unix() != DefaultEpoch {
		t.Errorf("usr/bin: %v %v", fi, err)
	}
	if err := Assemble(st, res.Keys(), []string{"hello"}, rootfs); err == nil {
		t.Error("assembled into a non-empty directory")
	}

	// No change: everything cached, nothing fetched or run.
	hits := fx.up.hits.Load()
	run.took()
	if res, err = Build(ctx, []string{"hello"}, fx.options(t, st, run)); err != nil || statuses(res) != "libgreet=cached hello=cached" {
		t.Fatalf("no-op build: %v %s", err, statuses(res))
	}
	if c := run.took(); len(c) != 0 || fx.up.hits.Load() != hits {
		t.Errorf("no-op build ran %v and fetched %d", c, fx.up.hits.Load()-hits)
	}

	// A new hello: only hello rebuilds.
	fx.helloV = "1.1"
	if res, err = Build(ctx, []string{"hello"}, fx.options(t, st, run)); err != nil || statuses(res) != "libgreet=cached hello=built" {
		t.Fatalf("after changing hello: %v %s", err, statuses(res))
	}
	// A new libgreet: its dependent rebuilds too.
	fx.greetC = strings.Replace(fx.greetC, "hello", "hi", 1)
	if res, err = Build(ctx, []string{"hello"}, fx.options(t, st, run)); err != nil || statuses(res) != "libgreet=built hello=built" {
		t.Fatalf("after changing libgreet: %v %s", err, statuses(res))
	}
	// A different epoch is a different build.
	o = fx.options(t, st, run)
	o.Epoch = 1700000000
	if res, err = Build(ctx, []string{"libgreet"}, o); err != nil || statuses(res) != "libgreet=built" {
		t.Fatalf("new epoch: %v %s", err, statuses(res))
	}
}

func checkNoPartial(t *testing.T, st string) {
	t.Helper()
	ents, _ := os.ReadDir(st)
	for _, e := range ents {
		if len(e.Name()) == 64 {
			t.Errorf("store has entry %s", e.Name())
		}
	}
	if tmp, _ := os.ReadDir(filepath.Join(st, ".tmp")); len(tmp) != 0 {
		t.Errorf("work directories left: %v", tmp)
	}
}

func TestBuildFailure(t *testing.T) {
	fx := newFixture(t)
	st := t.TempDir()
	run := &fakeRunner{fail: map[string]bool{"libgreet": true}}
	res, err := Build(context.Background(), []string{"hello"}, fx.options(t, st, run))
	var be *BuildError
	if !errors.As(err, &be) || be.Package != "libgreet" {
		t.Fatalf("err = %v, want a BuildError for libgreet", err)
	}
	msg := err.Error()
	for _, want := range []string{"build libgreet: exit status 2", "log: " + be.Log, "| make: *** [hello] Error 1", "| compiling libgreet"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if _, err := os.Stat(be.Log); err != nil {
		t.Errorf("the log is gone: %v", err)
	}
	if statuses(res) != "libgreet=failed hello=skipped" || res.Failed != 1 || res.Skipped != 1 {
		t.Errorf("result: %s", statuses(res))
	}
	checkNoPartial(t, st)
}

// TestSysrootLeak: files installed under the dependencies' prefix are a
// failed build, not a package.
func TestSysrootLeak(t *testing.T) {
	fx := newFixture(t)
	st := t.TempDir()
	_, err := Build(context.Background(), []string{"hello"}, fx.options(t, st, &fakeRunner{leak: map[string]bool{"libgreet": true}}))
	if err == nil || !strings.Contains(err.Error(), "installed files under /sysroot") {
		t.Fatalf("err = %v, want the /sysroot leak named", err)
	}
	checkNoPartial(t, st)
}

func TestHashMismatch(t *testing.T) {
	fx := newFixture(t)
	fx.greetIn = strings.Repeat("ab", 32)
	st := t.TempDir()
	run := &fakeRunner{}
	_, err := Build(context.Background(), []string{"libgreet"}, fx.options(t, st, run))
	var hm *fetch.HashMismatchError
	if !errors.As(err, &hm) || hm.Want != fx.greetIn || !strings.Contains(err.Error(), hm.Got) {
		t.Fatalf("err = %v, want a hash mismatch showing both hashes", err)
	}
	if c := run.took(); len(c) != 0 {
		t.Errorf("built %v from a bad source", c)
	}
	if src, _ := os.ReadDir(filepath.Join(st, "sources")); len(src) != 0 {
		t.Errorf("the bad download was kept: %v", src)
	}
	checkNoPartial(t, st)
}

func TestMissingToolchain(t *testing.T) {
	fx := newFixture(t)
	o := fx.options(t, t.TempDir(), &fakeRunner{})
	o.Toolchain = []toolchain.Probe{{Name: "musl-gcc", Path: "ingot-no-such-cc", Package: "musl-tools"}}
	_, err := Build(context.Background(), nil, o)
	var me *toolchain.MissingError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "install Debian's musl-tools") {
		t.Fatalf("err = %v, want a missing-toolchain error", err)
	}
}

func TestInterruptedBuild(t *testing.T) {
	fx := newFixture(t)
	st := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	run := &fakeRunner{block: true}
	go func() {
		time.Sleep(100 * time.Millisecond)
		cancel()
	}()
	_, err := Build(ctx, []string{"libgreet"}, fx.options(t, st, run))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
	checkNoPartial(t, st)
}

// TestConcurrentRuns checks that two runs on one store build each key once.
func TestConcurrentRuns(t *testing.T) {
	fx := newFixture(t)
	st := t.TempDir()
	run := &fakeRunner{}
	o1, o2 := fx.options(t, st, run), fx.options(t, st, run)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, o := range []Options{o1, o2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Build(context.Background(), nil, o)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if c := run.took(); len(c) != 2 {
		t.Errorf("built %v, want each package once", c)
	}
}

func TestKeyStable(t *testing.T) {
	fx := newFixture(t)
	d1, _ := LoadDistribution(fx.recipes(t), "")
	d2, _ := LoadDistribution(fx.recipes(t), "")
	k := func(d *cookbook.Distribution) string {
		in := &keyInput{recipe: d.Recipe("hello"), script: Script(d.Recipe("hello")), env: []string{"A=1"}, toolchain: "t", epoch: 1}
		s, err := in.key()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if k(d1) != k(d2) {
		t.Error("the same recipe gave two keys")
	}
	in := &keyInput{recipe: d1.Recipe("hello"), env: []string{"A=1"}, toolchain: "t", epoch: 1}
	a, _ := in.key()
	in.toolchain = "u"
	b, _ := in.key()
	if a == b {
		t.Error("the toolchain identity is not in the key")
	}
}

func TestEmbeddedRecipes(t *testing.T) {
	d, err := LoadDistribution(recipes.FS(), "recipes")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Resolve([]string{"base"}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadDistributionErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		fsys fstest.MapFS
		want string
	}{
		"unknown dep": {fstest.MapFS{"a/recipe.yaml": {Data: []byte("name: a\nversion: '1'\nlicence: MIT\nbuilder: {type: steps, steps: [true]}\nbuild-deps: [zz]\n")}},
			`r/a/recipe.yaml:5: build-deps[0]: unknown package "zz"`},
		"cycle": {fstest.MapFS{
			"a/recipe.yaml": {Data: []byte("name: a\nversion: '1'\nlicence: MIT\nbuilder: {type: steps, steps: [true]}\nbuild-deps: [b]\n")},
			"b/recipe.yaml": {Data: []byte("name: b\nversion: '1'\nlicence: MIT\nbuilder: {type: steps, steps: [true]}\ndeps: [a]\n")}},
			"dependency cycle: a → b → a"},
		"wrong dir": {fstest.MapFS{"a/recipe.yaml": {Data: []byte("name: b\nversion: '1'\nlicence: MIT\nbuilder: {type: steps, steps: [true]}\n")}},
			`r/a/recipe.yaml:1: name: "b" differs from the directory name "a"`},
		"missing patch": {fstest.MapFS{"a/recipe.yaml": {Data: []byte("name: a\nversion: '1'\nlicence: MIT\nbuilder: {type: steps, steps: [true]}\npatches: [fix.patch]\n")}},
			"r/a/recipe.yaml:5: patches[0]: fix.patch: file does not exist"},
		"bad set": {fstest.MapFS{"sets.yaml": {Data: []byte("base: [nope]\n")}},
			`r/sets.yaml:1: base[0]: unknown package "nope"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadDistribution(tc.fsys, "r")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
		})
	}
}
