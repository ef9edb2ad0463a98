// Package toolchain identifies the host programs a build runs — stage 0 is
// the host's gcc and binutils driven against Debian's musl (musl-tools) —
// so that their versions and the hashes of their binaries are part of every
// build key.
//
//	id, err := toolchain.Detect(ctx, toolchain.Stage0(), cache)
//	key := id.Digest()
package toolchain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// Probe finds one component of the toolchain.
type Probe struct {
	// Name identifies the component (e.g. "gcc", "cc1", "musl").
	Name string
	// Path is an absolute path or a program name looked up in the build's
	// PATH (/usr/bin:/usr/sbin:/bin:/sbin).
	Path string
	// PathFrom, when set, is a command whose first output line is the path
	// (e.g. gcc -print-prog-name=cc1); it runs instead of using Path.
	PathFrom []string
	// Version is a command whose output gives the version: its first line
	// with a dotted number ("" as the program means the component itself).
	Version []string
	// Package is the Debian package that provides it, for messages.
	Package string
}

// Stage0 is the host toolchain: gcc, binutils, GNU make, the shell, patch,
// Debian's musl-tools, and the kernel's UAPI headers (linux-libc-dev).
func Stage0() []Probe {
	return []Probe{
		{Name: "gcc", Path: "gcc", Version: []string{"", "-dumpfullversion"}, Package: "gcc"},
		{Name: "cc1", PathFrom: []string{"gcc", "-print-prog-name=cc1"}, Package: "gcc"},
		{Name: "collect2", PathFrom: []string{"gcc", "-print-prog-name=collect2"}, Package: "gcc"},
		{Name: "as", Path: "as", Version: []string{"", "--version"}, Package: "binutils"},
		{Name: "ld", Path: "ld", Version: []string{"", "--version"}, Package: "binutils"},
		{Name: "ar", Path: "ar", Package: "binutils"},
		{Name: "make", Path: "make", Version: []string{"", "--version"}, Package: "make"},
		{Name: "sh", Path: "sh", Package: "dash"},
		{Name: "patch", Path: "patch", Version: []string{"", "--version"}, Package: "patch"},
		{Name: "musl-gcc", Path: "musl-gcc", Package: "musl-tools"},
		{Name: "musl-gcc.specs", Path: "/usr/lib/x86_64-linux-musl/musl-gcc.specs", Package: "musl-tools"},
		{Name: "musl", Path: "/usr/lib/x86_64-linux-musl/libc.so", Version: []string{""}, Package: "musl-dev"},
		{Name: "musl-libc.a", Path: "/usr/lib/x86_64-linux-musl/libc.a", Package: "musl-dev"},
		{Name: "linux-uapi-headers", Path: "/usr/include/linux/version.h", Package: "linux-libc-dev"},
	}
}

// SearchPath is where programs named without a slash are looked up: the
// build sandbox's PATH.
const SearchPath = "/usr/bin:/usr/sbin:/bin:/sbin"

// Identity is a toolchain's identity: its components in name order.
type Identity struct {
	Components []Component `json:"components"`
}

// Component is one identified program or file.
type Component struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Version string `json:"version,omitempty"`
	SHA256  string `json:"sha256"`
}

