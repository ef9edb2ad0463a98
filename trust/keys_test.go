package trust_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/trust"
)

func TestInitKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	o := testKeyOptions()
	k, err := trust.InitKeys(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("key directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	for _, f := range trust.KeyFiles(dir) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o644)
		if strings.HasSuffix(f, ".key") {
			want = 0o600
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", f, fi.Mode().Perm(), want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != len(trust.KeyFiles(dir)) {
		t.Errorf("%d files in %s, want %d (temporary files left?)", len(ents), dir, len(trust.KeyFiles(dir)))
	}

	loaded, err := trust.LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2]trust.SigningKey{
		"PK": {k.PK, loaded.PK}, "KEK": {k.KEK, loaded.KEK}, "db": {k.DB, loaded.DB}, "verity": {k.Verity, loaded.Verity},
	} {
		made, got := pair[0], pair[1]
		if !bytes.Equal(made.Cert.Raw, got.Cert.Raw) || !got.Signer.Public().(*rsa.PublicKey).Equal(made.Signer.Public()) {
			t.Errorf("%s: loaded key differs from the made one", name)
		}
		if n := got.Signer.Public().(*rsa.PublicKey).N.BitLen(); n != 2048 {
			t.Errorf("%s: %d-bit key, want 2048", name, n)
		}
		if !got.Cert.NotBefore.Equal(o.NotBefore) || !got.Cert.NotAfter.Equal(o.NotBefore.Add(o.Validity)) {
			t.Errorf("%s: valid %v to %v", name, got.Cert.NotBefore, got.Cert.NotAfter)
		}
		if err := got.Cert.CheckSignature(got.Cert.SignatureAlgorithm, got.Cert.RawTBSCertificate, got.Cert.Signature); err != nil {
			t.Errorf("%s: not self-signed: %v", name, err)
		}
	}
	if !loaded.PCR.Public().(*rsa.PublicKey).Equal(k.PCR.Public()) {
		t.Error("PCR key differs")
	}
	if got, want := k.DB.Cert.Subject.CommonName, "ingot test Signature Database Key"; got != want {
		t.Errorf("db subject %q, want %q", got, want)
	}

	// The same seed gives the same serials and owner, but new keys.
	other := filepath.Join(t.TempDir(), "keys")
	k2, err := trust.InitKeys(other, o)
	if err != nil {
		t.Fatal(err)
	}
	if k2.DB.Cert.SerialNumber.Cmp(k.DB.Cert.SerialNumber) != 0 {
		t.Error("same seed, different serial numbers")
	}
	if k2.DB.Signer.Public().(*rsa.PublicKey).Equal(k.DB.Signer.Public()) {
		t.Error("same seed, same key: keys must be random")
	}
	esl1, _ := os.ReadFile(filepath.Join(dir, "db.esl"))
	esl2, _ := os.ReadFile(filepath.Join(other, "db.esl"))
	if !bytes.Equal(esl1[28:44], esl2[28:44]) {
		t.Error("same seed, different EFI signature owner")
	}

	// Without a seed, serials are random.
	k3, err := trust.InitKeys(t.TempDir(), trust.KeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if k3.DB.Cert.SerialNumber.Cmp(k.DB.Cert.SerialNumber) == 0 || k3.DB.Cert.Subject.CommonName != "ingot Signature Database Key" {
		t.Errorf("default options: serial %v, subject %q", k3.DB.Cert.SerialNumber, k3.DB.Cert.Subject)
	}
	if d := time.Since(k3.DB.Cert.NotBefore); d < 0 || d > time.Minute {
		t.Errorf("default NotBefore %v is not now", k3.DB.Cert.NotBefore)
	}
}

func TestInitKeysRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "verity.crt")
	if err := os.WriteFile(existing, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := trust.InitKeys(dir, testKeyOptions()); !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), existing) {
		t.Fatalf("InitKeys over %s = %v, want ErrExist naming it", existing, err)
	}
	ents, _ := os.ReadDir(dir)
	if b, _ := os.ReadFile(existing); len(ents) != 1 || string(b) != "keep me" {
		t.Errorf("InitKeys changed the directory: %d entries, %s = %q", len(ents), existing, b)
	}
}

