package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/layout"
)

// mountEFIVars mounts efivarfs, where the firmware and the boot loader
// leave what ingot-init trusts about this boot: the Secure Boot state
// and the ESP that was booted from. A machine without UEFI has none.
func mountEFIVars(_ context.Context, s *State) error {
	if _, err := os.Stat(s.path("/sys/firmware/efi")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	s.needModules("efivarfs")
	err := s.Sys.Mount("efivarfs", s.path(layout.EFIVarsDir), "efivarfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_RDONLY, "")
	if err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount efivarfs (the kernel needs CONFIG_EFIVAR_FS): %w", err)
	}
	return nil
}

// readEFIVar returns the data of an efivarfs variable without its four
// attribute bytes, or an error wrapping fs.ErrNotExist when it is not
// set.
func readEFIVar(s *State, name string) ([]byte, error) {
	b, err := os.ReadFile(s.path(filepath.Join(layout.EFIVarsDir, name)))
	if err != nil {
		return nil, err
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("EFI variable %s has %d bytes, no attributes", name, len(b))
	}
	return b[4:], nil
}

// secureBoot reports whether the firmware booted with Secure Boot on.
// No variable (no UEFI, or no efivarfs) means off.
func secureBoot(s *State) (bool, error) {
	v, err := readEFIVar(s, layout.SecureBootVar)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(v) == 1 && v[0] == 1, nil
}

// bootESP returns the PARTUUID of the ESP systemd-boot (or systemd-stub)
// was loaded from, and false when no loader said.
func bootESP(s *State) (gpt.GUID, bool, error) {
	v, err := readEFIVar(s, layout.LoaderDevicePartUUIDVar)
	if errors.Is(err, os.ErrNotExist) {
		return gpt.GUID{}, false, nil
	}
	if err != nil {
		return gpt.GUID{}, false, err
	}
	u, err := gpt.ParseGUID(decodeUTF16(v))
	if err != nil {
		return gpt.GUID{}, false, fmt.Errorf("EFI variable LoaderDevicePartUUID: %w", err)
	}
	return u, true, nil
}

// decodeUTF16 decodes a little-endian UTF-16 string up to its NUL.
func decodeUTF16(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := uint16(b[i]) | uint16(b[i+1])<<8
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return strings.TrimSpace(string(utf16.Decode(u)))
}
