package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Options configure a volume written by [Writer].
type Options struct {
	// SizeBytes is the size of the volume in bytes: a multiple of 512 of at
	// least MinSize and at most MaxSize.
	SizeBytes int64
	// Label is the volume label, at most 11 characters that are valid in a
	// short name (letters, digits, space and !#$%&'()-@^_`{}~). Lower-case
	// letters are stored in upper case. Empty means "ESP".
	Label string
	// VolumeID is the volume serial number. Callers derive it from the
	// content to keep images reproducible.
	VolumeID uint32
	// Time is the creation, modification and access time of every entry,
	// converted to UTC and clamped to 1980-01-01 .. 2107-12-31. The zero
	// value means 1980-01-01 00:00:00.
	Time time.Time
	// HiddenSectors is the number of sectors that precede the volume on its
	// disk (the partition's first LBA for 512-byte sectors). It is only
	// recorded in the boot sector; 0 is fine for UEFI firmware.
	HiddenSectors uint32
}

// Writer collects files and directories and writes them as a FAT32 volume.
// Files are read only when [Writer.Write] runs. A Writer is not safe for
// concurrent use.
type Writer struct {
	opts  Options
	label [11]byte
	stamp stamp
	geo   geometry
	root  *node
}

// node is a file or directory in the tree collected by Writer.
type node struct {
	name     string
	dir      bool
	parent   *node
	children map[string]*node // by upper-cased name: FAT is case-insensitive
	sorted   []*node          // children sorted by name, filled by walk
	size     int64
	src      io.ReaderAt

	// Filled by layout.
	short    [11]byte
	lfn      bool
	cluster  uint32 // first cluster, 0 for empty files
	clusters uint32 // number of clusters
}

// NewWriter returns a Writer for a volume described by opts. It fails if
// the size cannot hold a FAT32 file system or the label is invalid.
func NewWriter(opts Options) (*Writer, error) {
	geo, err := newGeometry(opts.SizeBytes)
	if err != nil {
		return nil, fmt.Errorf("new FAT writer: %w", err)
	}
	if opts.Label == "" {
		opts.Label = "ESP"
	}
	label, err := parseLabel(opts.Label)
	if err != nil {
		return nil, fmt.Errorf("new FAT writer: %w", err)
	}
	date, tm, hs := dosTime(opts.Time)
	return &Writer{
		opts:  opts,
		label: label,
		stamp: stamp{date: date, time: tm, hundredths: hs},
		geo:   geo,
		root:  &node{dir: true, children: map[string]*node{}},
	}, nil
}

// parseLabel validates a volume label and pads it to 11 bytes.
func parseLabel(s string) ([11]byte, error) {
	var l [11]byte
	up := strings.ToUpper(s)
	if len(up) > len(l) {
		return l, fmt.Errorf("volume label %q is longer than %d characters", s, len(l))
	}
	if up[0] == ' ' {
		return l, fmt.Errorf("volume label %q starts with a space", s)
	}
	for i := 0; i < len(up); i++ {
		if up[i] != ' ' && !isShortChar(up[i]) {
			return l, fmt.Errorf("volume label %q contains invalid character %q", s, up[i])
		}
	}
	copy(l[:], "           ")
	copy(l[:], up)
	return l, nil
}

// Mkdir creates the directory at path, a slash-separated path relative to
// the volume root such as "EFI/BOOT". Missing parents are created; an
// existing directory is not an error.
func (w *Writer) Mkdir(path string) error {
	err := checkPath(path)
	if err == nil {
		_, err = w.mkdirAll(path)
	}
	if err != nil {
		return fmt.Errorf("mkdir %q: %w", path, err)
	}
	return nil
}

// AddFile adds a file of size bytes at path (for example
// "EFI/BOOT/BOOTX64.EFI"), creating missing parent directories. The content
// is read from r at offsets 0 to size-1 when [Writer.Write] runs, so r must
// stay readable until then; r may be nil if size is 0. Files are at most
// 4 GiB - 1 bytes.
func (w *Writer) AddFile(path string, r io.ReaderAt, size int64) error {
	if err := w.addFile(path, r, size); err != nil {
		return fmt.Errorf("add file %q: %w", path, err)
	}
	return nil
}

