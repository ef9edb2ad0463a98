package ext

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

const (
	sectorSize = 512
	alignBytes = 4096
	// edgeBytes is room before the first and after the last partition
	// for the GPT's headers and entries.
	edgeBytes = 64 << 10
	// MaxSigBytes bounds a root-verity-sig partition.
	MaxSigBytes = 1 << 20
	// rootHashBytes is a SHA-256 root hash: the root and root-verity
	// PARTUUIDs hold it, so an unsigned image still names its own.
	rootHashBytes = 32
)

// Parts are what Write puts in an extension image.
type Parts struct {
	// Name labels the partitions.
	Name string
	// RootHash is the verity root hash of Data (SHA-256).
	RootHash []byte
	// Data is the EROFS image, DataBytes long (a multiple of 4096).
	Data      io.Reader
	DataBytes int64
	// Hash is the verity superblock and hash tree, HashBytes long.
	Hash      io.Reader
	HashBytes int64
	// Sig is trust.SignRootHash's output for RootHash; nil for an
	// unsigned image (no signature partition).
	Sig []byte
}

// Write writes the extension image p describes to w and returns its size.
// Every GUID is derived from the root hash, so equal parts give equal
// bytes.
func Write(w io.WriterAt, p Parts) (int64, error) {
	if len(p.RootHash) != rootHashBytes {
		return 0, fmt.Errorf("write extension %s: root hash of %d bytes, want %d", p.Name, len(p.RootHash), rootHashBytes)
	}
	if len(p.Sig) > MaxSigBytes {
		return 0, fmt.Errorf("write extension %s: signature of %d bytes exceeds %d", p.Name, len(p.Sig), MaxSigBytes)
	}
	sigBytes := roundUp(int64(len(p.Sig)), alignBytes)
	diskBytes := 2*edgeBytes + roundUp(p.DataBytes, alignBytes) + roundUp(p.HashBytes, alignBytes) + sigBytes
	t, err := gpt.New(diskBytes, sectorSize, layout.DeriveGUID(p.RootHash, layout.PurposeExtDisk))
	if err != nil {
		return 0, fmt.Errorf("write extension %s: %w", p.Name, err)
	}
	dataUUID, hashUUID := layout.UsrPartUUIDs(p.RootHash)
	parts := []struct {
		p    gpt.Partition
		size int64
		r    io.Reader
	}{
		{gpt.Partition{Index: 1, Type: gpt.TypeRootAMD64, UUID: dataUUID, Name: p.Name, Attributes: gpt.AttrReadOnly}, p.DataBytes, p.Data},
		{gpt.Partition{Index: 2, Type: gpt.TypeRootVerityAMD64, UUID: hashUUID, Name: p.Name + "-verity", Attributes: gpt.AttrReadOnly}, p.HashBytes, p.Hash},
	}
	if p.Sig != nil {
		parts = append(parts, struct {
			p    gpt.Partition
			size int64
			r    io.Reader
		}{gpt.Partition{Index: 3, Type: gpt.TypeRootVeritySigAMD64, UUID: layout.DeriveGUID(p.RootHash, layout.PurposeExtSig),
			Name: p.Name + "-verity-sig", Attributes: gpt.AttrReadOnly}, sigBytes, bytes.NewReader(p.Sig)})
	}
	for _, part := range parts {
		placed, err := t.Append(part.p, roundUp(part.size, alignBytes), alignBytes)
		if err != nil {
			return 0, fmt.Errorf("write extension %s: lay out partition %s: %w", p.Name, part.p.Name, err)
		}
		if err := copyAt(w, placed.Offset(sectorSize), part.r, part.size); err != nil {
			return 0, fmt.Errorf("write extension %s: partition %s: %w", p.Name, part.p.Name, err)
		}
	}
	if err := t.Write(w, diskBytes); err != nil {
		return 0, fmt.Errorf("write extension %s: partition table: %w", p.Name, err)
	}
	return diskBytes, nil
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// copyAt copies exactly n bytes of r to w at off.
func copyAt(w io.WriterAt, off int64, r io.Reader, n int64) error {
	got, err := io.Copy(io.NewOffsetWriter(w, off), io.LimitReader(r, n))
	if err == nil && got != n {
		err = fmt.Errorf("%d of %d bytes: %w", got, n, io.ErrUnexpectedEOF)
	}
	return err
}

// Image is an extension image read by Open: its partitions and what it
// says its root hash is. Nothing in it is trusted until Verify.
type Image struct {
	r          io.ReaderAt
	data, hash gpt.Partition
	// Name is the root partition's label: the extension's name.
	Name string
	// RootHash is the root hash the partition UUIDs (and the signature,
	// if any) name; Verify checks the signature over it.
	RootHash []byte
	// Sig is the root-verity-sig partition's content, nil if it has none.
	Sig []byte
	// Superblock is the verity superblock at the start of the hash
	// partition.
	Superblock *Superblock
}

// Open reads the extension image r of sizeBytes: a GPT with exactly one
// root and one root-verity partition whose PARTUUIDs name its root hash,
// and at most one root-verity-sig partition whose signature names the
// same root hash. Errors wrap ErrMalformed.
func Open(r io.ReaderAt, sizeBytes int64) (*Image, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("extension image: "+format+": %w", append(args, ErrMalformed)...)
	}
	t, err := gpt.Read(r, sizeBytes, sectorSize)
	if err != nil {
		return nil, bad("%v", err)
	}
	one := func(typ gpt.GUID, what string, need bool) (*gpt.Partition, error) {
		ps := t.ByType(typ)
		switch {
		case len(ps) > 1:
			return nil, bad("%d %s partitions", len(ps), what)
		case len(ps) == 0 && need:
			return nil, bad("no %s partition", what)
		case len(ps) == 0:
			return nil, nil
		}
		return &ps[0], nil
	}
	im := &Image{r: r}
	data, err := one(gpt.TypeRootAMD64, "root", true)
	if err != nil {
		return nil, err
	}
	hash, err := one(gpt.TypeRootVerityAMD64, "root-verity", true)
	if err != nil {
		return nil, err
	}
	sig, err := one(gpt.TypeRootVeritySigAMD64, "root-verity-sig", false)
	if err != nil {
		return nil, err
	}
	im.data, im.hash, im.Name = *data, *hash, data.Name
	if err := CheckName(im.Name); err != nil {
		return nil, bad("root partition label: %v", err)
	}
	im.RootHash = append(append([]byte{}, data.UUID[:]...), hash.UUID[:]...)
	if sig != nil {
		if im.Sig, err = readSig(r, *sig); err != nil {
			return nil, err
		}
		signed, err := trust.SignedRootHash(im.Sig)
		if err != nil {
			return nil, bad("%v", err)
		}
		if !bytes.Equal(signed, im.RootHash) {
			return nil, bad("signature is for root hash %x, the partitions are %x", signed, im.RootHash)
		}
	}
	if im.Superblock, err = readSuperblock(im.HashReader()); err != nil {
		return nil, bad("verity superblock: %v", err)
	}
	if b := int64(im.Superblock.DataBlocks) * int64(im.Superblock.DataBlockSize); b <= 0 || b > im.data.Size(sectorSize) {
		return nil, bad("verity covers %d bytes, the root partition has %d", b, im.data.Size(sectorSize))
	}
	return im, nil
}

