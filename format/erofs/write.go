package erofs

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sync/atomic"
)

// Write writes files as an EROFS image to out, from offset 0, and returns
// its size (a whole number of blocks).
//
// Image layout: the superblock block, then the regular files' data in
// image order, then the packed inode's (the fragments), then the metadata
// (inodes with their xattrs and inline tails or compressed indexes, the
// root first, the packed inode last), then the blocks of large directories
// and long symlinks.
func Write(out io.WriterAt, files []File, o Options) (int64, error) {
	root, order, err := buildTree(files)
	if err != nil {
		return 0, fmt.Errorf("write EROFS: %w", err)
	}
	w := &writer{out: out, o: o, cursor: 1, fragOff: map[[32]byte]uint64{}}
	if w.workers = o.Workers; w.workers <= 0 {
		w.workers = runtime.GOMAXPROCS(0)
	}
	if w.enc, w.extSize, err = newEncoder(o.Compression, w.workers); err != nil {
		return 0, fmt.Errorf("write EROFS: %w", err)
	}
	w.packed = newPacker(w.enc, w.extSize, w.workers)
	defer w.packed.stop()
	if err := w.prepareInodes(order); err != nil {
		return 0, fmt.Errorf("write EROFS: %w", err)
	}
	if err := w.writeData(order); err != nil {
		return 0, fmt.Errorf("write EROFS: %w", err)
	}
	if err := w.writePacked(uint32(len(order) + 1)); err != nil {
		return 0, fmt.Errorf("write EROFS: packed inode: %w", err)
	}
	size, err := w.finish(root, order)
	if err != nil {
		return 0, fmt.Errorf("write EROFS: %w", err)
	}
	return size, nil
}

type writer struct {
	out     io.WriterAt
	o       Options
	workers int
	enc     encoder
	extSize int
	cursor  uint32 // next free block
	// compressed says whether any file is: the superblock then
	// announces the algorithm.
	compressed bool
	// packed gathers the fragments (file tails, small files), each
	// distinct one once at fragOff[its sha256]; packedNode is the inode
	// that holds them, compressed once the files are placed.
	packed     *packer
	fragOff    map[[32]byte]uint64
	packedNode *node
}

// prepareInodes fills in everything but data placement and nids.
func (w *writer) prepareInodes(order []*node) error {
	for _, n := range order {
		f := n.f
		var err error
		if n.xattr, err = xattrArea(f.Xattrs); err != nil {
			return fmt.Errorf("/%s: %w (%w)", f.Path, err, ErrInvalid)
		}
		if _, err := unixMode(f.Mode); err != nil {
			return fmt.Errorf("/%s: %w (%w)", f.Path, err, ErrInvalid)
		}
		switch {
		case f.Mode.IsDir():
			n.dir = dirBlocks(n)
			n.size = uint64(dirSize(n.dir))
		case f.Mode&fs.ModeSymlink != 0:
			if len(f.LinkTarget) == 0 || len(f.LinkTarget) > blkSize-1 {
				return fmt.Errorf("/%s: symlink target of %d bytes (%w)", f.Path, len(f.LinkTarget), ErrInvalid)
			}
			n.size = uint64(len(f.LinkTarget))
		case f.Mode.IsRegular():
			n.size = uint64(f.Size)
		default:
			n.iu = f.Rdev
		}
		n.isize = 64
		if f.UID <= 0xffff && f.GID <= 0xffff && n.nlink <= 0xffff && n.size <= 0xffffffff && f.Mtime == w.o.BuildTime {
			n.isize = 32
		}
	}
	return nil
}

// inlineFits says whether n can carry tail bytes inline: inode, xattrs and
// tail within one block.
func (n *node) inlineFits(tail int) bool {
	return n.isize+len(n.xattr)+tail <= blkSize
}

// fileJob is one regular file in flight: read and cut by the reader, its
// extents compressed by the workers; ready is closed once all are.
type fileJob struct {
	n       *node
	c       content
	pending atomic.Int32
	ready   chan struct{}
}

// extentJob is extent i of a file.
type extentJob struct {
	fj *fileJob
	i  int
}

