package uki

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
)

// TestPEChecksum checks the checksum against the value binutils stored in
// Debian's systemd-stub (an odd-length file), whatever the write sizes.
func TestPEChecksum(t *testing.T) {
	stub, err := os.ReadFile("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
	if os.IsNotExist(err) {
		ingottest.Skip(t, "systemd-stub not installed (package systemd-boot-efi)")
	}
	if err != nil {
		t.Fatal(err)
	}
	off := binary.LittleEndian.Uint32(stub[dosLfanewOffset:]) + peSignatureSize + coffHeaderSize + optCheckSum
	want := binary.LittleEndian.Uint32(stub[off:])
	zeroed := bytes.Clone(stub)
	binary.LittleEndian.PutUint32(zeroed[off:], 0)
	for _, step := range []int{1, 3, 7, 64, 4096, len(zeroed)} {
		var c peChecksum
		for b := zeroed; len(b) > 0; {
			n := min(step, len(b))
			_, _ = c.Write(b[:n])
			b = b[n:]
		}
		if got := c.value(); got != want {
			t.Errorf("writes of %d bytes: checksum %#x, want %#x", step, got, want)
		}
	}
}
