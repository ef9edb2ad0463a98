package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/internal/kernel"
	"github.com/ingot-linux/ingot/layout"
)

// blockDev is a whole disk as the kernel shows it in /sys/class/block.
type blockDev struct {
	Name       string // "vda"
	SizeBytes  int64
	SectorSize int
}

// listDisks returns the whole disks (not partitions) under sysRoot/class/block.
func listDisks(sysRoot string) ([]blockDev, error) {
	dir := filepath.Join(sysRoot, "class/block")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var disks []blockDev
	for _, e := range entries {
		base := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(base, "partition")); err == nil {
			continue
		}
		if strings.HasPrefix(e.Name(), "dm-") || strings.HasPrefix(e.Name(), "loop") || strings.HasPrefix(e.Name(), "ram") {
			continue
		}
		size, ss, err := kernel.DiskSize(sysRoot, e.Name())
		if err != nil || size == 0 {
			continue
		}
		disks = append(disks, blockDev{Name: e.Name(), SizeBytes: size, SectorSize: ss})
	}
	sort.Slice(disks, func(i, j int) bool { return disks[i].Name < disks[j].Name })
	return disks, nil
}

func partitionName(sysRoot, disk string, index int) (string, error) {
	return kernel.PartitionName(sysRoot, disk, index)
}

func readTable(dev string, d blockDev) (*gpt.Table, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return gpt.Read(f, d.SizeBytes, d.SectorSize)
}

// findUsr waits for the boot disk, the one whose GPT has a usr partition
// with the PARTUUID the usrhash names and the matching verity partition.
// When the boot loader named the ESP it was loaded from, the boot disk is
// the one holding that ESP, so a second disk with the same (public)
// PARTUUIDs cannot supply /usr or the root; when the choice is ambiguous
// the boot stops.
func findUsr(ctx context.Context, s *State) error {
	usrUUID, verityUUID := layout.UsrPartUUIDs(s.Params.UsrHash)
	esp, espKnown, err := bootESP(s)
	if err != nil {
		return err
	}
	if s.modules != nil {
		// No driver loads once the disk is there.
		s.modules.watchDisk(func() bool {
			tables, _ := readTables(s)
			d, err := chooseBootDisk(tables, usrUUID, esp, espKnown)
			return d != nil || err != nil // there, or ambiguous: more drivers do not help
		})
	}
	deadline := time.Now().Add(s.Params.DeviceTimeout)
	var lastErr error
	for {
		found, err := scanForUsr(s, usrUUID, verityUUID, esp, espKnown)
		if found {
			// The other controllers' drivers are udev's to load.
			if s.modules != nil {
				s.modules.stopDrivers()
			}
			return nil
		}
		var amb *ambiguousError
		if errors.As(err, &amb) {
			return err
		}
		if err != nil {
			lastErr = err
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("no disk has a usr partition with PARTUUID %s after %v", usrUUID, s.Params.DeviceTimeout)
			if espKnown {
				msg = fmt.Sprintf("no disk has both the ESP the boot loader was loaded from (PARTUUID %s) and a usr partition with PARTUUID %s after %v", esp, usrUUID, s.Params.DeviceTimeout)
			}
			if lastErr != nil {
				msg += fmt.Sprintf(" (last problem: %v)", lastErr)
			}
			return errors.New(msg)
		}
		// The next device the kernel announces may be it.
		if err := s.waitDevices(ctx, time.Until(deadline)); err != nil {
			return err
		}
	}
}

// ambiguousError says more than one disk could be the boot disk.
type ambiguousError struct {
	What  string
	Disks []string
}

func (e *ambiguousError) Error() string {
	return fmt.Sprintf("disks %s all have %s, so the boot disk is ambiguous: refusing to boot from any of them "+
		"(a copy of this disk may be attached to take over the machine); detach the other disks and boot again",
		strings.Join(e.Disks, ", "), e.What)
}

// diskTable is a disk with its partition table.
type diskTable struct {
	blockDev
	t *gpt.Table
}

