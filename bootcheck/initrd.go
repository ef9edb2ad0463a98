package bootcheck

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

// minRootBytes is the smallest root partition ingot-init makes.
const minRootBytes = 256 << 20

// maxSigBytes bounds what ingot-init reads of a usr-verity-sig partition.
const maxSigBytes = 1 << 20

// slotParts are the partitions of the slot usrhash names.
type slotParts struct {
	name             string
	usr, verity, sig gpt.Partition
	hasSig           bool
}

// initrd does ingot-init's steps up to the root partition and returns the
// booted slot.
func (c *Checker) initrd(d *disk, info *ukiInfo) (string, error) {
	if info.cmdErr != nil {
		return "", info.cmdErr
	}
	s, err := findUsr(d.table, info.usrHash)
	if err != nil {
		return "", stepErr("find usr partitions", err)
	}
	if err := c.verifySig(d, s, info.usrHash); err != nil {
		return "", stepErr("verify usr signature", err)
	}
	if err := c.checkVerity(d, s, info.usrHash); err != nil {
		return "", stepErr("mount /usr", err)
	}
	if err := checkRoot(d); err != nil {
		return "", stepErr("prepare root partition", err)
	}
	return s.name, nil
}

// findUsr finds the slot as ingot-init's findUsr does: the usr partition
// with the usrhash's first 128 bits as PARTUUID, the usr-verity partition
// with its last 128 bits, and the usr-verity-sig partition of the same
// ordinal.
func findUsr(t *gpt.Table, usrHash []byte) (slotParts, error) {
	usrUUID, verUUID := layout.UsrPartUUIDs(usrHash)
	var s slotParts
	ordinal, found, verFound := 0, false, false
	for _, p := range t.ByType(layout.TypeUsr) {
		ordinal++
		if p.UUID == usrUUID {
			s.usr, s.name, found = p, layout.SlotName(ordinal), true
			break
		}
	}
	if !found {
		return s, fmt.Errorf("no usr partition with PARTUUID %s", usrUUID)
	}
	for _, p := range t.ByType(layout.TypeUsrVerity) {
		if p.UUID == verUUID {
			s.verity, verFound = p, true
		}
	}
	if !verFound {
		return s, fmt.Errorf("the usr partition %s has no verity partition with PARTUUID %s", usrUUID, verUUID)
	}
	if sigs := t.ByType(layout.TypeUsrVeritySig); ordinal <= len(sigs) {
		s.sig, s.hasSig = sigs[ordinal-1], true
	}
	return s, nil
}

func (c *Checker) verifySig(d *disk, s slotParts, usrHash []byte) error {
	if c.opts.VerityCerts == nil {
		return nil
	}
	if !s.hasSig {
		return fmt.Errorf("slot %s has no usr-verity-sig partition", s.name)
	}
	blob := make([]byte, min(s.sig.Size(512), maxSigBytes))
	if _, err := d.part(s.sig).ReadAt(blob, 0); err != nil && err != io.EOF {
		return err
	}
	h, err := trust.VerifyRootHashSig(blob, c.opts.VerityCerts)
	if err != nil {
		return err
	}
	if !bytes.Equal(h, usrHash) {
		return fmt.Errorf("usr-verity-sig of slot %s signs %x, not usrhash %x", s.name, h, usrHash)
	}
	return nil
}

// checkVerity recomputes the slot's dm-verity tree, memoised by the
// content of both partitions.
func (c *Checker) checkVerity(d *disk, s slotParts, usrHash []byte) error {
	fu, ok1 := d.fingerprint(s.usr)
	fv, ok2 := d.fingerprint(s.verity)
	var key [32]byte
	if ok1 && ok2 {
		key = sha256.Sum256(append(append(fu[:], fv[:]...), usrHash...))
		if err, ok := c.verity[key]; ok {
			c.Stats.VerityMemoHits++
			return err
		}
	}
	c.Stats.VerityChecks++
	err := VerifyVerity(d.part(s.usr), d.part(s.verity), usrHash)
	if ok1 && ok2 {
		c.verity[key] = err
	}
	return err
}

// checkRoot checks the root partition as ingot-init's prepareRoot finds it.
func checkRoot(d *disk) error {
	roots := d.table.ByType(layout.TypeRoot)
	if len(roots) == 0 {
		return roomForRoot(d)
	}
	p := roots[0]
	if p.Name == layout.RootSetupLabel {
		return nil // ingot-init makes its file system again
	}
	var sb [2048]byte
	if _, err := d.part(p).ReadAt(sb[:], 0); err != nil {
		return fmt.Errorf("read root partition: %w", err)
	}
	if bytes.HasPrefix(sb[:], []byte("LUKS\xba\xbe")) || sb[1024+56] == 0x53 && sb[1024+57] == 0xef {
		return nil
	}
	return fmt.Errorf("root partition %d (%q) has neither an ext4 nor a LUKS2 superblock", p.Index, p.Name)
}

// roomForRoot checks that first-boot setup can add a root partition.
func roomForRoot(d *disk) error {
	t := *d.table
	t.Partitions = append([]gpt.Partition(nil), d.table.Partitions...)
	if _, err := t.Grow(d.size); err != nil {
		return fmt.Errorf("grow partition table: %w", err)
	}
	free, ok := t.LargestFree(gpt.DefaultAlign)
	if !ok || free.Sectors()*512 < minRootBytes {
		return errors.New("no room for the root partition")
	}
	return nil
}
