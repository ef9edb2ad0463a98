package agentcli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/oci"
)

// pullSource turns an update source into a local artifact directory: an
// oci:// reference is pulled, and an https:// URL downloaded, into a
// temporary directory under /var/tmp (on the root partition, not in
// memory), which cleanup removes; anything else is taken to be a
// directory already.
func pullSource(ctx context.Context, e *env, src string, limits artifact.Limits) (dir string, cleanup func(), err error) {
	if !strings.HasPrefix(src, "oci://") && !strings.HasPrefix(src, "https://") {
		return src, func() {}, nil
	}
	parent := "/var/tmp"
	if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
		parent = os.TempDir()
	}
	tmp, err := os.MkdirTemp(parent, "ingot-update-*")
	if err != nil {
		return "", nil, fmt.Errorf("make a directory for the update: %w", err)
	}
	cleanup = func() { os.RemoveAll(tmp) }
	dir = filepath.Join(tmp, "artifact")
	if strings.HasPrefix(src, "https://") {
		err = download(ctx, e, src, dir, limits)
	} else {
		err = pull(ctx, e, src, dir, limits)
	}
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return dir, cleanup, nil
}

// pull fetches an OCI artifact into dir, resuming from the user cache
// directory's partial blobs.
func pull(ctx context.Context, e *env, src, dir string, limits artifact.Limits) error {
	bar := newProgressBar(e, "pull")
	// The Docker config's credentials, as the workstation's ingot pull.
	opts := []oci.Option{oci.WithKeychain(authn.DefaultKeychain), oci.WithLogger(e.logger()), oci.WithLimits(limits)}
	if bar != nil {
		opts = append(opts, oci.WithProgress(bar.update))
	}
	if c, err := os.UserCacheDir(); err == nil {
		opts = append(opts, oci.WithCacheDir(filepath.Join(c, "ingot", "oci")))
	}
	_, err := oci.Pull(ctx, src, dir, opts...)
	bar.finish()
	return err
}

// download fetches an artifact directory published over HTTPS into dir.
func download(ctx context.Context, e *env, src, dir string, limits artifact.Limits) error {
	bar := newProgressBar(e, "download")
	var progress func(done, total int64)
	if bar != nil {
		progress = bar.update
	}
	_, err := artifact.Download(ctx, nil, src, dir, progress, artifact.WithLimits(limits))
	bar.finish()
	return err
}

// progressBar prints a one-line progress report to stderr, redrawn with \r
// at most once a second.
type progressBar struct {
	w       io.Writer
	verb    string
	start   time.Time
	last    time.Time
	printed bool
}

// newProgressBar returns a bar, or nil with --json (which keeps stderr
// quiet).
func newProgressBar(e *env, verb string) *progressBar {
	if e.json {
		return nil
	}
	return &progressBar{w: e.stderr, verb: verb, start: time.Now()}
}

func (b *progressBar) update(done, total int64) {
	now := time.Now()
	if done < total && now.Sub(b.last) < time.Second {
		return
	}
	b.last = now
	pct := 100
	if total > 0 {
		pct = int(done * 100 / total)
	}
	rate := float64(done) / max(now.Sub(b.start).Seconds(), 0.001)
	fmt.Fprintf(b.w, "\r%s %10s / %-10s %3d%%  %s/s   ", b.verb, humanBytes(done), humanBytes(total), pct, humanBytes(int64(rate)))
	b.printed = true
}

// finish ends the progress line.
func (b *progressBar) finish() {
	if b != nil && b.printed {
		fmt.Fprintln(b.w)
	}
}

// humanBytes formats n as "512 B", "1.5 KiB", "12.0 MiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
