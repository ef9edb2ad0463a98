package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/oci"
)

// Registry verbs: push, pull and inspect update artifacts.

func newPushCmd(g *globals) *cobra.Command {
	var insecure bool
	cmd := &cobra.Command{
		Use:   "push DIR REF",
		Short: "Upload an update artifact to an OCI registry",
		Long: `Verify the update artifact DIR (made by ingot image, e.g.
out/ingot_1.0.0.update) and upload it to REF, host[:port]/repository:tag,
optionally written oci://host[:port]/repository:tag.

Registries on loopback and private addresses are spoken to over plain HTTP;
all others over HTTPS unless --insecure. Credentials come from the Docker
config (~/.docker/config.json), if any.`,
		Example: "  ingot push out/ingot_1.0.0.update oci://localhost:5000/ingot/update:1.0.0",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			bar := newProgressBar(g, "push")
			info, err := oci.Push(cmd.Context(), args[0], args[1], registryOptions(g, insecure, bar)...)
			bar.finish()
			if err != nil {
				return err
			}
			return g.render(info, func(w io.Writer) {
				fmt.Fprintf(w, "pushed   %s\ndigest   %s\n", info.Ref, info.Digest)
				fmt.Fprintf(w, "version  %s\nusrhash  %s\n", info.Manifest.Version, info.Manifest.UsrHash)
			})
		},
	}
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP to a registry that is not on a loopback or private address")
	return cmd
}

func newPullCmd(g *globals) *cobra.Command {
	var (
		insecure bool
		arch     string
		cacheDir string
	)
	cmd := &cobra.Command{
		Use:   "pull REF DIR",
		Short: "Download and verify an update artifact from an OCI registry",
		Long: `Download the update artifact REF (host[:port]/repository:tag or
…@sha256:…, optionally prefixed with oci://) into the directory DIR. DIR
may be missing, empty or an earlier artifact, which is replaced; anything
else is refused and left alone. The sizes the manifest declares are checked
against the free space before anything is downloaded, and no file is
written past its declared size. Every blob's digest is checked, then every file's size and
sha256, the usrhash= in the UKI and the dm-verity root hash of /usr; DIR
appears only when all of it verified.

Interrupted downloads resume: partial blobs are kept in the cache directory
until they are complete.`,
		Example: "  ingot pull oci://localhost:5000/ingot/update:1.0.0 /var/tmp/update",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			bar := newProgressBar(g, "pull")
			opts := append(registryOptions(g, insecure, bar), oci.WithArch(arch))
			if cacheDir == "" {
				cacheDir = defaultCacheDir()
			}
			if cacheDir != "" {
				opts = append(opts, oci.WithCacheDir(cacheDir))
			}
			info, err := oci.Pull(cmd.Context(), args[0], args[1], opts...)
			bar.finish()
			if err != nil {
				return err
			}
			return g.render(info, func(w io.Writer) {
				fmt.Fprintf(w, "pulled   %s\ninto     %s\ndigest   %s\n", info.Ref, args[1], info.Digest)
				fmt.Fprintf(w, "version  %s\nusrhash  %s\n", info.Manifest.Version, info.Manifest.UsrHash)
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&insecure, "insecure", false, "allow plain HTTP to a registry that is not on a loopback or private address")
	f.StringVar(&arch, "arch", artifact.ArchX86_64, "architecture the artifact must be for")
	f.StringVar(&cacheDir, "cache-dir", "", "where partial downloads are kept (default: the user cache directory's ingot/oci)")
	return cmd
}

// inspectResult is what ingot inspect prints; with --json its field names
// are stable. Path is set for a directory, Ref and Digest for a registry.
type inspectResult struct {
	Path     string             `json:"path,omitempty"`
	Ref      string             `json:"ref,omitempty"`
	Digest   string             `json:"digest,omitempty"`
	Verified bool               `json:"verified"`
	Manifest *artifact.Manifest `json:"manifest"`
	Layers   []oci.Layer        `json:"layers,omitempty"`
}

func newInspectCmd(g *globals) *cobra.Command {
	var insecure bool
	cmd := &cobra.Command{
		Use:   "inspect REF|DIR",
		Short: "Show an update artifact in a registry or a directory",
		Long: `Show the manifest of an update artifact. For a directory, the artifact is
also verified in full (sizes, sha256, usrhash in the UKI, dm-verity root hash)
and "verified" is true. For a registry reference only the OCI manifest and
the artifact manifest are fetched and checked against each other; nothing
large is downloaded, and "verified" is false.`,
		Example: "  ingot inspect out/ingot_1.0.0.update\n  ingot inspect --json oci://localhost:5000/ingot/update:1.0.0",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res inspectResult
			if fi, err := os.Stat(args[0]); err == nil && fi.IsDir() {
				a, err := artifact.Open(args[0])
				if err != nil {
					return err
				}
				if err := a.Verify(cmd.Context(), artifact.WithArch(a.Manifest.Architecture)); err != nil {
					return err
				}
				res = inspectResult{Path: args[0], Verified: true, Manifest: a.Manifest}
			} else {
				info, err := oci.Inspect(cmd.Context(), args[0], registryOptions(g, insecure, nil)...)
				if err != nil {
					return err
				}
				res = inspectResult{Ref: info.Ref, Digest: info.Digest, Manifest: info.Manifest, Layers: info.Layers}
			}
			return g.render(&res, func(w io.Writer) { printInspect(w, &res) })
		},
	}
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP to a registry that is not on a loopback or private address")
	return cmd
}

func printInspect(w io.Writer, r *inspectResult) {
	m := r.Manifest
	if r.Path != "" {
		fmt.Fprintf(w, "path      %s\n", r.Path)
	} else {
		fmt.Fprintf(w, "ref       %s\ndigest    %s\n", r.Ref, r.Digest)
	}
	fmt.Fprintf(w, "artifact  %s %s (%s)\nusrhash   %s\n", m.Name, m.Version, m.Architecture, m.UsrHash)
	for _, f := range m.Files {
		fmt.Fprintf(w, "file      %-11s %-7s %10s  sha256:%s\n", f.Name, f.Role, humanBytes(f.Size), f.SHA256)
	}
	if r.Verified {
		fmt.Fprintln(w, "verified  sizes, sha256, usrhash in the UKI, dm-verity root hash")
	}
}

// registryOptions turns the shared flags into oci options.
func registryOptions(g *globals, insecure bool, bar *progressBar) []oci.Option {
	opts := []oci.Option{
		oci.WithInsecure(insecure),
		oci.WithKeychain(authn.DefaultKeychain),
		oci.WithLogger(g.logger()),
	}
	if bar != nil {
		opts = append(opts, oci.WithProgress(bar.update))
	}
	return opts
}

// defaultCacheDir is $XDG_CACHE_HOME/ingot/oci (or its platform
// equivalent), or "" when there is no user cache directory.
func defaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "ingot", "oci")
}

