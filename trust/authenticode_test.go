package trust_test

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/foxboron/go-uefi/authenticode"

	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/trust"
)

// peInputs returns the unsigned PE images the Authenticode tests sign:
// systemd-boot and a small UKI.
func peInputs(t *testing.T) map[string][]byte {
	t.Helper()
	boot, err := os.ReadFile(requireFile(t, "systemd-boot-efi", hostBoot))
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"systemd-boot": boot,
		"uki":          buildUKI(t, readStub(t), testSections(t, nil)),
	}
}

func TestSignPE(t *testing.T) {
	k := testKeys(t)
	dir := t.TempDir()
	for name, unsigned := range peInputs(t) {
		t.Run(name, func(t *testing.T) {
			signed, err := trust.SignPE(unsigned, k.DB.Signer, k.DB.Cert)
			if err != nil {
				t.Fatal(err)
			}
			again, err := trust.SignPE(unsigned, k.DB.Signer, k.DB.Cert)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(signed, again) {
				t.Error("two signatures of the same image differ")
			}
			if !bytes.HasPrefix(signed, unsigned[:0x80]) || len(signed) <= len(unsigned) {
				t.Error("signed image does not extend the unsigned one")
			}
			if err := trust.VerifyPE(signed, []*x509.Certificate{k.DB.Cert}); err != nil {
				t.Errorf("VerifyPE: %v", err)
			}
			// Our image digest must agree with go-uefi's implementation.
			want, err := authenticode.Parse(bytes.NewReader(signed))
			if err != nil {
				t.Fatal(err)
			}
			sigs, err := want.Signatures()
			if err != nil || len(sigs) != 1 {
				t.Fatalf("go-uefi finds %d signatures (%v)", len(sigs), err)
			}
			a, err := authenticode.ParseAuthenticode(sigs[0].Certificate)
			if err != nil {
				t.Fatal(err)
			}
			if got := want.Hash(0x5 /* crypto.SHA256 */); !bytes.Equal(a.Digest, got) {
				t.Errorf("signed digest %x, go-uefi computes %x", a.Digest, got)
			}

			path := writeFile(t, dir, name+".signed.efi", signed)
			sbverify(t, path, filepath.Join(testKeyDir, "db.crt"))
			osslsigncodeVerify(t, path, filepath.Join(testKeyDir, "db.crt"))

			// A flipped byte in the image, in the signature, or the
			// wrong certificate make verification fail.
			flipped := bytes.Clone(signed)
			flipped[len(unsigned)/2] ^= 1
			if err := trust.VerifyPE(flipped, []*x509.Certificate{k.DB.Cert}); !errors.Is(err, trust.ErrBadSignature) {
				t.Errorf("VerifyPE(flipped image byte) = %v, want ErrBadSignature", err)
			}
			sbverifyFails(t, writeFile(t, dir, name+".flipped.efi", flipped), filepath.Join(testKeyDir, "db.crt"))
			flippedSig := bytes.Clone(signed)
			flippedSig[len(signed)-20] ^= 1 // inside the RSA signature
			if err := trust.VerifyPE(flippedSig, []*x509.Certificate{k.DB.Cert}); !errors.Is(err, trust.ErrBadSignature) {
				t.Errorf("VerifyPE(flipped signature byte) = %v, want ErrBadSignature", err)
			}
			if err := trust.VerifyPE(signed, []*x509.Certificate{k.KEK.Cert}); !errors.Is(err, trust.ErrUntrusted) {
				t.Errorf("VerifyPE(other cert) = %v, want ErrUntrusted", err)
			}
			sbverifyFails(t, path, filepath.Join(testKeyDir, "KEK.crt"))
			if err := trust.VerifyPE(unsigned, []*x509.Certificate{k.DB.Cert}); !errors.Is(err, trust.ErrNoSignature) {
				t.Errorf("VerifyPE(unsigned) = %v, want ErrNoSignature", err)
			}
			if _, err := trust.SignPE(signed, k.DB.Signer, k.DB.Cert); !errors.Is(err, trust.ErrUnsupported) {
				t.Errorf("SignPE(signed) = %v, want ErrUnsupported", err)
			}
		})
	}
}

