package boot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/internal/kernel"
	"github.com/ingot-linux/ingot/layout"
)

// ingot-init measures through kernel.Linux.
var _ Measurer = kernel.Linux{}

// Measurer is implemented by a Sys that can extend a TPM PCR
// (internal/kernel.Linux, through /dev/tpmrm0). Without a TPM its methods
// return an error wrapping fs.ErrNotExist.
type Measurer interface {
	// PCRInUse reports whether a bank of PCR pcr was extended since the
	// reset (holds neither all zeros nor all ones).
	PCRInUse(pcr int) (bool, error)
	// MeasurePCR extends PCR pcr with data, each bank with the digest of
	// data in its algorithm, and returns the banks' names.
	MeasurePCR(pcr int, data []byte) (banks []string, err error)
}

// The boot phases ingot-init measures into PCR 11, as systemd-pcrphase-
// initrd.service does in a systemd initrd: "enter-initrd" when the initrd
// starts and "leave-initrd" just before switch_root. The booted system's
// systemd adds "sysinit" and "ready" (systemd-pcrphase-sysinit.service,
// systemd-pcrphase.service) when it can. trust.DefaultPhases lists the
// resulting paths that the UKI's .pcrsig signs.
const (
	pcrPhase     = 11
	phaseEnter   = "enter-initrd"
	phaseLeave   = "leave-initrd"
	efivarsDir   = layout.EFIVarsDir
	stubPCRVar   = efivarsDir + "/StubPcrKernelImage-" + layout.LoaderVendor
	efivarsFlags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
)

// measureEnter measures "enter-initrd" into PCR 11 when systemd-stub
// measured the UKI into it: it then sets the StubPcrKernelImage EFI
// variable, which systemd-pcrphase checks too. When efivarfs is not
// available in the initrd (a module in Debian's kernel), PCR 11 itself
// tells: nothing but the stub extends it before the initrd. Without a TPM,
// or when the stub did not measure, the boot goes on unmeasured, with one
// line on the console. A failing TPM is reported and ignored here: PCR 11 then holds
// the stub's value, which no phase of the signed policy matches, so
// nothing sealed to it unlocks; that is the safe direction.
func measureEnter(_ context.Context, s *State) error {
	m, ok := s.Sys.(Measurer)
	if !ok {
		return nil
	}
	measured, known := stubMeasured(s)
	if !known {
		inUse, err := m.PCRInUse(pcrPhase)
		if errors.Is(err, fs.ErrNotExist) {
			s.logf("boot phases not measured: no TPM device (%v)", err)
			return nil
		}
		if err != nil {
			s.logf("boot phases not measured: read PCR %d: %v", pcrPhase, err)
			return nil
		}
		measured = inUse
	}
	if !measured {
		s.logf("boot phases not measured: systemd-stub did not measure this boot into PCR %d (no TPM, or not booted from a UKI)", pcrPhase)
		return nil
	}
	banks, err := m.MeasurePCR(pcrPhase, []byte(phaseEnter))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.logf("boot phases not measured: no TPM device (%v)", err)
	case err != nil:
		s.logf("measure %s into PCR %d: %v (going on; nothing sealed to PCR %d will unlock)", phaseEnter, pcrPhase, err, pcrPhase)
	default:
		s.Measured = true
		s.logf("measured %s into PCR %d (%s)", phaseEnter, pcrPhase, strings.Join(banks, ", "))
	}
	return nil
}

// measureLeave measures "leave-initrd" into PCR 11 right before switch
// root, when "enter-initrd" was measured. Its failure fails the boot:
// PCR 11 would stay at the enter-initrd value, which the signed policy
// accepts, so the booted system could unseal what only the initrd may.
func measureLeave(_ context.Context, s *State) error {
	if !s.Measured {
		return nil
	}
	m := s.Sys.(Measurer)
	banks, err := m.MeasurePCR(pcrPhase, []byte(phaseLeave))
	if err != nil {
		return fmt.Errorf("measure %s into PCR %d: %w", phaseLeave, pcrPhase, err)
	}
	s.logf("measured %s into PCR %d (%s)", phaseLeave, pcrPhase, strings.Join(banks, ", "))
	return nil
}

// stubMeasured reports whether systemd-stub left StubPcrKernelImage,
// mounting efivarfs to look if needed (systemd finds it mounted and
// keeps it). known is false when the EFI variables cannot be read: not
// booted through UEFI, or no efivarfs in the kernel.
func stubMeasured(s *State) (measured, known bool) {
	if _, err := os.Stat(s.path(stubPCRVar)); err == nil {
		return true, true
	}
	dir := s.path(efivarsDir)
	if _, err := os.Stat(dir); err != nil {
		return false, false
	}
	if err := s.Sys.Mount("efivarfs", dir, "efivarfs", efivarsFlags, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return false, false
	}
	_, err := os.Stat(s.path(stubPCRVar))
	return err == nil, true
}
