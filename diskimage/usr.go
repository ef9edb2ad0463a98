package diskimage

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/go-dmverity/pkg/verity"

	"github.com/ingot-linux/ingot/diskimage/rootfs"
	"github.com/ingot-linux/ingot/format/erofs"
	"github.com/ingot-linux/ingot/layout"
)

const blockSize = 4096

// usrImage is /usr (or an extension's tree) as EROFS with its dm-verity
// hash tree.
type usrImage struct {
	DataPath, HashPath string
	DataBytes          int64
	HashBytes          int64
	RootHash           []byte
}

// buildUsr writes /usr of t as EROFS into dir and computes its verity tree.
// Salt and verity UUID are derived from the EROFS content, so equal inputs
// give equal bytes.
func buildUsr(t *rootfs.Tree, dir string, epoch int64, comp erofs.Compression) (*usrImage, error) {
	return buildVerityFS(t, "usr", dir, "usr", epoch, comp)
}

// buildVerityFS writes subtree of t as EROFS into dir (as
// name.erofs and name.verity) and computes its verity tree, salt and
// verity UUID derived from the EROFS content. Without compression go-erofs
// writes the image, with it format/erofs.
func buildVerityFS(t *rootfs.Tree, subtree, dir, name string, epoch int64, comp erofs.Compression) (*usrImage, error) {
	u := &usrImage{DataPath: filepath.Join(dir, name+".erofs"), HashPath: filepath.Join(dir, name+".verity")}
	f, err := os.Create(u.DataPath)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", u.DataPath, err)
	}
	defer f.Close()
	if comp.Algorithm == erofs.None {
		err = t.WriteEROFS(f, subtree, epoch, dir)
	} else {
		_, err = t.WriteCompressedEROFS(f, subtree, epoch, comp)
	}
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	if pad := size % blockSize; pad != 0 {
		size += blockSize - pad
		if err := f.Truncate(size); err != nil {
			return nil, err
		}
	}
	u.DataBytes = size
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("hash EROFS image: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	content := h.Sum(nil)

	params := verity.DefaultParams()
	params.DataBlockSize, params.HashBlockSize = blockSize, blockSize
	params.DataBlocks = uint64(size / blockSize)
	salt := layout.VeritySalt(content)
	params.Salt = salt[:]
	params.SaltSize = uint16(len(salt))
	params.UUID = layout.VerityUUID(content)
	params.HashAreaOffset = blockSize // the superblock takes the first block
	root, err := verity.Create(&params, u.DataPath, u.HashPath)
	if err != nil {
		return nil, fmt.Errorf("compute dm-verity hash tree: %w", err)
	}
	u.RootHash = root
	fi, err := os.Stat(u.HashPath)
	if err != nil {
		return nil, err
	}
	u.HashBytes = fi.Size()
	return u, nil
}

// verityBytesFor is the size of the verity partition that can hold the hash
// tree of dataBytes of data: superblock block plus every tree level.
func verityBytesFor(dataBytes int64) int64 {
	const perBlock = blockSize / sha256.Size
	blocks := (dataBytes + blockSize - 1) / blockSize
	total := int64(1) // superblock
	for blocks > 1 {
		blocks = (blocks + perBlock - 1) / perBlock
		total += blocks
	}
	if total < 2 {
		total = 2
	}
	return total * blockSize
}
