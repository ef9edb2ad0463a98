package rootfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
)

// go-erofs's Writer gives every name its own inode: it has no call that
// adds a second name for an inode, and its planner is internal. So
// WriteEROFS adds each further name of a file as an empty placeholder, and
// relink then points the placeholder's directory entry (nid and file type)
// at the first name's inode, and takes the placeholders out of the
// superblock's inode count. The placeholder inodes stay, unreachable, 32
// bytes each. This is the least EROFS this package needs to know: the
// superblock, the inode header and directory blocks of the two layouts
// go-erofs writes for directories (flat plain and flat inline).

// On-disk EROFS offsets and values (linux/fs/erofs/erofs_fs.h).
const (
	sbOffset        = 1024
	sbMagic         = 0xe0f5e1e2
	sbFeatureCompat = 8  // u32
	sbBlkSizeBits   = 12 // u8
	sbRootNid       = 14 // u16
	sbInos          = 16 // u64
	sbMetaBlkAddr   = 40 // u32
	featureChecksum = 0x1
	layoutFlatPlain = 0
	layoutInline    = 2
	direntBytes     = 12
	modeTypeMask    = 0o170000
	modeDir         = 0o040000
)

// erofsFile reads and patches an EROFS image go-erofs wrote.
type erofsFile struct {
	f        ImageFile
	blkBits  uint8
	metaBase int64 // byte offset of nid 0
	rootNid  uint64
}

// dirent is a directory entry: where it is in the image and what it names.
type dirent struct {
	off   int64
	nid   uint64
	ftype uint8
}

// relink points the directory entry of every name in links at the inode
// of its file's first name.
func relink(out ImageFile, root string, links map[*Entry]*Entry) error {
	if len(links) == 0 {
		return nil
	}
	img, err := openErofsFile(out)
	if err != nil {
		return err
	}
	names := make([]*Entry, 0, len(links))
	for e := range links {
		names = append(names, e)
	}
	sort.Slice(names, func(i, j int) bool { return names[i].Path < names[j].Path })
	for _, e := range names {
		if err := img.link(erofsName(root, e.Path), erofsName(root, links[e].Path)); err != nil {
			return fmt.Errorf("/%s: %w", e.Path, err)
		}
	}
	return img.dropInodes(uint64(len(names)))
}

func openErofsFile(f ImageFile) (*erofsFile, error) {
	sb := make([]byte, 128)
	if _, err := f.ReadAt(sb, sbOffset); err != nil {
		return nil, fmt.Errorf("read superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint32(sb) != sbMagic {
		return nil, errors.New("no EROFS superblock")
	}
	if le.Uint32(sb[sbFeatureCompat:])&featureChecksum != 0 {
		return nil, errors.New("superblock has a checksum this patch would break")
	}
	bits := sb[sbBlkSizeBits]
	if bits < 9 || bits > 16 {
		return nil, fmt.Errorf("block size 2^%d", bits)
	}
	return &erofsFile{f: f, blkBits: bits, rootNid: uint64(le.Uint16(sb[sbRootNid:])),
		metaBase: int64(le.Uint32(sb[sbMetaBlkAddr:])) << bits}, nil
}

// link makes the directory entry of name point at the inode of target.
func (m *erofsFile) link(name, target string) error {
	to, err := m.lookup(target)
	if err != nil {
		return fmt.Errorf("find %s: %w", target, err)
	}
	from, err := m.lookup(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	var b [direntBytes]byte
	if _, err := m.f.ReadAt(b[:], from.off); err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(b[0:], to.nid)
	b[10] = to.ftype
	_, err = m.f.WriteAt(b[:], from.off)
	return err
}

// dropInodes takes n from the superblock's inode count.
func (m *erofsFile) dropInodes(n uint64) error {
	var b [8]byte
	if _, err := m.f.ReadAt(b[:], sbOffset+sbInos); err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(b[:], binary.LittleEndian.Uint64(b[:])-n)
	_, err := m.f.WriteAt(b[:], sbOffset+sbInos)
	return err
}

// lookup finds the directory entry of the absolute path p (not the root).
func (m *erofsFile) lookup(p string) (dirent, error) {
	nid := m.rootNid
	var d dirent
	for _, name := range strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/") {
		var err error
		if d, err = m.lookupIn(nid, name); err != nil {
			return d, err
		}
		nid = d.nid
	}
	return d, nil
}

// lookupIn finds name in the directory whose inode is nid.
func (m *erofsFile) lookupIn(nid uint64, name string) (dirent, error) {
	blocks, err := m.dirBlocks(nid)
	if err != nil {
		return dirent{}, err
	}
	for _, blk := range blocks {
		buf := make([]byte, blk.len)
		if _, err := m.f.ReadAt(buf, blk.off); err != nil {
			return dirent{}, err
		}
		if d, ok := findDirent(buf, name); ok {
			d.off += blk.off
			return d, nil
		}
	}
	return dirent{}, fmt.Errorf("no entry %q in directory nid %d", name, nid)
}

// extent is a span of the image.
type extent struct{ off, len int64 }

// dirBlocks returns where the directory blocks of inode nid are.
func (m *erofsFile) dirBlocks(nid uint64) ([]extent, error) {
	ino := m.metaBase + int64(nid)*32
	h := make([]byte, 64)
	if _, err := m.f.ReadAt(h[:32], ino); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	format, icount, mode := le.Uint16(h), le.Uint16(h[2:]), le.Uint16(h[4:])
	if mode&modeTypeMask != modeDir {
		return nil, fmt.Errorf("nid %d is not a directory", nid)
	}
	isize, size := int64(32), int64(le.Uint32(h[8:]))
	if format&1 != 0 {
		if _, err := m.f.ReadAt(h, ino); err != nil {
			return nil, err
		}
		isize, size = 64, int64(le.Uint64(h[8:]))
	}
	xsize := int64(0)
	if icount > 0 {
		xsize = 12 + int64(icount-1)*4
	}
	layout, blkAddr, bs := format>>1&7, int64(le.Uint32(h[16:])), int64(1)<<m.blkBits
	if layout != layoutFlatPlain && layout != layoutInline {
		return nil, fmt.Errorf("directory nid %d has layout %d", nid, layout)
	}
	var out []extent
	for off := int64(0); off < size; off += bs {
		e := extent{off: blkAddr<<m.blkBits + off, len: min(bs, size-off)}
		if layout == layoutInline && off+bs >= size {
			e.off = ino + isize + xsize
		}
		out = append(out, e)
	}
	return out, nil
}

// findDirent finds name in one directory block.
func findDirent(blk []byte, name string) (dirent, bool) {
	if len(blk) < direntBytes {
		return dirent{}, false
	}
	le := binary.LittleEndian
	n := int(le.Uint16(blk[8:])) / direntBytes
	for i := 0; i < n && (i+1)*direntBytes <= len(blk); i++ {
		at := i * direntBytes
		start, end := int(le.Uint16(blk[at+8:])), len(blk)
		if i+1 < n {
			end = int(le.Uint16(blk[at+direntBytes+8:]))
		}
		if start > end || end > len(blk) {
			return dirent{}, false
		}
		if strings.TrimRight(string(blk[start:end]), "\x00") == name {
			return dirent{off: int64(at), nid: le.Uint64(blk[at:]), ftype: blk[at+10]}, true
		}
	}
	return dirent{}, false
}
