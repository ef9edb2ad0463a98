package trust

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/foxboron/go-uefi/pkcs7"
)

// fuzzKeys loads the committed test keys for the fuzz targets.
func fuzzKeys(f *testing.F) *Keys {
	f.Helper()
	k, err := LoadKeys("testdata/keys", WithTime(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)))
	if err != nil {
		f.Fatal(err)
	}
	return k
}

// FuzzParseVeritySig feeds arbitrary usr-verity-sig content to the parser
// and the verifier: neither may panic, the verifier may only accept what
// the parser accepts, and only the one signed root hash can verify.
func FuzzParseVeritySig(f *testing.F) {
	k := fuzzKeys(f)
	roots := []*x509.Certificate{k.Verity.Cert}
	signed := sha256.Sum256([]byte("usr"))
	good, err := SignRootHash(signed[:], k.Verity.Signer, k.Verity.Cert)
	if err != nil {
		f.Fatal(err)
	}
	text := bytes.TrimRight(good, "\x00")
	f.Add(good)
	f.Add(text)
	f.Add(text[:len(text)/2])
	f.Add([]byte(`{"rootHash":"00","signature":""}`))
	f.Add([]byte(`{"rootHash":null,"signature":1}`))
	f.Add([]byte("\x00\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, blob []byte) {
		s, perr := parseRootHashSig(blob)
		h, verr := VerifyRootHashSig(blob, roots)
		if perr != nil {
			if verr == nil {
				t.Fatalf("VerifyRootHashSig accepts content the parser rejects: %v", perr)
			}
			return
		}
		if verr == nil && (!bytes.Equal(h, s.rootHash) || !bytes.Equal(h, signed[:])) {
			t.Fatalf("VerifyRootHashSig = %x, parsed %x, only %x is signed", h, s.rootHash, signed)
		}
	})
}

// FuzzSignedData feeds arbitrary DER to the PKCS#7 parser and verifier
// used for Authenticode and verity signatures: no panics, and no
// signature over other content verifies.
func FuzzSignedData(f *testing.F) {
	k := fuzzKeys(f)
	roots := []*x509.Certificate{k.Verity.Cert, k.DB.Cert}
	content := []byte("signed content")
	sig, err := pkcs7.SignPKCS7(k.Verity.Signer, k.Verity.Cert, pkcs7.OIDData, content, pkcs7.NoAttr())
	if err != nil {
		f.Fatal(err)
	}
	withAttrs, err := pkcs7.SignPKCS7(k.DB.Signer, k.DB.Cert, pkcs7.OIDData, content)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig)
	f.Add(withAttrs)
	f.Add(sig[:len(sig)/2])
	f.Add([]byte{0x30, 0x03, 0x06, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		p, err := parseSignedData(der)
		if err != nil {
			return
		}
		if _, err := verifySignedData(p, []byte("other content"), pkcs7.OIDData, roots); err == nil {
			t.Fatal("a signature over other content verifies")
		}
		verifySignedData(p, content, pkcs7.OIDData, roots)
		// The same DER inside a verity signature JSON object.
		j, _ := json.Marshal(map[string]string{"rootHash": "ab", "signature": base64.StdEncoding.EncodeToString(der)})
		VerifyRootHashSig(j, roots)
	})
}
