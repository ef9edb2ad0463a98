package tpm

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// PhaseValue is the predicted PCR 11 value (SHA-256 bank) in a boot phase.
type PhaseValue struct {
	Phase string
	PCR11 []byte
}

// pcrSigEntry is one signed PCR policy in a .pcrsig JSON document, with
// the fields in systemd-measure's order.
type pcrSigEntry struct {
	PCRs []int  `json:"pcrs"`
	PKFP string `json:"pkfp"` // SHA-256 of the DER PKCS#1 public key
	Pol  string `json:"pol"`  // TPM2 PolicyPCR digest
	Sig  string `json:"sig"`  // signature of the policy digest
}

// SignPCRValues returns the .pcrsig JSON document (see trust.PCRSig) for
// already predicted PCR 11 values.
func SignPCRValues(values []PhaseValue, signer crypto.Signer) ([]byte, error) {
	if signer == nil {
		return nil, errors.New("sign PCR policy: no key given")
	}
	if err := checkPCRKey(signer.Public()); err != nil {
		return nil, fmt.Errorf("sign PCR policy: %w", err)
	}
	fp, err := PCRKeyFingerprint(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("sign PCR policy: %w", err)
	}
	entries := make([]pcrSigEntry, 0, len(values))
	for _, v := range values {
		pol, err := PolicyPCRDigest(v.PCR11)
		if err != nil {
			return nil, err
		}
		h := sha256.Sum256(pol)
		sig, err := signer.Sign(rand.Reader, h[:], crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("sign PCR policy for phase %q: %w", v.Phase, err)
		}
		entries = append(entries, pcrSigEntry{
			PCRs: []int{PCRKernelBoot},
			PKFP: hex.EncodeToString(fp),
			Pol:  hex.EncodeToString(pol),
			Sig:  base64.StdEncoding.EncodeToString(sig),
		})
	}
	return json.Marshal(map[string][]pcrSigEntry{"sha256": entries})
}

// signedPolicy is one entry of a .pcrsig document (see trust.PCRSig),
// decoded.
type signedPolicy struct {
	pcrs []int  // sorted
	pkfp []byte // nil if the entry has none
	pol  []byte
	sig  []byte
}

// parsePCRSig returns the signed policies for PCR bank bank in the
// .pcrsig JSON document b.
func parsePCRSig(b []byte, bank string) ([]signedPolicy, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("no signed PCR policies (.pcrsig) given: %w", ErrNoPolicy)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil || doc == nil {
		return nil, fmt.Errorf(".pcrsig is not a JSON object: %w", ErrMalformed)
	}
	raw, ok := doc[bank]
	if !ok {
		return nil, nil
	}
	var entries []struct {
		PCRs []int  `json:"pcrs"`
		PKFP string `json:"pkfp"`
		Pol  string `json:"pol"`
		Sig  string `json:"sig"`
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf(".pcrsig %q: %s: %w", bank, jsonProblem(err), ErrMalformed)
	}
	var out []signedPolicy
	for i, e := range entries {
		var p signedPolicy
		var err error
		bad := func(what string) error {
			return fmt.Errorf(".pcrsig %q entry %d: %s: %w", bank, i, what, ErrMalformed)
		}
		if p.pcrs, err = sortedPCRs(e.PCRs); err != nil {
			return nil, bad(err.Error())
		}
		if e.PKFP != "" {
			if p.pkfp, err = hex.DecodeString(e.PKFP); err != nil {
				return nil, bad("pkfp is not hex")
			}
		}
		if p.pol, err = hex.DecodeString(e.Pol); err != nil || len(p.pol) == 0 {
			return nil, bad("pol is not a hex digest")
		}
		if p.sig, err = base64.StdEncoding.DecodeString(e.Sig); err != nil || len(p.sig) == 0 {
			return nil, bad("sig is not base64")
		}
		out = append(out, p)
	}
	return out, nil
}

// findSignature returns the signature of the entry for pcrs (sorted)
// with policy digest pol, signed by the key of fingerprint fp (entries
// without a fingerprint are tried too; the TPM checks the signature).
func findSignature(entries []signedPolicy, pcrs []int, pol, fp []byte) ([]byte, error) {
	var other []byte
	for _, e := range entries {
		if !slices.Equal(e.pcrs, pcrs) || !bytes.Equal(e.pol, pol) {
			continue
		}
		if e.pkfp != nil && !bytes.Equal(e.pkfp, fp) {
			other = e.pkfp
			continue
		}
		return e.sig, nil
	}
	if other != nil {
		return nil, fmt.Errorf("signed by key %x, not by the sealed-to key %x: %w", other, fp, ErrKeyMismatch)
	}
	return nil, ErrNoPolicy
}

// VerifyPolicySignature checks in software what the TPM checks at
// unsealing: that the .pcrsig document doc holds a signature by pub
// (RSASSA-PKCS1-v1_5 over SHA-256) of the PolicyPCR digest pol for PCR
// PCRKernelBoot in the SHA-256 bank. It reads doc with the parser Unseal
// uses, so a document one refuses the other refuses too. Errors wrap
// ErrMalformed, ErrKeyMismatch (only another key signed pol) or
// ErrNoPolicy.
func VerifyPolicySignature(doc []byte, pub *rsa.PublicKey, pol []byte) error {
	entries, err := parsePCRSig(doc, PCRBankSHA256)
	if err != nil {
		return err
	}
	fp, err := PCRKeyFingerprint(pub)
	if err != nil {
		return err
	}
	digest := sha256.Sum256(pol)
	var last error = ErrNoPolicy
	for {
		sig, err := findSignature(entries, []int{PCRKernelBoot}, pol, fp)
		if err != nil {
			return errors.Join(last, err)
		}
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil {
			return nil
		}
		entries = dropSignature(entries, sig)
		last = fmt.Errorf("a signature of policy %x does not verify: %w", pol, ErrKeyMismatch)
	}
}

// dropSignature returns entries without the one whose signature is sig.
func dropSignature(entries []signedPolicy, sig []byte) []signedPolicy {
	return slices.DeleteFunc(slices.Clone(entries), func(e signedPolicy) bool { return bytes.Equal(e.sig, sig) })
}
