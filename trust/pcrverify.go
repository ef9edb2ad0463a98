package trust

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"

	"github.com/ingot-linux/ingot/format/uki"

	"github.com/ingot-linux/ingot/tpm"
)

// UnsealPhase is the boot phase in which ingot-init unseals the root
// partition's key: PCR 11 then holds the UKI's measurements followed by
// "enter-initrd".
const UnsealPhase = "enter-initrd"

// VerifyPCRSig checks that the UKI r can unseal what is sealed to the PCR
// key pub (see package tpm) in phase: its .pcrpkey is pub, and its
// .pcrsig holds a signature by pub of the TPM2 PolicyPCR digest of the
// PCR 11 value the UKI gives in phase (PredictPCR11UKI). Errors wrap
// ErrKeyMismatch for a UKI made for another PCR key, ErrBadSignature for
// one without a valid signature of that policy, and ErrMalformed.
func VerifyPCRSig(r io.ReaderAt, pub crypto.PublicKey, phase string) error {
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("PCR key is a %T, want RSA: %w", pub, ErrKeyType)
	}
	img, err := uki.Open(r)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := checkPCRPKey(img, rsaPub); err != nil {
		return err
	}
	doc, err := img.Section(uki.SectionPCRSig)
	if err != nil {
		return fmt.Errorf("no signed PCR policy (.pcrsig): %w", ErrBadSignature)
	}
	values, err := PredictPCR11UKI(r, PCROptions{Phases: []string{phase}})
	if err != nil {
		return err
	}
	pol, err := tpm.PolicyPCRDigest(values[0].PCR11)
	if err != nil {
		return err
	}
	return findPCRSignature(doc, rsaPub, pol, phase)
}

// checkPCRPKey checks that the UKI's .pcrpkey is pub.
func checkPCRPKey(img *uki.Image, pub *rsa.PublicKey) error {
	b, err := img.Section(uki.SectionPCRPKey)
	if err != nil {
		return fmt.Errorf("no PCR public key (.pcrpkey): %w", ErrKeyMismatch)
	}
	got, err := ParsePublicKey(b)
	if err != nil {
		return fmt.Errorf(".pcrpkey: %w", err)
	}
	if !pub.Equal(got) {
		gotFP, _ := tpm.PCRKeyFingerprint(got)
		wantFP, _ := tpm.PCRKeyFingerprint(pub)
		return fmt.Errorf(".pcrpkey is the key %x, not %x: %w", gotFP, wantFP, ErrKeyMismatch)
	}
	return nil
}

// findPCRSignature looks in the .pcrsig document doc for a valid
// signature by pub of the policy digest pol for PCR 11 (SHA-256 bank),
// reading it as the TPM's unsealing code does (tpm.VerifyPolicySignature).
func findPCRSignature(doc []byte, pub *rsa.PublicKey, pol []byte, phase string) error {
	err := tpm.VerifyPolicySignature(doc, pub, pol)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, tpm.ErrMalformed):
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	fp, _ := tpm.PCRKeyFingerprint(pub)
	return fmt.Errorf(".pcrsig has no signature by the PCR key %x of the PCR 11 policy %x (phase %q): %w: %w",
		fp, pol, phase, ErrBadSignature, err)
}
