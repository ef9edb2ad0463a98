package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/image"
	"github.com/ingot-linux/ingot/trust"
)

func newImageCmd(g *globals) *cobra.Command {
	var (
		o            image.Options
		usrSize, esp string
		keyDir       string
		cmdline      []string
	)
	cmd := &cobra.Command{
		Use:   "image --rootfs PATH --version V --output DIR",
		Short: "Make a bootable, verified disk image from a root filesystem",
		Long: `Make OUTPUT/ingot_<version>.raw from a merged-/usr root filesystem (a
directory or a .tar, .tar.gz, .tar.zst or .tar.xz tarball) that has a kernel,
systemd and systemd-boot's EFI binaries.

Timestamps are capped at SOURCE_DATE_EPOCH when it is set, otherwise at the
newest timestamp in the root filesystem, so the same input gives the same
bytes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.UsrSlotBytes, err = parseSize(usrSize); err != nil {
				return fmt.Errorf("--usr-size: %w", err)
			}
			if o.ESPBytes, err = parseSize(esp); err != nil {
				return fmt.Errorf("--esp-size: %w", err)
			}
			o.Cmdline = cmdline
			if o.Epoch, err = sourceDateEpoch(); err != nil {
				return err
			}
			if o.AgentPath == "" {
				if o.AgentPath, err = os.Executable(); err != nil {
					return err
				}
			}
			if o.InitPath == "" {
				o.InitPath = filepath.Join(filepath.Dir(o.AgentPath), "ingot-init")
			}
			if keyDir != "" {
				if o.Keys, err = trust.LoadKeys(keyDir); err != nil {
					return err
				}
				o.KeyDir = keyDir
			}
			o.Logger = g.logger()
			start := time.Now()
			o.Progress = func(stage string) {
				if !g.json {
					fmt.Fprintf(g.stderr, "[%5.1fs] %s\n", time.Since(start).Seconds(), stage)
				}
			}
			res, err := image.Build(cmd.Context(), o)
			if err != nil {
				return err
			}
			return g.render(res, func(w io.Writer) {
				fmt.Fprintf(w, "disk     %s (%d MiB)\n", res.DiskPath, res.DiskBytes>>20)
				fmt.Fprintf(w, "version  %s\nkernel   %s\nusrhash  %s\n", res.Version, res.KernelVersion, res.UsrHash)
				fmt.Fprintf(w, "/usr     %d MiB in a %d MiB slot\n", res.UsrBytes>>20, res.UsrSlotBytes>>20)
				if len(res.MissingModules) > 0 {
					fmt.Fprintf(w, "note     the kernel lacks modules %v\n", res.MissingModules)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.RootFS, "rootfs", "", "root filesystem: directory or tarball")
	f.StringVar(&o.Version, "version", "", "image version (IMAGE_VERSION)")
	f.StringVarP(&o.OutputDir, "output", "o", "out", "output directory")
	f.BoolVar(&o.Autologin, "autologin", false, "root shell on the serial console (development and tests)")
	f.StringVar(&o.KernelVersion, "kernel-version", "", "kernel to use when the root filesystem has several")
	f.StringArrayVar(&cmdline, "cmdline", nil, "extra kernel command-line argument (repeatable)")
	f.StringVar(&usrSize, "usr-size", "", "size of each usr partition, e.g. 2G (default: from /usr, with room to grow)")
	f.StringVar(&esp, "esp-size", "", "size of the ESP, e.g. 512M (default: room for four UKIs, at least 256M)")
	f.DurationVar(&o.BootDeadline, "boot-deadline", image.DefaultBootDeadline, "reboot a boot that has not reached boot-complete.target after this long")
	f.StringVar(&keyDir, "keys", "", "sign the image with the keys in DIR (made by ingot keys init)")
	f.StringVar(&o.InitPath, "init", "", "ingot-init binary (default: next to this ingot)")
	f.StringVar(&o.AgentPath, "agent", "", "ingot binary to install as /usr/bin/ingot (default: this one)")
	cmd.MarkFlagRequired("rootfs")
	cmd.MarkFlagRequired("version")
	return cmd
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH; unset means "derive from content"
// (image.EpochFromContent).
func sourceDateEpoch() (int64, error) {
	s, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || s == "" {
		return image.EpochFromContent, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
	}
	return n, nil
}

// parseSize reads "512M", "2G", "1048576" (bytes); "" is 0.
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'K', 'k':
		mult = 1 << 10
	case 'M', 'm':
		mult = 1 << 20
	case 'G', 'g':
		mult = 1 << 30
	case 'T', 't':
		mult = 1 << 40
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size like 512M or 2G", s)
	}
	return n * mult, nil
}