// writeData reads the regular files in image order, compresses their
// extents on w.workers goroutines (a big file's extents in parallel) and
// writes the data in image order.
func (w *writer) writeData(order []*node) error {
	var files []*fileJob
	for _, n := range order {
		if n.f.Mode.IsRegular() {
			files = append(files, &fileJob{n: n, ready: make(chan struct{})})
		}
	}
	done := make(chan struct{})
	defer close(done)
	// At most 4×workers files are held at once: file i is read only
	// after the writer has taken file i-4×workers.
	window := make(chan struct{}, 4*w.workers)
	jobs := make(chan extentJob, w.workers)
	go w.readFiles(files, window, jobs, done)
	for range w.workers {
		go func() {
			for j := range jobs {
				c := &j.fj.c
				c.extents[j.i] = encodeExtent(c.extentSrc(j.i, w.extSize), w.enc)
				if j.fj.pending.Add(-1) == 0 {
					c.settle()
					close(j.fj.ready)
				}
			}
		}()
	}
	dedupe := map[[32]byte]*node{}
	for _, fj := range files {
		<-fj.ready
		<-window
		n, c := fj.n, fj.c
		fj.c = content{}
		if c.err != nil {
			return fmt.Errorf("/%s: %w", n.f.Path, c.err)
		}
		if err := w.place(n, c, dedupe); err != nil {
			return fmt.Errorf("/%s: %w", n.f.Path, err)
		}
	}
	return nil
}

// readFiles reads files in order, each once the window has room, and hands
// their extents to the workers; it closes jobs when done.
func (w *writer) readFiles(files []*fileJob, window chan<- struct{}, jobs chan<- extentJob, done <-chan struct{}) {
	defer close(jobs)
	for _, fj := range files {
		select {
		case window <- struct{}{}:
		case <-done:
			return
		}
		fj.c = splitFile(fj.n.f, w.enc != nil, w.extSize)
		if len(fj.c.extents) == 0 {
			close(fj.ready)
			continue
		}
		fj.pending.Store(int32(len(fj.c.extents)))
		for i := range fj.c.extents {
			select {
			case jobs <- extentJob{fj, i}:
			case <-done:
				return
			}
		}
	}
}

// place writes c's blocks (unless an identical file has them) and sets
// n's layout.
func (w *writer) place(n *node, c content, dedupe map[[32]byte]*node) error {
	if d := dedupe[c.sum]; d != nil && d.size == uint64(len(c.raw)) {
		switch {
		case d.layout == layoutCompressedFull, d.layout == layoutFlatPlain:
			n.layout, n.blkaddr, n.iu, n.tail = d.layout, d.blkaddr, d.iu, d.tail
			return nil
		case n.inlineFits(len(d.tail)):
			n.layout, n.blkaddr, n.tail = d.layout, d.blkaddr, d.tail
			return nil
		}
	}
	var err error
	if c.extents != nil || c.frag != nil {
		err = w.placeCompressed(n, c)
	} else {
		err = w.placePlain(n, c.raw)
	}
	if err == nil {
		dedupe[c.sum] = n
	}
	return err
}

// placePlain writes raw's whole blocks; the tail goes inline when it fits.
func (w *writer) placePlain(n *node, raw []byte) error {
	full := len(raw) / blkSize * blkSize
	tail := raw[full:]
	n.layout, n.blkaddr = layoutFlatPlain, w.cursor
	if len(raw) == 0 {
		n.blkaddr = 0
		return nil
	}
	if len(tail) > 0 && n.inlineFits(len(tail)) {
		n.layout, n.tail = layoutFlatInline, tail
		raw = raw[:full]
	}
	return w.writeBlocks(raw)
}

// writeBlocks writes b at the cursor, zero-padded to whole blocks.
func (w *writer) writeBlocks(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	nb := blocksOf(len(b))
	if uint64(w.cursor)+uint64(nb) > 1<<32-1 {
		return fmt.Errorf("image over 2^32 blocks (%w)", ErrInvalid)
	}
	if pad := nb*blkSize - len(b); pad > 0 {
		b = append(b[:len(b):len(b)], make([]byte, pad)...)
	}
	if _, err := w.out.WriteAt(b, int64(w.cursor)*blkSize); err != nil {
		return err
	}
	w.cursor += uint32(nb)
	return nil
}

// Lcluster index types and flags (z_erofs_lcluster_index).
const (
	lcPlain   = 0
	lcHead1   = 1
	lcNonhead = 2
	d0CblkCnt = 1 << 11
	// adviseBigPcluster1 marks HEAD1 pclusters as possibly several blocks.
	adviseBigPcluster1 = 0x0002
	// adviseFragmentPcluster says the file's last extent is a fragment.
	adviseFragmentPcluster = 0x0020
	// fragmentInode, set in the 8-byte map header, says the whole file
	// is a fragment at the offset in the other bits.
	fragmentInode = 1 << 63
)

