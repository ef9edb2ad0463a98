package agent

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/ingot-linux/ingot/layout"
)

// Seed is a region of the boot disk that an update may take chunks from.
type Seed struct {
	// Name says what it is: "slot a usr", "ESP", ….
	Name string
	// Path is the disk's device, Offset and Size the region on it.
	Path         string
	Offset, Size int64
}

// UpdateSeeds returns what a delta update can reuse: both slots' /usr and
// verity partitions (the booted one is the running /usr) and the ESP,
// whose UKIs share their kernel and initrd with most new ones. The
// partitions are read raw; a chunk taken from them is checked against
// its id first, so a torn or tampered slot only costs a download.
func (a *Agent) UpdateSeeds() ([]Seed, error) {
	t, err := a.openTarget(false)
	if err != nil {
		return nil, err
	}
	defer t.d.f.Close()
	path, ss := a.path(t.d.path), t.d.sectorSize
	var seeds []Seed
	for _, s := range []layout.Slot{t.cur, t.target} {
		off, size := s.Usr.Offset(ss), s.Usr.Size(ss)
		seeds = append(seeds, Seed{Name: "slot " + s.Name + " usr", Path: path, Offset: off, Size: erofsBytes(t.d.f, off, size)})
		if s.Verity != nil {
			seeds = append(seeds, Seed{Name: "slot " + s.Name + " usr-verity", Path: path, Offset: s.Verity.Offset(ss), Size: s.Verity.Size(ss)})
		}
	}
	esps := t.d.table.ByType(layout.TypeESP)
	if len(esps) != 1 {
		return nil, fmt.Errorf("want one ESP on %s, found %d", t.d.path, len(esps))
	}
	return append(seeds, Seed{Name: "ESP", Path: path, Offset: esps[0].Offset(ss), Size: esps[0].Size(ss)}), nil
}

// erofsBytes returns how much of the partition of size bytes at off the
// EROFS image in it says it fills (its superblock's block count), or
// size when there is no sane superblock: the room to grow behind an
// image is not worth cutting into chunks.
func erofsBytes(r io.ReaderAt, off, size int64) int64 {
	var sb [40]byte
	if _, err := r.ReadAt(sb[:], off+1024); err != nil || binary.LittleEndian.Uint32(sb[0:]) != 0xe0f5e1e2 {
		return size
	}
	bits, blocks := sb[12], int64(binary.LittleEndian.Uint32(sb[36:]))
	if bits < 9 || bits > 16 || blocks == 0 || blocks<<bits > size {
		return size
	}
	return blocks << bits
}
