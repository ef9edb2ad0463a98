package trust_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/trust"
)

func TestSignRootHash(t *testing.T) {
	k := testKeys(t)
	rootHash := sha256.Sum256([]byte("usr"))
	blob, err := trust.SignRootHash(rootHash[:], k.Verity.Signer, k.Verity.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if len(blob)%trust.VeritySigAlign != 0 || blob[len(blob)-1] != 0 {
		t.Errorf("content of %d bytes is not NUL-padded to a multiple of %d", len(blob), trust.VeritySigAlign)
	}
	again, err := trust.SignRootHash(rootHash[:], k.Verity.Signer, k.Verity.Cert)
	if err != nil || !bytes.Equal(blob, again) {
		t.Errorf("two signatures of the same root hash differ (%v)", err)
	}
	text := bytes.TrimRight(blob, "\x00")
	fp := sha256.Sum256(k.Verity.Cert.Raw)
	prefix := `{"rootHash":"` + hex.EncodeToString(rootHash[:]) + `","certificateFingerprint":"` + hex.EncodeToString(fp[:]) + `","signature":"`
	if !strings.HasPrefix(string(text), prefix) {
		t.Errorf("JSON %s\ndoes not start with %s", text, prefix)
	}
	got, err := trust.VerifyRootHashSig(blob, []*x509.Certificate{k.Verity.Cert})
	if err != nil || !bytes.Equal(got, rootHash[:]) {
		t.Errorf("VerifyRootHashSig = %x, %v, want %x", got, err, rootHash)
	}

	// openssl checks the PKCS#7 signature of the hex string, and makes
	// the same bytes (PKCS7_sign with NOATTR|DETACHED|BINARY, as
	// systemd-repart).
	ingottest.LookTool(t, "openssl", "openssl")
	var v struct{ RootHash, Signature string }
	if err := json.Unmarshal(text, &v); err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(v.Signature)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sigPath := writeFile(t, dir, "sig.der", sig)
	content := writeFile(t, dir, "roothash", []byte(v.RootHash))
	crt := filepath.Join(testKeyDir, "verity.crt")
	run(t, "openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", sigPath,
		"-content", content, "-CAfile", crt, "-purpose", "any", "-out", filepath.Join(dir, "out"))
	other := writeFile(t, dir, "other", []byte(strings.Repeat("0", 64)))
	runFails(t, "openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", sigPath,
		"-content", other, "-CAfile", crt, "-purpose", "any", "-out", filepath.Join(dir, "out"))
	ref := run(t, "openssl", "smime", "-sign", "-binary", "-noattr", "-md", "sha256", "-signer", crt,
		"-inkey", filepath.Join(testKeyDir, "verity.key"), "-in", content, "-outform", "DER")
	if !bytes.Equal(ref, sig) {
		t.Error("signature differs from openssl smime -sign -noattr -binary")
	}
}

func TestVerifyRootHashSigRejects(t *testing.T) {
	k := testKeys(t)
	roots := []*x509.Certificate{k.Verity.Cert}
	rootHash := sha256.Sum256([]byte("usr"))
	otherHash := sha256.Sum256([]byte("other"))
	sign := func(h []byte, sk trust.SigningKey) []byte {
		t.Helper()
		b, err := trust.SignRootHash(h, sk.Signer, sk.Cert)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := sign(rootHash[:], k.Verity)
	text := string(bytes.TrimRight(good, "\x00"))
	var fields map[string]string
	if err := json.Unmarshal([]byte(text), &fields); err != nil {
		t.Fatal(err)
	}
	withField := func(key, value string) []byte {
		m := map[string]string{}
		for k, v := range fields {
			m[k] = v
		}
		if value == "" {
			delete(m, key)
		} else {
			m[key] = value
		}
		b, _ := json.Marshal(m)
		return b
	}
	otherSig := map[string]string{}
	json.Unmarshal(bytes.TrimRight(sign(otherHash[:], k.Verity), "\x00"), &otherSig)
	dbSig := map[string]string{}
	json.Unmarshal(bytes.TrimRight(sign(rootHash[:], k.DB), "\x00"), &dbSig)

	tests := []struct {
		name   string
		blob   []byte
		roots  []*x509.Certificate
		target error
	}{
		{"other root hash", withField("rootHash", hex.EncodeToString(otherHash[:])), roots, trust.ErrBadSignature},
		{"signature of another root hash", withField("signature", otherSig["signature"]), roots, trust.ErrBadSignature},
		{"untrusted signer", good, []*x509.Certificate{k.DB.Cert}, trust.ErrUntrusted},
		{"no roots", good, nil, trust.ErrUntrusted},
		{"signed by db, fingerprint of verity", withField("signature", dbSig["signature"]), []*x509.Certificate{k.DB.Cert}, trust.ErrBadSignature},
		{"data after the padding", append(bytes.Clone(good), 'x'), roots, trust.ErrMalformed},
		{"empty", make([]byte, 4096), roots, trust.ErrMalformed},
		{"not JSON", []byte("rootHash=ab"), roots, trust.ErrMalformed},
		{"two objects", []byte(text + text), roots, trust.ErrMalformed},
		{"no rootHash", withField("rootHash", ""), roots, trust.ErrMalformed},
		{"no signature", withField("signature", ""), roots, trust.ErrMalformed},
		{"short rootHash", withField("rootHash", "abcd"), roots, trust.ErrMalformed},
		{"rootHash not hex", withField("rootHash", strings.Repeat("xy", 32)), roots, trust.ErrMalformed},
		{"bad fingerprint", withField("certificateFingerprint", "00"), roots, trust.ErrMalformed},
		{"signature not base64", withField("signature", "!!!"), roots, trust.ErrMalformed},
		{"signature not PKCS#7", withField("signature", base64.StdEncoding.EncodeToString([]byte("hello"))), roots, trust.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if h, err := trust.VerifyRootHashSig(tc.blob, tc.roots); !errors.Is(err, tc.target) {
				t.Errorf("VerifyRootHashSig = %x, %v, want %v", h, err, tc.target)
			}
		})
	}

	t.Run("accepted variants", func(t *testing.T) {
		for name, blob := range map[string][]byte{
			"uppercase root hash":  withField("rootHash", strings.ToUpper(fields["rootHash"])),
			"no fingerprint":       withField("certificateFingerprint", ""),
			"no padding":           []byte(text),
			"other fields ignored": []byte(`{"x":1,` + text[1:]),
			"db key among roots":   good,
		} {
			r := roots
			if name == "db key among roots" {
				r = []*x509.Certificate{k.DB.Cert, k.Verity.Cert}
			}
			if h, err := trust.VerifyRootHashSig(blob, r); err != nil || !bytes.Equal(h, rootHash[:]) {
				t.Errorf("%s: VerifyRootHashSig = %x, %v", name, h, err)
			}
		}
	})

	t.Run("signer issued by a trusted CA", func(t *testing.T) {
		ca, leaf := testCA(t)
		blob := sign(rootHash[:], leaf)
		if h, err := trust.VerifyRootHashSig(blob, []*x509.Certificate{ca}); err != nil || !bytes.Equal(h, rootHash[:]) {
			t.Errorf("VerifyRootHashSig = %x, %v", h, err)
		}
		if _, err := trust.VerifyRootHashSig(blob, roots); !errors.Is(err, trust.ErrUntrusted) {
			t.Errorf("VerifyRootHashSig(other root) = %v, want ErrUntrusted", err)
		}
	})

	if _, err := trust.SignRootHash([]byte{1, 2, 3}, k.Verity.Signer, k.Verity.Cert); err == nil {
		t.Error("SignRootHash accepts a 3-byte root hash")
	}
	if _, err := trust.SignRootHash(rootHash[:], k.DB.Signer, k.Verity.Cert); !errors.Is(err, trust.ErrKeyMismatch) {
		t.Errorf("SignRootHash(mismatched key) = %v, want ErrKeyMismatch", err)
	}
}

// testCA returns a CA certificate and a signing key it issued (the CA
// key is the verity test key, the leaf key the db test key).
func testCA(t *testing.T) (*x509.Certificate, trust.SigningKey) {
	t.Helper()
	k := testKeys(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: testTime().AddDate(-1, 0, 0), NotAfter: testTime().AddDate(1, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, k.Verity.Signer.Public(), k.Verity.Signer)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "test leaf"},
		NotBefore: caTmpl.NotBefore, NotAfter: caTmpl.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err = x509.CreateCertificate(rand.Reader, leafTmpl, ca, k.DB.Signer.Public(), k.Verity.Signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, trust.SigningKey{Signer: k.DB.Signer, Cert: leaf}
}