func (w *Writer) addFile(path string, r io.ReaderAt, size int64) error {
	if size < 0 || size > maxFileSize {
		return fmt.Errorf("size %d is out of range 0..%d", size, int64(maxFileSize))
	}
	if r == nil && size > 0 {
		return errors.New("nil reader")
	}
	if err := checkPath(path); err != nil {
		return err
	}
	dirPath, name := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dirPath, name = path[:i], path[i+1:]
	}
	parent, err := w.mkdirAll(dirPath)
	if err != nil {
		return err
	}
	key := strings.ToUpper(name)
	if old, ok := parent.children[key]; ok {
		return fmt.Errorf("%q already exists", old.name)
	}
	parent.children[key] = &node{name: name, parent: parent, size: size, src: r}
	return nil
}

// checkPath validates a slash-separated volume path of at least one element.
func checkPath(path string) error {
	if path == "" || path == "." {
		return errors.New("empty path")
	}
	if !utf8.ValidString(path) {
		return fmt.Errorf("path %q is not valid UTF-8", path)
	}
	if !fs.ValidPath(path) {
		return errors.New("invalid path: must be slash-separated and relative, without empty, '.' or '..' elements")
	}
	for elem := range strings.SplitSeq(path, "/") {
		if err := validateName(elem); err != nil {
			return err
		}
	}
	return nil
}

// mkdirAll returns the directory at path ("" is the root), creating it and
// its parents as needed. The path must have been checked with checkPath.
func (w *Writer) mkdirAll(path string) (*node, error) {
	d := w.root
	if path == "" {
		return d, nil
	}
	for elem := range strings.SplitSeq(path, "/") {
		key := strings.ToUpper(elem)
		c, ok := d.children[key]
		if !ok {
			c = &node{name: elem, dir: true, parent: d, children: map[string]*node{}}
			d.children[key] = c
		} else if !c.dir {
			return nil, fmt.Errorf("%q is a file", c.name)
		}
		d = c
	}
	return d, nil
}

// Capacity returns the number of bytes available for files and directories
// (the data clusters of the volume, including the root directory).
func (w *Writer) Capacity() int64 {
	return int64(w.geo.clusters) * w.geo.clusterSize()
}

// Used returns the number of bytes that the files and directories added so
// far occupy, in whole clusters. They fit if Used() <= Capacity().
func (w *Writer) Used() int64 {
	var n int64
	w.walk(w.root, func(d *node) { n += w.clustersOf(d) })
	return n * w.geo.clusterSize()
}

