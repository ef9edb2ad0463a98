package trust

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/ingot-linux/ingot/internal/fileutil"
	"github.com/ingot-linux/ingot/tpm"
)

// DefaultValidity is how long certificates made by InitKeys are valid when
// KeyOptions.Validity is zero. Firmware and the kernel ignore certificate
// validity; LoadKeys does not, so keys must be renewed before then.
const DefaultValidity = 10 * 365 * 24 * time.Hour

// rsaBits is the size of every key InitKeys makes: RSA-2048 is what UEFI
// firmware (OVMF included) reliably supports for PK, KEK and db, what
// systemd's signed PCR policy uses, and what the kernel verifies for dm-verity.
const rsaBits = 2048

// SigningKey is a private key, used only through crypto.Signer, with the
// certificate that names it.
type SigningKey struct {
	Signer crypto.Signer
	Cert   *x509.Certificate
}

// Keys are the keys of ingot's trust chain.
type Keys struct {
	// PK is the Platform Key: it signs PK.auth and KEK.auth.
	PK SigningKey
	// KEK is the Key Exchange Key: it signs db.auth.
	KEK SigningKey
	// DB is the signature database key: it signs systemd-boot and UKIs.
	DB SigningKey
	// PCR signs the expected PCR 11 values of UKIs (.pcrsig); its public
	// key goes into UKIs as .pcrpkey.
	PCR crypto.Signer
	// Verity signs /usr verity root hashes (usr-verity-sig partitions).
	Verity SigningKey
}

// KeyOptions configure InitKeys. The zero value makes keys named "ingot"
// valid from now on for DefaultValidity, with random serial numbers.
type KeyOptions struct {
	// Name goes into every certificate subject ("<Name> Platform Key",
	// ...); "" means "ingot".
	Name string
	// NotBefore is when the certificates become valid, and the timestamp
	// of the .auth files; zero means now. It is truncated to whole
	// seconds (UTC).
	NotBefore time.Time
	// Validity is how long the certificates are valid; zero means
	// DefaultValidity.
	Validity time.Duration
	// Seed, if set, derives the certificate serial numbers and the EFI
	// signature owner GUID from it, so that tests can make the same
	// certificates twice from the same keys. The keys themselves are
	// always random. nil means random serials and owner.
	Seed []byte
}

// role is one key of the set, named as its files are.
type role string

const (
	rolePK     role = "PK"
	roleKEK    role = "KEK"
	roleDB     role = "db"
	rolePCR    role = "pcr"
	roleVerity role = "verity"
)

// subject is the certificate subject CN suffix of the role.
func (r role) subject() string {
	switch r {
	case rolePK:
		return "Platform Key"
	case roleKEK:
		return "Key Exchange Key"
	case roleDB:
		return "Signature Database Key"
	case roleVerity:
		return "Verity Signing Key"
	}
	return string(r)
}

// KeyFiles returns the paths InitKeys writes in dir, in a stable order.
func KeyFiles(dir string) []string {
	var files []string
	for _, r := range []role{rolePK, roleKEK, roleDB} {
		for _, ext := range []string{".key", ".crt", ".esl", ".auth"} {
			files = append(files, filepath.Join(dir, string(r)+ext))
		}
	}
	files = append(files, filepath.Join(dir, "pcr.key"), filepath.Join(dir, "pcr.pem"),
		filepath.Join(dir, "verity.key"), filepath.Join(dir, "verity.crt"))
	return files
}