// Digest is the sha256 of the identity's canonical encoding.
func (id *Identity) Digest() string {
	h := sha256.New()
	for _, c := range id.Components {
		for _, s := range []string{c.Name, c.Path, c.Version, c.SHA256} {
			fmt.Fprintf(h, "%d:%s", len(s), s)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// MissingError is a toolchain component that is not installed.
type MissingError struct {
	Name    string
	Package string
	Err     error
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("toolchain: %s not found (install Debian's %s): %v", e.Name, e.Package, e.Err)
}

func (e *MissingError) Unwrap() error { return e.Err }

// Detect identifies every probe's component. cache (may be nil) remembers
// file hashes by path, size, mtime and inode so that repeated detection
// costs a stat per file.
func Detect(ctx context.Context, probes []Probe, cache *HashCache) (*Identity, error) {
	comps := make([]Component, len(probes))
	errs := make([]error, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			comps[i], errs[i] = detect(ctx, p, cache)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.Slice(comps, func(i, j int) bool { return comps[i].Name < comps[j].Name })
	return &Identity{Components: comps}, nil
}

func detect(ctx context.Context, p Probe, cache *HashCache) (Component, error) {
	c := Component{Name: p.Name}
	path := p.Path
	if len(p.PathFrom) > 0 {
		out, err := run(ctx, p.PathFrom)
		if err != nil {
			return c, &MissingError{Name: p.Name, Package: p.Package, Err: err}
		}
		path = strings.TrimSpace(firstLine(out))
		if !filepath.IsAbs(path) {
			return c, &MissingError{Name: p.Name, Package: p.Package, Err: fmt.Errorf("%s printed %q", strings.Join(p.PathFrom, " "), path)}
		}
	}
	abs, err := look(path)
	if err != nil {
		return c, &MissingError{Name: p.Name, Package: p.Package, Err: err}
	}
	if c.Path, err = filepath.EvalSymlinks(abs); err != nil {
		return c, &MissingError{Name: p.Name, Package: p.Package, Err: err}
	}
	if c.SHA256, err = cache.hash(c.Path); err != nil {
		return c, fmt.Errorf("toolchain: hash %s: %w", c.Path, err)
	}
	if len(p.Version) > 0 {
		args := append([]string{}, p.Version...)
		if args[0] == "" {
			args[0] = abs
		}
		out, _ := run(ctx, args) // musl's loader prints its version and exits 1
		c.Version = versionLine(out)
	}
	return c, nil
}

// Look finds a program in SearchPath, or checks an absolute path.
func look(p string) (string, error) {
	if filepath.IsAbs(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		if fi.IsDir() {
			return "", fmt.Errorf("%s is a directory", p)
		}
		return p, nil
	}
	for _, d := range filepath.SplitList(SearchPath) {
		c := filepath.Join(d, p)
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	return "", fmt.Errorf("%s is not in %s", p, SearchPath)
}

// Tool identifies an extra host program a recipe declares.
func Tool(ctx context.Context, name string, cache *HashCache) (Component, error) {
	return detect(ctx, Probe{Name: name, Path: name, Package: name}, cache)
}

func run(ctx context.Context, args []string) (string, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = []string{"PATH=" + SearchPath, "LC_ALL=C"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

var versionRE = regexp.MustCompile(`[0-9]+\.[0-9]+`)

func versionLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if versionRE.MatchString(l) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// HashCache remembers file hashes by path and stat data. Its zero value
// (or nil) hashes every time; Load and Save keep it in a file.
type HashCache struct {
	mu      sync.Mutex
	entries map[string]cacheEntry
	dirty   bool
}

type cacheEntry struct {
	Size   int64  `json:"size"`
	MtimeN int64  `json:"mtime"`
	CtimeN int64  `json:"ctime"`
	Ino    uint64 `json:"ino"`
	SHA256 string `json:"sha256"`
}

// LoadHashCache reads a cache file; a missing or unreadable file gives an
// empty cache.
func LoadHashCache(file string) *HashCache {
	c := &HashCache{entries: map[string]cacheEntry{}}
	if b, err := os.ReadFile(file); err == nil {
		json.Unmarshal(b, &c.entries)
	}
	return c
}

// Save writes the cache to file (atomically) when it changed.
func (c *HashCache) Save(file string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	b, err := json.Marshal(c.entries)
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", file, os.Getpid())
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("save hash cache: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("save hash cache: %w", err)
	}
	c.dirty = false
	return nil
}

func (c *HashCache) hash(p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	st := fi.Sys().(*syscall.Stat_t)
	e := cacheEntry{Size: fi.Size(), MtimeN: fi.ModTime().UnixNano(), CtimeN: st.Ctim.Nano(), Ino: st.Ino}
	if c != nil {
		c.mu.Lock()
		old, ok := c.entries[p]
		c.mu.Unlock()
		if ok && old.Size == e.Size && old.MtimeN == e.MtimeN && old.CtimeN == e.CtimeN && old.Ino == e.Ino {
			return old.SHA256, nil
		}
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	e.SHA256 = hex.EncodeToString(h.Sum(nil))
	if c != nil {
		c.mu.Lock()
		if c.entries == nil {
			c.entries = map[string]cacheEntry{}
		}
		c.entries[p], c.dirty = e, true
		c.mu.Unlock()
	}
	return e.SHA256, nil
}
