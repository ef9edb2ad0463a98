// Package dm is ingot's one path to the kernel's device-mapper: it creates
// a device with a single-target table and removes it, through the ioctls
// of <linux/dm-ioctl.h> on /dev/mapper/control. ingot-init uses it for
// dm-verity (/usr) and dm-crypt (the sealed root).
//
//	dev, err := dm.Create(dm.Device{Name: "usr", ReadOnly: true,
//		Target: dm.Target{Type: "verity", LengthSectors: n, Params: params}})
//
// Create makes no device node: the caller decides where the node goes
// (devtmpfs makes /dev/dm-N; without udev nobody makes /dev/mapper/NAME).
//
// The ioctl buffers are built byte by byte (buffer.go) and tested without
// a kernel; the calls themselves need root and a kernel with
// device-mapper, so test/vm exercises them.
package dm

import "fmt"

// Target is the one target of a device's table.
type Target struct {
	// Type is the target type, such as "verity" or "crypt".
	Type string
	// LengthSectors is the mapping's length in 512-byte sectors; it starts
	// at sector 0.
	LengthSectors uint64
	// Params are the target's parameters (the table line after the type).
	// For dm-crypt they hold the key: Create does not keep them, and the
	// caller wipes its copy.
	Params []byte
}

// Device is a device-mapper device to create.
type Device struct {
	// Name is the device's name, /dev/mapper/<Name> by convention.
	Name string
	// UUID is the device-mapper UUID ("" for none), such as
	// "CRYPT-LUKS2-<uuid>-<name>" as cryptsetup sets it.
	UUID string
	// ReadOnly loads the table read-only (dm-verity).
	ReadOnly bool
	// Secret asks the kernel to wipe its copy of the table buffer
	// (DM_SECURE_DATA_FLAG), for tables that carry a key.
	Secret bool
	// Target is the table.
	Target Target
}

// Dev is a device number as the kernel encodes it in struct dm_ioctl
// (huge_encode_dev), which unix.Major and unix.Minor decode.
type Dev uint64

func (d Device) validate() error {
	if err := checkName(d.Name); err != nil {
		return err
	}
	if len(d.UUID) >= uuidLen {
		return fmt.Errorf("device-mapper UUID %q is longer than %d bytes", d.UUID, uuidLen-1)
	}
	if d.Target.Type == "" || len(d.Target.Type) >= targetTypeLen {
		return fmt.Errorf("device-mapper target type %q", d.Target.Type)
	}
	if d.Target.LengthSectors == 0 {
		return fmt.Errorf("device-mapper device %s: empty table", d.Name)
	}
	return nil
}
