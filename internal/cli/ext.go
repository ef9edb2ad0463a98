package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/distro"
	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/internal/agentcli"
	"github.com/ingot-linux/ingot/trust"
)

// newExtCmd is `ingot ext`: build on the workstation; the device's
// subcommands are forwarded to agentcli like the other device verbs.
func newExtCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ext",
		Short: "Runtime layers: build, add, list and remove system and configuration extensions",
	}
	cmd.AddCommand(newExtBuildCmd(g))
	for _, sub := range []struct{ use, short string }{
		{"add SOURCE", "Install and merge an extension: a file, a directory or oci://REF (on the device)"},
		{"list", "List the image's and the installed extensions, merged or why not (on the device)"},
		{"remove NAME", "Unmerge and delete an installed extension (on the device)"},
	} {
		verb := strings.Fields(sub.use)[0]
		cmd.AddCommand(&cobra.Command{
			Use:                sub.use,
			Short:              sub.short,
			DisableFlagParsing: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				return agentcli.Execute(cmd.Context(), forwardArgs(g, "ext", append([]string{verb}, args...)), g.Stdout, g.Stderr)
			},
		})
	}
	return cmd
}

func newExtBuildCmd(g *globals) *cobra.Command {
	var (
		o        diskimage.ExtensionOptions
		kind     string
		keyDir   string
		packages []string
		bf       extBuildFlags
	)
	cmd := &cobra.Command{
		Use:   "build --name NAME --version V (--dir DIR | --packages P,…) [--for OSVERSION|--any-version] [--keys DIR]",
		Short: "Make a signed extension image (a Discoverable Disk Image) from a directory or from packages",
		Long: `Make OUTPUT/NAME_VERSION.raw: a GPT with the contents as EROFS, its dm-verity
tree and, with --keys, the verity key's signature over the root hash, as
systemd-repart --make-ddi makes it. A sysext holds /usr and /opt, a confext
/etc; the release file naming the OS version it fits (--for, or the base's
IMAGE_VERSION, or --any-version) is added. SOURCE_DATE_EPOCH caps
timestamps (default: the newest in the contents), so the same input gives
the same bytes.

The contents are a directory (--dir; with --base, no file may shadow one of
that root filesystem) or packages (--packages): built from their recipes
into the store as ingot build does, with the base, and carried with each
runtime dependency the base lacks; no file may shadow one of the base. The
SPDX SBOM of the packages is carried at /usr/share/ingot/sbom/ and written
next to the image as NAME_VERSION.spdx.json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if err := checkExtSource(o.Contents, packages, o.Base); err != nil {
				return err
			}
			o.Kind = ext.Kind(kind)
			if o.Epoch, err = imageEpoch(); err != nil {
				return err
			}
			if keyDir != "" {
				if o.Keys, err = trust.LoadKeys(keyDir); err != nil {
					return err
				}
			}
			if len(packages) > 0 {
				return extFromPackages(cmd.Context(), g, o, packages, bf)
			}
			res, err := diskimage.BuildExtension(cmd.Context(), o)
			if err != nil {
				return extFlagErrors(err)
			}
			return g.Render(res, func(w io.Writer) { printExtension(w, res) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "extension name")
	f.StringVar(&kind, "type", string(ext.Sysext), "sysext (/usr, /opt) or confext (/etc)")
	f.StringVar(&o.Version, "version", "", "extension version (the file name's)")
	f.StringVar(&o.Contents, "dir", "", "contents: a directory or tarball laid out as the root (usr/…, opt/… or etc/…)")
	f.StringSliceVar(&packages, "packages", nil, "contents: these packages (comma-separated), built from their recipes")
	f.StringVar(&o.Base, "base", "", "with --dir: root filesystem the extension is for: refuse files that shadow it; its os-release gives ID and version")
	f.StringVar(&o.Compression, "compression", "none", "compression of the files: lz4hc or zstd (optionally :LEVEL), or none; the OS kernel must mount it (LZ4: every EROFS kernel, zstd: Linux 6.10 with EROFS_FS_ZIP_ZSTD)")
	f.StringVar(&o.For, "for", "", "OS image version the extension fits")
	f.BoolVar(&o.AnyVersion, "any-version", false, "fits any OS (ID=_any)")
	f.StringVar(&keyDir, "keys", "", "sign the root hash with the verity key in DIR (made by ingot keys init)")
	f.StringVarP(&o.OutputDir, "output", "o", "out", "output directory")
	f.StringVar(&bf.store, "store", "", "with --packages: store directory (default: ingot/store in the user's cache directory)")
	f.StringVar(&bf.recipes, "recipes", "", "with --packages: recipe directory (default: the distribution built into ingot)")
	f.IntVarP(&bf.jobs, "jobs", "j", 0, "with --packages: packages to build at once (default: the number of CPUs)")
	return cmd
}

// extBuildFlags are ingot build's flags, for an extension of packages.
type extBuildFlags struct {
	store, recipes string
	jobs           int
}

// checkExtSource refuses both or neither of --dir and --packages, and
// --base with --packages (their base is the store's).
func checkExtSource(dir string, packages []string, base string) error {
	switch {
	case dir != "" && len(packages) > 0:
		return errors.New("--dir and --packages exclude each other: an extension is made from a directory or from packages, not both")
	case dir == "" && len(packages) == 0:
		return errors.New("say what the extension holds: --dir DIR (a directory or tarball) or --packages P1,P2 (built from recipes)")
	case base != "" && len(packages) > 0:
		return errors.New("--base is for --dir: an extension of --packages extends the base in the store")
	}
	return nil
}

// extFromPackages builds packages into the store and makes the extension
// of them.
func extFromPackages(ctx context.Context, g *globals, o diskimage.ExtensionOptions, packages []string, bf extBuildFlags) error {
	b, err := buildOptions(g, bf.jobs, bf.store, bf.recipes)
	if err != nil {
		return err
	}
	pr := newBuildProgress(g.Stderr)
	b.Progress = pr.update
	stop := pr.run(ctx)
	res, err := distro.Extension(ctx, distro.ExtensionOptions{Ext: o, Build: b, Packages: packages, Tool: "ingot-" + Version})
	stop()
	if err != nil {
		return extFlagErrors(err)
	}
	return g.Render(res, func(w io.Writer) {
		printExtension(w, res.ExtensionResult)
		for _, p := range res.Carried {
			why := ""
			if p.Dependency {
				why = "  (a dependency the base lacks)"
			}
			fmt.Fprintf(w, "carries %s %s%s\n", p.Name, p.Version, why)
		}
		fmt.Fprintf(w, "sbom %s\n", res.SBOM)
	})
}

func printExtension(w io.Writer, res *diskimage.ExtensionResult) {
	fmt.Fprintf(w, "extension %s (%s, %d KiB, signed %v)\nroot hash %s\n", res.Path, res.Kind, res.SizeBytes>>10, res.Signed, res.RootHash)
}

// extFlagErrors names the flags in BuildExtension's field errors.
func extFlagErrors(err error) error {
	return flagErrors(err, func(field string) string {
		switch field {
		case "Name":
			return "--name"
		case "Compression":
			return "--compression"
		case "Kind":
			return "--type"
		case "Version":
			return "--version"
		case "Contents":
			return "--dir"
		case "Packages":
			return "--packages"
		case "For":
			return "--for"
		case "OutputDir":
			return "--output"
		}
		return ""
	})
}