func TestSignPERejects(t *testing.T) {
	k := testKeys(t)
	boot := peInputs(t)["systemd-boot"]
	tests := []struct {
		name   string
		pe     []byte
		sk     trust.SigningKey
		target error
	}{
		{"key and certificate differ", boot, trust.SigningKey{Signer: k.KEK.Signer, Cert: k.DB.Cert}, trust.ErrKeyMismatch},
		{"not a PE image", []byte("MZ not really"), k.DB, trust.ErrMalformed},
		{"empty", nil, k.DB, trust.ErrMalformed},
		{"truncated", boot[:0x100], k.DB, trust.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := trust.SignPE(tc.pe, tc.sk.Signer, tc.sk.Cert); !errors.Is(err, tc.target) {
				t.Errorf("SignPE = %v, want %v", err, tc.target)
			}
		})
	}
}

func TestVerifyPEMalformed(t *testing.T) {
	k := testKeys(t)
	signed, err := trust.SignPE(peInputs(t)["systemd-boot"], k.DB.Signer, k.DB.Cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := []*x509.Certificate{k.DB.Cert}
	// The certificate table entry is the optional header's data
	// directory 4; find it the way the PE format says.
	peOff := int(binary.LittleEndian.Uint32(signed[0x3c:]))
	certDir := peOff + 4 + 20 + 112 + 4*8
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
		target error
	}{
		{"truncated signature", func(b []byte) []byte { return b[:len(b)-100] }, trust.ErrMalformed},
		{"trailing data", func(b []byte) []byte { return append(b, 0, 0, 0, 0, 0, 0, 0, 0) }, trust.ErrMalformed},
		{"certificate table beyond the file", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[certDir+4:], 1<<30)
			return b
		}, trust.ErrMalformed},
		{"certificate entry length too large", func(b []byte) []byte {
			off := binary.LittleEndian.Uint32(b[certDir:])
			binary.LittleEndian.PutUint32(b[off:], 1<<20)
			return b
		}, trust.ErrMalformed},
		{"garbage signature", func(b []byte) []byte {
			off := binary.LittleEndian.Uint32(b[certDir:])
			for i := off + 8; i < uint32(len(b)); i++ {
				b[i] = 0x30
			}
			return b
		}, trust.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := trust.VerifyPE(tc.mutate(bytes.Clone(signed)), roots); !errors.Is(err, tc.target) {
				t.Errorf("VerifyPE = %v, want %v", err, tc.target)
			}
		})
	}
}

func sbverify(t *testing.T, path, cert string) {
	t.Helper()
	ingottest.LookTool(t, "sbverify", "sbsigntool")
	run(t, "sbverify", "--cert", cert, path)
	list := string(run(t, "sbverify", "--list", path))
	if !strings.Contains(list, "signature 1") || !strings.Contains(list, "ingot test Signature Database Key") {
		t.Errorf("sbverify --list %s:\n%s", path, list)
	}
}

func sbverifyFails(t *testing.T, path, cert string) {
	t.Helper()
	ingottest.LookTool(t, "sbverify", "sbsigntool")
	runFails(t, "sbverify", "--cert", cert, path)
}

// osslsigncodeVerify checks the signature and the PE checksum with
// osslsigncode, an independent Authenticode implementation.
func osslsigncodeVerify(t *testing.T, path, cert string) {
	t.Helper()
	ingottest.LookTool(t, "osslsigncode", "osslsigncode")
	out := string(run(t, "osslsigncode", "verify", "-CAfile", cert, "-in", path))
	if strings.Contains(out, "MISMATCH") || !strings.Contains(out, "Signature verification: ok") {
		t.Errorf("osslsigncode verify %s:\n%s", path, out)
	}
}

func TestVerifyPEChain(t *testing.T) {
	ca, leaf := testCA(t)
	signed, err := trust.SignPE(peInputs(t)["uki"], leaf.Signer, leaf.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if err := trust.VerifyPE(signed, []*x509.Certificate{ca}); err != nil {
		t.Errorf("VerifyPE(signer issued by the root) = %v", err)
	}
	if err := trust.VerifyPE(signed, []*x509.Certificate{testKeys(t).DB.Cert}); !errors.Is(err, trust.ErrUntrusted) {
		t.Errorf("VerifyPE(unrelated root) = %v, want ErrUntrusted", err)
	}
}
