package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/diskimage"
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
		o      diskimage.ExtensionOptions
		kind   string
		keyDir string
	)
	cmd := &cobra.Command{
		Use:   "build --name NAME --version V --dir DIR [--for OSVERSION|--any-version] [--keys DIR]",
		Short: "Make a signed extension image (a Discoverable Disk Image) from a directory",
		Long: `Make OUTPUT/NAME_VERSION.raw: a GPT with the contents as EROFS, its dm-verity
tree and, with --keys, the verity key's signature over the root hash, as
systemd-repart --make-ddi makes it. A sysext holds /usr and /opt, a confext
/etc; the release file naming the OS version it fits (--for, or the base's
IMAGE_VERSION, or --any-version) is added. With --base, no file may shadow
one of that root filesystem. SOURCE_DATE_EPOCH caps timestamps (default:
the newest in the contents), so the same input gives the same bytes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			o.Kind = ext.Kind(kind)
			if o.Epoch, err = imageEpoch(); err != nil {
				return err
			}
			if keyDir != "" {
				if o.Keys, err = trust.LoadKeys(keyDir); err != nil {
					return err
				}
			}
			res, err := diskimage.BuildExtension(cmd.Context(), o)
			if err != nil {
				return extFlagErrors(err)
			}
			return g.Render(res, func(w io.Writer) {
				fmt.Fprintf(w, "extension %s (%s, %d KiB, signed %v)\nroot hash %s\n", res.Path, res.Kind, res.SizeBytes>>10, res.Signed, res.RootHash)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "extension name")
	f.StringVar(&kind, "type", string(ext.Sysext), "sysext (/usr, /opt) or confext (/etc)")
	f.StringVar(&o.Version, "version", "", "extension version (the file name's)")
	f.StringVar(&o.Contents, "dir", "", "contents: a directory or tarball laid out as the root (usr/…, opt/… or etc/…)")
	f.StringVar(&o.Base, "base", "", "root filesystem the extension is for: refuse files that shadow it; its os-release gives ID and version")
	f.StringVar(&o.For, "for", "", "OS image version the extension fits")
	f.BoolVar(&o.AnyVersion, "any-version", false, "fits any OS (ID=_any)")
	f.StringVar(&keyDir, "keys", "", "sign the root hash with the verity key in DIR (made by ingot keys init)")
	f.StringVarP(&o.OutputDir, "output", "o", "out", "output directory")
	return cmd
}

// extFlagErrors names the flags in BuildExtension's field errors.
func extFlagErrors(err error) error {
	return flagErrors(err, func(field string) string {
		switch field {
		case "Name":
			return "--name"
		case "Kind":
			return "--type"
		case "Version":
			return "--version"
		case "Contents":
			return "--dir"
		case "For":
			return "--for"
		case "OutputDir":
			return "--output"
		}
		return ""
	})
}
