//go:build vm

package vm_test

import (
	"crypto/aes"
	"encoding/binary"
	"io"
	"os"
	"testing"

	"golang.org/x/crypto/xts"

	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/format/luks2"
	"github.com/ingot-linux/ingot/layout"
)

// checkCryptDataPath checks, from the host, what ingot-init's dm-crypt
// mapping wrote (internal/dm loading luks2.Header.CryptTarget): the root
// partition of the powered-off disk image opens with the recovery key,
// and the first block of its data segment, decrypted as LUKS2 prescribes
// (aes-xts-plain64 per encryption sector, the IV counting 512-byte
// units), holds the ext4 superblock. This is the data-path check that
// needs device-mapper, which the hosts running go test do not have; the
// guest's kernel does.
func checkCryptDataPath(t *testing.T, disk, recoveryKey string) {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	tab, err := gpt.Read(f, fi.Size(), 512)
	if err != nil {
		t.Fatal(err)
	}
	var part *io.SectionReader
	for _, p := range tab.Partitions {
		if p.Type == layout.TypeRoot {
			part = io.NewSectionReader(f, int64(p.FirstLBA)*512, int64(p.LastLBA-p.FirstLBA+1)*512)
		}
	}
	if part == nil {
		t.Fatalf("%s has no root partition", disk)
	}
	key, _, err := luks2.Open(part, []byte(recoveryKey))
	if err != nil {
		t.Fatalf("open the root partition with the recovery key: %v", err)
	}
	h, err := luks2.ReadHeader(part)
	if err != nil {
		t.Fatal(err)
	}
	seg := h.Segments[0]
	if seg.Cipher != "aes-xts-plain64" {
		t.Fatalf("root partition cipher %q, want aes-xts-plain64", seg.Cipher)
	}
	c, err := xts.NewCipher(aes.NewCipher, key)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4096
	ct := make([]byte, n)
	if _, err := part.ReadAt(ct, seg.Offset); err != nil {
		t.Fatal(err)
	}
	pt := make([]byte, n)
	for i := 0; i < n; i += seg.SectorSize {
		c.Decrypt(pt[i:i+seg.SectorSize], ct[i:i+seg.SectorSize], seg.IVTweak+uint64(i)/512)
	}
	// The ext4 superblock starts 1024 bytes in; s_magic is at 56.
	if magic := binary.LittleEndian.Uint16(pt[1024+56:]); magic != 0xef53 {
		t.Errorf("decrypted root data has ext4 magic %#x, want 0xef53: dm-crypt did not write standard LUKS2 aes-xts-plain64", magic)
	}
}
