package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
	"unicode/utf16"
)

// volume is a FAT32 volume opened by Open. It is immutable after Open and
// implements fs.FS.
type volume struct {
	r           io.ReaderAt
	sectorSize  int64
	clusterSize int64
	fatOffset   int64 // byte offset of the active FAT
	dataOffset  int64 // byte offset of cluster 2
	maxCluster  uint32
	root        *entry
	// bits is 12, 16 or 32: the width of a FAT entry.
	bits int
	// rootOffset and rootSize place the fixed root directory of FAT12
	// and FAT16 (on FAT32 the root is a cluster chain).
	rootOffset, rootSize int64
}

// entry is a file or directory found while reading the directory tree.
type entry struct {
	name    string
	dir     bool
	cluster uint32
	size    int64
	mod     time.Time

	children []*entry // directories only, in on-disk order
	err      error    // why a directory's entries could not be read
}

// extent is a run of contiguous clusters of a chain.
type extent struct {
	first uint32 // first cluster
	count uint32 // number of clusters
}

// Open reads the FAT12, FAT16 or FAT32 volume at offset 0 of r (FAT32
// by its boot sector, FAT12 or FAT16 by the cluster count) and
// returns its files as an [io/fs.FS]; for a partition of a disk image pass
// an [io.SectionReader]. Long file names are used where
// present; short names are reported as stored, with the lower-case flags
// that Windows and mtools set. Lookups first try the exact name and then a
// case-insensitive match, as FAT names are case-insensitive. The directory
// tree is read by Open; file contents are read on demand, and open files
// implement [io.ReaderAt] and [io.Seeker]. The returned FS is safe for
// concurrent use as long as r is.
//
// Open is meant for untrusted input: a corrupt volume makes Open, or
// opening or reading the affected file or directory, return an error.
func Open(r io.ReaderAt) (fs.FS, error) {
	v, err := openVolume(r)
	if err != nil {
		return nil, fmt.Errorf("open FAT volume: %w", err)
	}
	return v, nil
}

// openVolume parses the boot sector and reads the directory tree.
func openVolume(r io.ReaderAt) (*volume, error) {
	b := make([]byte, sectorSize)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("read boot sector: %w", err)
	}
	if b[510] != 0x55 || b[511] != 0xAA {
		return nil, errors.New("no boot sector signature")
	}
	bpb, err := parseBPB(b)
	if err != nil {
		return nil, err
	}
	v, err := bpb.volume(r)
	if err != nil {
		return nil, err
	}
	if err := v.readTree(); err != nil {
		return nil, fmt.Errorf("read root directory: %w", err)
	}
	return v, nil
}

// bpb is the part of the BIOS parameter block the reader uses.
type bpb struct {
	bps, spc, rsv, nfats, total, fatSize, rootEntries uint64
	extFlags                                          uint16
	rootCluster                                       uint32
	fat32                                             bool // the FAT32 BPB: no fixed root directory
}

func parseBPB(b []byte) (bpb, error) {
	le := binary.LittleEndian
	p := bpb{
		bps: uint64(le.Uint16(b[11:])), spc: uint64(b[13]), rsv: uint64(le.Uint16(b[14:])),
		nfats: uint64(b[16]), rootEntries: uint64(le.Uint16(b[17:])), total: uint64(le.Uint16(b[19:])),
		fatSize: uint64(le.Uint16(b[22:])),
	}
	if p.total == 0 {
		p.total = uint64(le.Uint32(b[32:]))
	}
	if p.fatSize == 0 { // the FAT32 extension of the BPB
		p.fat32, p.fatSize = true, uint64(le.Uint32(b[36:]))
		p.extFlags, p.rootCluster = le.Uint16(b[40:]), le.Uint32(b[44:])
	}
	switch {
	case p.bps != 512 && p.bps != 1024 && p.bps != 2048 && p.bps != 4096:
		return p, fmt.Errorf("unsupported sector size %d", p.bps)
	case p.spc == 0 || p.spc&(p.spc-1) != 0:
		return p, fmt.Errorf("invalid sectors per cluster %d", p.spc)
	case p.rsv == 0 || p.nfats == 0:
		return p, errors.New("invalid reserved sector or FAT count")
	case p.fatSize == 0:
		return p, errors.New("no FAT size")
	case p.fat32 && p.rootEntries != 0:
		return p, errors.New("a FAT32 BPB with a FAT12/16 root directory size")
	case !p.fat32 && p.rootEntries == 0:
		return p, errors.New("a FAT12/16 volume without root directory entries")
	}
	return p, nil
}

