package ext

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
)

// Superblock is what the dm-verity superblock (veritysetup's format, at
// the start of the hash partition) says about the tree. It is parsed
// here, with the standard library, rather than through go-dmverity, to
// keep the device's binary small.
type Superblock struct {
	Version       uint32
	Algorithm     string
	DataBlockSize uint32
	HashBlockSize uint32
	DataBlocks    uint64
	Salt          []byte
}

// readSuperblock reads and checks the superblock at the start of r.
func readSuperblock(r io.ReaderAt) (*Superblock, error) {
	var b [512]byte
	if _, err := r.ReadAt(b[:], 0); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if !bytes.Equal(b[:8], []byte("verity\x00\x00")) {
		return nil, fmt.Errorf("no verity superblock")
	}
	sb := &Superblock{Version: le.Uint32(b[8:]), Algorithm: string(bytes.TrimRight(b[32:64], "\x00")),
		DataBlockSize: le.Uint32(b[64:]), HashBlockSize: le.Uint32(b[68:]), DataBlocks: le.Uint64(b[72:])}
	saltSize := int(le.Uint16(b[80:]))
	okSize := func(n uint32) bool { return n >= 512 && n <= 1<<20 && n&(n-1) == 0 }
	switch {
	case sb.Version != 1 || le.Uint32(b[12:]) != 1:
		return nil, fmt.Errorf("verity superblock version %d: want 1", sb.Version)
	case sb.Algorithm != "sha256":
		return nil, fmt.Errorf("verity hash %q: want sha256", sb.Algorithm)
	case !okSize(sb.DataBlockSize) || !okSize(sb.HashBlockSize):
		return nil, fmt.Errorf("verity block sizes %d/%d", sb.DataBlockSize, sb.HashBlockSize)
	case saltSize > 256:
		return nil, fmt.Errorf("verity salt of %d bytes", saltSize)
	}
	sb.Salt = append([]byte{}, b[88:88+saltSize]...)
	return sb, nil
}

// VerityTable is the dm-verity target of the image when its root and
// root-verity partitions are the block devices dataDev and hashDev,
// pinned to rootHash, and the target's length in 512-byte sectors.
func (im *Image) VerityTable(dataDev, hashDev string, rootHash []byte) (params string, sectors uint64) {
	sb := im.Superblock
	salt := hex.EncodeToString(sb.Salt)
	if salt == "" {
		salt = "-"
	}
	// The superblock takes the first hash block: the tree starts at 1.
	params = fmt.Sprintf("%d %s %s %d %d %d 1 %s %x %s", sb.Version, dataDev, hashDev,
		sb.DataBlockSize, sb.HashBlockSize, sb.DataBlocks, sb.Algorithm, rootHash, salt)
	return params, sb.DataBlocks * uint64(sb.DataBlockSize) / 512
}
