package erofs

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/bits"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Extent sizes: a file is cut into extents of this many bytes (a whole
// number of 4 KiB logical clusters), each compressed into its own
// pcluster of whole blocks. Bigger extents compress better and lose less
// to the padding of their last block; a read decompresses a whole one.
const (
	lz4Extent  = 256 << 10
	zstdExtent = 1 << 20
)

// Defaults. pierrec/lz4's HC costs about 1.6× the CPU of liblz4's. On
// Debian's /usr (docs/benchmarks.md) a match search 4 candidates deep
// (level 0, below lz4hc:1's 512) takes 5.1 s of CPU for 214.0 MiB, 8 deep
// 5.5 s for 209.4 MiB, 16 deep 6.2 s for 206.3 MiB, lz4hc:1 17.4 s for
// 200.6 MiB; mkfs.erofs -zlz4hc 10.8 s for 236.3 MiB. 4 keeps ingot under
// half of mkfs.erofs's time even on one core. zstd 19 is klauspost's best
// encoder.
const (
	lz4DefaultDepth  = 4
	zstdDefaultLevel = 19
)

// encoder compresses one extent; it returns nil when the result would not
// save a block.
type encoder interface {
	encode(src []byte) []byte
}

// newEncoder returns the encoder for c, safe for concurrent use, and the
// extent size.
func newEncoder(c Compression, workers int) (encoder, int, error) {
	switch c.Algorithm {
	case LZ4HC:
		depth := lz4.CompressionLevel(lz4DefaultDepth)
		if c.Level != 0 {
			depth = lz4.CompressionLevel(1 << (8 + c.Level))
		}
		return lz4Encoder{level: depth, pool: &sync.Pool{}}, lz4Extent, nil
	case Zstd:
		lvl := c.Level
		if lvl == 0 {
			lvl = zstdDefaultLevel
		}
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(lvl)),
			zstd.WithEncoderConcurrency(workers), zstd.WithEncoderCRC(false),
			zstd.WithSingleSegment(true), zstd.WithWindowSize(zstdExtent))
		if err != nil {
			return nil, 0, fmt.Errorf("zstd encoder: %w", err)
		}
		return zstdEncoder{enc}, zstdExtent, nil
	}
	return nil, 0, nil
}

// lz4Encoder keeps a pool of compressors: each holds 384 KiB of tables.
type lz4Encoder struct {
	level lz4.CompressionLevel
	pool  *sync.Pool
}

func (e lz4Encoder) encode(src []byte) []byte {
	limit := blocksOf(len(src))*blkSize - blkSize
	if limit <= 0 {
		return nil
	}
	dst := make([]byte, limit)
	c, _ := e.pool.Get().(*lz4.CompressorHC)
	if c == nil {
		c = &lz4.CompressorHC{Level: e.level}
	}
	defer e.pool.Put(c)
	n, err := c.CompressBlock(src, dst)
	if err != nil || n == 0 {
		return nil
	}
	return dst[:n]
}

type zstdEncoder struct{ enc *zstd.Encoder }

func (e zstdEncoder) encode(src []byte) []byte {
	out := e.enc.EncodeAll(src, nil)
	if blocksOf(len(out)) >= blocksOf(len(src)) {
		return nil
	}
	return out
}

// windowLog is zstd's configured window: the extent size.
func windowLog() uint8 { return uint8(bits.Len(zstdExtent) - 1) }

// blocksOf is how many blocks n bytes take.
func blocksOf(n int) int { return (n + blkSize - 1) / blkSize }

// extent is one pcluster's worth of a compressed file: lclusters logical
// clusters, stored as data (the compressed bytes right-aligned in whole
// blocks) or, with data nil, plain, one block per logical cluster.
type extent struct {
	lclusters int
	data      []byte
}

// content is a regular file read and, where it pays, compressed.
type content struct {
	sum     [32]byte
	raw     []byte
	extents []extent // nil: store plain (or, with frag, all in the packed inode)
	// frag is the file's tail after its last whole extent (or the whole
	// of a file shorter than one): it goes into the packed inode.
	frag    []byte
	fragSum [32]byte
	// chunks, if set, hold the extents' bytes instead of raw (the
	// packed inode).
	chunks [][]byte
	err    error
}