// volume lays out the volume the BPB describes.
func (p bpb) volume(r io.ReaderAt) (*volume, error) {
	active := uint64(0)
	if p.extFlags&0x80 != 0 {
		active = uint64(p.extFlags & 0x0F)
		if active >= p.nfats {
			return nil, fmt.Errorf("active FAT %d does not exist", active)
		}
	}
	rootStart := p.rsv + p.nfats*p.fatSize
	rootSectors := (p.rootEntries*dirEntrySize + p.bps - 1) / p.bps
	dataStart := rootStart + rootSectors
	if dataStart >= p.total {
		return nil, errors.New("no data region")
	}
	clusters := (p.total - dataStart) / p.spc
	// A FAT32 BPB makes FAT32 whatever the cluster count (small FAT32
	// volumes are common); else the count tells FAT12 from FAT16, as
	// Linux's vfat does.
	bits := 32
	switch {
	case p.fat32:
	case clusters <= 4084:
		bits = 12
	default:
		bits = 16
	}
	clusters = min(clusters, p.fatSize*p.bps*8/uint64(bits)-2, 0x0FFFFFF5-2)
	if clusters == 0 {
		return nil, errors.New("no data clusters")
	}
	v := &volume{
		r:           r,
		sectorSize:  int64(p.bps),
		clusterSize: int64(p.spc * p.bps),
		fatOffset:   int64((p.rsv + active*p.fatSize) * p.bps),
		dataOffset:  int64(dataStart * p.bps),
		maxCluster:  uint32(clusters + 1),
		bits:        bits,
	}
	if !p.fat32 {
		v.rootOffset, v.rootSize = int64(rootStart*p.bps), int64(p.rootEntries*dirEntrySize)
	} else if p.rootCluster < 2 || p.rootCluster > v.maxCluster {
		return nil, fmt.Errorf("invalid root cluster %d", p.rootCluster)
	}
	v.root = &entry{dir: true, cluster: p.rootCluster, mod: fromDOSTime(0, 0)}
	return v, nil
}

// readTree reads all directories breadth-first. Each directory cluster is
// read once: an entry that points at a directory seen before (a loop or a
// cross-link) gets an error instead of children, which bounds the tree by
// the size of the volume.
func (v *volume) readTree() error {
	seen := map[uint32]bool{v.root.cluster: true}
	if err := v.readDir(v.root, seen); err != nil {
		return err
	}
	queue := append([]*entry(nil), v.root.children...)
	for len(queue) > 0 {
		e := queue[0]
		queue = queue[1:]
		if !e.dir {
			continue
		}
		if err := v.readDir(e, seen); err != nil {
			e.err = err
			continue
		}
		queue = append(queue, e.children...)
	}
	return nil
}

