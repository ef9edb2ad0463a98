package agentcli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/oci"
)

// pullSource turns an update source into a local artifact directory: an
// oci:// reference is pulled, and an https:// URL downloaded, into a
// temporary directory under /var/tmp (on the root partition, not in
// memory), which cleanup removes; anything else is taken to be a
// directory already.
func pullSource(ctx context.Context, e *env, src string, limits artifact.Limits, pullOpts []oci.Option) (dir string, cleanup func(), err error) {
	if !strings.HasPrefix(src, "oci://") && !strings.HasPrefix(src, "https://") {
		return src, func() {}, nil
	}
	tmp, err := os.MkdirTemp(tempParent(), "ingot-update-*")
	if err != nil {
		return "", nil, fmt.Errorf("make a directory for the update: %w", err)
	}
	cleanup = func() { os.RemoveAll(tmp) }
	dir = filepath.Join(tmp, "artifact")
	if strings.HasPrefix(src, "https://") {
		err = download(ctx, e, src, dir, limits)
	} else {
		err = pull(ctx, e, src, dir, limits, pullOpts)
	}
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return dir, cleanup, nil
}

// pull fetches an OCI artifact into dir, resuming from the user cache
// directory's partial blobs and chunks; with seeds (in pullOpts), only
// the chunks they lack.
func pull(ctx context.Context, e *env, src, dir string, limits artifact.Limits, pullOpts []oci.Option) error {
	bar := e.NewProgress("pull", progressInterval)
	// The Docker config's credentials, as the workstation's ingot pull.
	opts := []oci.Option{oci.WithKeychain(oci.ConfigKeychain()), oci.WithLogger(e.Logger()), oci.WithLimits(limits)}
	if bar != nil {
		opts = append(opts, oci.WithProgress(bar.Update))
	}
	opts = append(append(opts, pullCache()...), pullOpts...)
	info, err := oci.Pull(ctx, src, dir, opts...)
	bar.Finish()
	if err == nil && info.Transfer != nil {
		t := info.Transfer
		fmt.Fprintf(e.Stderr, "ingot: update: downloaded %d bytes (%d from local chunks, %d from cached ones)\n", t.Downloaded, t.Seeded, t.Cached)
	}
	return err
}

// pullCache is where pulls keep partial blobs and fetched chunks.
func pullCache() []oci.Option {
	if c, err := os.UserCacheDir(); err == nil {
		return []oci.Option{oci.WithCacheDir(filepath.Join(c, "ingot", "oci"))}
	}
	return nil
}

// download fetches an artifact directory published over HTTPS into dir.
func download(ctx context.Context, e *env, src, dir string, limits artifact.Limits) error {
	bar := e.NewProgress("download", progressInterval)
	var progress func(done, total int64)
	if bar != nil {
		progress = bar.Update
	}
	_, err := artifact.Download(ctx, nil, src, dir, progress, artifact.WithLimits(limits))
	bar.Finish()
	return err
}
