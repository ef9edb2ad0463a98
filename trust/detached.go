package trust

import (
	"crypto"
	"crypto/x509"
	"fmt"

	"github.com/foxboron/go-uefi/pkcs7"
)

// SignDetached returns a DER PKCS#7 detached signature of data, without
// signed attributes, by signer, whose certificate is cert (embedded in the
// signature): what openssl smime -sign -binary -noattr -outform DER makes,
// and what usr-verity-sig partitions and signed machine configurations
// carry.
func SignDetached(data []byte, signer crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	if err := checkRSASigner(signer, cert); err != nil {
		return nil, err
	}
	return pkcs7.SignPKCS7(signer, cert, pkcs7.OIDData, data, pkcs7.NoAttr())
}

// VerifyDetached checks that sig is a DER PKCS#7 detached signature of
// data (content type data, SHA-256, RSA) by one of roots or a certificate
// issued by one through certificates in sig, and returns the signer's
// certificate. Errors wrap ErrMalformed, ErrBadSignature, ErrUntrusted or
// ErrUnsupported.
func VerifyDetached(data, sig []byte, roots []*x509.Certificate) (*x509.Certificate, error) {
	p, err := parseSignedData(sig)
	if err != nil {
		return nil, err
	}
	if !p.OID.Equal(pkcs7.OIDData) {
		return nil, fmt.Errorf("signed content type %v is not data: %w", p.OID, ErrMalformed)
	}
	if len(p.ContentInfo) != 0 {
		return nil, fmt.Errorf("content is embedded, want a detached signature: %w", ErrUnsupported)
	}
	return verifySignedData(p, data, pkcs7.OIDData, roots)
}