// readDir reads the entries of directory d and marks its cluster as seen.
func (v *volume) readDir(d *entry, seen map[uint32]bool) error {
	if d != v.root {
		if d.cluster < 2 || d.cluster > v.maxCluster {
			return fmt.Errorf("directory %q: invalid cluster %d", d.name, d.cluster)
		}
		if seen[d.cluster] {
			return fmt.Errorf("directory %q: cluster %d is used by another directory", d.name, d.cluster)
		}
		seen[d.cluster] = true
	}
	if d == v.root && v.bits != 32 {
		data := make([]byte, v.rootSize)
		if _, err := v.r.ReadAt(data, v.rootOffset); err != nil {
			return fmt.Errorf("read the root directory region: %w", err)
		}
		d.children, d.mod = parseRoot(data, d.mod)
		return nil
	}
	limit := max(1, maxDirEntries*dirEntrySize/v.clusterSize)
	exts, n, more, err := v.chain(d.cluster, limit)
	if err != nil {
		return fmt.Errorf("directory %q: %w", d.name, err)
	}
	if more {
		return fmt.Errorf("directory %q: larger than %d entries", d.name, maxDirEntries)
	}
	// Check that the clusters exist before allocating up to 2 MiB for them.
	var probe [1]byte
	for _, x := range exts {
		end := v.clusterOffset(x.first) + int64(x.count)*v.clusterSize
		if _, err := v.r.ReadAt(probe[:], end-1); err != nil {
			return fmt.Errorf("directory %q: read cluster %d: %w", d.name, x.first+x.count-1, err)
		}
	}
	data := make([]byte, n*v.clusterSize)
	off := int64(0)
	for _, x := range exts {
		buf := data[off : off+int64(x.count)*v.clusterSize]
		if _, err := v.r.ReadAt(buf, v.clusterOffset(x.first)); err != nil {
			return fmt.Errorf("directory %q: read cluster %d: %w", d.name, x.first, err)
		}
		off += int64(len(buf))
	}
	if d == v.root {
		d.children, d.mod = parseRoot(data, d.mod)
	} else {
		d.children, _ = parseDir(data)
	}
	return nil
}

// parseRoot decodes the root directory; its time is the volume label's,
// else mod.
func parseRoot(data []byte, mod time.Time) ([]*entry, time.Time) {
	children, label := parseDir(data)
	if !label.IsZero() {
		mod = label
	}
	return children, mod
}

// clusterOffset returns the byte offset of cluster c.
func (v *volume) clusterOffset(c uint32) int64 {
	return v.dataOffset + int64(c-2)*v.clusterSize
}

// chain follows the cluster chain from start for at most limit clusters. It
// returns the chain as extents, the number of clusters, and whether the
// chain continues past limit. Loops, free or bad clusters and clusters out
// of range are errors.
func (v *volume) chain(start uint32, limit int64) (exts []extent, n int64, more bool, err error) {
	if start < 2 || start > v.maxCluster {
		return nil, 0, false, fmt.Errorf("invalid first cluster %d", start)
	}
	seen := make(map[uint32]bool)
	fat := fatReader{v: v, block: make([]byte, v.sectorSize), num: -1}
	for c := start; ; n++ {
		if n == limit {
			return exts, n, true, nil
		}
		if seen[c] {
			return nil, 0, false, fmt.Errorf("cluster chain loops at cluster %d", c)
		}
		seen[c] = true
		if k := len(exts) - 1; k >= 0 && exts[k].first+exts[k].count == c {
			exts[k].count++
		} else {
			exts = append(exts, extent{first: c, count: 1})
		}
		next, end, err := fat.next(c)
		if err != nil {
			return nil, 0, false, err
		}
		switch {
		case end:
			return exts, n + 1, false, nil
		case next < 2 || next > v.maxCluster:
			return nil, 0, false, fmt.Errorf("cluster %d links to invalid cluster %#x", c, next)
		}
		c = next
	}
}

// fatReader reads FAT entries through a one-sector cache.
type fatReader struct {
	v     *volume
	block []byte
	num   int64 // the cached sector of the FAT, -1 for none
}

// byteAt is the FAT's byte at off.
func (f *fatReader) byteAt(off int64) (byte, error) {
	if n := off / f.v.sectorSize; n != f.num {
		if _, err := f.v.r.ReadAt(f.block, f.v.fatOffset+n*f.v.sectorSize); err != nil {
			return 0, fmt.Errorf("read FAT: %w", err)
		}
		f.num = n
	}
	return f.block[off%f.v.sectorSize], nil
}

// next is the FAT entry of cluster c, and whether it ends the chain.
// A FAT12 entry may straddle two sectors, hence byte by byte.
func (f *fatReader) next(c uint32) (uint32, bool, error) {
	off := int64(c) * int64(f.v.bits) / 8 // FAT12: c*1.5, rounded down
	var raw uint32
	for i := range int64(f.v.bits+7) / 8 {
		b, err := f.byteAt(off + i)
		if err != nil {
			return 0, false, err
		}
		raw |= uint32(b) << (8 * i)
	}
	switch f.v.bits {
	case 12:
		if c&1 == 1 {
			raw >>= 4
		}
		raw &= 0xFFF
		return raw, raw >= 0xFF8, nil
	case 16:
		raw &= 0xFFFF
		return raw, raw >= 0xFFF8, nil
	}
	raw &= fatMask
	return raw, raw >= 0x0FFFFFF8, nil
}

