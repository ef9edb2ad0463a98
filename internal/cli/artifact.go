package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/internal/clio"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/oci"
)

// Registry verbs: push, pull and inspect update artifacts.

func newPushCmd(g *globals) *cobra.Command {
	var insecure, chunkIndex bool
	cmd := &cobra.Command{
		Use:   "push DIR|FILE.raw REF",
		Short: "Upload an update artifact or an extension to an OCI registry",
		Long: `Verify the update artifact DIR (made by ingot image, e.g.
out/ingot_1.0.0.update) and upload it to REF, host[:port]/repository:tag,
optionally written oci://host[:port]/repository:tag. An extension image
(FILE.raw, made by ingot ext build) is uploaded as one layer, for
ingot ext add oci://REF on a device.

Registries on loopback and private addresses are spoken to over plain HTTP;
all others over HTTPS unless --insecure. Credentials come from the Docker
config (~/.docker/config.json), if any.

Next to the files, ingot push stores a chunk index of /usr, its verity tree
and the UKI (casync's .caibx format), so that ingot update on a machine
fetches only the chunks its own partitions lack (docs/updates.md). Machines
running an ingot from before chunk indexes refuse such an artifact; push for
them with --chunk-index=false.`,
		Example: "  ingot push out/ingot_1.0.0.update oci://localhost:5000/ingot/update:1.0.0",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if fi, err := os.Stat(args[0]); err == nil && fi.Mode().IsRegular() {
				return pushExtension(cmd.Context(), g, args[0], args[1], insecure)
			}
			bar := g.NewProgress("push", progressInterval)
			opts := append(registryOptions(g, insecure, bar), oci.WithChunkIndex(chunkIndex))
			info, err := oci.Push(cmd.Context(), args[0], args[1], opts...)
			bar.Finish()
			if err != nil {
				return err
			}
			return g.Render(info, func(w io.Writer) {
				fmt.Fprintf(w, "pushed   %s\ndigest   %s\n", info.Ref, info.Digest)
				fmt.Fprintf(w, "version  %s\nusrhash  %s\n", info.Manifest.Version, info.Manifest.UsrHash)
				for _, l := range info.ChunkIndexes {
					fmt.Fprintf(w, "index    %s (%d bytes)\n", l.Name, l.Size)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP to a registry that is not on a loopback or private address")
	cmd.Flags().BoolVar(&chunkIndex, "chunk-index", true, "store chunk indexes for delta updates")
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
			bar := g.NewProgress("pull", progressInterval)
			opts := append(registryOptions(g, insecure, bar), oci.WithArch(arch))
			if cacheDir == "" {
				cacheDir = defaultCacheDir()
			}
			if cacheDir != "" {
				opts = append(opts, oci.WithCacheDir(cacheDir))
			}
			info, err := oci.Pull(cmd.Context(), args[0], args[1], opts...)
			bar.Finish()
			if err != nil {
				return err
			}
			return g.Render(info, func(w io.Writer) {
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
			return g.Render(&res, func(w io.Writer) { printInspect(w, &res) })
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
		fmt.Fprintf(w, "file      %-11s %-7s %10s  sha256:%s\n", f.Name, f.Role, clio.HumanBytes(f.Size), f.SHA256)
	}
	if r.Verified {
		fmt.Fprintln(w, "verified  sizes, sha256, usrhash in the UKI, dm-verity root hash")
	}
}

// registryOptions turns the shared flags into oci options.
func registryOptions(g *globals, insecure bool, bar *clio.Progress) []oci.Option {
	opts := []oci.Option{
		oci.WithInsecure(insecure),
		oci.WithKeychain(authn.DefaultKeychain),
		oci.WithLogger(g.Logger()),
	}
	if bar != nil {
		opts = append(opts, oci.WithProgress(bar.Update))
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

// pushExtension uploads an extension image after checking that it is one.
func pushExtension(ctx context.Context, g *globals, file, ref string, insecure bool) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil {
		_, err = ext.Open(f, fi.Size())
	}
	f.Close()
	if err != nil {
		return fmt.Errorf("%s is not an extension image (ingot ext build) or an update artifact directory: %w", file, err)
	}
	bar := g.NewProgress("push", progressInterval)
	digest, err := oci.PushExtension(ctx, file, ref, registryOptions(g, insecure, bar)...)
	bar.Finish()
	if err != nil {
		return err
	}
	return g.Render(map[string]string{"ref": ref, "digest": digest}, func(w io.Writer) {
		fmt.Fprintf(w, "pushed   %s\ndigest   %s\n", ref, digest)
	})
}
