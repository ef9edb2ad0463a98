package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/distro"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

func newImageCmd(g *globals) *cobra.Command {
	var (
		o            diskimage.Options
		usrSize, esp string
		maxContent   string
		keyDir       string
		configFile   string
		cmdline      []string
		storeDir     string
		recipesDir   string
		packages     []string
		jobs         int
	)
	cmd := &cobra.Command{
		Use:   "image [--rootfs PATH] [--version V] [--output DIR]",
		Short: "Make a bootable, verified disk image from the built base or a root filesystem",
		Long: `Make OUTPUT/ingot_<version>.raw, its update artifact and an SPDX SBOM
(ingot_<version>.spdx.json).

Without --rootfs the image holds ingot's own distribution: the packages
named by --packages (default: the base set), built from source into the
store as ingot build does (nothing is rebuilt when the store has them).
With --rootfs it holds any merged-/usr root filesystem (a directory or a
.tar, .tar.gz, .tar.zst or .tar.xz tarball) that has a kernel, systemd and
systemd-boot's EFI binaries.

Timestamps are capped at SOURCE_DATE_EPOCH when it is set, otherwise at the
newest timestamp in the root filesystem, so the same input gives the same
bytes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if o.UsrSlotBytes, err = parseSize(usrSize); err != nil {
				return fmt.Errorf("--usr-size: %w", err)
			}
			if o.ESPBytes, err = parseSize(esp); err != nil {
				return fmt.Errorf("--esp-size: %w", err)
			}
			if o.RootFSMaxBytes, err = parseSize(maxContent); err != nil {
				return fmt.Errorf("--rootfs-max-bytes: %w", err)
			}
			o.Cmdline = cmdline
			if configFile != "" {
				if o.MachineConfig, err = os.ReadFile(configFile); err != nil {
					return fmt.Errorf("--config: %w", err)
				}
				o.MachineConfigName = configFile
			}
			if o.Epoch, err = imageEpoch(); err != nil {
				return err
			}
			if keyDir != "" {
				if o.Keys, err = trust.LoadKeys(keyDir); err != nil {
					return err
				}
				o.KeyDir = keyDir
			}
			o.Logger = g.Logger()
			start := time.Now()
			o.Progress = func(stage string) {
				if !g.JSON {
					fmt.Fprintf(g.Stderr, "[%5.1fs] %s\n", time.Since(start).Seconds(), stage)
				}
			}
			do := distro.ImageOptions{Image: o, Packages: packages, Tool: "ingot-" + Version}
			if o.RootFS == "" {
				if do.Build, err = buildOptions(g, jobs, storeDir, recipesDir); err != nil {
					return err
				}
				pr := newBuildProgress(g.Stderr)
				do.Build.Progress = pr.update
				defer pr.run(cmd.Context())()
			}
			res, err := distro.Image(cmd.Context(), do)
			if err != nil {
				return imageFlagErrors(err)
			}
			return g.Render(res, func(w io.Writer) {
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
	f.StringVar(&o.RootFS, "rootfs", "", "root filesystem: directory or tarball (default: the built base)")
	f.StringVar(&o.Version, "version", "1.0.0", "image version (IMAGE_VERSION)")
	f.StringVar(&storeDir, "store", "", "without --rootfs: store directory (default: ingot/store in the user's cache directory)")
	f.StringVar(&recipesDir, "recipes", "", "without --rootfs: recipe directory (default: the distribution built into ingot)")
	f.StringSliceVar(&packages, "packages", []string{"base"}, "without --rootfs: packages and sets to put in the image")
	f.IntVarP(&jobs, "jobs", "j", 0, "without --rootfs: packages to build at once (default: the number of CPUs)")
	f.StringVarP(&o.OutputDir, "output", "o", "out", "output directory")
	f.BoolVar(&o.Autologin, "autologin", false, "root shell on the serial console (development and tests)")
	f.StringVar(&o.KernelVersion, "kernel-version", "", "kernel to use when the root filesystem has several")
	f.StringVar(&o.Compression, "compression", "auto", "compression of /usr: auto (the best the image's kernel mounts: zstd from Linux 6.10 with EROFS_FS_ZIP_ZSTD, else lz4hc), lz4hc, zstd or none, optionally with :LEVEL (lz4hc 1-9, zstd 1-22)")
	f.StringArrayVar(&cmdline, "cmdline", nil, "extra kernel command-line argument (repeatable)")
	f.StringVar(&usrSize, "usr-size", "", "size of each usr partition, e.g. 2G (default: from /usr, with room to grow)")
	f.StringVar(&maxContent, "rootfs-max-bytes", "", "bound on the root filesystem's content, sparse files expanded, e.g. 20G (default: 100 times what it stores, at least 1G)")
	f.StringVar(&esp, "esp-size", "", "size of the ESP, e.g. 512M (default: room for four UKIs, at least 256M)")
	f.StringArrayVar(&o.Extensions, "extension", nil, "an extension image (ingot ext build) to ship in /usr as the image's own; it must fit this image and be signed by its verity key (repeatable)")
	f.StringArrayVar(&o.HealthChecks, "health-check", nil, "a systemd unit of the image that must succeed before a boot counts as good (repeatable)")
	f.DurationVar(&o.BootDeadline, "boot-deadline", diskimage.DefaultBootDeadline, "reboot a boot that has not reached boot-complete.target after this long")
	f.StringVar(&configFile, "config", "", "machine configuration the image carries as its defaults (see ingot config)")
	f.StringVar(&keyDir, "keys", "", "sign the image with the keys in DIR (made by ingot keys init)")
	f.BoolVar(&o.RequireSignedConfig, "require-signed-config", false, "apply machine configuration from the ESP, a credential or a NoCloud seed only with a signature by the --keys verity key (ingot config sign)")
	f.StringVar(&o.EncryptRoot, "encrypt-root", layout.EncryptNone, "root partition made on first boot: tpm (LUKS2 sealed to the TPM under the --keys PCR key), if-tpm (tpm when the machine has one) or none")
	f.BoolVar(&o.NoRecoveryKey, "no-recovery-key", false, "with --encrypt-root: no recovery key (shown once on the console at first boot)")
	f.StringVar(&o.InitPath, "init", "", "ingot-init binary (default: next to this ingot, else built with the Go toolchain at this ingot's version)")
	f.StringVar(&o.AgentPath, "agent", "", "device ingot binary (cmd/ingot-agent) to install as /usr/bin/ingot (default: ingot-agent next to this ingot, else built like --init)")
	return cmd
}

// imageFlagErrors names the flags in the image's *diskimage.FieldErrors.
func imageFlagErrors(err error) error {
	return flagErrors(err, func(field string) string {
		switch field {
		case "RootFS":
			return "--rootfs"
		case "Version":
			return "--version"
		case "OutputDir":
			return "--output"
		case "Epoch":
			return "SOURCE_DATE_EPOCH"
		case "EncryptRoot":
			return "--encrypt-root"
		case "Cmdline":
			return "--cmdline"
		case "UsrSlotBytes":
			return "--usr-size"
		case "ESPBytes":
			return "--esp-size"
		case "RootFSMaxBytes":
			return "--rootfs-max-bytes"
		case "KernelVersion":
			return "--kernel-version"
		case "MachineConfig":
			return "--config"
		case "RequireSignedConfig":
			return "--require-signed-config"
		case "HealthChecks":
			return "--health-check"
		case "Extensions":
			return "--extension"
		case "BootDeadline":
			return "--boot-deadline"
		case "InitPath":
			return "--init"
		case "AgentPath":
			return "--agent"
		}
		return ""
	})
}

// flagError is a library's field error told with the flag that sets the
// field.
type flagError struct {
	flag string
	err  *diskimage.FieldError
}

func (e *flagError) Error() string { return e.err.Describe(e.flag) }
func (e *flagError) Unwrap() error { return e.err }

// flagErrors replaces each *diskimage.FieldError in err (joined ones too)
// whose field has a flag by one that names the flag.
func flagErrors(err error, flag func(field string) string) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range j.Unwrap() {
			errs = append(errs, flagErrors(e, flag))
		}
		return errors.Join(errs...)
	}
	var fe *diskimage.FieldError
	if errors.As(err, &fe) && flag(fe.Field) != "" {
		return &flagError{flag: flag(fe.Field), err: fe}
	}
	return err
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
