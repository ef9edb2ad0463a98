package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unicode/utf16"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/layout"
)

// loaderEntryDefault is the EFI variable naming the entry systemd-boot
// boots by default (bootctl set-default), a glob over entry IDs.
const loaderEntryDefault = "LoaderEntryDefault"

// fsImmutableFL is FS_IMMUTABLE_FL of linux/fs.h, which x/sys/unix lacks.
const fsImmutableFL = 0x10

func (a *Agent) efiVarPath(name string) string {
	return a.path(layout.EFIVarsDir + "/" + name + "-" + layout.LoaderVendor)
}

// readLoaderVar returns the string value of a systemd-boot variable, ""
// when it is not set.
func (a *Agent) readLoaderVar(name string) (string, error) {
	b, err := os.ReadFile(a.efiVarPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read EFI variable %s: %w", name, err)
	}
	if len(b) < 4 || len(b)%2 != 0 {
		return "", fmt.Errorf("EFI variable %s: %d bytes is no UTF-16 string", name, len(b))
	}
	u := make([]uint16, 0, (len(b)-4)/2)
	for i := 4; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), nil
}

// removeLoaderVar deletes a systemd-boot variable; one not set is no
// error.
func (a *Agent) removeLoaderVar(name string) error {
	p := a.efiVarPath(name)
	if err := clearImmutable(p); errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("make EFI variable %s writable: %w", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove EFI variable %s: %w", name, err)
	}
	return nil
}

// clearImmutable drops the immutable flag efivarfs gives variables, as
// bootctl and libefivar do before changing one. Filesystems without the
// flags (a test's temporary directory) are fine.
func clearImmutable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil
	}
	if err != nil || flags&fsImmutableFL == 0 {
		return err
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags&^fsImmutableFL))
}
