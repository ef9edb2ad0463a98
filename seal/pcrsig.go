package seal

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
)

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
