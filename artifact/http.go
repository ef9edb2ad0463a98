package artifact

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Download fetches an artifact published as a plain directory over HTTPS
// (BASE/manifest.json, BASE/usr.erofs, …) into dir, which must not exist.
// The manifest is read first (bounded), each file is checked against its
// size while streaming, and the whole artifact is verified before Download
// returns; on any error nothing is left at dir. Plain http:// is refused:
// updates travel over TLS or through an OCI registry.
func Download(ctx context.Context, client *http.Client, base, dir string, progress func(done, total int64)) (*Artifact, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("download %s: want an https:// URL of an artifact directory", base)
	}
	if client == nil {
		client = http.DefaultClient
	}
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(dir)), "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			os.RemoveAll(tmp)
		}
	}()
	get := func(name string, limit int64, w io.Writer, done func(int64)) error {
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
		n, err := io.Copy(w, io.LimitReader(&countingReader{r: resp.Body, done: done}, limit+1))
		if err != nil {
			return fmt.Errorf("GET %s: %w", req.URL, err)
		}
		if n > limit {
			return fmt.Errorf("GET %s: more than the %d bytes expected", req.URL, limit)
		}
		return nil
	}
	var mb strings.Builder
	if err := get(ManifestFile, MaxManifestBytes, &mb, nil); err != nil {
		return nil, fmt.Errorf("download %s: %w", base, err)
	}
	m, err := ParseManifest([]byte(mb.String()))
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
	committed = true
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