// readSig reads a root-verity-sig partition, bounded by MaxSigBytes.
func readSig(r io.ReaderAt, p gpt.Partition) ([]byte, error) {
	n := p.Size(sectorSize)
	if n > MaxSigBytes {
		return nil, fmt.Errorf("extension image: root-verity-sig partition of %d bytes exceeds %d: %w", n, MaxSigBytes, ErrMalformed)
	}
	b := make([]byte, n)
	if _, err := r.ReadAt(b, p.Offset(sectorSize)); err != nil {
		return nil, fmt.Errorf("extension image: read root-verity-sig partition: %w", err)
	}
	return b, nil
}

// DataReader is the EROFS partition: only what the verity tree covers.
func (im *Image) DataReader() *io.SectionReader {
	return io.NewSectionReader(im.r, im.data.Offset(sectorSize), int64(im.Superblock.DataBlocks)*int64(im.Superblock.DataBlockSize))
}

// HashReader is the verity partition.
func (im *Image) HashReader() *io.SectionReader {
	return io.NewSectionReader(im.r, im.hash.Offset(sectorSize), im.hash.Size(sectorSize))
}

// DataOffset and HashOffset are where the partitions start in the image,
// for a device that maps them (a loop device with an offset).
func (im *Image) DataOffset() int64 { return im.data.Offset(sectorSize) }

// HashOffset is where the verity partition starts in the image.
func (im *Image) HashOffset() int64 { return im.hash.Offset(sectorSize) }

// Verify checks that the image's signature chains to one of roots (the
// verity certificate /usr carries) and signs RootHash, and returns
// RootHash. Errors wrap ErrUnsigned or trust's errors.
func (im *Image) Verify(roots []*x509.Certificate) ([]byte, error) {
	if im.Sig == nil {
		return nil, fmt.Errorf("extension image has no root-verity-sig partition: %w", ErrUnsigned)
	}
	h, err := trust.VerifyRootHashSig(im.Sig, roots)
	if err != nil {
		return nil, fmt.Errorf("extension image: %w", err)
	}
	if !bytes.Equal(h, im.RootHash) {
		return nil, errors.New("extension image: signed root hash does not match the partitions")
	}
	return h, nil
}