// splitFile reads f and, if compress, cuts it into whole extents of
// extSize, to be compressed, and a fragment, the tail after them.
func splitFile(f *File, compress bool, extSize int) content {
	var c content
	raw, err := readAll(f)
	if err != nil {
		c.err = err
		return c
	}
	c.raw, c.sum = raw, sha256.Sum256(raw)
	if !compress || len(raw) == 0 {
		return c
	}
	head := len(raw) / extSize * extSize
	switch c.frag = raw[head:]; {
	case len(c.frag) == 0:
		c.frag = nil
	case head == 0:
		c.fragSum = c.sum
	default:
		c.fragSum = sha256.Sum256(c.frag)
	}
	if head > 0 {
		c.extents = make([]extent, head/extSize)
	}
	return c
}

// extentSrc is the raw bytes of c's extent i.
func (c *content) extentSrc(i, extSize int) []byte {
	if c.chunks != nil {
		return c.chunks[i]
	}
	return c.raw[i*extSize : (i+1)*extSize]
}

// settle stores c plain when its compressed extents save less than their
// index costs (plain, the tail sits inline or in a block of its own).
func (c *content) settle() {
	if c.extents == nil {
		return
	}
	cblocks, any, lcs := 0, false, 0
	for _, e := range c.extents {
		any = any || e.data != nil
		cblocks += e.blocks()
		lcs += e.lclusters
	}
	if !any || cblocks*blkSize+8*lcs >= lcs*blkSize {
		c.extents, c.frag = nil, nil
	}
}

// encodeExtent compresses src into one pcluster, or keeps it plain when
// that saves no block.
func encodeExtent(src []byte, enc encoder) extent {
	e := extent{lclusters: blocksOf(len(src))}
	if z := enc.encode(src); z != nil {
		e.data = make([]byte, blocksOf(len(z))*blkSize)
		copy(e.data[len(e.data)-len(z):], z)
	}
	return e
}

// blocks is how many blocks e takes on disk.
func (e extent) blocks() int {
	if e.data == nil {
		return e.lclusters
	}
	return len(e.data) / blkSize
}

// packer holds the packed inode's bytes in chunks of one extent each
// (appending copies no earlier byte) and compresses every chunk on its own
// goroutines as soon as it is full, while the files are still being read.
type packer struct {
	enc     encoder
	extSize int
	chunks  [][]byte
	exts    []*extent // exts[i] is chunks[i] compressed, once finish returns
	size    uint64
	jobs    chan packJob
	wg      sync.WaitGroup
}

type packJob struct {
	src []byte
	e   *extent
}

// newPacker starts workers goroutines compressing with enc; stop must be
// called.
func newPacker(enc encoder, extSize, workers int) *packer {
	p := &packer{enc: enc, extSize: extSize, jobs: make(chan packJob, 4*workers)}
	if enc == nil {
		close(p.jobs)
		return p
	}
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for j := range p.jobs {
				*j.e = encodeExtent(j.src, p.enc)
			}
		}()
	}
	return p
}

// append adds b at the end and hands each chunk it fills to the workers.
func (p *packer) append(b []byte) {
	p.size += uint64(len(b))
	for len(b) > 0 {
		if k := len(p.chunks); k == 0 || len(p.chunks[k-1]) == p.extSize {
			p.chunks = append(p.chunks, make([]byte, 0, p.extSize))
		}
		last := &p.chunks[len(p.chunks)-1]
		n := min(len(b), p.extSize-len(*last))
		*last = append(*last, b[:n]...)
		b = b[n:]
		if len(*last) == p.extSize {
			p.submit(*last)
		}
	}
}

func (p *packer) submit(src []byte) {
	e := &extent{}
	p.exts = append(p.exts, e)
	p.jobs <- packJob{src, e}
}

// finish compresses the last, partial chunk and waits for all of them.
func (p *packer) finish() {
	if k := len(p.chunks); k > 0 && len(p.chunks[k-1]) < p.extSize {
		p.submit(p.chunks[k-1])
	}
	p.stop()
}

// stop ends the workers (after the chunks handed to them).
func (p *packer) stop() {
	if p.jobs != nil && p.enc != nil {
		close(p.jobs)
	}
	p.jobs = nil
	p.wg.Wait()
}

// readAll reads f's content, which must be f.Size bytes.
func readAll(f *File) ([]byte, error) {
	if f.Size < 0 || f.Size > 1<<40 {
		return nil, fmt.Errorf("size %d out of range", f.Size)
	}
	if f.Size == 0 && f.Open == nil {
		return nil, nil
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, f.Size)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, fmt.Errorf("read content: %w (expected %d bytes)", err, f.Size)
	}
	if n, _ := rc.Read(make([]byte, 1)); n != 0 {
		return nil, fmt.Errorf("content is longer than its size %d", f.Size)
	}
	return buf, nil
}
