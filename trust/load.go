package trust

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// LoadOption configures LoadKeys and LoadSigningKey.
type LoadOption func(*loadConfig)

type loadConfig struct {
	now time.Time
}

// WithTime checks certificate validity at t instead of the current time.
func WithTime(t time.Time) LoadOption {
	return func(c *loadConfig) { c.now = t }
}

func newLoadConfig(opts []LoadOption) *loadConfig {
	c := &loadConfig{}
	for _, o := range opts {
		o(c)
	}
	if c.now.IsZero() {
		c.now = time.Now()
	}
	return c
}

// LoadKeys loads the key set InitKeys wrote to dir. It checks every key
// against its certificate (or, for the PCR key, against pcr.pem), that
// every key is RSA with at least 2048 bits, and that every certificate is
// valid now; it reports all problems at once. The .esl and .auth files are
// not read.
func LoadKeys(dir string, opts ...LoadOption) (*Keys, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("key directory %s (make keys with ingot keys init): %w", dir, err)
	}
	var (
		k    Keys
		errs []error
	)
	for _, p := range []struct {
		r  role
		sk *SigningKey
	}{{rolePK, &k.PK}, {roleKEK, &k.KEK}, {roleDB, &k.DB}, {roleVerity, &k.Verity}} {
		base := filepath.Join(dir, string(p.r))
		sk, err := LoadSigningKey(base+".key", base+".crt", opts...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*p.sk = *sk
	}
	pcr, err := loadPCRKey(filepath.Join(dir, string(rolePCR)))
	if err != nil {
		errs = append(errs, err)
	}
	k.PCR = pcr
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("load keys from %s: %w", dir, err)
	}
	return &k, nil
}

func loadPCRKey(base string) (crypto.Signer, error) {
	key, err := LoadSigner(base + ".key")
	if err != nil {
		return nil, err
	}
	pub, err := LoadPublicKey(base + ".pem")
	if err != nil {
		return nil, err
	}
	if !publicKeyEqual(key.Public(), pub) {
		return nil, fmt.Errorf("%s.key and %s.pem: %w", base, base, ErrKeyMismatch)
	}
	return key, nil
}

// LoadSigningKey loads a private key and its certificate from PEM files
// (see LoadSigner and LoadCertificates; the first certificate in certPath
// is used) and checks that they match and that the certificate is valid
// now.
func LoadSigningKey(keyPath, certPath string, opts ...LoadOption) (*SigningKey, error) {
	c := newLoadConfig(opts)
	key, err := LoadSigner(keyPath)
	if err != nil {
		return nil, err
	}
	certs, err := LoadCertificates(certPath)
	if err != nil {
		return nil, err
	}
	cert := certs[0]
	if !publicKeyEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("%s and %s: %w", keyPath, certPath, ErrKeyMismatch)
	}
	if err := checkValidity(cert, c.now); err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	return &SigningKey{Signer: key, Cert: cert}, nil
}

// LoadSigner loads an RSA private key (at least 2048 bits) from a PEM file
// in PKCS#8 ("PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY") form. Encrypted
// keys are not supported.
func LoadSigner(path string) (crypto.Signer, error) {
	b, err := readKeyFile(path, "private key")
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("private key %s: no PEM block: %w", path, ErrMalformed)
	}
	var key any
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("private key %s is encrypted: %w", path, ErrUnsupported)
	default:
		return nil, fmt.Errorf("private key %s: PEM block %q is not a private key: %w", path, blk.Type, ErrMalformed)
	}
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w: %w", path, ErrMalformed, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key %s: %T: %w", path, key, ErrKeyType)
	}
	if err := checkRSA(s.Public()); err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return s, nil
}

// LoadCertificates loads the X.509 certificates of a file: one or more PEM
// "CERTIFICATE" blocks, or one DER certificate.
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	b, err := readKeyFile(path, "certificate")
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", path, err)
	}
	return certs, nil
}

// ParseCertificates parses one or more PEM "CERTIFICATE" blocks, or one
// DER certificate.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return []*x509.Certificate{c}, nil
	}
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no CERTIFICATE PEM block: %w", ErrMalformed)
	}
	return certs, nil
}

// LoadPublicKey loads an RSA public key from a PEM "PUBLIC KEY"
// (SubjectPublicKeyInfo) file such as pcr.pem.
func LoadPublicKey(path string) (crypto.PublicKey, error) {
	b, err := readKeyFile(path, "public key")
	if err != nil {
		return nil, err
	}
	pub, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return pub, nil
}

// ParsePublicKey parses an RSA public key of at least 2048 bits from a
// PEM "PUBLIC KEY" (SubjectPublicKeyInfo) block, as tpm.PCRPubKeyPEM makes
// it and a UKI's .pcrpkey section holds.
func ParsePublicKey(b []byte) (crypto.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("no PUBLIC KEY PEM block: %w", ErrMalformed)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := checkRSA(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

func readKeyFile(path, what string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s %s missing (make keys with ingot keys init): %w", what, path, os.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return b, nil
}

// checkRSA checks that pub is an RSA key of at least 2048 bits.
func checkRSA(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < rsaBits {
			return fmt.Errorf("RSA key of %d bits, want at least %d: %w", k.N.BitLen(), rsaBits, ErrKeyType)
		}
		return nil
	case *ecdsa.PublicKey:
		return fmt.Errorf("ECDSA key, want RSA: %w", ErrKeyType)
	case ed25519.PublicKey:
		return fmt.Errorf("Ed25519 key, want RSA: %w", ErrKeyType)
	}
	return fmt.Errorf("%T key, want RSA: %w", pub, ErrKeyType)
}

// checkRSASigner checks that signer is an RSA key that belongs to cert.
func checkRSASigner(signer crypto.Signer, cert *x509.Certificate) error {
	if signer == nil || cert == nil {
		return errors.New("no signing key or certificate given")
	}
	if err := checkRSA(signer.Public()); err != nil {
		return err
	}
	if !publicKeyEqual(signer.Public(), cert.PublicKey) {
		return fmt.Errorf("certificate %q: %w", cert.Subject, ErrKeyMismatch)
	}
	return nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// checkValidity reports whether cert is valid at now.
func checkValidity(cert *x509.Certificate, now time.Time) error {
	switch {
	case now.After(cert.NotAfter):
		return fmt.Errorf("certificate %q expired on %s: %w", cert.Subject, cert.NotAfter.UTC().Format(time.DateOnly), ErrCertExpired)
	case now.Before(cert.NotBefore):
		return fmt.Errorf("certificate %q is valid only from %s: %w", cert.Subject, cert.NotBefore.UTC().Format(time.DateTime), ErrCertExpired)
	}
	return nil
}