// pullSource turns an update source into a local artifact directory: an
// oci:// reference is pulled into a temporary directory under /var/tmp
// (on the root partition, not in memory), which cleanup removes; anything
// else is taken to be a directory already.
func pullSource(cmd *cobra.Command, g *globals, src string, limits artifact.Limits) (dir string, cleanup func(), err error) {
	if strings.HasPrefix(src, "https://") {
		return downloadSource(cmd, g, src, limits)
	}
	if !strings.HasPrefix(src, "oci://") {
		return src, func() {}, nil
	}
	tmp, cleanup, err := updateTempDir()
	if err != nil {
		return "", nil, err
	}
	dir = filepath.Join(tmp, "artifact")
	bar := newProgressBar(g, "pull")
	opts := append(registryOptions(g, false, bar), oci.WithLimits(limits))
	if c := defaultCacheDir(); c != "" {
		opts = append(opts, oci.WithCacheDir(c))
	}
	_, err = oci.Pull(cmd.Context(), src, dir, opts...)
	bar.finish()
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return dir, cleanup, nil
}

// progressBar prints a one-line progress report to stderr, redrawn with \r
// at most ten times a second.
type progressBar struct {
	w       io.Writer
	verb    string
	start   time.Time
	last    time.Time
	printed bool
}

// newProgressBar returns a bar, or nil with --json (which keeps stderr
// quiet, as ingot image does).
func newProgressBar(g *globals, verb string) *progressBar {
	if g.json {
		return nil
	}
	return &progressBar{w: g.stderr, verb: verb, start: time.Now()}
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

// downloadSource fetches an artifact directory published over HTTPS.
func downloadSource(cmd *cobra.Command, g *globals, src string, limits artifact.Limits) (string, func(), error) {
	tmp, cleanup, err := updateTempDir()
	if err != nil {
		return "", nil, err
	}
	bar := newProgressBar(g, "download")
	var progress func(done, total int64)
	if bar != nil {
		progress = bar.update
	}
	a, err := artifact.Download(cmd.Context(), nil, src, filepath.Join(tmp, "artifact"), progress, artifact.WithLimits(limits))
	bar.finish()
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return a.Dir, cleanup, nil
}

// updateTempDir makes a temporary directory for an update under /var/tmp
// (on the root partition, not in memory) or, without one, the system's
// temporary directory; cleanup removes it.
func updateTempDir() (dir string, cleanup func(), err error) {
	parent := "/var/tmp"
	if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
		parent = os.TempDir()
	}
	if dir, err = os.MkdirTemp(parent, "ingot-update-*"); err != nil {
		return "", nil, fmt.Errorf("make a temporary directory for the update in %s: %w", parent, err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}
