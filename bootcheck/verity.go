package bootcheck

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"

	"github.com/containerd/go-dmverity/pkg/verity"
)

// VerifyVerity checks a dm-verity pair as the kernel will use it: the
// superblock at the start of hash, the hash tree from the next hash block
// (ingot's layout: HashStartBytes = one hash block), every hash block
// equal to the one recomputed from data, and the root hash equal to
// rootHash. Only sha256 and format version 1 are supported.
func VerifyVerity(data, hash io.ReaderAt, rootHash []byte) error {
	sb, err := verity.ReadSuperblock(hash, 0)
	if err != nil {
		return fmt.Errorf("read verity superblock: %w", err)
	}
	algo := strings.TrimRight(string(sb.Algorithm[:]), "\x00")
	if algo != "sha256" || sb.HashType != 1 || sb.DataBlockSize == 0 || sb.HashBlockSize < 64 || sb.SaltSize > 256 {
		return fmt.Errorf("unsupported verity superblock: %s, type %d, blocks %d/%d", algo, sb.HashType, sb.DataBlockSize, sb.HashBlockSize)
	}
	t := tree{salt: sb.Salt[:sb.SaltSize], hashBlock: int64(sb.HashBlockSize), hash: hash}
	digests, err := t.dataDigests(data, int64(sb.DataBlockSize), sb.DataBlocks)
	if err != nil {
		return err
	}
	root, err := t.levels(digests)
	if err != nil {
		return err
	}
	if !bytes.Equal(root, rootHash) {
		return fmt.Errorf("verity root hash %x is not usrhash %x", root, rootHash)
	}
	return nil
}

type tree struct {
	salt      []byte
	hashBlock int64
	hash      io.ReaderAt
}

func (t *tree) digest(block []byte) []byte {
	h := sha256.New()
	h.Write(t.salt)
	h.Write(block)
	return h.Sum(nil)
}

func (t *tree) dataDigests(data io.ReaderAt, blockSize int64, blocks uint64) ([][]byte, error) {
	if blocks == 0 || blocks > 1<<32 {
		return nil, fmt.Errorf("verity superblock claims %d data blocks", blocks)
	}
	out := make([][]byte, 0, blocks)
	buf := make([]byte, blockSize)
	for i := range int64(blocks) {
		if _, err := data.ReadAt(buf, i*blockSize); err != nil {
			return nil, fmt.Errorf("read data block %d: %w", i, err)
		}
		out = append(out, t.digest(buf))
	}
	return out, nil
}

// levels packs digests into hash blocks level by level, compares each with
// the disk (the top level first on disk, as veritysetup lays it out), and
// returns the root hash.
func (t *tree) levels(digests [][]byte) ([]byte, error) {
	perBlock := int64(1)
	for perBlock*2 <= t.hashBlock/sha256.Size {
		perBlock *= 2
	}
	var levels [][][]byte // packed blocks per level, bottom up
	for len(digests) > 1 {
		var blocks [][]byte
		for i := int64(0); i < int64(len(digests)); i += perBlock {
			b := make([]byte, t.hashBlock)
			for j, d := range digests[i:min(i+perBlock, int64(len(digests)))] {
				copy(b[int64(j)*sha256.Size:], d)
			}
			blocks = append(blocks, b)
		}
		levels = append(levels, blocks)
		digests = make([][]byte, len(blocks))
		for i, b := range blocks {
			digests[i] = t.digest(b)
		}
	}
	pos := t.hashBlock // the superblock takes the first hash block
	disk := make([]byte, t.hashBlock)
	for l := len(levels) - 1; l >= 0; l-- {
		for i, b := range levels[l] {
			if _, err := t.hash.ReadAt(disk, pos); err != nil {
				return nil, fmt.Errorf("read hash block at %d: %w", pos, err)
			}
			if !bytes.Equal(disk, b) {
				return nil, fmt.Errorf("hash block %d of level %d (at byte %d) does not match the data", i, l, pos)
			}
			pos += t.hashBlock
		}
	}
	return digests[0], nil
}
