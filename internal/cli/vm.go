package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/vm"
)

func newVMCmd(g *globals) *cobra.Command {
	var (
		c        vm.Config
		diskSize string
	)
	cmd := &cobra.Command{
		Use:   "vm [IMAGE]",
		Short: "Boot a disk image in QEMU with UEFI firmware, console on this terminal",
		Long: `Boot IMAGE in QEMU (TCG unless --accel kvm) with OVMF, its serial console on
this terminal (Ctrl-A X quits). The guest writes to a copy-on-write overlay
unless --persist, and sees a disk --disk-size large so that the first boot
has room for the root partition.

--secure-boot uses OVMF's Secure Boot firmware with SMM. Its NVRAM starts in
setup mode (no keys), so systemd-boot can enroll the keys an image signed with
--keys carries in loader/keys/auto/. Keep the NVRAM with --vars FILE to boot
with the enrolled keys again later. --tpm adds a TPM 2.0 emulated by swtpm
(Debian package swtpm); its state is kept in FILE.tpm/ with --vars, and is
fresh on every run otherwise.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if c.DiskSizeBytes, err = parseSize(diskSize); err != nil {
				return fmt.Errorf("--disk-size: %w", err)
			}
			img, err := vmImage(args)
			if err != nil {
				return err
			}
			c.Image = img
			c.Interactive = true
			c.Stdin = g.stdin
			c.Output = g.Stdout
			c.Logger = g.Logger()
			m, err := vm.Start(cmd.Context(), c)
			if err != nil {
				return err
			}
			defer m.Close()
			select {
			case <-m.Done():
			case <-cmd.Context().Done():
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&c.Persist, "persist", false, "write to IMAGE itself instead of an overlay")
	f.IntVar(&c.MemoryMiB, "memory", vm.DefaultMemoryMiB, "guest memory in MiB")
	f.IntVar(&c.CPUs, "cpus", vm.DefaultCPUs, "virtual CPUs")
	f.StringVar(&diskSize, "disk-size", "", "size of the guest's disk, e.g. 8G (default: image + 2G; with --persist: unchanged)")
	f.StringArrayVar(&c.ExtraDisks, "disk", nil, "extra disk image to attach (repeatable)")
	f.StringVar(&c.Accel, "accel", vm.DefaultAccel, "QEMU accelerator: tcg or kvm")
	f.StringVar(&c.Firmware, "firmware", "", "OVMF code image (default: from the ovmf package)")
	f.BoolVar(&c.SecureBoot, "secure-boot", false, "Secure Boot firmware (OVMF .secboot, SMM), starting in setup mode")
	f.BoolVar(&c.TPM, "tpm", false, "attach a TPM 2.0 (swtpm)")
	f.StringVar(&c.PersistentVars, "vars", "", "NVRAM file kept across runs (created from the firmware's template); with --tpm the TPM state goes to FILE.tpm/")
	return cmd
}

// vmImage is the image to boot: the argument, or else the only
// out/ingot_*.raw (what `ingot image` writes by default).
func vmImage(args []string) (string, error) {
	if len(args) == 1 {
		if _, err := os.Stat(args[0]); err != nil {
			return "", fmt.Errorf("disk image: %w", err)
		}
		return args[0], nil
	}
	found, _ := filepath.Glob(filepath.Join("out", "ingot_*.raw"))
	switch len(found) {
	case 0:
		return "", errors.New("no image given and none in out/: make one with ingot image, or name it (ingot vm IMAGE)")
	case 1:
		return found[0], nil
	default:
		return "", fmt.Errorf("no image given and out/ has %d: name one (ingot vm %s)", len(found), found[len(found)-1])
	}
}
