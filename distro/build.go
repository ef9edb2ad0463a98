package distro

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ingot-linux/ingot/builder"
	"github.com/ingot-linux/ingot/builder/sbom"
	"github.com/ingot-linux/ingot/internal/fileutil"
)

// BuildOptions say what to build and what to make of it.
type BuildOptions struct {
	Build builder.Options
	// RootFS, if set, is a new directory that receives the runtime
	// outputs of the targets and their runtime dependencies.
	RootFS string
	// SBOMPath, if set, receives the SPDX 2.3 JSON SBOM of the targets,
	// dated Build.Epoch (builder.DefaultEpoch if 0).
	SBOMPath string
	// Tool names the SBOM's creator, e.g. "ingot-1.2.0".
	Tool string
}

// BuildResult is the build's result with the root filesystem and SBOM
// written, if asked.
type BuildResult struct {
	*builder.Result
	RootFS string `json:"rootfs,omitempty"`
	SBOM   string `json:"sbom,omitempty"`
}

// Build builds targets (default: the base set) into the store, then
// assembles and describes them as o asks. A failed build still returns
// its result (what built, what failed) with the error; nil only when
// nothing ran.
func Build(ctx context.Context, targets []string, o BuildOptions) (*BuildResult, error) {
	res, err := builder.Build(ctx, targets, o.Build)
	if res == nil {
		return nil, err
	}
	out := &BuildResult{Result: res}
	if err != nil {
		return out, err
	}
	if len(targets) == 0 {
		targets = []string{"base"}
	}
	if o.RootFS != "" {
		shipped, err := o.Build.Distribution.Shipped(targets)
		if err != nil {
			return out, err
		}
		if err := builder.Assemble(o.Build.Store, res.Keys(), shipped, o.RootFS); err != nil {
			return out, err
		}
		out.RootFS = o.RootFS
	}
	if o.SBOMPath != "" {
		epoch := o.Build.Epoch
		if epoch == 0 {
			epoch = builder.DefaultEpoch
		}
		data, err := distributionSBOM(o.Build.Distribution, targets, res.Keys(),
			sbom.Options{Name: "ingot " + strings.Join(targets, " "), Created: time.Unix(epoch, 0), Tool: o.Tool})
		if err != nil {
			return out, err
		}
		if err := fileutil.WriteAtomic(o.SBOMPath, data, 0o644); err != nil {
			return out, fmt.Errorf("write SBOM %s: %w", o.SBOMPath, err)
		}
		out.SBOM = o.SBOMPath
	}
	return out, nil
}
