package image

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

type diskInfo struct {
	diskBytes    int64
	usrSlotBytes int64
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// slotSizes picks the usr and verity partition sizes: room for this /usr and
// for later, larger versions.
func slotSizes(o *Options, usr *usrImage) (usrBytes, verityBytes int64, err error) {
	usrBytes = o.UsrSlotBytes
	if usrBytes == 0 {
		usrBytes = roundUp(usr.DataBytes+max(usr.DataBytes/2, 128*mib), 16*mib)
	}
	usrBytes = roundUp(usrBytes, mib)
	if usr.DataBytes > usrBytes {
		return 0, 0, fmt.Errorf("disk image too small: /usr needs %d MiB, the usr partition (--usr-size) has %d MiB",
			(usr.DataBytes+mib-1)/mib, usrBytes/mib)
	}
	return usrBytes, roundUp(verityBytesFor(usrBytes), mib), nil
}

// writeDisk lays out the GPT, the ESP with systemd-boot and the UKI, and slot
// A, and writes them to out. Slot B is present, labelled _empty, and left
// zero (sparse).
func writeDisk(out *os.File, o *Options, usr *usrImage, loader, ukiImage []byte, signed *signing) (*diskInfo, error) {
	usrBytes, verityBytes, err := slotSizes(o, usr)
	if err != nil {
		return nil, err
	}
	if usr.HashBytes > verityBytes {
		return nil, fmt.Errorf("verity tree of %d bytes does not fit its %d-byte partition", usr.HashBytes, verityBytes)
	}
	espBytes := o.ESPBytes
	if espBytes == 0 {
		espBytes = max(minESPBytes, roundUp(4*int64(len(ukiImage))+int64(len(loader))+8*mib, mib))
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
		{gpt.Partition{Index: layout.UsrAIndex, Type: layout.TypeUsr, UUID: usrUUID, Name: layout.UsrLabel(o.Version)}, usrBytes},
		{gpt.Partition{Index: layout.UsrVerityAIndex, Type: layout.TypeUsrVerity, UUID: verityUUID, Name: layout.VerityLabel(o.Version)}, verityBytes},
		{gpt.Partition{Index: layout.UsrVeritySigIndex, Type: layout.TypeUsrVeritySig, UUID: layout.DeriveGUID(usr.RootHash, layout.PurposeSigA), Name: sigLabel(signed, o.Version)}, sigSlotBytes},
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
	if err := out.Truncate(diskBytes); err != nil {
		return nil, fmt.Errorf("size disk image: %w", err)
	}
	if err := t.Write(out, diskBytes); err != nil {
		return nil, fmt.Errorf("write partition table: %w", err)
	}
	esp := placed[0]
	if err := writeESP(out, esp, o, usr.RootHash, loader, ukiImage, signed); err != nil {
		return nil, err
	}
	if signed.veritySig != nil {
		if int64(len(signed.veritySig)) > placed[3].Size(sectorSize) {
			return nil, fmt.Errorf("verity signature of %d bytes does not fit its partition", len(signed.veritySig))
		}
		if _, err := out.WriteAt(signed.veritySig, placed[3].Offset(sectorSize)); err != nil {
			return nil, fmt.Errorf("write usr-verity-sig partition: %w", err)
		}
	}
	if err := copyInto(out, placed[1].Offset(sectorSize), usr.DataPath); err != nil {
		return nil, fmt.Errorf("write usr partition: %w", err)
	}
	if err := copyInto(out, placed[2].Offset(sectorSize), usr.HashPath); err != nil {
		return nil, fmt.Errorf("write usr-verity partition: %w", err)
	}
	return &diskInfo{diskBytes: diskBytes, usrSlotBytes: usrBytes}, nil
}

// loaderConf shows no menu unless a key is pressed and picks the newest UKI
// with tries left.
const loaderConf = `timeout 0
editor no
auto-entries no
auto-firmware no
console-mode keep
`

func writeESP(out io.WriterAt, esp gpt.Partition, o *Options, rootHash, loader, ukiImage []byte, signed *signing) error {
	w, err := fat.NewWriter(fat.Options{
		SizeBytes:     esp.Size(sectorSize),
		Label:         "ESP",
		VolumeID:      layout.ESPVolumeID(rootHash),
		Time:          time.Unix(o.Epoch, 0).UTC(),
		HiddenSectors: uint32(esp.FirstLBA),
	})
	if err != nil {
		return fmt.Errorf("create ESP: %w", err)
	}
	files := []struct {
		path string
		data []byte
	}{
		{layout.BootLoaderPath, loader},
		{layout.LoaderConfPath, []byte(loaderConf + signed.loaderConf)},
		{layout.UKIDir + "/" + layout.UKIName(o.Version, 3), ukiImage},
	}
	for _, a := range signed.auth {
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
