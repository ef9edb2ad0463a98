// Package distro makes ingot's outputs end to end, for the verbs: an image
// of ingot's own packages (built into the store, assembled) or of a root
// filesystem made elsewhere, each with an SPDX SBOM dated by the image;
// and a build of packages with, if asked, their assembled root filesystem
// and SBOM.
//
//	res, err := distro.Image(ctx, distro.ImageOptions{
//		Image:    diskimage.Options{Version: "1.0.0", OutputDir: "out", Epoch: diskimage.EpochFromContent, …},
//		Build:    builder.Options{Distribution: d, Recipes: recipes.FS(), Store: store},
//		Packages: []string{"base"},
//		Tool:     "ingot-1.0",
//	})
package distro

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ingot-linux/ingot/builder"
	"github.com/ingot-linux/ingot/builder/sbom"
	"github.com/ingot-linux/ingot/cookbook"
	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/diskimage/binaries"
	"github.com/ingot-linux/ingot/internal/fileutil"
)

// ImageOptions say what to image.
type ImageOptions struct {
	// Image is the image to make. With RootFS empty, the root filesystem
	// is Packages built and assembled; unless SBOM or MakeSBOM is set,
	// the SBOM describes what went in.
	Image diskimage.Options
	// Build builds Packages (not used with Image.RootFS).
	Build builder.Options
	// Packages are the packages and sets the image holds when it is made
	// from the store.
	Packages []string
	// Tool names the SBOM's creator, e.g. "ingot-1.2.0".
	Tool string
}

// Image makes the image o describes. Without a root filesystem it builds
// the packages (what the store has is not rebuilt) and assembles them in
// a temporary directory in the output directory, removed at the end. On
// error nothing is left in the output directory, not even the
// directories made for it.
func Image(ctx context.Context, o ImageOptions) (res *diskimage.Result, err error) {
	img := o.Image
	bins, err := binaries.Find(ctx, binaries.Options{Init: img.InitPath, Agent: img.AgentPath, Progress: img.Progress})
	if err != nil {
		return nil, err
	}
	img.InitPath, img.AgentPath = bins.Init, bins.Agent
	name := "ingot " + img.Version
	if img.RootFS != "" {
		if img.SBOM == nil && img.MakeSBOM == nil {
			rootfs := img.RootFS
			img.MakeSBOM = func(created time.Time) ([]byte, error) {
				return sbom.ForRootFS(rootfs, img.Version, sbom.Options{Name: name, Created: created, Tool: o.Tool})
			}
		}
		return diskimage.Build(ctx, img)
	}
	undo, err := fileutil.MkdirAllUndo(img.OutputDir, 0o755)
	if err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	defer func() {
		if err != nil {
			undo() // after the assembled root filesystem is gone
		}
	}()
	dir, keys, err := assemble(ctx, o.Build, o.Packages, img.OutputDir)
	if dir != "" {
		defer os.RemoveAll(dir)
	}
	if err != nil {
		return nil, err
	}
	img.RootFS = dir
	if img.SBOM == nil && img.MakeSBOM == nil {
		img.MakeSBOM = func(created time.Time) ([]byte, error) {
			return distributionSBOM(o.Build.Distribution, o.Packages, keys, sbom.Options{Name: name, Created: created, Tool: o.Tool})
		}
	}
	return diskimage.Build(ctx, img)
}

// assemble builds packages and assembles their runtime outputs into a new
// directory inside outDir, returned (also on error, for the caller to
// remove) with the store keys of what was built.
func assemble(ctx context.Context, o builder.Options, packages []string, outDir string) (string, map[string]string, error) {
	res, err := builder.Build(ctx, packages, o)
	if err != nil {
		return "", nil, fmt.Errorf("build %s: %w", strings.Join(packages, " "), err)
	}
	shipped, err := o.Distribution.Shipped(packages)
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp(outDir, ".ingot-rootfs-*")
	if err != nil {
		return "", nil, fmt.Errorf("output directory %s is not writable: %w", outDir, err)
	}
	if err := builder.Assemble(o.Store, res.Keys(), shipped, dir); err != nil {
		return dir, nil, err
	}
	return dir, res.Keys(), nil
}

// distributionSBOM is the SPDX 2.3 JSON document of targets and what they
// are built from.
func distributionSBOM(d *cookbook.Distribution, targets []string, keys map[string]string, o sbom.Options) ([]byte, error) {
	pkgs, err := sbom.FromDistribution(d, targets, keys)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := sbom.New(pkgs, o).Write(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
