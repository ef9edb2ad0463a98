package trust

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Limits of the usr-verity-sig content.
const (
	// VeritySigAlign is what SignRootHash pads its output to, as the
	// Discoverable Partitions Specification asks of the partition.
	VeritySigAlign = 4096
	// maxVeritySigJSON bounds the JSON text VerifyRootHashSig parses.
	maxVeritySigJSON = 64 << 10
	minRootHashBytes = 20 // SHA-1
	maxRootHashBytes = 64 // SHA-512
)

// veritySig is the usr-verity-sig JSON object, fields in systemd-repart's
// order.
type veritySig struct {
	RootHash               string `json:"rootHash"`
	CertificateFingerprint string `json:"certificateFingerprint,omitempty"`
	Signature              string `json:"signature"`
}

// SignRootHash returns the content of a usr-verity-sig (or root-verity-sig)
// partition for the dm-verity root hash rootHash, signed by signer, whose
// certificate is cert:
//
//	{"rootHash":"<hex>","certificateFingerprint":"<hex>","signature":"<base64>"}
//
// padded with NUL bytes to a multiple of VeritySigAlign (with at least one
// NUL). certificateFingerprint is the SHA-256 of the DER certificate;
// signature is a DER PKCS#7 detached signature, without signed attributes,
// of the lowercase hex root hash string, as systemd-repart makes it and
// the kernel checks it (dm-verity root hash signatures, veritysetup
// --root-hash-signature).
func SignRootHash(rootHash []byte, signer crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	if n := len(rootHash); n < minRootHashBytes || n > maxRootHashBytes {
		return nil, fmt.Errorf("sign verity root hash: %d bytes, want %d to %d", n, minRootHashBytes, maxRootHashBytes)
	}
	h := hex.EncodeToString(rootHash)
	p7, err := SignDetached([]byte(h), signer, cert)
	if err != nil {
		return nil, fmt.Errorf("sign verity root hash: %w", err)
	}
	fp := sha256.Sum256(cert.Raw)
	j, err := json.Marshal(veritySig{
		RootHash:               h,
		CertificateFingerprint: hex.EncodeToString(fp[:]),
		Signature:              base64.StdEncoding.EncodeToString(p7),
	})
	if err != nil {
		return nil, err
	}
	out := make([]byte, (len(j)/VeritySigAlign+1)*VeritySigAlign)
	copy(out, j)
	return out, nil
}

// rootHashSig is a parsed, not yet verified, usr-verity-sig content.
type rootHashSig struct {
	rootHash    []byte
	fingerprint []byte // nil if absent
	signature   []byte // DER PKCS#7
}

// parseRootHashSig parses usr-verity-sig content: a JSON object followed
// by nothing but NUL bytes.
func parseRootHashSig(blob []byte) (*rootHashSig, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("verity signature: "+format+": %w", append(args, ErrMalformed)...)
	}
	text := blob
	if i := bytes.IndexByte(blob, 0); i >= 0 {
		text = blob[:i]
		if bytes.ContainsFunc(blob[i:], func(r rune) bool { return r != 0 }) {
			return nil, bad("data after the NUL padding")
		}
	}
	if len(text) == 0 {
		return nil, bad("empty")
	}
	if len(text) > maxVeritySigJSON {
		return nil, bad("JSON of %d bytes exceeds %d", len(text), maxVeritySigJSON)
	}
	var v struct {
		RootHash               *string `json:"rootHash"`
		CertificateFingerprint *string `json:"certificateFingerprint"`
		Signature              *string `json:"signature"`
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	if err := dec.Decode(&v); err != nil {
		return nil, bad("%v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, bad("data after the JSON object")
	}
	if v.RootHash == nil || v.Signature == nil {
		return nil, bad("rootHash or signature missing")
	}
	s := &rootHashSig{}
	var err error
	if s.rootHash, err = hex.DecodeString(*v.RootHash); err != nil {
		return nil, bad("rootHash is not hex")
	}
	if n := len(s.rootHash); n < minRootHashBytes || n > maxRootHashBytes {
		return nil, bad("rootHash of %d bytes", n)
	}
	if v.CertificateFingerprint != nil {
		if s.fingerprint, err = hex.DecodeString(*v.CertificateFingerprint); err != nil || len(s.fingerprint) != sha256.Size {
			return nil, bad("certificateFingerprint is not a hex SHA-256 digest")
		}
	}
	if s.signature, err = base64.StdEncoding.Strict().DecodeString(*v.Signature); err != nil || len(s.signature) == 0 {
		return nil, bad("signature is not base64")
	}
	return s, nil
}

// SignedRootHash returns the root hash usr-verity-sig content claims to
// sign, without checking the signature: enough to see that a signature
// belongs to an image, not that it is trusted (that is VerifyRootHashSig).
// Errors wrap ErrMalformed.
func SignedRootHash(blob []byte) ([]byte, error) {
	s, err := parseRootHashSig(blob)
	if err != nil {
		return nil, err
	}
	return s.rootHash, nil
}

// VerifyRootHashSig checks usr-verity-sig partition content made by
// SignRootHash or systemd-repart and returns the root hash it signs. The
// PKCS#7 signature must be detached, use SHA-256 and RSA, sign the
// lowercase hex root hash string, and come from one of roots or a
// certificate issued by one through certificates in the signature; if
// certificateFingerprint is present it must name the signing certificate.
// Errors wrap ErrMalformed, ErrBadSignature, ErrUntrusted or
// ErrUnsupported.
func VerifyRootHashSig(blob []byte, roots []*x509.Certificate) ([]byte, error) {
	s, err := parseRootHashSig(blob)
	if err != nil {
		return nil, err
	}
	cert, err := VerifyDetached([]byte(hex.EncodeToString(s.rootHash)), s.signature, roots)
	if err != nil {
		return nil, fmt.Errorf("verity signature: %w", err)
	}
	if s.fingerprint != nil {
		if fp := sha256.Sum256(cert.Raw); !bytes.Equal(fp[:], s.fingerprint) {
			return nil, fmt.Errorf("verity signature: certificateFingerprint does not name the signing certificate: %w", ErrBadSignature)
		}
	}
	return s.rootHash, nil
}
