package trust

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	encasn1 "encoding/asn1"
	"errors"
	"fmt"

	"github.com/foxboron/go-uefi/pkcs7"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// rsaSignatureOID reports whether oid names an RSA PKCS#1 v1.5 signature
// (rsaEncryption or sha256WithRSAEncryption), the digestEncryptionAlgorithm
// values verifySignedData accepts.
func rsaSignatureOID(oid encasn1.ObjectIdentifier) bool {
	return oid.Equal(encasn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}) ||
		oid.Equal(encasn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11})
}

// maxChainDepth bounds the certificate chain walk from a signer to a root.
const maxChainDepth = 8

// parseSignedData parses a DER PKCS#7 ContentInfo that must hold
// SignedData. go-uefi's parser does the work; its own Verify is not used
// because it neither handles signatures without signed attributes nor
// compares the messageDigest attribute with the content.
func parseSignedData(der []byte) (p *pkcs7.PKCS7, err error) {
	s := cryptobyte.String(der)
	var ci cryptobyte.String
	var oid encasn1.ObjectIdentifier
	if !s.ReadASN1(&ci, asn1.SEQUENCE) || !ci.ReadASN1ObjectIdentifier(&oid) {
		return nil, fmt.Errorf("PKCS#7: no ContentInfo: %w", ErrMalformed)
	}
	if !oid.Equal(pkcs7.OIDSignedData) {
		return nil, fmt.Errorf("PKCS#7: content type %v is not SignedData: %w", oid, ErrMalformed)
	}
	// The parser is meant for well-formed input; make sure hostile input
	// can only ever produce an error.
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("PKCS#7: %v: %w", r, ErrMalformed)
		}
	}()
	p, err = pkcs7.ParsePKCS7(der)
	if err != nil {
		return nil, fmt.Errorf("PKCS#7: %w: %w", ErrMalformed, err)
	}
	if len(p.SignerInfo) == 0 {
		return nil, fmt.Errorf("PKCS#7: no SignerInfo: %w", ErrMalformed)
	}
	return p, nil
}

// verifySignedData checks the SignerInfos of p over content, the signed
// bytes (the value of the encapsulated content, or the detached data),
// whose content type must be contentType. It returns the certificate of
// the first signer whose signature verifies and who is trusted: one of
// roots, or issued by one through certificates embedded in p.
func verifySignedData(p *pkcs7.PKCS7, content []byte, contentType encasn1.ObjectIdentifier, roots []*x509.Certificate) (*x509.Certificate, error) {
	var errs []error
	for i := range p.SignerInfo {
		cert, err := verifySigner(p, i, content, contentType, roots)
		if err == nil {
			return cert, nil
		}
		errs = append(errs, fmt.Errorf("signer %d: %w", i+1, err))
	}
	return nil, errors.Join(errs...)
}

func verifySigner(p *pkcs7.PKCS7, i int, content []byte, contentType encasn1.ObjectIdentifier, roots []*x509.Certificate) (*x509.Certificate, error) {
	si := p.SignerInfo[i]
	if si.DigestAlgorithm == nil || !si.DigestAlgorithm.Algorithm.Equal(pkcs7.OIDDigestAlgorithmSHA256) ||
		si.EncryptedDigestAlgorithm == nil || si.IssuerAndSerialnumber == nil {
		return nil, fmt.Errorf("digest algorithm is not SHA-256: %w", ErrUnsupported)
	}
	if a := si.EncryptedDigestAlgorithm.Algorithm; !rsaSignatureOID(a) {
		return nil, fmt.Errorf("signature algorithm %v is not RSA: %w", a, ErrUnsupported)
	}
	digest := sha256.Sum256(content)
	signed := content
	if a := si.AuthenticatedAttributes; a != nil {
		if !bytes.Equal(a.MessageDigest, digest[:]) {
			return nil, fmt.Errorf("messageDigest attribute does not match the content: %w", ErrBadSignature)
		}
		if !a.ContentType.Equal(contentType) {
			return nil, fmt.Errorf("contentType attribute %v, want %v: %w", a.ContentType, contentType, ErrBadSignature)
		}
		signed = a.RawBytes
	}
	h := sha256.Sum256(signed)

	var candidates []*x509.Certificate
	for _, c := range append(append([]*x509.Certificate(nil), roots...), p.Certs...) {
		if bytes.Equal(c.RawIssuer, si.IssuerAndSerialnumber.RawIssuer) &&
			c.SerialNumber.Cmp(si.IssuerAndSerialnumber.SerialNumber) == 0 {
			candidates = append(candidates, c)
		}
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("signer certificate is neither trusted nor in the signature: %w", ErrUntrusted)
	}
	var verified *x509.Certificate
	for _, c := range candidates {
		pub, ok := c.PublicKey.(*rsa.PublicKey)
		if ok && rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], si.EncryptedDigest) == nil {
			verified = c
			if trusted(c, p.Certs, roots) {
				return c, nil
			}
		}
	}
	if verified == nil {
		return nil, ErrBadSignature
	}
	return nil, fmt.Errorf("signed by %q: %w", verified.Subject, ErrUntrusted)
}

// trusted reports whether cert is one of roots or is issued by one,
// directly or through certificates in pool. Validity periods are not
// checked, as firmware and the kernel do not check them either.
func trusted(cert *x509.Certificate, pool, roots []*x509.Certificate) bool {
	cur := cert
	for range maxChainDepth {
		for _, r := range roots {
			if bytes.Equal(r.Raw, cur.Raw) {
				return true
			}
		}
		for _, r := range roots {
			if bytes.Equal(cur.RawIssuer, r.RawSubject) && cur.CheckSignatureFrom(r) == nil {
				return true
			}
		}
		var next *x509.Certificate
		for _, c := range pool {
			if !bytes.Equal(c.Raw, cur.Raw) && bytes.Equal(cur.RawIssuer, c.RawSubject) && cur.CheckSignatureFrom(c) == nil {
				next = c
				break
			}
		}
		if next == nil {
			return false
		}
		cur = next
	}
	return false
}
