package dm

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Control is the device-mapper control node.
const Control = "/dev/mapper/control"

// Create creates d, loads its table and activates it, and returns its
// device number. On failure nothing is left behind. It needs root and a
// kernel with device-mapper and the target type.
func Create(d Device) (Dev, error) {
	if err := d.validate(); err != nil {
		return 0, err
	}
	ctl, err := os.OpenFile(Control, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("open device-mapper control: %w", err)
	}
	defer ctl.Close()
	buf := header(d.Name, d.UUID, 0)
	if err := ioctl(ctl, cmdDevCreate, buf); err != nil {
		return 0, fmt.Errorf("create device-mapper device %s: %w", d.Name, err)
	}
	n := dev(buf)
	if err := load(ctl, d); err != nil {
		ioctl(ctl, cmdDevRemove, header(d.Name, "", 0))
		return 0, err
	}
	return n, nil
}

// load loads d's table and resumes the device, so that it maps.
func load(ctl *os.File, d Device) error {
	buf := tableLoad(d)
	err := ioctl(ctl, cmdTableLoad, buf)
	wipe(buf)
	if err != nil {
		return fmt.Errorf("load %s table into %s: %w", d.Target.Type, d.Name, err)
	}
	if err := ioctl(ctl, cmdDevSuspend, header(d.Name, "", 0)); err != nil {
		return fmt.Errorf("activate %s: %w", d.Name, err)
	}
	return nil
}

// Remove removes the device-mapper device name.
func Remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	ctl, err := os.OpenFile(Control, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open device-mapper control: %w", err)
	}
	defer ctl.Close()
	if err := ioctl(ctl, cmdDevRemove, header(name, "", 0)); err != nil {
		return fmt.Errorf("remove device-mapper device %s: %w", name, err)
	}
	return nil
}

func ioctl(ctl *os.File, nr uintptr, buf []byte) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), request(nr), uintptr(unsafe.Pointer(&buf[0])))
	if errno != 0 {
		return errno
	}
	return nil
}

// ErrNoTarget reports whether err is the kernel's answer to a table whose
// target cannot be instantiated (dm-crypt: a cipher the kernel lacks).
func ErrNoTarget(err error) bool { return errors.Is(err, unix.ENOENT) }
