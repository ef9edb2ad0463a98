package dm

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Device-mapper ioctl interface, from <linux/dm-ioctl.h>: struct dm_ioctl
// is 312 bytes and struct dm_target_spec 40, in native byte order.
const (
	ioctlSize      = 312
	targetSpecSize = 40
	nameLen        = 128
	uuidLen        = 129
	targetTypeLen  = 16

	cmdDevCreate  = 3
	cmdDevRemove  = 4
	cmdDevSuspend = 6 // without DM_SUSPEND_FLAG: resume
	cmdTableLoad  = 9

	flagReadOnly   = 1 << 0
	flagSecureData = 1 << 15 // wipe the ioctl buffer in the kernel

	// Offsets in struct dm_ioctl.
	offDataSize    = 12
	offDataStart   = 16
	offTargetCount = 20
	offFlags       = 28
	offDev         = 40
	offName        = 48
	offUUID        = 176
)

// request is _IOWR(0xfd, nr, struct dm_ioctl) with the generic ioctl
// encoding (amd64, arm64, riscv64 and most others).
func request(nr uintptr) uintptr {
	return 3<<30 | ioctlSize<<16 | 0xfd<<8 | nr
}

func checkName(name string) error {
	if name == "" || len(name) >= nameLen || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return fmt.Errorf("invalid device-mapper name %q", name)
	}
	return nil
}

// header returns a struct dm_ioctl for device name (and uuid) followed by
// payload bytes of space.
func header(name, uuid string, payload int) []byte {
	buf := make([]byte, ioctlSize+payload)
	ne := binary.NativeEndian
	ne.PutUint32(buf[0:], 4) // interface version 4.0.0
	ne.PutUint32(buf[offDataSize:], uint32(len(buf)))
	ne.PutUint32(buf[offDataStart:], ioctlSize)
	copy(buf[offName:], name)
	copy(buf[offUUID:], uuid)
	return buf
}

// tableLoad returns the DM_TABLE_LOAD buffer for d's one target.
func tableLoad(d Device) []byte {
	n := targetSpecSize + len(d.Target.Params) + 1
	n = (n + 7) &^ 7
	buf := header(d.Name, "", n)
	ne := binary.NativeEndian
	ne.PutUint32(buf[offTargetCount:], 1)
	var flags uint32
	if d.ReadOnly {
		flags |= flagReadOnly
	}
	if d.Secret {
		flags |= flagSecureData
	}
	ne.PutUint32(buf[offFlags:], flags)
	spec := buf[ioctlSize:]
	ne.PutUint64(spec[0:], 0) // sector_start
	ne.PutUint64(spec[8:], d.Target.LengthSectors)
	ne.PutUint32(spec[20:], uint32(n)) // next
	copy(spec[24:40], d.Target.Type)
	copy(spec[targetSpecSize:], d.Target.Params)
	return buf
}

// dev returns the device number the kernel wrote into buf.
func dev(buf []byte) Dev { return Dev(binary.NativeEndian.Uint64(buf[offDev:])) }

// wipe zeroes b (buffers that held a key).
func wipe(b []byte) { clear(b) }
