package gpt

import (
	"cmp"
	"fmt"
	"slices"
)

// Range is an inclusive range of sectors.
type Range struct {
	FirstLBA, LastLBA uint64
}

// Sectors returns the number of sectors in r.
func (r Range) Sectors() uint64 {
	if r.LastLBA < r.FirstLBA {
		return 0
	}
	return r.LastLBA - r.FirstLBA + 1
}

// Find returns the first partition, in slice order, for which match returns
// true.
func (t *Table) Find(match func(Partition) bool) (Partition, bool) {
	for _, p := range t.Partitions {
		if match(p) {
			return p, true
		}
	}
	return Partition{}, false
}

// ByUUID returns the partition whose unique GUID (PARTUUID) is u.
func (t *Table) ByUUID(u GUID) (Partition, bool) {
	return t.Find(func(p Partition) bool { return p.UUID == u })
}

// ByType returns all partitions of type typ, in slice order.
func (t *Table) ByType(typ GUID) []Partition {
	var ps []Partition
	for _, p := range t.Partitions {
		if p.Type == typ {
			ps = append(ps, p)
		}
	}
	return ps
}

// alignSectors converts an alignment in bytes (0 meaning DefaultAlign) to
// sectors.
func (t *Table) alignSectors(alignBytes int64) (uint64, error) {
	if alignBytes == 0 {
		alignBytes = DefaultAlign
	}
	ss := int64(t.SectorSize)
	if err := checkSectorSize(t.SectorSize); err != nil {
		return 0, err
	}
	if alignBytes < 0 || alignBytes%ss != 0 {
		return 0, fmt.Errorf("gpt: %w: alignment %d is not a positive multiple of the sector size %d", ErrInvalid, alignBytes, ss)
	}
	return uint64(alignBytes / ss), nil
}

// alignUp rounds lba up to a multiple of align; ok is false on overflow.
func alignUp(lba, align uint64) (uint64, bool) {
	r := lba % align
	if r == 0 {
		return lba, true
	}
	up := lba + (align - r)
	return up, up > lba
}

// Add validates p against t and inserts it, keeping Partitions sorted by
// Index. An Index of 0 picks the lowest unused index. p.UUID may still be
// zero (to be set before Write, e.g. from a dm-verity root hash) but must
// not repeat another partition's. It returns p as added.
func (t *Table) Add(p Partition) (Partition, error) {
	n := t.writeNumEntries()
	if p.Index == 0 {
		used := make(map[int]bool, len(t.Partitions))
		for _, q := range t.Partitions {
			used[q.Index] = true
		}
		for i := 1; i <= n; i++ {
			if !used[i] {
				p.Index = i
				break
			}
		}
		if p.Index == 0 {
			return p, fmt.Errorf("gpt: %w: all %d partition entries are used", ErrNoSpace, n)
		}
	}
	all := append(slices.Clip(t.Partitions), p)
	if err := validatePartitions(all, t.FirstUsableLBA, t.LastUsableLBA, n); err != nil {
		return p, fmt.Errorf("gpt: add %s: %w: %w", p.label(), ErrInvalid, err)
	}
	if err := encodeName(make([]byte, 2*MaxNameLen), p.Name); err != nil {
		return p, fmt.Errorf("gpt: add %s: %w: %w", p.label(), ErrInvalid, err)
	}
	if !p.UUID.IsZero() {
		if q, ok := t.ByUUID(p.UUID); ok {
			return p, fmt.Errorf("gpt: add %s: %w: unique partition GUID %s is also used by %s", p.label(), ErrInvalid, p.UUID, q.label())
		}
	}
	slices.SortStableFunc(all, func(a, b Partition) int { return cmp.Compare(a.Index, b.Index) })
	t.Partitions = all
	return p, nil
}