// walk sorts the children of every directory by name and calls f for d
// and every node below it, depth-first in name order.
func (w *Writer) walk(d *node, f func(*node)) {
	f(d)
	if !d.dir {
		return
	}
	d.sorted = d.sorted[:0]
	for _, c := range d.children {
		d.sorted = append(d.sorted, c)
	}
	slices.SortFunc(d.sorted, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	for _, c := range d.sorted {
		w.walk(c, f)
	}
}

// layout assigns short names and allocates clusters: directories first
// (the root at cluster 2), then files, each contiguous, in depth-first name
// order. It returns the nodes in allocation order and the number of
// clusters they use, or an error wrapping ErrNoSpace if they do not fit.
func (w *Writer) layout() (nodes []*node, used uint32, err error) {
	var files []*node
	w.walk(w.root, func(n *node) {
		if n.dir {
			nodes = append(nodes, n)
		} else {
			files = append(files, n)
		}
	})
	for _, d := range nodes {
		if err := assignShortNames(d); err != nil {
			return nil, 0, fmt.Errorf("directory %q: %w", w.path(d), err)
		}
		if n := dirEntryCount(d); n > maxDirEntries {
			return nil, 0, fmt.Errorf("directory %q: %d entries exceed the maximum of %d", w.path(d), n, maxDirEntries)
		}
	}
	nodes = append(nodes, files...)
	var need int64
	for _, n := range nodes {
		need += w.clustersOf(n)
	}
	if need > int64(w.geo.clusters) {
		cs := w.geo.clusterSize()
		return nil, 0, fmt.Errorf("%w: need %d bytes (%d clusters of %d bytes), have %d bytes",
			ErrNoSpace, need*cs, need, cs, w.Capacity())
	}
	next := uint32(rootCluster)
	for _, n := range nodes {
		n.clusters = uint32(w.clustersOf(n))
		n.cluster = 0
		if n.clusters > 0 {
			n.cluster = next
			next += n.clusters
		}
	}
	return nodes, uint32(need), nil
}

// clustersOf returns the number of clusters that n occupies.
func (w *Writer) clustersOf(n *node) int64 {
	if n.dir {
		return w.geo.clustersFor(int64(dirEntryCount(n)) * dirEntrySize)
	}
	return w.geo.clustersFor(n.size)
}

// path returns the volume path of n for error messages.
func (w *Writer) path(n *node) string {
	if n.parent == nil {
		return "/"
	}
	if n.parent.parent == nil {
		return n.name
	}
	return w.path(n.parent) + "/" + n.name
}

// Write writes the volume to dst at offsets 0 to SizeBytes-1. It checks that
// everything fits before writing anything; an error wrapping [ErrNoSpace]
// names the needed and available bytes. Only the reserved sectors, the FATs,
// the directories, the file data (padded to whole clusters) and the last
// sector of the volume are written, so unused clusters of a sparse file stay
// holes. Write may be called more than once and always writes the same
// bytes for the same content.
func (w *Writer) Write(dst io.WriterAt) error {
	nodes, used, err := w.layout()
	if err != nil {
		return fmt.Errorf("write FAT volume: %w", err)
	}
	// The last sector first, so that dst spans the whole volume even if
	// the data clusters at its end are unused; data may overwrite it.
	if _, err := dst.WriteAt(make([]byte, sectorSize), w.opts.SizeBytes-sectorSize); err != nil {
		return fmt.Errorf("write FAT volume: last sector: %w", err)
	}
	if _, err := dst.WriteAt(w.reservedSectors(used), 0); err != nil {
		return fmt.Errorf("write FAT volume: boot sectors: %w", err)
	}
	if err := w.writeFATs(dst, nodes, used); err != nil {
		return fmt.Errorf("write FAT volume: %w", err)
	}
	buf := make([]byte, max(1<<20, w.geo.clusterSize()))
	for _, n := range nodes {
		if n.dir {
			if _, err := dst.WriteAt(w.encodeDir(n), w.geo.clusterOffset(n.cluster)); err != nil {
				return fmt.Errorf("write FAT volume: directory %q: %w", w.path(n), err)
			}
		} else if err := w.writeFile(dst, n, buf); err != nil {
			return fmt.Errorf("write FAT volume: file %q: %w", w.path(n), err)
		}
	}
	return nil
}

// reservedSectors returns the reserved region: boot sector, FSInfo and
// their backups, given the number of used clusters.
func (w *Writer) reservedSectors(used uint32) []byte {
	b := make([]byte, reservedSectors*sectorSize)
	boot := b[:sectorSize]
	copy(boot[0:], []byte{0xEB, 0x58, 0x90}) // jmp short 0x5A; nop
	copy(boot[3:11], "INGOT   ")
	binary.LittleEndian.PutUint16(boot[11:], sectorSize)
	boot[13] = byte(w.geo.spc)
	binary.LittleEndian.PutUint16(boot[14:], reservedSectors)
	boot[16] = numFATs
	boot[21] = mediaDescriptor
	binary.LittleEndian.PutUint16(boot[24:], 63)  // sectors per track
	binary.LittleEndian.PutUint16(boot[26:], 255) // heads
	binary.LittleEndian.PutUint32(boot[28:], w.opts.HiddenSectors)
	binary.LittleEndian.PutUint32(boot[32:], w.geo.totalSectors)
	binary.LittleEndian.PutUint32(boot[36:], w.geo.fatSectors)
	binary.LittleEndian.PutUint32(boot[44:], rootCluster)
	binary.LittleEndian.PutUint16(boot[48:], fsInfoSector)
	binary.LittleEndian.PutUint16(boot[50:], backupBootSector)
	boot[64] = 0x80 // drive number
	boot[66] = 0x29 // extended boot signature
	binary.LittleEndian.PutUint32(boot[67:], w.opts.VolumeID)
	copy(boot[71:82], w.label[:])
	copy(boot[82:90], "FAT32   ")
	copy(boot[90:], []byte{0xCD, 0x18, 0xEB, 0xFE}) // int 0x18 (no bootable disk); jmp $
	boot[510], boot[511] = 0x55, 0xAA

	info := b[fsInfoSector*sectorSize : (fsInfoSector+1)*sectorSize]
	binary.LittleEndian.PutUint32(info[0:], 0x41615252)
	binary.LittleEndian.PutUint32(info[484:], 0x61417272)
	binary.LittleEndian.PutUint32(info[488:], w.geo.clusters-used)
	nextFree := uint32(0xFFFFFFFF)
	if used < w.geo.clusters {
		nextFree = rootCluster + used
	}
	binary.LittleEndian.PutUint32(info[492:], nextFree)
	binary.LittleEndian.PutUint32(info[508:], 0xAA550000)

	copy(b[backupBootSector*sectorSize:], b[:2*sectorSize]) // boot and FSInfo backups
	return b
}

// writeFATs writes both FATs: the chains of the nodes, which use the first
// used clusters, and zeros elsewhere. Only the used head of the FAT is
// built in memory.
func (w *Writer) writeFATs(dst io.WriterAt, nodes []*node, used uint32) error {
	end := rootCluster + used
	size := int64(w.geo.fatSectors) * sectorSize
	head := make([]byte, min(size, (int64(end)*4+sectorSize-1)/sectorSize*sectorSize))
	binary.LittleEndian.PutUint32(head[0:], 0x0FFFFF00|mediaDescriptor)
	binary.LittleEndian.PutUint32(head[4:], fatEOC) // clean, no I/O errors
	for _, n := range nodes {
		for i := uint32(0); i < n.clusters; i++ {
			next := uint32(fatEOC)
			if i+1 < n.clusters {
				next = n.cluster + i + 1
			}
			binary.LittleEndian.PutUint32(head[(n.cluster+i)*4:], next)
		}
	}
	zeros := make([]byte, min(size-int64(len(head)), 1<<20))
	for i := 0; i < numFATs; i++ {
		off := w.geo.fatOffset(i)
		if _, err := dst.WriteAt(head, off); err != nil {
			return fmt.Errorf("write FAT %d: %w", i, err)
		}
		for done := int64(len(head)); done < size; done += int64(len(zeros)) {
			if _, err := dst.WriteAt(zeros[:min(int64(len(zeros)), size-done)], off+done); err != nil {
				return fmt.Errorf("write FAT %d: %w", i, err)
			}
		}
	}
	return nil
}

// writeFile copies f's content to its clusters, zero-padding the last one.
func (w *Writer) writeFile(dst io.WriterAt, f *node, buf []byte) error {
	if f.size == 0 {
		return nil
	}
	src := io.NewSectionReader(f.src, 0, f.size)
	off := w.geo.clusterOffset(f.cluster)
	total := int64(f.clusters) * w.geo.clusterSize()
	for done := int64(0); done < total; {
		chunk := buf[:min(int64(len(buf)), total-done)]
		n, err := io.ReadFull(src, chunk)
		if done+int64(n) < f.size && err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read at %d of %d bytes: %w", done+int64(n), f.size, err)
		}
		clear(chunk[n:])
		if _, err := dst.WriteAt(chunk, off+done); err != nil {
			return fmt.Errorf("write at %d: %w", off+done, err)
		}
		done += int64(len(chunk))
	}
	return nil
}
