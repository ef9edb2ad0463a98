//go:build vm

package vm_test

import (
	"crypto/aes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"testing"

	"golang.org/x/crypto/xts"

	"github.com/ingot-linux/ingot/format/luks2"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/tpm"
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
	f, part := rootPartitionOf(t, disk)
	defer f.Close()
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

// checkTokenBindsPCR7 reads the root partition's LUKS2 header from the
// powered-off disk image and checks its systemd-tpm2 token binds PCR 7
// (the Secure Boot state) besides the signed PCR 11 policy.
func checkTokenBindsPCR7(t *testing.T, disk string) {
	t.Helper()
	f, part := rootPartitionOf(t, disk)
	defer f.Close()
	h, err := luks2.ReadHeader(part)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range h.Tokens {
		if tok.Type != tpm.TokenType {
			continue
		}
		s, err := tpm.ParseToken(tok.JSON)
		if err != nil {
			t.Fatalf("the root's %s token: %v", tpm.TokenType, err)
		}
		if fmt.Sprint(s.PCRs) != "[7]" || fmt.Sprint(s.PubKeyPCRs) != "[11]" {
			t.Errorf("the root's TPM token binds PCRs %v and signed PCRs %v, want [7] and [11]", s.PCRs, s.PubKeyPCRs)
		}
		return
	}
	t.Errorf("the root partition has no %s token", tpm.TokenType)
}

// rootPartitionOf opens a disk image and returns the file and its root
// partition.
func rootPartitionOf(t *testing.T, disk string) (*os.File, *io.SectionReader) {
	t.Helper()
	f, tab, _ := readTable(t, disk)
	for _, p := range tab.Partitions {
		if p.Type == layout.TypeRoot {
			return f, io.NewSectionReader(f, p.Offset(512), p.Size(512))
		}
	}
	f.Close()
	t.Fatalf("%s has no root partition", disk)
	return nil, nil
}
