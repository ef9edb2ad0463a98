package erofs

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// dirent is one directory entry: a name and the node it names.
type dirent struct {
	name string
	n    *node
}

const direntSize = 12

// dirBlocks sorts n's entries, "." and ".." among them, and splits them
// into directory blocks.
func dirBlocks(n *node) [][]dirent {
	ents := []dirent{{".", n}, {"..", n.parent}}
	for _, c := range n.children {
		ents = append(ents, dirent{c.name, c})
	}
	slices.SortFunc(ents, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	var blocks [][]dirent
	var cur []dirent
	used := 0
	for _, e := range ents {
		if used+direntSize+len(e.name) > blkSize {
			blocks, cur, used = append(blocks, cur), nil, 0
		}
		cur = append(cur, e)
		used += direntSize + len(e.name)
	}
	return append(blocks, cur)
}

// blockUsed is how many bytes a directory block's entries take.
func blockUsed(b []dirent) int {
	used := 0
	for _, e := range b {
		used += direntSize + len(e.name)
	}
	return used
}

// dirSize is a directory's i_size: full blocks plus the last one's bytes.
func dirSize(blocks [][]dirent) int {
	return (len(blocks)-1)*blkSize + blockUsed(blocks[len(blocks)-1])
}

// encodeDirBlock is one directory block's bytes (len: its used bytes).
func encodeDirBlock(b []dirent) []byte {
	out := make([]byte, direntSize*len(b), blockUsed(b))
	nameoff := len(out)
	for i, e := range b {
		d := out[i*direntSize:]
		binary.LittleEndian.PutUint64(d, e.n.target().nid)
		binary.LittleEndian.PutUint16(d[8:], uint16(nameoff))
		d[10] = fileType(e.n.target().f.Mode)
		nameoff += len(e.name)
	}
	for _, e := range b {
		out = append(out, e.name...)
	}
	return out
}

// prepareLate decides where directories and symlinks keep their data:
// inline when it fits, else in whole blocks after the metadata.
func prepareLate(order []*node) {
	for _, n := range order {
		switch {
		case n.dir != nil:
			last := n.dir[len(n.dir)-1]
			if used := blockUsed(last); used < blkSize && n.inlineFits(used) {
				n.layout = layoutFlatInline
				n.tail = []byte{} // filled once nids are known
			}
		case n.f.Mode&fs.ModeSymlink != 0:
			if n.inlineFits(len(n.f.LinkTarget)) {
				n.layout, n.tail = layoutFlatInline, []byte(n.f.LinkTarget)
			} else {
				n.late = []byte(n.f.LinkTarget)
			}
		}
	}
}

// inlineBytes is what follows n's inode and xattrs in the metadata.
func (n *node) inlineBytes() int {
	if n.dir != nil && n.layout == layoutFlatInline {
		return blockUsed(n.dir[len(n.dir)-1])
	}
	if n.layout == layoutCompressedFull {
		return (n.isize+len(n.xattr))%8 + len(n.tail) // 4 bytes to align the map header
	}
	return len(n.tail)
}

// layoutMeta gives every inode its nid; it returns the metadata's size.
func layoutMeta(order []*node) (int, error) {
	pos := 0
	for _, n := range order {
		pos = (pos + 31) &^ 31
		total := n.isize + len(n.xattr) + n.inlineBytes()
		if total <= blkSize && pos%blkSize+total > blkSize {
			pos = (pos + blkSize - 1) &^ (blkSize - 1)
		}
		n.nid = uint64(pos / 32)
		pos += total
	}
	if order[0].nid != 0 {
		return 0, fmt.Errorf("root nid %d", order[0].nid)
	}
	return pos, nil
}

// placeLate assigns blocks after the metadata to directories and symlinks
// that do not fit inline, and fills in directory contents.
func placeLate(order []*node, first uint32) [][]byte {
	var late [][]byte
	next := first
	for _, n := range order {
		if n.dir != nil {
			var data []byte
			for i, b := range n.dir {
				blk := encodeDirBlock(b)
				if i < len(n.dir)-1 || n.layout != layoutFlatInline {
					blk = append(blk, make([]byte, blkSize-len(blk))...)
					data = append(data, blk...)
				} else {
					n.tail = blk
				}
			}
			n.late = data
		}
		if len(n.late) == 0 {
			continue
		}
		if n.layout != layoutFlatInline {
			n.layout = layoutFlatPlain
		}
		n.blkaddr = next
		pad := blocksOf(len(n.late))*blkSize - len(n.late)
		late = append(late, append(n.late, make([]byte, pad)...))
		next += uint32(blocksOf(len(n.late)))
	}
	return late
}

// encodeInode writes n's inode, xattrs and inline bytes at b.
func (w *writer) encodeInode(b []byte, n *node) {
	f := n.f
	mode, _ := unixMode(f.Mode)
	iu := n.blkaddr
	if n.iu != 0 || n.layout == layoutCompressedFull || (!f.Mode.IsRegular() && !f.Mode.IsDir() && f.Mode&fs.ModeSymlink == 0) {
		iu = n.iu
	}
	le := binary.LittleEndian
	le.PutUint16(b[2:], xattrCount(len(n.xattr)))
	le.PutUint16(b[4:], mode)
	if n.isize == 32 {
		le.PutUint16(b[0:], uint16(n.layout<<1))
		le.PutUint16(b[6:], uint16(n.nlink))
		le.PutUint32(b[8:], uint32(n.size))
		le.PutUint32(b[16:], iu)
		le.PutUint32(b[20:], n.ino)
		le.PutUint16(b[24:], uint16(f.UID))
		le.PutUint16(b[26:], uint16(f.GID))
	} else {
		le.PutUint16(b[0:], uint16(1|n.layout<<1))
		le.PutUint64(b[8:], n.size)
		le.PutUint32(b[16:], iu)
		le.PutUint32(b[20:], n.ino)
		le.PutUint32(b[24:], f.UID)
		le.PutUint32(b[28:], f.GID)
		le.PutUint64(b[32:], uint64(f.Mtime))
		le.PutUint32(b[44:], n.nlink)
	}
	off := n.isize + copy(b[n.isize:], n.xattr)
	if n.layout == layoutCompressedFull {
		off += off % 8
	}
	copy(b[off:], n.tail)
}

// finish lays out and writes the metadata, the late blocks and the
// superblock; it returns the image size.
func (w *writer) finish(root *node, order []*node) (int64, error) {
	prepareLate(order)
	inodes := order
	if w.packedNode != nil {
		inodes = append(order[:len(order):len(order)], w.packedNode)
	}
	metaBytes, err := layoutMeta(inodes)
	if err != nil {
		return 0, err
	}
	metaStart := w.cursor
	metaBlocks := uint32(blocksOf(metaBytes))
	late := placeLate(order, metaStart+metaBlocks)
	meta := make([]byte, int(metaBlocks)*blkSize)
	for _, n := range inodes {
		w.encodeInode(meta[n.nid*32:], n)
	}
	if err := w.writeBlocks(meta); err != nil {
		return 0, err
	}
	for _, b := range late {
		if err := w.writeBlocks(b); err != nil {
			return 0, err
		}
	}
	sb := w.superblock(root, uint64(len(order)), metaStart)
	if _, err := w.out.WriteAt(sb, 0); err != nil {
		return 0, err
	}
	return int64(w.cursor) * blkSize, nil
}

// superblock is block 0: the superblock at 1024 and, for a compressed
// image, the algorithm's configuration after it.
func (w *writer) superblock(root *node, inodes uint64, metaStart uint32) []byte {
	b := make([]byte, blkSize)
	s := b[sbOffset:]
	le := binary.LittleEndian
	le.PutUint32(s[0:], magic)
	s[12] = blkBits
	le.PutUint16(s[14:], uint16(root.nid))
	le.PutUint64(s[16:], inodes)
	le.PutUint64(s[24:], uint64(w.o.BuildTime))
	le.PutUint32(s[36:], w.cursor)
	le.PutUint32(s[40:], metaStart)
	copy(s[48:64], w.o.UUID[:])
	if !w.compressed {
		return b
	}
	const zeroPadding, comprCfgs, fragments = 0x1, 0x2, 0x20
	incompat := uint32(zeroPadding | comprCfgs)
	if w.packedNode != nil {
		incompat |= fragments
		le.PutUint64(s[96:], w.packedNode.nid)
	}
	le.PutUint32(s[80:], incompat)
	alg := algorithmID(w.o.Compression.Algorithm)
	le.PutUint16(s[84:], 1<<alg)
	cfg := s[128:]
	if alg == 0 {
		le.PutUint16(cfg[0:], 14) // z_erofs_lz4_cfgs
		le.PutUint16(cfg[4:], uint16(w.extSize/blkSize))
	} else {
		le.PutUint16(cfg[0:], 6) // z_erofs_zstd_cfgs
		cfg[3] = windowLog() - 10
	}
	return b
}
