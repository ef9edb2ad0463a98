package trust_test

import (
	"crypto/x509"
	"errors"
	"testing"

	"github.com/ingot-linux/ingot/trust"
)

func TestVerifyDetached(t *testing.T) {
	k := testKeys(t)
	data := []byte("version: 1\nhostname: web-1\n")
	sig, err := trust.SignDetached(data, k.Verity.Signer, k.Verity.Cert)
	if err != nil {
		t.Fatal(err)
	}
	byDB, err := trust.SignDetached(data, k.DB.Signer, k.DB.Cert)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		data, sig []byte
		want      error
	}{
		{"good", data, sig, nil},
		{"other key", data, byDB, trust.ErrUntrusted},
		{"tampered data", []byte("version: 1\nhostname: web-2\n"), sig, trust.ErrBadSignature},
		{"not a signature", data, []byte("-----BEGIN PKCS7-----"), trust.ErrMalformed},
		{"empty", data, nil, trust.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := trust.VerifyDetached(tt.data, tt.sig, []*x509.Certificate{k.Verity.Cert})
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("VerifyDetached: %v, want %v", err, tt.want)
			}
			if err == nil && !cert.Equal(k.Verity.Cert) {
				t.Errorf("signer %v, want the verity certificate", cert.Subject)
			}
		})
	}
	if _, err := trust.SignDetached(data, k.DB.Signer, k.Verity.Cert); !errors.Is(err, trust.ErrKeyMismatch) {
		t.Errorf("signing with a key that is not the certificate's: %v", err)
	}
}