// placeCompressed writes c's pclusters and builds n's map header and full
// lcluster index, which go inline after the inode; c's fragment goes into
// the packed inode.
func (w *writer) placeCompressed(n *node, c content) error {
	w.compressed = true
	if c.extents == nil { // the whole file is a fragment
		h := make([]byte, 8)
		binary.LittleEndian.PutUint64(h, w.fragment(c.frag, c.fragSum)|fragmentInode)
		n.layout, n.tail, n.iu = layoutCompressedFull, h, 0
		return nil
	}
	idx := make([]byte, 16, 16+8*blocksOf(len(c.raw))) // map header, 8 reserved bytes, indexes
	advise := uint16(adviseBigPcluster1)
	idx[6] = algorithmID(w.o.Compression.Algorithm)
	idx[7] = 0 // logical cluster bits - 12
	var total uint32
	for i, e := range c.extents {
		var err error
		if idx, err = w.writeExtent(idx, e, c.extentSrc(i, w.extSize)); err != nil {
			return err
		}
		total += uint32(e.blocks())
	}
	if c.frag != nil {
		// The tail extent's head holds the offset's high half (full
		// indexes), the map header its low half.
		off := w.fragment(c.frag, c.fragSum)
		advise |= adviseFragmentPcluster
		binary.LittleEndian.PutUint32(idx[0:], uint32(off))
		idx = appendExtentIndex(idx, blocksOf(len(c.frag)), uint32(off>>32), 0)
	}
	binary.LittleEndian.PutUint16(idx[4:], advise)
	n.layout, n.tail, n.iu = layoutCompressedFull, idx, total
	return nil
}

// writeExtent writes e, whose bytes begin at raw, at the cursor and appends
// its lcluster indexes to idx.
func (w *writer) writeExtent(idx []byte, e extent, raw []byte) ([]byte, error) {
	if e.data != nil {
		idx = appendExtentIndex(idx, e.lclusters, w.cursor, uint16(len(e.data)/blkSize))
		return idx, w.writeBlocks(e.data)
	}
	for k := range e.lclusters {
		idx = appendIndex(idx, lcPlain, 0, w.cursor, 0)
		if err := w.writeBlocks(raw[k*blkSize : min((k+1)*blkSize, len(raw))]); err != nil {
			return nil, err
		}
	}
	return idx, nil
}

// appendExtentIndex appends the indexes of one compressed extent of
// lclusters logical clusters: its head at blkaddr, then non-heads, the
// first with the pcluster's block count.
func appendExtentIndex(idx []byte, lclusters int, blkaddr uint32, cblocks uint16) []byte {
	idx = appendIndex(idx, lcHead1, 0, blkaddr, 0)
	for k := 1; k < lclusters; k++ {
		d0 := uint16(k)
		if k == 1 {
			d0 = d0CblkCnt | cblocks
		}
		idx = appendIndex(idx, lcNonhead, d0, 0, uint16(lclusters-k))
	}
	return idx
}

// fragment returns b's offset in the packed inode, appending it unless an
// identical fragment is there already.
func (w *writer) fragment(b []byte, sum [32]byte) uint64 {
	if off, ok := w.fragOff[sum]; ok {
		return off
	}
	off := w.packed.size
	w.packed.append(b)
	w.fragOff[sum] = off
	return off
}

// writePacked waits for the packed inode's chunks to be compressed and
// writes them; ino is its inode number (after the tree's).
func (w *writer) writePacked(ino uint32) error {
	size := w.packed.size
	if size == 0 {
		return nil
	}
	f := &File{Path: "(packed inode)", Mode: 0o600, Mtime: w.o.BuildTime, Size: int64(size)}
	n := &node{f: f, name: f.Path, nlink: 1, ino: ino, size: size, isize: 32}
	if n.size > 0xffffffff {
		n.isize = 64
	}
	w.packedNode = n
	w.packed.finish()
	c := content{chunks: w.packed.chunks, extents: make([]extent, len(w.packed.exts))}
	for i, e := range w.packed.exts {
		c.extents[i] = *e
	}
	return w.placeCompressed(n, c)
}

// appendIndex appends one z_erofs_lcluster_index.
func appendIndex(b []byte, typ, d0 uint16, blkaddr uint32, d1 uint16) []byte {
	var e [8]byte
	binary.LittleEndian.PutUint16(e[0:], typ)
	if typ == lcNonhead {
		binary.LittleEndian.PutUint16(e[4:], d0)
		binary.LittleEndian.PutUint16(e[6:], d1)
	} else {
		binary.LittleEndian.PutUint32(e[4:], blkaddr)
	}
	return append(b, e[:]...)
}

// algorithmID is the on-disk Z_EROFS_COMPRESSION_* of a.
func algorithmID(a Algorithm) uint8 {
	if a == Zstd {
		return 3
	}
	return 0
}
