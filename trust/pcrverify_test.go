package trust_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"

	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/trust"

	"github.com/ingot-linux/ingot/tpm"
)

func TestVerifyPCRSig(t *testing.T) {
	keys := testKeys(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	stub := readStub(t)
	// signed makes a UKI whose .pcrpkey is pkey's and whose .pcrsig
	// signer signed for phases.
	signed := func(pkey, signer *rsa.PrivateKey, phases ...string) []byte {
		pem, err := tpm.PCRPubKeyPEM(pkey.Public())
		if err != nil {
			t.Fatal(err)
		}
		sections := testSections(t, pem)
		sig, err := trust.PCRSig(stub, sections, signer, trust.PCROptions{Phases: phases})
		if err != nil {
			t.Fatal(err)
		}
		return buildUKI(t, stub, append(sections, uki.Section{Name: uki.SectionPCRSig, Data: sig}))
	}
	pcr := keys.PCR.(*rsa.PrivateKey)
	tests := []struct {
		name string
		uki  []byte
		want error
	}{
		{"signed by the key for the unseal phase", signed(pcr, pcr, trust.UnsealPhase), nil},
		{"signed for every default phase", signed(pcr, pcr, trust.DefaultPhases()...), nil},
		{"another PCR key", signed(other, other, trust.UnsealPhase), trust.ErrKeyMismatch},
		{"the key in .pcrpkey, another key's signature", signed(pcr, other, trust.UnsealPhase), trust.ErrBadSignature},
		{"signed for another phase only", signed(pcr, pcr, "enter-initrd:leave-initrd"), trust.ErrBadSignature},
		{"no .pcrpkey", buildUKI(t, stub, testSections(t, nil)), trust.ErrKeyMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := trust.VerifyPCRSig(bytes.NewReader(tt.uki), pcr.Public(), trust.UnsealPhase)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("VerifyPCRSig: %v, want %v", err, tt.want)
			}
		})
	}
}
