package artifact

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ingot-linux/ingot/internal/fileutil"
)

// MaxRedirects bounds the HTTP redirects Download follows.
const MaxRedirects = 5

// Download fetches an artifact published as a plain directory over HTTPS
// (BASE/manifest.json, BASE/usr.erofs, …) into dir, which must not exist.
// The manifest is read first (bounded); its sizes are checked against the
// limits (WithLimits) and the free space next to dir before any file is
// fetched; no file is written past its declared size; and the whole
// artifact is verified before Download returns. On any error nothing is
// left at dir. Plain http:// is refused, and so is a redirect to anything
// but https:// (or more than MaxRedirects): updates travel over TLS or
// through an OCI registry.
func Download(ctx context.Context, client *http.Client, base, dir string, progress func(done, total int64), opts ...Option) (*Artifact, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("download %s: want an https:// URL of an artifact directory", base)
	}
	client = httpsOnly(client)
	o := makeOptions(opts)
	stage, err := fileutil.NewStaging(dir)
	if err != nil {
		return nil, err
	}
	defer stage.Discard()
	tmp := stage.Dir
	// get fetches name into w: exactly size bytes, or with size < 0 at
	// most MaxManifestBytes.
	get := func(name string, size int64, w io.Writer, done func(int64)) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/"+name, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", req.URL, resp.Status)
		}
		body := &countingReader{r: resp.Body, done: done}
		if size < 0 {
			b, err := io.ReadAll(io.LimitReader(body, MaxManifestBytes+1))
			if err == nil && len(b) > MaxManifestBytes {
				err = fmt.Errorf("%w: more than %d bytes", ErrInvalidManifest, MaxManifestBytes)
			}
			if err == nil {
				_, err = w.Write(b)
			}
			return err
		}
		if _, err := CopyDeclared(w, body, name, size); err != nil {
			return fmt.Errorf("GET %s: %w", req.URL, err)
		}
		return nil
	}
	var mb strings.Builder
	if err := get(ManifestFile, -1, &mb, nil); err != nil {
		return nil, fmt.Errorf("download %s: %w", base, err)
	}
	m, err := ParseManifest([]byte(mb.String()))
	if err == nil {
		err = o.limits.Check(m)
	}
	if err == nil {
		err = CheckFreeSpace(filepath.Dir(tmp), m)
	}
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", base, err)
	}
	var total, done int64
	for _, f := range m.Files {
		total += f.Size
	}
	for _, f := range m.Files {
		out, err := os.Create(filepath.Join(tmp, f.Name))
		if err != nil {
			return nil, err
		}
		err = get(f.Name, f.Size, out, func(n int64) {
			done += n
			if progress != nil {
				progress(done, total)
			}
		})
		if err == nil {
			err = out.Sync()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("download %s: %w", base, err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ManifestFile), []byte(mb.String()), 0o644); err != nil {
		return nil, err
	}
	a := &Artifact{Dir: tmp, Manifest: m}
	if err := a.Verify(ctx, WithArch(m.Architecture)); err != nil {
		return nil, fmt.Errorf("download %s: %w", base, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	stage.Keep()
	a.Dir = dir
	return a, nil
}

type countingReader struct {
	r    io.Reader
	done func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && c.done != nil {
		c.done(int64(n))
	}
	return n, err
}

// httpsOnly returns a copy of client (http.DefaultClient if nil) that
// follows at most MaxRedirects redirects, each to https:// only.
func httpsOnly(client *http.Client) *http.Client {
	if client == nil {
		client = http.DefaultClient
	}
	c := *client
	c.CheckRedirect = CheckRedirectHTTPS
	return &c
}

// CheckRedirectHTTPS is an http.Client CheckRedirect that refuses a
// redirect leaving https:// and more than MaxRedirects of them.
func CheckRedirectHTTPS(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != "https" {
		return fmt.Errorf("refusing the redirect from %s to %s: it leaves https://", via[len(via)-1].URL.Redacted(), req.URL.Redacted())
	}
	if len(via) > MaxRedirects {
		return fmt.Errorf("refusing more than %d redirects (last to %s)", MaxRedirects, req.URL.Redacted())
	}
	return nil
}

// CopyDeclared copies the file name, which declares size bytes, from r to
// w: never more than size bytes are written, and a *SizeError says when r
// has more; a shorter r is an io.ErrUnexpectedEOF.
func CopyDeclared(w io.Writer, r io.Reader, name string, size int64) (int64, error) {
	n, err := io.Copy(w, io.LimitReader(r, size))
	if err != nil {
		return n, err
	}
	if n < size {
		return n, fmt.Errorf("%s: %d of the %d bytes declared: %w", name, n, size, io.ErrUnexpectedEOF)
	}
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k > 0 {
		return n, &MismatchError{File: name, Field: "size", Want: strconv.FormatInt(size, 10), Got: "more (the source sent more than declared)"}
	}
	return n, nil
}
