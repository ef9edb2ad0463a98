package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ingot-linux/ingot/artifact"
)

// authClient is an HTTP client authorized to pull from one repository.
type authClient = http.Client

// newAuthClient returns a client for r's repository that authenticates
// with o's keychain and speaks scheme to the registry.
func newAuthClient(ctx context.Context, o *options, r name.Reference, scheme string) (*authClient, error) {
	reg := r.Context().Registry
	auth, err := o.keychain.Resolve(reg)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", reg, err)
	}
	t := &schemeTransport{host: reg.RegistryStr(), scheme: scheme, inner: o.transport}
	rt, err := transport.NewWithContext(ctx, reg, auth, t, []string{r.Context().Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	c := &http.Client{Transport: rt}
	if scheme == "https" {
		c.CheckRedirect = artifact.CheckRedirectHTTPS
	}
	return c, nil
}

// fetchSmall downloads a small blob into memory and checks its size and
// digest.
func fetchSmall(ctx context.Context, c *authClient, baseURL string, d v1.Descriptor) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+d.Digest.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, d.Size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != d.Size {
		return nil, &artifact.MismatchError{File: d.Digest.String(), Field: "size", Want: strconv.FormatInt(d.Size, 10), Got: strconv.FormatInt(int64(len(b)), 10)}
	}
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != d.Digest.String() {
		return nil, &artifact.MismatchError{File: d.Digest.String(), Field: "digest", Want: d.Digest.String(), Got: got}
	}
	return b, nil
}

// maxAttempts is how often one Pull tries to download a blob, resuming
// after each interruption.
const maxAttempts = 3

// fetcher downloads blobs, resuming interrupted downloads.
type fetcher struct {
	client   *authClient
	blobURL  string // ends in /blobs/
	cacheDir string
	logger   *slog.Logger
	progress *tracker
	maxRange int64 // the most one ranged request for chunks asks for
}

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// fetch downloads the blob d, the artifact file name, to dst, verifying its
// size and digest.
func (f *fetcher) fetch(ctx context.Context, name string, d v1.Descriptor, dst string) error {
	part := dst + ".partial"
	if f.cacheDir != "" {
		part = cachePath(f.cacheDir, d.Digest)
		if err := os.MkdirAll(filepath.Dir(part), 0o755); err != nil {
			return fmt.Errorf("cache directory: %w", err)
		}
	}
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if attempt > 1 {
			f.logger.Debug("retry blob download", "digest", d.Digest.String(), "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt-1) * 200 * time.Millisecond):
			}
		}
		err = f.attempt(ctx, name, d, part)
		if err == nil {
			return moveFile(part, dst)
		}
		var perm permanentError
		if errors.As(err, &perm) || ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("download %s (%s): %w", name, d.Digest, err)
}

// attempt downloads the rest of the blob d into the partial file part and
// verifies it once complete.
func (f *fetcher) attempt(ctx context.Context, name string, d v1.Descriptor, part string) error {
	pf, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return permanentError{err}
	}
	defer pf.Close()
	h := sha256.New()
	have, err := io.Copy(h, io.LimitReader(pf, d.Size+1))
	if err != nil {
		return permanentError{err}
	}
	if have > d.Size {
		if have, err = restart(pf, h); err != nil {
			return err
		}
	}
	f.progress.set(name, have)
	if have == d.Size {
		if err := f.finish(name, d, pf, h); err == nil {
			return nil
		}
		// A complete partial that does not verify: start over.
		if have, err = restart(pf, h); err != nil {
			return err
		}
		f.progress.set(name, have)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.blobURL+d.Digest.String(), nil)
	if err != nil {
		return permanentError{err}
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", have, d.Size-1))
		f.logger.Debug("resume blob download", "digest", d.Digest.String(), "offset", have)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0 &&
		strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", have)):
	case resp.StatusCode == http.StatusOK:
		if have > 0 { // the registry ignored the range: take it all
			if have, err = restart(pf, h); err != nil {
				return err
			}
			f.progress.set(name, have)
		}
	default:
		err := transport.CheckError(resp, http.StatusOK)
		if resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			err = permanentError{err}
		}
		return err
	}
	w := &progressWriter{w: io.MultiWriter(pf, h), n: have, report: func(n int64) { f.progress.set(name, n) }}
	_, err = artifact.CopyDeclared(w, resp.Body, name, d.Size-have)
	var mm *artifact.MismatchError
	if errors.As(err, &mm) {
		os.Remove(part) // never more than declared was written, but it is not the blob
		return permanentError{&artifact.MismatchError{File: name, Field: "size", Want: strconv.FormatInt(d.Size, 10), Got: "more"}}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("download ended after %d of %d bytes", w.n, d.Size)
	}
	if err != nil {
		return err // keep what arrived, to resume
	}
	if err := f.finish(name, d, pf, h); err != nil {
		os.Remove(part) // corrupt: resuming it cannot help
		return permanentError{err}
	}
	return nil
}

// finish checks a complete partial blob's digest and syncs it. A digest
// mismatch is a *artifact.MismatchError.
func (f *fetcher) finish(name string, d v1.Descriptor, pf *os.File, h hash.Hash) error {
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Digest.Hex {
		return &artifact.MismatchError{File: name, Field: "digest", Want: d.Digest.String(), Got: "sha256:" + got}
	}
	if err := pf.Chmod(0o644); err != nil {
		return err
	}
	return pf.Sync()
}

// restart empties a partial file.
func restart(pf *os.File, h hash.Hash) (int64, error) {
	h.Reset()
	if err := pf.Truncate(0); err != nil {
		return 0, permanentError{err}
	}
	if _, err := pf.Seek(0, io.SeekStart); err != nil {
		return 0, permanentError{err}
	}
	return 0, nil
}

// moveFile renames src to dst, copying when they are on different
// filesystems.
func moveFile(src, dst string) error {
	err := os.Rename(src, dst)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Remove(src)
}

// progressWriter counts the bytes written through it.
type progressWriter struct {
	w      io.Writer
	n      int64
	report func(n int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	p.report(p.n)
	return n, err
}

// tracker sums the bytes present of each file and reports the total.
type tracker struct {
	fn          func(done, total int64)
	done, total int64
	per         map[string]int64
}

func newTracker(fn func(done, total int64), total int64) *tracker {
	return &tracker{fn: fn, total: total, per: map[string]int64{}}
}

func (t *tracker) set(key string, n int64) {
	if t.fn == nil {
		return
	}
	t.done += n - t.per[key]
	t.per[key] = n
	t.fn(t.done, t.total)
}
