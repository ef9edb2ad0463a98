package diskimage

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ingot-linux/ingot/format/fat"
	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/layout"
)

const (
	mib        = 1 << 20
	sectorSize = 512
	// sigSlotBytes is the size of a usr-verity-sig partition: a JSON
	// document with the root hash and a PKCS#7 signature.
	sigSlotBytes = mib
	minESPBytes  = 256 * mib
)

// diskSizes are the sizes Options asks for; 0 means the default.
type diskSizes struct{ usrSlotBytes, espBytes int64 }

// diskContents is what goes on a disk image.
type diskContents struct {
	version     string
	epoch       int64 // the ESP's timestamps
	usr         *usrImage
	loader, uki []byte
	signed      *signing
}

// diskLayout is where everything goes: the partition table of a disk of
// diskBytes, its partitions in the order layoutDisk appends them.
type diskLayout struct {
	diskBytes             int64
	usrSlotBytes          int64
	table                 *gpt.Table
	esp, usr, verity, sig gpt.Partition
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// slotSizes picks the usr and verity partition sizes: room for this /usr and
// for later, larger versions.
func slotSizes(usrSlotBytes int64, usr *usrImage) (usrBytes, verityBytes int64, err error) {
	usrBytes = usrSlotBytes
	if usrBytes == 0 {
		usrBytes = roundUp(usr.DataBytes+max(usr.DataBytes/2, 128*mib), 16*mib)
	}
	usrBytes = roundUp(usrBytes, mib)
	if usr.DataBytes > usrBytes {
		return 0, 0, &FieldError{Field: "UsrSlotBytes", Value: usrSlotBytes, Problem: fmt.Sprintf("disk image too small: /usr needs %d MiB, the usr partition has %d MiB",
			(usr.DataBytes+mib-1)/mib, usrBytes/mib)}
	}
	return usrBytes, roundUp(verityBytesFor(usrBytes), mib), nil
}

// layoutDisk lays out the GPT: the ESP, slot A and slot B, labelled
// _empty.
func layoutDisk(c *diskContents, s diskSizes) (*diskLayout, error) {
	usr := c.usr
	usrBytes, verityBytes, err := slotSizes(s.usrSlotBytes, usr)
	if err != nil {
		return nil, err
	}
	if usr.HashBytes > verityBytes {
		return nil, fmt.Errorf("verity tree of %d bytes does not fit its %d-byte partition", usr.HashBytes, verityBytes)
	}
	espBytes := s.espBytes
	if espBytes == 0 {
		espBytes = max(minESPBytes, roundUp(4*int64(len(c.uki))+int64(len(c.loader))+8*mib, mib))
	}
	diskBytes := mib + espBytes + 2*(usrBytes+verityBytes+sigSlotBytes) + mib
	t, err := gpt.New(diskBytes, sectorSize, layout.DeriveGUID(usr.RootHash, layout.PurposeDisk))
	if err != nil {
		return nil, err
	}
	usrUUID, verityUUID := layout.UsrPartUUIDs(usr.RootHash)
	parts := []struct {
		p    gpt.Partition
		size int64
	}{
		{gpt.Partition{Index: layout.ESPIndex, Type: layout.TypeESP, UUID: layout.DeriveGUID(usr.RootHash, layout.PurposeESP), Name: "esp"}, espBytes},
		{gpt.Partition{Index: layout.UsrAIndex, Type: layout.TypeUsr, UUID: usrUUID, Name: layout.UsrLabel(c.version)}, usrBytes},
		{gpt.Partition{Index: layout.UsrVerityAIndex, Type: layout.TypeUsrVerity, UUID: verityUUID, Name: layout.VerityLabel(c.version)}, verityBytes},
		{gpt.Partition{Index: layout.UsrVeritySigIndex, Type: layout.TypeUsrVeritySig, UUID: layout.DeriveGUID(usr.RootHash, layout.PurposeSigA), Name: sigLabel(c.signed, c.version)}, sigSlotBytes},
		{gpt.Partition{Index: layout.UsrBIndex, Type: layout.TypeUsr, UUID: layout.DeriveGUID(usr.RootHash, layout.PurposeUsrB), Name: layout.EmptyLabel}, usrBytes},
		{gpt.Partition{Index: layout.UsrVerityBIndex, Type: layout.TypeUsrVerity, UUID: layout.DeriveGUID(usr.RootHash, layout.PurposeVerityB), Name: layout.EmptyLabel}, verityBytes},
		{gpt.Partition{Index: layout.UsrVeritySigB, Type: layout.TypeUsrVeritySig, UUID: layout.DeriveGUID(usr.RootHash, layout.PurposeSigB), Name: layout.EmptyLabel}, sigSlotBytes},
	}
	placed := make([]gpt.Partition, len(parts))
	for i, p := range parts {
		if placed[i], err = t.Append(p.p, p.size, mib); err != nil {
			return nil, fmt.Errorf("lay out partition %s: %w", p.p.Name, err)
		}
	}
	return &diskLayout{diskBytes: diskBytes, usrSlotBytes: usrBytes, table: t,
		esp: placed[0], usr: placed[1], verity: placed[2], sig: placed[3]}, nil
}

// write writes the partition table, the ESP with systemd-boot and the UKI,
// and slot A to w, which is diskBytes long. Slot B is left as it is: zero
// (sparse) in a new file.
func (l *diskLayout) write(w io.WriterAt, c *diskContents) error {
	if err := l.table.Write(w, l.diskBytes); err != nil {
		return fmt.Errorf("write partition table: %w", err)
	}
	if err := writeESP(w, l.esp, c); err != nil {
		return err
	}
	if sig := c.signed.veritySig; sig != nil {
		if int64(len(sig)) > l.sig.Size(sectorSize) {
			return fmt.Errorf("verity signature of %d bytes does not fit its partition", len(sig))
		}
		if _, err := w.WriteAt(sig, l.sig.Offset(sectorSize)); err != nil {
			return fmt.Errorf("write usr-verity-sig partition: %w", err)
		}
	}
	if err := copyInto(w, l.usr.Offset(sectorSize), c.usr.DataPath); err != nil {
		return fmt.Errorf("write usr partition: %w", err)
	}
	if err := copyInto(w, l.verity.Offset(sectorSize), c.usr.HashPath); err != nil {
		return fmt.Errorf("write usr-verity partition: %w", err)
	}
	return nil
}

// loaderConf shows no menu unless a key is pressed and picks the newest UKI
// with tries left.
const loaderConf = `timeout 0
editor no
auto-entries no
auto-firmware no
console-mode keep
`

// writeESP writes the FAT ESP with systemd-boot, its loader.conf, the UKI
// and, for a signed image, the files for Secure Boot enrollment.
func writeESP(out io.WriterAt, esp gpt.Partition, c *diskContents) error {
	w, err := fat.NewWriter(fat.Options{
		SizeBytes:     esp.Size(sectorSize),
		Label:         "ESP",
		VolumeID:      layout.ESPVolumeID(c.usr.RootHash),
		Time:          time.Unix(c.epoch, 0).UTC(),
		HiddenSectors: uint32(esp.FirstLBA),
	})
	if err != nil {
		return fmt.Errorf("create ESP: %w", err)
	}
	files := []struct {
		path string
		data []byte
	}{
		{layout.BootLoaderPath, c.loader},
		{layout.LoaderConfPath, []byte(loaderConf + c.signed.loaderConf)},
		{layout.UKIDir + "/" + layout.UKIName(c.version, 3), c.uki},
	}
	for _, a := range c.signed.auth {
		files = append(files, struct {
			path string
			data []byte
		}{a.path, a.data})
	}
	for _, f := range files {
		if err := w.AddFile(f.path, bytes.NewReader(f.data), int64(len(f.data))); err != nil {
			return fmt.Errorf("add %s to ESP: %w", f.path, err)
		}
	}
	if err := w.Write(io.NewOffsetWriter(out, esp.Offset(sectorSize))); err != nil {
		return fmt.Errorf("write ESP: %w", err)
	}
	return nil
}

func sigLabel(s *signing, version string) string {
	if s.veritySig == nil {
		return layout.EmptyLabel
	}
	return layout.VeritySigLabel(version)
}

func copyInto(out io.WriterAt, offset int64, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.NewOffsetWriter(out, offset), f)
	return err
}
