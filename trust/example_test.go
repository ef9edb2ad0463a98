package trust_test

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/ingot-linux/ingot/trust"
)

func ExampleSignRootHash() {
	keys, err := trust.LoadKeys("testdata/keys", trust.WithTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	if err != nil {
		panic(err)
	}
	rootHash := sha256.Sum256([]byte("the verity root hash of /usr"))
	// The content of the usr-verity-sig partition.
	sig, err := trust.SignRootHash(rootHash[:], keys.Verity.Signer, keys.Verity.Cert)
	if err != nil {
		panic(err)
	}
	// On the device: check it against the trusted verity certificates.
	got, err := trust.VerifyRootHashSig(sig, []*x509.Certificate{keys.Verity.Cert})
	fmt.Printf("%d bytes, signs %x, %v\n", len(sig), got[:8], err)
	// Output: 4096 bytes, signs c9d810a222235ab5, <nil>
}
