package diskimage

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/ingot-linux/ingot/format/fat"
	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/layout"
)

// Disk is what Inspect reads back from an ingot disk image.
type Disk struct {
	Table *gpt.Table
	ESP   fs.FS
	// UKIs are the file names under EFI/Linux, sorted.
	UKIs []string
	// Cmdline and UsrHash come from the newest UKI.
	Cmdline string
	UsrHash []byte
	Version string
	// Usr and Verity are the partitions that UsrHash names.
	Usr, Verity gpt.Partition
}

// Inspect opens a disk image (or disk) and reads its table, ESP and newest
// UKI. r must stay open while the result is used.
func Inspect(r io.ReaderAt, sizeBytes int64) (*Disk, error) {
	t, err := gpt.Read(r, sizeBytes, sectorSize)
	if err != nil {
		return nil, fmt.Errorf("read partition table: %w", err)
	}
	d := &Disk{Table: t}
	esps := t.ByType(layout.TypeESP)
	if len(esps) != 1 {
		return nil, fmt.Errorf("want one ESP, found %d", len(esps))
	}
	e := esps[0]
	d.ESP, err = fat.Open(io.NewSectionReader(r, e.Offset(sectorSize), e.Size(sectorSize)))
	if err != nil {
		return nil, fmt.Errorf("open ESP: %w", err)
	}
	entries, err := fs.ReadDir(d.ESP, layout.UKIDir)
	if err != nil {
		return nil, fmt.Errorf("list %s on the ESP: %w", layout.UKIDir, err)
	}
	for _, en := range entries {
		if strings.HasSuffix(en.Name(), ".efi") {
			d.UKIs = append(d.UKIs, en.Name())
		}
	}
	sort.Strings(d.UKIs)
	if len(d.UKIs) == 0 {
		return nil, fmt.Errorf("no UKI in %s on the ESP", layout.UKIDir)
	}
	f, err := d.ESP.Open(path.Join(layout.UKIDir, d.UKIs[len(d.UKIs)-1]))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return nil, fmt.Errorf("ESP file is not seekable")
	}
	img, err := uki.Open(ra)
	if err != nil {
		return nil, fmt.Errorf("open UKI %s: %w", d.UKIs[len(d.UKIs)-1], err)
	}
	if d.Cmdline, err = img.Cmdline(); err != nil {
		return nil, err
	}
	boot, err := layout.ParseBoot(d.Cmdline)
	if err != nil {
		return nil, fmt.Errorf("UKI command line %q: %w", d.Cmdline, err)
	}
	d.UsrHash = boot.UsrHash
	if osr, err := img.OSRelease(); err == nil {
		d.Version = osr["IMAGE_VERSION"]
	}
	usrUUID, verityUUID := layout.UsrPartUUIDs(d.UsrHash)
	var ok1, ok2 bool
	d.Usr, ok1 = t.ByUUID(usrUUID)
	d.Verity, ok2 = t.ByUUID(verityUUID)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("no usr/verity partitions with the PARTUUIDs of usrhash %x", d.UsrHash)
	}
	return d, nil
}

// InspectFile is Inspect on a file.
func InspectFile(name string) (*Disk, *os.File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	d, err := Inspect(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("inspect %s: %w", name, err)
	}
	return d, f, nil
}
