package luks2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Device-mapper ioctl interface, from <linux/dm-ioctl.h>. The buffers are
// built byte by byte: struct dm_ioctl is 312 bytes and struct
// dm_target_spec 40, in native byte order.
const (
	dmControl        = "/dev/mapper/control"
	dmIoctlSize      = 312
	dmTargetSpecSize = 40
	dmNameLen        = 128
	dmUUIDLen        = 129

	dmDevCreate  = 3
	dmDevRemove  = 4
	dmDevSuspend = 6
	dmTableLoad  = 9

	dmSecureDataFlag = 1 << 15 // wipe the ioctl buffer in the kernel

	// Offsets in struct dm_ioctl.
	dmOffDataSize    = 12
	dmOffDataStart   = 16
	dmOffTargetCount = 20
	dmOffFlags       = 28
	dmOffDev         = 40
	dmOffName        = 48
	dmOffUUID        = 176
)

// dmRequest is _IOWR(0xfd, nr, struct dm_ioctl) with the generic ioctl
// encoding (amd64, arm64, riscv64 and most others).
func dmRequest(nr uintptr) uintptr {
	return 3<<30 | dmIoctlSize<<16 | 0xfd<<8 | nr
}

// newDMBuffer returns a struct dm_ioctl for device name followed by payload
// bytes of space.
func newDMBuffer(name, uuid string, payload int) ([]byte, error) {
	if name == "" || len(name) >= dmNameLen || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, fmt.Errorf("invalid device-mapper name %q", name)
	}
	if len(uuid) >= dmUUIDLen {
		uuid = uuid[:dmUUIDLen-1]
	}
	buf := make([]byte, dmIoctlSize+payload)
	ne := binary.NativeEndian
	ne.PutUint32(buf[0:], 4) // interface version 4.0.0
	ne.PutUint32(buf[dmOffDataSize:], uint32(len(buf)))
	ne.PutUint32(buf[dmOffDataStart:], dmIoctlSize)
	copy(buf[dmOffName:], name)
	copy(buf[dmOffUUID:], uuid)
	return buf, nil
}

// tableLoadBuffer returns the DM_TABLE_LOAD buffer for one target of
// length sectors with the given type and parameters, flagged so that the
// kernel wipes its copy (the parameters hold the key).
func tableLoadBuffer(name string, sectors uint64, target string, params []byte) ([]byte, error) {
	n := dmTargetSpecSize + len(params) + 1
	n = (n + 7) &^ 7
	buf, err := newDMBuffer(name, "", n)
	if err != nil {
		return nil, err
	}
	ne := binary.NativeEndian
	ne.PutUint32(buf[dmOffTargetCount:], 1)
	ne.PutUint32(buf[dmOffFlags:], dmSecureDataFlag)
	spec := buf[dmIoctlSize:]
	ne.PutUint64(spec[0:], 0)       // sector_start
	ne.PutUint64(spec[8:], sectors) // length
	ne.PutUint32(spec[20:], uint32(n))
	copy(spec[24:40], target)
	copy(spec[dmTargetSpecSize:], params)
	return buf, nil
}

func dmIoctl(ctl *os.File, nr uintptr, buf []byte) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), dmRequest(nr), uintptr(unsafe.Pointer(&buf[0])))
	if errno != 0 {
		return errno
	}
	return nil
}

// Activate maps the data of the LUKS2 volume at devPath, decrypted with
// volumeKey, to /dev/mapper/<name> with dm-crypt and returns that path. The
// key is checked against the header's digest first, so a wrong key fails
// here instead of producing garbage. It needs root and a kernel with
// dm-crypt. Activate makes the device node itself, so it works without
// udev.
func Activate(name, devPath string, volumeKey []byte) (mapperPath string, err error) {
	p, err := activate(name, devPath, volumeKey)
	if err != nil {
		return "", fmt.Errorf("luks2: activate %s on %s: %w", name, devPath, err)
	}
	return p, nil
}