func TestLoadKeysErrors(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	copyFile := func(from, to string) func(dir string) {
		return func(dir string) {
			b, err := os.ReadFile(filepath.Join(dir, from))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, to), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	write := func(name string, data []byte) func(dir string) {
		return func(dir string) {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name   string
		change func(dir string)
		opts   []trust.LoadOption
		target error
		text   string
	}{
		{"missing key", func(dir string) { os.Remove(filepath.Join(dir, "db.key")) }, nil, fs.ErrNotExist, "db.key missing"},
		{"missing PCR public key", func(dir string) { os.Remove(filepath.Join(dir, "pcr.pem")) }, nil, fs.ErrNotExist, "pcr.pem missing"},
		{"key of another certificate", copyFile("KEK.key", "db.key"), nil, trust.ErrKeyMismatch, "db.key and"},
		{"PCR key and public key differ", copyFile("PK.key", "pcr.key"), nil, trust.ErrKeyMismatch, "pcr.key and"},
		{"expired", func(string) {}, []trust.LoadOption{trust.WithTime(time.Date(2080, 1, 1, 0, 0, 0, 0, time.UTC))}, trust.ErrCertExpired, "expired on 2074-12-20"},
		{"not yet valid", func(string) {}, []trust.LoadOption{trust.WithTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))}, trust.ErrCertExpired, "valid only from 2025-01-01"},
		{"ECDSA key", write("verity.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})), nil, trust.ErrKeyType, "ECDSA key, want RSA"},
		{"encrypted key", write("KEK.key", []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")), nil, trust.ErrUnsupported, "encrypted"},
		{"garbage key", write("PK.key", []byte("not a key")), nil, trust.ErrMalformed, "no PEM block"},
		{"garbage certificate", write("PK.crt", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")), nil, trust.ErrMalformed, "PK.crt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyKeys(t)
			tc.change(dir)
			opts := tc.opts
			if opts == nil {
				opts = []trust.LoadOption{trust.WithTime(testTime())}
			}
			k, err := trust.LoadKeys(dir, opts...)
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("LoadKeys = %v, %v; want %v mentioning %q", k, err, tc.target, tc.text)
			}
		})
	}
}

func TestLoadFromSeparateFiles(t *testing.T) {
	sk, err := trust.LoadSigningKey(filepath.Join(testKeyDir, "db.key"), filepath.Join(testKeyDir, "db.crt"), trust.WithTime(testTime()))
	if err != nil {
		t.Fatal(err)
	}
	// A PKCS#1 key and a DER certificate work too.
	dir := t.TempDir()
	key := writeFile(t, dir, "db.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(sk.Signer.(*rsa.PrivateKey))}))
	crt := writeFile(t, dir, "db.der", sk.Cert.Raw)
	if _, err := trust.LoadSigningKey(key, crt, trust.WithTime(testTime())); err != nil {
		t.Errorf("PKCS#1 key, DER certificate: %v", err)
	}
	bundle := writeFile(t, dir, "bundle.crt", append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sk.Cert.Raw}),
		mustRead(t, filepath.Join(testKeyDir, "KEK.crt"))...))
	if certs, err := trust.LoadCertificates(bundle); err != nil || len(certs) != 2 {
		t.Errorf("LoadCertificates(bundle) = %d certificates, %v", len(certs), err)
	}
	if _, err := trust.LoadPublicKey(filepath.Join(testKeyDir, "pcr.pem")); err != nil {
		t.Errorf("LoadPublicKey: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEFIVariablesMatchEfitools checks the .esl and .auth files against
// efitools, which makes the same bytes for the same key, owner and
// timestamp.
func TestEFIVariablesMatchEfitools(t *testing.T) {
	ingottest.LookTool(t, "cert-to-efi-sig-list", "efitools")
	ingottest.LookTool(t, "sign-efi-sig-list", "efitools")
	dir := t.TempDir()
	key := func(name string) string { return filepath.Join(testKeyDir, name) }
	esl := mustRead(t, key("PK.esl"))
	owner := guidString(esl[28:44])
	ts := testKeyOptions().NotBefore.Format(time.DateTime)
	for _, tc := range []struct{ variable, signer string }{{"PK", "PK"}, {"KEK", "PK"}, {"db", "KEK"}} {
		t.Run(tc.variable, func(t *testing.T) {
			eslPath := filepath.Join(dir, tc.variable+".esl")
			run(t, "cert-to-efi-sig-list", "-g", owner, key(tc.variable+".crt"), eslPath)
			if !bytes.Equal(mustRead(t, eslPath), mustRead(t, key(tc.variable+".esl"))) {
				t.Errorf("%s.esl differs from cert-to-efi-sig-list's", tc.variable)
			}
			authPath := filepath.Join(dir, tc.variable+".auth")
			run(t, "sign-efi-sig-list", "-t", ts, "-c", key(tc.signer+".crt"), "-k", key(tc.signer+".key"),
				tc.variable, key(tc.variable+".esl"), authPath)
			if !bytes.Equal(mustRead(t, authPath), mustRead(t, key(tc.variable+".auth"))) {
				t.Errorf("%s.auth differs from sign-efi-sig-list's", tc.variable)
			}
		})
	}
}

// TestAuthVariable checks AuthVariable against the committed files and
// its input checks.
func TestAuthVariable(t *testing.T) {
	k := testKeys(t)
	ts := testKeyOptions().NotBefore
	esl := mustRead(t, filepath.Join(testKeyDir, "db.esl"))
	got, err := trust.AuthVariable("db", esl, ts, k.KEK.Signer, k.KEK.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, mustRead(t, filepath.Join(testKeyDir, "db.auth"))) {
		t.Error("AuthVariable(db) differs from db.auth")
	}
	if !bytes.HasSuffix(got, esl) {
		t.Error(".auth does not end with the signature list")
	}
	var owner [16]byte
	copy(owner[:], esl[28:44])
	if !bytes.Equal(trust.SignatureList(owner, k.DB.Cert), esl) {
		t.Error("SignatureList differs from db.esl")
	}
	if _, err := trust.AuthVariable("MokList", esl, ts, k.KEK.Signer, k.KEK.Cert); !errors.Is(err, trust.ErrUnsupported) {
		t.Errorf("AuthVariable(MokList) = %v, want ErrUnsupported", err)
	}
	if _, err := trust.AuthVariable("db", esl, ts, k.KEK.Signer, k.PK.Cert); !errors.Is(err, trust.ErrKeyMismatch) {
		t.Errorf("AuthVariable(mismatched key) = %v, want ErrKeyMismatch", err)
	}
}

// guidString formats on-disk GUID bytes.
func guidString(b []byte) string {
	return fmt.Sprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%x-%x",
		b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8:10], b[10:16])
}
