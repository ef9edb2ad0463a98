// Package fetch downloads upstream sources into a content-addressed cache,
// checking each file's sha256 before anything uses it, and unpacks them.
//
//	f := &fetch.Fetcher{Dir: st.SourcesDir()}
//	path, err := f.Fetch(ctx, src) // tries src.URL, then src.Mirrors
//
// A mirror "debian:PKG=VERSION" fetches the *.orig.tar.* of a Debian
// source package — or, for a native package, which has none, its
// PKG_VERSION.tar.* — through the host's apt (`apt-get source
// --download-only`), so no archive host is named anywhere in ingot.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ingot-linux/ingot/cookbook"
	"github.com/ingot-linux/ingot/internal/fileutil"
)

// Fetcher fetches sources into Dir, named by their sha256.
type Fetcher struct {
	// Dir is the cache directory (required).
	Dir string
	// Client does HTTP downloads (nil: a client with a 10-minute timeout).
	Client *http.Client
	// Debian fetches the files of a Debian source package into dir (nil:
	// AptSource).
	Debian func(ctx context.Context, pkg, version, dir string) error
	// Logger receives details (nil: discarded).
	Logger *slog.Logger
}

// HashMismatchError is a download whose sha256 is not the pinned one; the
// download has been discarded.
type HashMismatchError struct {
	URL  string
	Want string
	Got  string
}

func (e *HashMismatchError) Error() string {
	return fmt.Sprintf("%s: sha256 mismatch: want %s, got %s (download discarded)", e.URL, e.Want, e.Got)
}

// Path is where the source with this sha256 is cached.
func (f *Fetcher) Path(sha string) string { return filepath.Join(f.Dir, sha) }

// Fetch returns the path of the verified source file, fetching it from
// its URL or, failing that, from each mirror in turn.
func (f *Fetcher) Fetch(ctx context.Context, src cookbook.Source) (string, error) {
	dst := f.Path(src.SHA256)
	if got, err := fileutil.SHA256(dst); err == nil {
		if got == src.SHA256 {
			return dst, nil
		}
		f.logger().Warn("cached source is corrupt; fetching again", "path", dst, "digest", got)
		os.Remove(dst)
	}
	if err := os.MkdirAll(f.Dir, 0o755); err != nil {
		return "", fmt.Errorf("fetch %s: %w", src.URL, err)
	}
	var errs []error
	for _, loc := range append([]string{src.URL}, src.Mirrors...) {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		f.logger().Debug("fetching", "url", loc)
		err := f.fetchOne(ctx, loc, src.SHA256, dst)
		if err == nil {
			return dst, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("fetch %s: %w", baseName(src.URL), errors.Join(errs...))
}

func baseName(u string) string { return u[strings.LastIndex(u, "/")+1:] }

func (f *Fetcher) fetchOne(ctx context.Context, loc, want, dst string) error {
	if pkg, version, ok := cookbook.DebianMirror(loc); ok {
		return f.fetchDebian(ctx, loc, pkg, version, want, dst)
	}
	u, err := url.Parse(loc)
	if err != nil {
		return fmt.Errorf("%s: %w", loc, err)
	}
	var r io.ReadCloser
	switch u.Scheme {
	case "file":
		if r, err = os.Open(u.Path); err != nil {
			return err
		}
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
		if err != nil {
			return err
		}
		resp, err := f.client().Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("%s: %s", loc, resp.Status)
		}
		r = resp.Body
	default:
		return fmt.Errorf("%s: unsupported URL scheme", loc)
	}
	defer r.Close()
	return f.store(r, loc, want, dst)
}

// store copies r into dst through a temporary file, keeping it only when
// its sha256 is want.
func (f *Fetcher) store(r io.Reader, loc, want, dst string) error {
	tmp, err := os.CreateTemp(f.Dir, ".fetch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), r); err != nil {
		return fmt.Errorf("%s: %w", loc, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return &HashMismatchError{URL: loc, Want: want, Got: got}
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func (f *Fetcher) fetchDebian(ctx context.Context, loc, pkg, version, want, dst string) error {
	dir, err := os.MkdirTemp(f.Dir, ".debian-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	debian := f.Debian
	if debian == nil {
		debian = AptSource
	}
	// Debian's pool sometimes serves a version's orig tarball but not its
	// other files: apt fails, yet the pinned hash decides.
	aptErr := debian(ctx, pkg, version, dir)
	if err := ctx.Err(); err != nil {
		return err
	}
	var names []string
	if es, err := os.ReadDir(dir); err == nil {
		for _, e := range es {
			names = append(names, e.Name())
		}
	}
	var mismatch error
	for _, o := range debianTarballs(names) {
		in, err := os.Open(filepath.Join(dir, o))
		if err != nil {
			return err
		}
		err = f.store(in, loc+" ("+o+")", want, dst)
		in.Close()
		if err == nil {
			return nil
		}
		if mismatch == nil {
			mismatch = err
		}
	}
	if mismatch != nil {
		return mismatch
	}
	if aptErr != nil {
		return fmt.Errorf("%s: %w", loc, aptErr)
	}
	return fmt.Errorf("%s: the source package has no *.orig.tar.* or native *.tar.* file", loc)
}

// debianTarballs picks the upstream tarballs among the files of a Debian
// source package: its *.orig.tar.* files or, when there are none (a native
// package), its *.tar.* files other than a *.debian.tar.*; never signatures
// (*.asc) or component tarballs (*.orig-NAME.tar.*, which are not the main
// source).
func debianTarballs(names []string) []string {
	var origs, native []string
	for _, n := range names {
		switch {
		case strings.HasSuffix(n, ".asc"):
		case strings.Contains(n, ".orig.tar."):
			origs = append(origs, n)
		case strings.Contains(n, ".orig-"), strings.Contains(n, ".debian.tar."):
		case strings.Contains(n, ".tar."):
			native = append(native, n)
		}
	}
	if len(origs) > 0 {
		return origs
	}
	return native
}

// AptSource runs `apt-get source --download-only PKG=VERSION` in dir; the
// host's apt needs deb-src entries for a release that has the version.
func AptSource(ctx context.Context, pkg, version, dir string) error {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("debian mirror needs apt-get: %w", err)
	}
	cmd := exec.CommandContext(ctx, "apt-get", "source", "--download-only", "-qq", pkg+"="+version)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get source %s=%s: %w: %s", pkg, version, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (f *Fetcher) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return &http.Client{Timeout: 10 * time.Minute}
}

func (f *Fetcher) logger() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.New(slog.DiscardHandler)
}
