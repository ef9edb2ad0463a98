package trust

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/foxboron/go-uefi/authenticode"
	"github.com/foxboron/go-uefi/pkcs7"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// SignPE returns pe, an unsigned PE/COFF image such as systemd-boot or a
// UKI, with an Authenticode signature by signer, whose certificate is cert
// (RSA, at least 2048 bits). The image is padded with zeros to a multiple
// of 8 bytes, the signature is appended as a WIN_CERTIFICATE in the
// certificate table, and the PE checksum is updated. The signature has no
// signed attributes (no signing time), so the output depends only on the
// inputs.
func SignPE(pe []byte, signer crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	if err := checkRSASigner(signer, cert); err != nil {
		return nil, fmt.Errorf("sign PE image: %w", err)
	}
	p, err := parsePE(pe)
	if err != nil {
		return nil, err
	}
	if p.signed() {
		return nil, fmt.Errorf("sign PE image: already signed; sign the unsigned image: %w", ErrUnsupported)
	}
	padded := (len(pe) + 7) &^ 7
	out := make([]byte, padded, padded+4096)
	copy(out, pe)
	if p, err = parsePE(out); err != nil {
		return nil, err
	}
	spc, err := authenticode.CreateSpcIndirectDataContent(p.digest(), crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("sign PE image: %w", err)
	}
	sig, err := pkcs7.SignPKCS7(signer, cert, authenticode.OIDSpcIndirectDataContent, spc, pkcs7.NoAttr())
	if err != nil {
		return nil, fmt.Errorf("sign PE image: %w", err)
	}
	n := winCertHdrSize + len(sig)
	entry := make([]byte, (n+7)&^7)
	le := binary.LittleEndian
	le.PutUint32(entry, uint32(n))
	le.PutUint16(entry[4:], winCertRevision)
	le.PutUint16(entry[6:], winCertTypePKCS)
	copy(entry[winCertHdrSize:], sig)
	if int64(padded)+int64(len(entry)) > math.MaxUint32 {
		return nil, fmt.Errorf("sign PE image: signed image would exceed 4 GiB: %w", ErrUnsupported)
	}
	out = append(out, entry...)
	le.PutUint32(out[p.certDirOff:], uint32(padded))
	le.PutUint32(out[p.certDirOff+4:], uint32(len(entry)))
	le.PutUint32(out[p.checksumOff:], 0)
	le.PutUint32(out[p.checksumOff:], peChecksum(out))
	return out, nil
}

// VerifyPE checks that pe carries an Authenticode signature that matches
// the image and whose signer is one of roots (such as the certificates of
// db) or issued by one through certificates embedded in the signature. One
// such signature is enough when there are several. Only SHA-256 digests
// and RSA signatures are supported. Errors wrap ErrNoSignature,
// ErrBadSignature (the image or the signature was changed), ErrUntrusted
// or ErrMalformed.
func VerifyPE(pe []byte, roots []*x509.Certificate) error {
	p, err := parsePE(pe)
	if err != nil {
		return err
	}
	if !p.signed() {
		return fmt.Errorf("verify PE image: %w", ErrNoSignature)
	}
	sigs, err := p.winCertificates()
	if err != nil {
		return fmt.Errorf("verify PE image: %w", err)
	}
	if len(sigs) == 0 {
		return fmt.Errorf("verify PE image: no PKCS#7 signature in the certificate table: %w", ErrNoSignature)
	}
	digest := p.digest()
	var errs []error
	for i, sig := range sigs {
		err := verifyAuthenticode(sig, digest, roots)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("signature %d: %w", i+1, err))
	}
	return fmt.Errorf("verify PE image: %w", errors.Join(errs...))
}

// verifyAuthenticode checks one Authenticode signature against the image
// digest.
func verifyAuthenticode(sig, digest []byte, roots []*x509.Certificate) error {
	p, err := parseSignedData(sig)
	if err != nil {
		return err
	}
	if !p.OID.Equal(authenticode.OIDSpcIndirectDataContent) {
		return fmt.Errorf("content type %v is not SpcIndirectDataContent: %w", p.OID, ErrMalformed)
	}
	// The signed bytes are the value of the SpcIndirectDataContent
	// SEQUENCE, without its tag and length.
	s := cryptobyte.String(p.ContentInfo)
	var content cryptobyte.String
	if !s.ReadASN1(&content, asn1.SEQUENCE) {
		return fmt.Errorf("no SpcIndirectDataContent: %w", ErrMalformed)
	}
	a, err := parseAuthenticode(sig)
	if err != nil {
		return err
	}
	if a.Algid == nil || !a.Algid.Algorithm.Equal(pkcs7.OIDDigestAlgorithmSHA256) {
		return fmt.Errorf("image digest is not SHA-256: %w", ErrUnsupported)
	}
	if !bytes.Equal(a.Digest, digest) {
		return fmt.Errorf("image digest does not match the signed digest: %w", ErrBadSignature)
	}
	_, err = verifySignedData(p, content, authenticode.OIDSpcIndirectDataContent, roots)
	return err
}

func parseAuthenticode(sig []byte) (a *authenticode.Authenticode, err error) {
	defer func() {
		if r := recover(); r != nil {
			a, err = nil, fmt.Errorf("authenticode signature: %v: %w", r, ErrMalformed)
		}
	}()
	a, err = authenticode.ParseAuthenticode(sig)
	if err != nil {
		return nil, fmt.Errorf("authenticode signature: %w: %w", ErrMalformed, err)
	}
	return a, nil
}