func activate(name, devPath string, volumeKey []byte) (string, error) {
	f, err := os.Open(devPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h, err := readHeader(f)
	if err != nil {
		return "", fmt.Errorf("read header: %w", err)
	}
	if err := h.checkRequirements(); err != nil {
		return "", err
	}
	seg := h.cryptSegment()
	if seg == nil {
		return "", fmt.Errorf("header has no crypt segment: %w", ErrUnsupported)
	}
	if err := h.checkVolumeKey(seg.ID, volumeKey); err != nil {
		return "", err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", fmt.Errorf("size of %s: %w", devPath, err)
	}
	sectors := h.DataSectors(size)
	if sectors == 0 {
		return "", fmt.Errorf("device of %d bytes has no data after offset %d", size, seg.Offset)
	}

	ctl, err := os.OpenFile(dmControl, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer ctl.Close()
	uuid := "CRYPT-LUKS2-" + strings.ReplaceAll(h.UUID, "-", "") + "-" + name
	buf, err := newDMBuffer(name, uuid, 0)
	if err != nil {
		return "", err
	}
	if err := dmIoctl(ctl, dmDevCreate, buf); err != nil {
		return "", fmt.Errorf("create device-mapper device: %w", err)
	}
	dev := binary.NativeEndian.Uint64(buf[dmOffDev:])
	fail := func(err error) (string, error) {
		if rm, e := newDMBuffer(name, "", 0); e == nil {
			dmIoctl(ctl, dmDevRemove, rm)
		}
		return "", err
	}

	params := h.appendCryptParams(nil, devPath, volumeKey)
	buf, err = tableLoadBuffer(name, sectors, "crypt", params)
	wipe(params)
	if err != nil {
		return fail(err)
	}
	err = dmIoctl(ctl, dmTableLoad, buf)
	wipe(buf)
	if errors.Is(err, unix.ENOENT) {
		// dm-crypt reports a cipher the kernel cannot instantiate so.
		err = fmt.Errorf("%w (is %s available? it may need the xts and ecb modules)", err, seg.Cipher)
	}
	if err != nil {
		return fail(fmt.Errorf("load crypt table: %w", err))
	}
	if buf, err = newDMBuffer(name, "", 0); err != nil {
		return fail(err)
	}
	if err := dmIoctl(ctl, dmDevSuspend, buf); err != nil {
		return fail(fmt.Errorf("resume device-mapper device: %w", err))
	}
	node := filepath.Join("/dev/mapper", name)
	if err := makeNode(node, dev); err != nil {
		return "", err
	}
	return node, nil
}

// makeNode makes path a block device node for dev (as the kernel encodes it
// in struct dm_ioctl), unless it already is one, possibly through a
// symbolic link that udev made.
func makeNode(path string, dev uint64) error {
	rdev := unix.Mkdev(unix.Major(dev), unix.Minor(dev))
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err == nil {
		if st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == rdev {
			return nil
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove stale %s: %w", path, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(rdev)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}

// Deactivate removes the device-mapper device name made by Activate (or by
// cryptsetup open) and its node in /dev/mapper, if Activate made that.
func Deactivate(name string) error {
	buf, err := newDMBuffer(name, "", 0)
	if err != nil {
		return fmt.Errorf("luks2: deactivate %s: %w", name, err)
	}
	ctl, err := os.OpenFile(dmControl, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("luks2: deactivate %s: %w", name, err)
	}
	defer ctl.Close()
	if err := dmIoctl(ctl, dmDevRemove, buf); err != nil {
		return fmt.Errorf("luks2: deactivate %s: remove device-mapper device: %w", name, err)
	}
	node := filepath.Join("/dev/mapper", name)
	if fi, err := os.Lstat(node); err == nil && fi.Mode()&os.ModeDevice != 0 {
		os.Remove(node)
	}
	return nil
}