// InitKeys creates the key set in dir (made with mode 0700 if missing):
//
//	PK.{key,crt,esl,auth}  KEK.{key,crt,esl,auth}  db.{key,crt,esl,auth}
//	pcr.key pcr.pem  verity.key verity.crt
//
// Keys are RSA-2048 in PKCS#8 PEM, mode 0600; certificates are PEM, pcr.pem
// is the PCR public key as PEM SubjectPublicKeyInfo. It refuses to run if
// any of these files exists, and writes each file atomically; if it fails
// half-way, the files it wrote are removed again.
func InitKeys(dir string, o KeyOptions) (*Keys, error) {
	files := KeyFiles(dir)
	var exist []string
	for _, f := range files {
		if _, err := os.Lstat(f); err == nil {
			exist = append(exist, f)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("check key file: %w", err)
		}
	}
	if len(exist) > 0 {
		return nil, fmt.Errorf("refusing to overwrite existing key files %v: %w", exist, os.ErrExist)
	}
	if o.Name == "" {
		o.Name = "ingot"
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now()
	}
	o.NotBefore = o.NotBefore.UTC().Truncate(time.Second)
	if o.Validity == 0 {
		o.Validity = DefaultValidity
	}
	if o.Validity < 0 {
		return nil, fmt.Errorf("negative certificate validity %v", o.Validity)
	}
	owner, err := ownerGUID(o.Seed)
	if err != nil {
		return nil, err
	}

	k := &Keys{}
	contents := map[string][]byte{}
	for _, p := range []struct {
		r  role
		sk *SigningKey
	}{{rolePK, &k.PK}, {roleKEK, &k.KEK}, {roleDB, &k.DB}, {roleVerity, &k.Verity}} {
		key, cert, err := newCertKey(p.r, o)
		if err != nil {
			return nil, err
		}
		*p.sk = SigningKey{Signer: key, Cert: cert}
		keyPEM, err := marshalKey(key)
		if err != nil {
			return nil, err
		}
		contents[string(p.r)+".key"] = keyPEM
		contents[string(p.r)+".crt"] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	}
	pcrKey, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return nil, fmt.Errorf("generate PCR key: %w", err)
	}
	k.PCR = pcrKey
	if contents["pcr.key"], err = marshalKey(pcrKey); err != nil {
		return nil, err
	}
	if contents["pcr.pem"], err = tpm.PCRPubKeyPEM(pcrKey.Public()); err != nil {
		return nil, err
	}

	ts := o.NotBefore
	for _, v := range []struct {
		r      role
		own    *SigningKey
		signer *SigningKey
	}{{rolePK, &k.PK, &k.PK}, {roleKEK, &k.KEK, &k.PK}, {roleDB, &k.DB, &k.KEK}} {
		esl := SignatureList(owner, v.own.Cert)
		auth, err := AuthVariable(string(v.r), esl, ts, v.signer.Signer, v.signer.Cert)
		if err != nil {
			return nil, fmt.Errorf("sign %s.auth: %w", v.r, err)
		}
		contents[string(v.r)+".esl"] = esl
		contents[string(v.r)+".auth"] = auth
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key directory: %w", err)
	}
	var written []string
	for _, f := range files {
		mode := os.FileMode(0o644)
		if filepath.Ext(f) == ".key" {
			mode = 0o600
		}
		if err := writeNew(f, contents[filepath.Base(f)], mode); err != nil {
			for _, w := range written {
				os.Remove(w)
			}
			return nil, err
		}
		written = append(written, f)
	}
	fileutil.SyncDir(dir) // best effort: the keys are written
	return k, nil
}

// newCertKey makes a random RSA key and a self-signed certificate for it.
func newCertKey(r role, o KeyOptions) (*rsa.PrivateKey, *x509.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s key: %w", r, err)
	}
	serial, err := serialNumber(o.Seed, string(r))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:       serial,
		Subject:            pkix.Name{CommonName: o.Name + " " + r.subject()},
		NotBefore:          o.NotBefore,
		NotAfter:           o.NotBefore.Add(o.Validity),
		SignatureAlgorithm: x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create %s certificate: %w", r, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s certificate: %w", r, err)
	}
	return key, cert, nil
}

// serialNumber returns a positive 127-bit serial: random, or derived from
// seed and the role name.
func serialNumber(seed []byte, name string) (*big.Int, error) {
	b := make([]byte, 16)
	if seed == nil {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("random serial number: %w", err)
		}
	} else {
		copy(b, derive(seed, "serial/"+name))
	}
	b[0] &= 0x7f
	b[0] |= 0x40 // never zero, always 16 bytes
	return new(big.Int).SetBytes(b), nil
}

// ownerGUID returns the EFI signature owner GUID: random, or derived from
// seed; either way a version 4 (random) GUID.
func ownerGUID(seed []byte) ([16]byte, error) {
	var g [16]byte
	if seed == nil {
		if _, err := rand.Read(g[:]); err != nil {
			return g, fmt.Errorf("random owner GUID: %w", err)
		}
	} else {
		copy(g[:], derive(seed, "owner"))
	}
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g, nil
}

func derive(seed []byte, label string) []byte {
	m := hmac.New(sha256.New, seed)
	m.Write([]byte("ingot trust " + label))
	return m.Sum(nil)
}

func marshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeNew writes data to path through a synced temporary file that is
// then linked into place, which fails instead of replacing a file that
// appeared meanwhile. Where hard links are not supported it renames after
// checking that path does not exist.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err = os.Link(tmp, path)
	if err == nil || errors.Is(err, os.ErrExist) {
		if err != nil {
			return fmt.Errorf("refusing to overwrite %s: %w", path, err)
		}
		return nil
	}
	if _, serr := os.Lstat(path); serr == nil {
		return fmt.Errorf("refusing to overwrite %s: %w", path, os.ErrExist)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