// readTables reads the partition table of every disk that has one.
func readTables(s *State) ([]diskTable, error) {
	disks, err := listDisks(s.path("/sys"))
	if err != nil {
		return nil, err
	}
	var out []diskTable
	var lastErr error
	for _, d := range disks {
		t, err := readTable(s.path("/dev/"+d.Name), d)
		if err != nil {
			if !errors.Is(err, gpt.ErrNoTable) {
				lastErr = fmt.Errorf("%s: %w", d.Name, err)
			}
			continue
		}
		out = append(out, diskTable{d, t})
	}
	return out, lastErr
}

// chooseBootDisk picks the boot disk among tables: the one with the ESP
// the boot loader names when it named one, else the one with the usr
// partition. Nil without an error means it has not appeared (yet).
func chooseBootDisk(tables []diskTable, usrUUID, esp gpt.GUID, espKnown bool) (*diskTable, error) {
	what := fmt.Sprintf("a usr partition with PARTUUID %s", usrUUID)
	has := func(t *gpt.Table) bool {
		_, ok := t.Find(func(p gpt.Partition) bool { return p.Type == layout.TypeUsr && p.UUID == usrUUID })
		return ok
	}
	if espKnown {
		what = fmt.Sprintf("the ESP the boot loader was loaded from (PARTUUID %s)", esp)
		has = func(t *gpt.Table) bool {
			_, ok := t.Find(func(p gpt.Partition) bool { return p.Type == layout.TypeESP && p.UUID == esp })
			return ok
		}
	}
	var match []*diskTable
	var names []string
	for i := range tables {
		if has(tables[i].t) {
			match = append(match, &tables[i])
			names = append(names, "/dev/"+tables[i].Name)
		}
	}
	if len(match) > 1 {
		return nil, &ambiguousError{What: what, Disks: names}
	}
	if len(match) == 0 {
		return nil, nil
	}
	return match[0], nil
}

func scanForUsr(s *State, usrUUID, verityUUID, esp gpt.GUID, espKnown bool) (bool, error) {
	tables, readErr := readTables(s)
	if readErr != nil && len(tables) == 0 {
		return false, readErr
	}
	d, err := chooseBootDisk(tables, usrUUID, esp, espKnown)
	if err != nil || d == nil {
		return false, errors.Join(err, readErr)
	}
	return useBootDisk(s, d, usrUUID, verityUUID)
}

// useBootDisk records the boot disk and the booted slot's partitions.
func useBootDisk(s *State, d *diskTable, usrUUID, verityUUID gpt.GUID) (bool, error) {
	slot, ok := layout.SlotOf(layout.Slots(d.t), s.Params.UsrHash)
	if !ok {
		return false, fmt.Errorf("the boot disk %s has no usr partition with PARTUUID %s", d.Name, usrUUID)
	}
	if slot.Verity == nil || slot.Verity.UUID != verityUUID {
		return false, fmt.Errorf("%s has the usr partition %s but no verity partition with PARTUUID %s in its slot", d.Name, usrUUID, verityUUID)
	}
	s.Disk, s.Slot = "/dev/"+d.Name, slot.Name
	var err error
	if s.UsrPart, err = partitionDev(s, d.Name, slot.Usr.Index); err != nil {
		return false, err
	}
	if s.VerityPart, err = partitionDev(s, d.Name, slot.Verity.Index); err != nil {
		return false, err
	}
	if slot.VeritySig != nil {
		if s.SigPart, err = partitionDev(s, d.Name, slot.VeritySig.Index); err != nil {
			return false, err
		}
	}
	return true, nil
}

// partitionDev is the device of partition index of disk.
func partitionDev(s *State, disk string, index int) (string, error) {
	name, err := partitionName(s.path("/sys"), disk, index)
	if err != nil {
		return "", err
	}
	return "/dev/" + name, nil
}

var errNoRoot = errors.New("no root partition")

// findRoot returns the root partition of the table, or errNoRoot.
func findRoot(t *gpt.Table) (gpt.Partition, error) {
	for _, p := range t.Partitions {
		if p.Type == layout.TypeRoot {
			return p, nil
		}
	}
	return gpt.Partition{}, errNoRoot
}
