package kernel

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/internal/dm"
)

// LoopAttach maps sizeBytes of the file at path from offsetBytes as a
// read-only loop device that the kernel frees when its last user (a
// device-mapper table, a mount) lets go, and returns the device's path
// and a handle that keeps it until the caller has made that user: close
// it then.
func (Linux) LoopAttach(path string, offsetBytes, sizeBytes int64) (string, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", nil, err
	}
	defer ctl.Close()
	for range 8 { // another process may take the free device first
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", nil, fmt.Errorf("find a free loop device: %w", err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		l, err := configureLoop(dev, f, offsetBytes, sizeBytes)
		if errors.Is(err, unix.EBUSY) {
			continue
		} else if err != nil {
			return "", nil, fmt.Errorf("attach %s to %s: %w", path, dev, err)
		}
		return dev, l, nil
	}
	return "", nil, fmt.Errorf("attach %s: no free loop device", path)
}

// configureLoop binds backing to the loop device dev and returns dev
// open (autoclear frees it at the last close).
func configureLoop(dev string, backing *os.File, offsetBytes, sizeBytes int64) (*os.File, error) {
	l, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	cfg := unix.LoopConfig{Fd: uint32(backing.Fd()), Size: 512}
	cfg.Info.Offset, cfg.Info.Sizelimit = uint64(offsetBytes), uint64(sizeBytes)
	cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR
	if err := unix.IoctlLoopConfigure(int(l.Fd()), &cfg); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// VerityRemove removes the device-mapper device name.
func (Linux) VerityRemove(name string) error {
	if err := dm.Remove(name); err != nil {
		return fmt.Errorf("remove device-mapper device %s: %w", name, err)
	}
	os.Remove("/dev/mapper/" + name)
	return nil
}