// Append places p after the partition that ends last, at the next multiple
// of alignBytes (0 means DefaultAlign, 1 MiB), with a size of sizeBytes
// rounded up to whole sectors, and adds it with Add. A sizeBytes of 0 makes
// p extend to LastUsableLBA. p.FirstLBA and p.LastLBA are ignored.
//
// When the disk is too small the error wraps ErrNoSpace and says how big
// the disk is and how big it would need to be.
func (t *Table) Append(p Partition, sizeBytes int64, alignBytes int64) (Partition, error) {
	align, err := t.alignSectors(alignBytes)
	if err != nil {
		return p, err
	}
	if sizeBytes < 0 {
		return p, fmt.Errorf("gpt: append %s: %w: negative size %d", p.label(), ErrInvalid, sizeBytes)
	}
	if t.LastUsableLBA == 0 {
		return p, fmt.Errorf("gpt: append %s: %w: table has no usable range; create it with New or Read", p.label(), ErrInvalid)
	}
	start := t.FirstUsableLBA
	for _, q := range t.Partitions {
		if q.LastLBA >= start {
			start = q.LastLBA + 1
		}
	}
	start, ok := alignUp(start, align)
	if !ok {
		return p, fmt.Errorf("gpt: append %s: %w: start LBA overflows", p.label(), ErrNoSpace)
	}
	ss := uint64(t.SectorSize)
	var end uint64
	if sizeBytes == 0 {
		if start > t.LastUsableLBA {
			return p, fmt.Errorf("gpt: append %s: %w: disk is %d bytes, partitions need more than %d",
				p.label(), ErrNoSpace, t.diskBytesFor(t.LastUsableLBA), t.diskBytesFor(start))
		}
		end = t.LastUsableLBA
	} else {
		sectors := (uint64(sizeBytes) + ss - 1) / ss
		end = start + sectors - 1
		if end < start || end > t.LastUsableLBA {
			return p, fmt.Errorf("gpt: append %s: %w: disk is %d bytes, partitions need %d",
				p.label(), ErrNoSpace, t.diskBytesFor(t.LastUsableLBA), t.diskBytesFor(end))
		}
	}
	p.FirstLBA, p.LastLBA = start, end
	return t.Add(p)
}

// FreeRanges returns the unused ranges of sectors between FirstUsableLBA and
// LastUsableLBA, in ascending order.
func (t *Table) FreeRanges() []Range {
	if t.LastUsableLBA == 0 || t.FirstUsableLBA > t.LastUsableLBA {
		return nil
	}
	parts := slices.Clone(t.Partitions)
	slices.SortFunc(parts, func(a, b Partition) int { return cmp.Compare(a.FirstLBA, b.FirstLBA) })
	var free []Range
	next := t.FirstUsableLBA // first sector not known to be used; <= LastUsableLBA
	for _, p := range parts {
		if p.FirstLBA > next {
			free = append(free, Range{next, min(p.FirstLBA-1, t.LastUsableLBA)})
		}
		if p.LastLBA >= t.LastUsableLBA {
			return free
		}
		next = max(next, p.LastLBA+1)
	}
	return append(free, Range{next, t.LastUsableLBA})
}

// LargestFree returns the largest free range whose start is aligned to
// alignBytes (0 means DefaultAlign, 1 MiB), with the start rounded up; the
// end is not rounded. ok is false when no aligned free sector exists or the
// alignment is invalid. On ties the lowest range wins.
func (t *Table) LargestFree(alignBytes int64) (r Range, ok bool) {
	align, err := t.alignSectors(alignBytes)
	if err != nil {
		return Range{}, false
	}
	for _, f := range t.FreeRanges() {
		start, fits := alignUp(f.FirstLBA, align)
		if !fits || start > f.LastLBA {
			continue
		}
		c := Range{start, f.LastLBA}
		if !ok || c.Sectors() > r.Sectors() {
			r, ok = c, true
		}
	}
	return r, ok
}

// Grow extends LastUsableLBA to the end of a disk that is now
// newDiskSizeBytes bytes, so that Write moves the backup GPT to the new last
// sector and FreeRanges reports the new space. It reports whether the
// usable range grew. It refuses to shrink the usable range.
func (t *Table) Grow(newDiskSizeBytes int64) (bool, error) {
	if err := checkSectorSize(t.SectorSize); err != nil {
		return false, err
	}
	first, last, err := t.usableRange(newDiskSizeBytes)
	if err != nil {
		return false, fmt.Errorf("gpt: grow: %w", err)
	}
	if last < t.LastUsableLBA {
		return false, fmt.Errorf("gpt: grow: %w: disk is %d bytes, table needs %d (last usable LBA %d)",
			ErrNoSpace, newDiskSizeBytes, t.diskBytesFor(t.LastUsableLBA), t.LastUsableLBA)
	}
	if t.FirstUsableLBA == 0 {
		t.FirstUsableLBA = first
	}
	grew := last > t.LastUsableLBA
	t.LastUsableLBA = last
	return grew, nil
}