// parseDir decodes the entries of a directory and returns them with the
// time of the volume label entry, if any. Deleted entries, the volume label,
// "." and "..", and entries whose name is unusable or repeated are skipped.
func parseDir(data []byte) (entries []*entry, labelTime time.Time) {
	var (
		names = map[string]bool{}
		lfn   []uint16 // long name collected so far, in order
		seq   int      // sequence number expected next, 0 if none
		sum   byte
	)
	for off := 0; off+dirEntrySize <= len(data); off += dirEntrySize {
		b := data[off : off+dirEntrySize]
		if b[0] == 0x00 {
			break
		}
		if b[0] == 0xE5 {
			seq = 0
			continue
		}
		if b[11]&0x3F == attrLongName {
			n := int(b[0] & 0x1F)
			switch {
			case b[0]&lfnLast != 0 && n >= 1 && n <= 20:
				lfn = make([]uint16, n*lfnUnitsPerEnt)
				seq, sum = n, b[13]
			case seq > 1 && n == seq-1 && b[13] == sum:
				seq = n
			default:
				seq = 0
				continue
			}
			for j := range lfnUnitsPerEnt {
				lfn[(n-1)*lfnUnitsPerEnt+j] = binary.LittleEndian.Uint16(b[lfnUnitOffset(j):])
			}
			continue
		}
		long := ""
		if seq == 1 && lfnChecksum([11]byte(b[:11])) == sum {
			long = decodeLFN(lfn)
		}
		seq = 0
		le := binary.LittleEndian
		if b[11]&attrVolumeID != 0 {
			if labelTime.IsZero() {
				labelTime = fromDOSTime(le.Uint16(b[24:]), le.Uint16(b[22:]))
			}
			continue
		}
		if b[0] == '.' && (string(b[:11]) == ".          " || string(b[:11]) == "..         ") {
			continue
		}
		name := long
		if !validReadName(name) {
			name = decodeShort(b)
		}
		if !validReadName(name) || names[name] {
			continue
		}
		names[name] = true
		e := &entry{
			name:    name,
			dir:     b[11]&attrDirectory != 0,
			cluster: uint32(le.Uint16(b[20:]))<<16 | uint32(le.Uint16(b[26:])),
			mod:     fromDOSTime(le.Uint16(b[24:]), le.Uint16(b[22:])),
		}
		if !e.dir {
			e.size = int64(le.Uint32(b[28:]))
		}
		entries = append(entries, e)
	}
	return entries, labelTime
}

// decodeLFN converts collected long name units to a string, stopping at
// the first NUL.
func decodeLFN(units []uint16) string {
	for i, u := range units {
		if u == 0 {
			units = units[:i]
			break
		}
	}
	return string(utf16.Decode(units))
}

// decodeShort converts a short name entry to a string, applying the
// lower-case flags of the reserved byte. Bytes above 0x7F are decoded as
// Latin-1 since the OEM code page is unknown.
func decodeShort(b []byte) string {
	name := make([]byte, 11)
	copy(name, b[:11])
	if name[0] == 0x05 {
		name[0] = 0xE5
	}
	lower := func(s []byte) {
		for i, c := range s {
			if 'A' <= c && c <= 'Z' {
				s[i] = c + 'a' - 'A'
			}
		}
	}
	if b[12]&0x08 != 0 {
		lower(name[:8])
	}
	if b[12]&0x10 != 0 {
		lower(name[8:])
	}
	latin1 := func(s []byte) string {
		r := make([]rune, 0, len(s))
		for _, c := range s {
			r = append(r, rune(c))
		}
		return string(r)
	}
	base := strings.TrimRight(latin1(name[:8]), " ")
	if ext := strings.TrimRight(latin1(name[8:]), " "); ext != "" {
		return base + "." + ext
	}
	return base
}

// validReadName reports whether a name read from disk can be used as an
// fs.FS path element.
func validReadName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}
