package tpm

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// PCRKernelBoot is the TPM PCR systemd-stub measures a UKI's sections and
// systemd-pcrphase the boot phases into.
const PCRKernelBoot = 11

// MinPCRKeyBits is the smallest RSA modulus a PCR key may have.
const MinPCRKeyBits = 2048

// checkPCRKey checks that pub is an RSA key of at least MinPCRKeyBits.
func checkPCRKey(pub crypto.PublicKey) error {
	k, ok := pub.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("PCR key is a %T, want RSA: %w", pub, ErrKeyType)
	}
	if k.N.BitLen() < MinPCRKeyBits {
		return fmt.Errorf("RSA key of %d bits, want at least %d: %w", k.N.BitLen(), MinPCRKeyBits, ErrKeyType)
	}
	return nil
}

// PCRKeyFingerprint returns the fingerprint systemd gives the PCR public
// key pub ("pkfp" in .pcrsig): SHA-256 of the key as OpenSSL's
// i2d_PublicKey encodes it, which for RSA is the DER PKCS#1
// RSAPublicKey, not the SubjectPublicKeyInfo.
func PCRKeyFingerprint(pub crypto.PublicKey) ([]byte, error) {
	if err := checkPCRKey(pub); err != nil {
		return nil, err
	}
	fp := sha256.Sum256(x509.MarshalPKCS1PublicKey(pub.(*rsa.PublicKey)))
	return fp[:], nil
}

// PolicyPCRDigest returns the TPM2 policy digest (SHA-256) of a policy
// session after TPM2_PolicyPCR on PCR 11 of the SHA-256 bank having
// value pcr11.
func PolicyPCRDigest(pcr11 []byte) ([]byte, error) {
	if len(pcr11) != sha256.Size {
		return nil, fmt.Errorf("PCR 11 value of %d bytes, want %d", len(pcr11), sha256.Size)
	}
	calc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		return nil, err
	}
	pcrDigest := sha256.Sum256(pcr11)
	cmd := tpm2.PolicyPCR{
		PcrDigest: tpm2.TPM2BDigest{Buffer: pcrDigest[:]},
		Pcrs: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
			Hash:      tpm2.TPMAlgSHA256,
			PCRSelect: tpm2.PCClientCompatible.PCRs(PCRKernelBoot),
		}}},
	}
	if err := cmd.Update(calc); err != nil {
		return nil, fmt.Errorf("compute PolicyPCR digest: %w", err)
	}
	return calc.Hash().Digest, nil
}

// PCRPubKeyPEM returns the .pcrpkey section for the PCR key pub: its
// SubjectPublicKeyInfo as a PEM "PUBLIC KEY" block. pub must be an RSA key
// of at least 2048 bits.
func PCRPubKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	if err := checkPCRKey(pub); err != nil {
		return nil, fmt.Errorf("PCR public key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("PCR public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
