package luks2_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/ingot-linux/ingot/format/luks2"
)

// Example encrypts a volume with a recovery passphrase, adds a keyslot for
// a TPM-sealed secret described by a token, unlocks it again and prints the
// device-mapper table that maps its data.
func Example() {
	dir, err := os.MkdirTemp("", "luks2-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "root.img"))
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	const size = 32 << 20
	if err := f.Truncate(size); err != nil {
		log.Fatal(err)
	}

	key := bytes.Repeat([]byte{0x42}, 64) // use crypto/rand in real code
	cheap := luks2.PBKDF{Type: luks2.KDFPBKDF2, Iterations: 1000}
	err = luks2.Format(f, size, key, luks2.Options{
		UUID:       "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3",
		Label:      "root",
		Passphrase: []byte("recovery"),
		PBKDF:      cheap,
	})
	if err != nil {
		log.Fatal(err)
	}
	slot, err := luks2.AddKeyslot(f, key, []byte("sealed secret"), luks2.KeyslotOptions{PBKDF: cheap})
	if err != nil {
		log.Fatal(err)
	}
	tok := fmt.Sprintf(`{"type":"systemd-tpm2","keyslots":["%d"],"tpm2-pcrs":[7]}`, slot)
	if _, err := luks2.AddToken(f, json.RawMessage(tok)); err != nil {
		log.Fatal(err)
	}

	h, err := luks2.ReadHeader(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(h.UUID, h.Label, h.DataOffset)
	for _, t := range h.Tokens {
		got, err := luks2.OpenKeyslot(f, t.Keyslots[0], []byte("sealed secret"))
		fmt.Println("token", t.ID, t.Type, "keyslots", t.Keyslots, "unlocks:", err == nil && bytes.Equal(got, key))
	}
	_, used, err := luks2.Open(f, []byte("recovery"))
	fmt.Println("recovery passphrase opens keyslot", used, err)
	_, _, err = luks2.Open(f, []byte("guess"))
	fmt.Println(err)

	table := h.DMTable("/dev/vda3", h.DataSectors(size), key)
	fmt.Println(strings.Replace(table, hex.EncodeToString(key), "<key>", 1))
	// Output:
	// 0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3 root 16777216
	// token 0 systemd-tpm2 keyslots [1] unlocks: true
	// recovery passphrase opens keyslot 0 <nil>
	// luks2: open: no keyslot accepts the passphrase
	// 0 32768 crypt aes-xts-plain64 <key> 0 /dev/vda3 32768
}
