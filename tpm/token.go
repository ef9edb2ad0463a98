package tpm

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-tpm/tpm2"
)

// TokenType is the LUKS2 token type systemd-cryptsetup unlocks with a
// TPM.
const TokenType = "systemd-tpm2"

// Sealed is a secret sealed by Seal: what Unseal needs besides the TPM
// and the signed PCR policies. Nothing in it is secret (the TPM
// encrypted the sealed object with its storage key), so it may be kept
// on disk, as the LUKS2 token Token makes.
//
// Its JSON form is the fields of systemd's "systemd-tpm2" LUKS2 token
// (without "type" and "keyslots"; see Token).
type Sealed struct {
	// Blob is the sealed object: its TPM2B_PRIVATE followed by its
	// TPM2B_PUBLIC, as systemd stores them ("tpm2-blob").
	Blob []byte
	// PrimaryAlg is the algorithm of the storage primary key Blob is
	// sealed under: PrimaryECC or PrimaryRSA ("tpm2-primary-alg").
	PrimaryAlg string
	// PCRBank is the PCR bank PubKeyPCRs are read in: PCRBankSHA256
	// ("tpm2-pcr-bank").
	PCRBank string
	// PolicyHash is the sealed object's authPolicy, PolicyDigest of the
	// PCR public key ("tpm2-policy-hash").
	PolicyHash []byte
	// PubKey is the PCR public key as a PEM "PUBLIC KEY" block, as
	// PCRPubKeyPEM makes it ("tpm2_pubkey").
	PubKey []byte
	// PubKeyPCRs are the PCRs, in increasing order, whose values a
	// signature by PubKey must cover ("tpm2_pubkey_pcrs").
	PubKeyPCRs []int
	// PCRs are the PCRs, in increasing order, bound to the values they
	// had at sealing time ("tpm2-pcrs"); none for a policy that only a
	// signature decides.
	PCRs []int
}

// tokenJSON is the systemd-tpm2 LUKS2 token, with the fields in the
// order systemd-cryptenroll writes them. systemd spells the fields
// that came with signed PCR policies with underscores.
type tokenJSON struct {
	Type       string   `json:"type,omitempty"`
	Keyslots   []string `json:"keyslots,omitempty"`
	Blob       string   `json:"tpm2-blob"`
	PCRs       []int    `json:"tpm2-pcrs"`
	PCRBank    string   `json:"tpm2-pcr-bank"`
	PrimaryAlg string   `json:"tpm2-primary-alg"`
	PolicyHash string   `json:"tpm2-policy-hash"`
	PIN        bool     `json:"tpm2-pin"`
	PubKeyPCRs []int    `json:"tpm2_pubkey_pcrs"`
	PubKey     string   `json:"tpm2_pubkey"`
}

// Token returns the "systemd-tpm2" LUKS2 token for s, for the LUKS2
// keyslot keyslot, in systemd-cryptenroll's layout (compact JSON):
//
//	{"type":"systemd-tpm2","keyslots":["1"],"tpm2-blob":"<base64>",
//	 "tpm2-pcrs":[],"tpm2-pcr-bank":"sha256","tpm2-primary-alg":"ecc",
//	 "tpm2-policy-hash":"<hex>","tpm2-pin":false,
//	 "tpm2_pubkey_pcrs":[11],"tpm2_pubkey":"<base64 of the PEM key>"}
//
// The keyslot's passphrase must be Passphrase(secret) for
// systemd-cryptsetup to unlock it with the token.
func (s *Sealed) Token(keyslot int) ([]byte, error) {
	if keyslot < 0 {
		return nil, fmt.Errorf("token: keyslot %d is negative", keyslot)
	}
	t, err := s.tokenJSON()
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	t.Type = TokenType
	t.Keyslots = []string{strconv.Itoa(keyslot)}
	return json.Marshal(t)
}

// MarshalJSON returns the token fields of s (see Token) without "type"
// and "keyslots".
func (s Sealed) MarshalJSON() ([]byte, error) {
	t, err := s.tokenJSON()
	if err != nil {
		return nil, err
	}
	return json.Marshal(t)
}

// UnmarshalJSON reads the token fields of a Sealed, as ParseToken does
// but without requiring "type" and "keyslots".
func (s *Sealed) UnmarshalJSON(b []byte) error {
	parsed, err := parseToken(b, false)
	if err != nil {
		return err
	}
	*s = *parsed
	return nil
}

func (s *Sealed) tokenJSON() (*tokenJSON, error) {
	if s == nil {
		return nil, errors.New("no sealed secret given")
	}
	if _, _, err := s.check(); err != nil {
		return nil, err
	}
	return &tokenJSON{
		Blob:       base64.StdEncoding.EncodeToString(s.Blob),
		PCRs:       append([]int{}, s.PCRs...),
		PCRBank:    s.PCRBank,
		PrimaryAlg: s.PrimaryAlg,
		PolicyHash: hex.EncodeToString(s.PolicyHash),
		PubKeyPCRs: s.PubKeyPCRs,
		PubKey:     base64.StdEncoding.EncodeToString(s.PubKey),
	}, nil
}

// ParseToken reads a "systemd-tpm2" LUKS2 token, such as Token or
// systemd-cryptenroll --tpm2-public-key [--tpm2-pcrs] (without
// --tpm2-with-pin or a PCR lock policy) make. Tokens that need a PIN,
// name a persistent SRK ("tpm2_srk", written by
// systemd 254 and later), use a PCR bank other than SHA-256 or have no
// PCR public key give errors wrapping ErrUnsupported; tokens that
// cannot be parsed or whose parts do not fit together, ErrMalformed (or
// ErrKeyMismatch when the PCR public key is not the one the sealed
// object's policy names).
func ParseToken(b []byte) (*Sealed, error) {
	return parseToken(b, true)
}

// tokenFields are the token's fields this package knows; others that
// start with "tpm2" are refused, as they may tighten the policy.
var tokenFields = []string{
	"type", "keyslots", "tpm2-blob", "tpm2-pcrs", "tpm2-pcr-bank", "tpm2-primary-alg",
	"tpm2-policy-hash", "tpm2-pin", "tpm2_pubkey_pcrs", "tpm2_pubkey", "tpm2_pcrlock",
}

func parseToken(b []byte, whole bool) (*Sealed, error) {
	s, err := parseTokenFields(b, whole)
	if err != nil {
		return nil, fmt.Errorf("parse %s token: %w", TokenType, err)
	}
	if _, _, err := s.check(); err != nil {
		return nil, fmt.Errorf("parse %s token: %w", TokenType, err)
	}
	return s, nil
}

func parseTokenFields(b []byte, whole bool) (*Sealed, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("not a JSON object: %w", ErrMalformed)
	}
	for k := range fields {
		if strings.HasPrefix(k, "tpm2") && !slices.Contains(tokenFields, k) {
			return nil, fmt.Errorf("field %q: %w", k, ErrUnsupported)
		}
	}
	// field decodes the field key into v; it reports whether the field
	// is present and not null.
	field := func(key string, v any) (bool, error) {
		raw, ok := fields[key]
		if !ok || string(raw) == "null" {
			return false, nil
		}
		if err := json.Unmarshal(raw, v); err != nil {
			return false, fmt.Errorf("field %q: %s: %w", key, jsonProblem(err), ErrMalformed)
		}
		return true, nil
	}
	required := func(key string, v any) error {
		ok, err := field(key, v)
		if err == nil && !ok {
			err = fmt.Errorf("no %q field: %w", key, ErrMalformed)
		}
		return err
	}

	if whole {
		var typ string
		if err := required("type", &typ); err != nil {
			return nil, err
		}
		if typ != TokenType {
			return nil, fmt.Errorf("token type %q, want %q: %w", typ, TokenType, ErrMalformed)
		}
		var slots []string
		if err := required("keyslots", &slots); err != nil {
			return nil, err
		}
		if len(slots) == 0 {
			return nil, fmt.Errorf("token names no keyslot: %w", ErrMalformed)
		}
		for _, k := range slots {
			if n, err := strconv.Atoi(k); err != nil || n < 0 || strconv.Itoa(n) != k {
				return nil, fmt.Errorf("keyslot %q is not a keyslot number: %w", k, ErrMalformed)
			}
		}
	}

	s := &Sealed{PCRBank: "sha1", PrimaryAlg: PrimaryECC} // systemd's defaults
	var blob, policy, pubKey string
	var pcrs []int
	var pin, pcrlock bool
	for _, f := range []struct {
		key string
		v   any
	}{{"tpm2-blob", &blob}, {"tpm2-pcrs", &pcrs}, {"tpm2-policy-hash", &policy}} {
		if err := required(f.key, f.v); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		key string
		v   any
	}{{"tpm2-pcr-bank", &s.PCRBank}, {"tpm2-primary-alg", &s.PrimaryAlg}, {"tpm2-pin", &pin}, {"tpm2_pcrlock", &pcrlock}} {
		if _, err := field(f.key, f.v); err != nil {
			return nil, err
		}
	}
	if len(pcrs) > 0 {
		s.PCRs = pcrs
	}
	switch {
	case pin:
		return nil, fmt.Errorf("token needs a PIN (tpm2-pin): %w", ErrUnsupported)
	case pcrlock:
		return nil, fmt.Errorf("token uses a PCR lock policy (tpm2_pcrlock): %w", ErrUnsupported)
	}
	ok, err := field("tpm2_pubkey_pcrs", &s.PubKeyPCRs)
	if err != nil {
		return nil, err
	}
	if !ok || len(s.PubKeyPCRs) == 0 {
		return nil, fmt.Errorf("token has no signed PCR policy (tpm2_pubkey_pcrs): %w", ErrUnsupported)
	}
	if err := required("tpm2_pubkey", &pubKey); err != nil {
		return nil, err
	}

	if s.Blob, err = base64.StdEncoding.DecodeString(blob); err != nil {
		return nil, fmt.Errorf("field \"tpm2-blob\" is not base64: %w", ErrMalformed)
	}
	if s.PolicyHash, err = hex.DecodeString(policy); err != nil {
		return nil, fmt.Errorf("field \"tpm2-policy-hash\" is not hex: %w", ErrMalformed)
	}
	if s.PubKey, err = base64.StdEncoding.DecodeString(pubKey); err != nil {
		return nil, fmt.Errorf("field \"tpm2_pubkey\" is not base64: %w", ErrMalformed)
	}
	return s, nil
}

// check checks that the parts of s fit together and returns the public
// area the PCR public key is loaded as and the key.
func (s *Sealed) check() (tpm2.TPMTPublic, *rsa.PublicKey, error) {
	var none tpm2.TPMTPublic
	if s.PCRBank != PCRBankSHA256 {
		return none, nil, fmt.Errorf("PCR bank %q (only %s is supported): %w", s.PCRBank, PCRBankSHA256, ErrUnsupported)
	}
	if s.PrimaryAlg != PrimaryECC && s.PrimaryAlg != PrimaryRSA {
		return none, nil, fmt.Errorf("primary key algorithm %q: %w", s.PrimaryAlg, ErrUnsupported)
	}
	pcrs, err := sortedPCRs(s.PubKeyPCRs)
	if err != nil {
		return none, nil, fmt.Errorf("PCR public key PCRs: %v: %w", err, ErrMalformed)
	}
	if len(pcrs) == 0 {
		return none, nil, fmt.Errorf("no PCRs to check signed policies for: %w", ErrMalformed)
	}
	for i := range pcrs {
		if pcrs[i] != s.PubKeyPCRs[i] {
			return none, nil, fmt.Errorf("PCR public key PCRs %v not in increasing order: %w", s.PubKeyPCRs, ErrMalformed)
		}
	}
	if len(s.PolicyHash) != 32 {
		return none, nil, fmt.Errorf("policy hash of %d bytes, want 32: %w", len(s.PolicyHash), ErrMalformed)
	}
	bound, err := sortedPCRs(s.PCRs)
	if err != nil || !slices.Equal(bound, s.PCRs) {
		return none, nil, fmt.Errorf("bound PCRs %v: want distinct PCRs 0-23 in increasing order: %w", s.PCRs, ErrMalformed)
	}
	for _, p := range bound {
		if slices.Contains(pcrs, p) {
			return none, nil, fmt.Errorf("PCR %d is both bound and signed for: %w", p, ErrMalformed)
		}
	}
	key, err := parsePEMKey(s.PubKey)
	if err != nil {
		return none, nil, err
	}
	tmpl, err := PCRKeyTemplate(key)
	if err != nil {
		return none, nil, fmt.Errorf("PCR public key: %w", err)
	}
	policy, err := PolicyDigest(key)
	if err != nil {
		return none, nil, fmt.Errorf("PCR public key: %w", err)
	}
	// With bound PCRs the policy also covers their values at sealing
	// time, which the token does not record: the TPM checks it at unseal.
	if len(bound) == 0 && !bytes.Equal(policy, s.PolicyHash) {
		return none, nil, fmt.Errorf("policy hash %x is not the one for its PCR public key (%x): %w", s.PolicyHash, policy, ErrKeyMismatch)
	}
	_, pub, err := splitBlob(s.Blob)
	if err != nil {
		return none, nil, err
	}
	area, err := pub.Contents()
	if err != nil {
		return none, nil, fmt.Errorf("sealed object: %v: %w", err, ErrMalformed)
	}
	switch {
	case area.Type != tpm2.TPMAlgKeyedHash:
		return none, nil, fmt.Errorf("sealed object of type %v, want keyedhash: %w", area.Type, ErrMalformed)
	case area.NameAlg != tpm2.TPMAlgSHA256:
		return none, nil, fmt.Errorf("sealed object's name algorithm %v, want SHA-256: %w", area.NameAlg, ErrMalformed)
	case area.ObjectAttributes.UserWithAuth:
		return none, nil, fmt.Errorf("sealed object can be unsealed without its policy (userWithAuth): %w", ErrMalformed)
	case !bytes.Equal(area.AuthPolicy.Buffer, s.PolicyHash):
		return none, nil, fmt.Errorf("sealed object's policy %x is not the token's %x: %w", area.AuthPolicy.Buffer, s.PolicyHash, ErrKeyMismatch)
	}
	return tmpl, key, nil
}

// splitBlob splits a sealed object into its TPM2B_PRIVATE and
// TPM2B_PUBLIC.
func splitBlob(blob []byte) (tpm2.TPM2BPrivate, tpm2.TPM2BPublic, error) {
	var none tpm2.TPM2BPublic
	part := func(b []byte) ([]byte, []byte, bool) {
		if len(b) < 2 {
			return nil, nil, false
		}
		n := int(b[0])<<8 | int(b[1])
		if len(b) < 2+n || n == 0 {
			return nil, nil, false
		}
		return b[2 : 2+n], b[2+n:], true
	}
	priv, rest, ok := part(blob)
	if !ok {
		return tpm2.TPM2BPrivate{}, none, fmt.Errorf("sealed object of %d bytes has no TPM2B_PRIVATE: %w", len(blob), ErrMalformed)
	}
	pub, rest, ok := part(rest)
	if !ok || len(rest) != 0 {
		return tpm2.TPM2BPrivate{}, none, fmt.Errorf("sealed object has no TPM2B_PUBLIC after its TPM2B_PRIVATE, or trailing bytes: %w", ErrMalformed)
	}
	// Parse the public area now, and only accept it if it is all used.
	area, err := tpm2.Unmarshal[tpm2.TPMTPublic](pub)
	if err != nil {
		return tpm2.TPM2BPrivate{}, none, fmt.Errorf("sealed object's public area: %v: %w", err, ErrMalformed)
	}
	if !bytes.Equal(tpm2.Marshal(area), pub) {
		return tpm2.TPM2BPrivate{}, none, fmt.Errorf("sealed object's public area has trailing bytes: %w", ErrMalformed)
	}
	return tpm2.TPM2BPrivate{Buffer: priv}, tpm2.New2B(*area), nil
}

// parsePEMKey parses a PEM "PUBLIC KEY" block holding an RSA key.
func parsePEMKey(b []byte) (*rsa.PublicKey, error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("PCR public key is not one PEM PUBLIC KEY block: %w", ErrMalformed)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PCR public key: %v: %w", err, ErrMalformed)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("PCR public key is a %T, not RSA: %w", k, ErrUnsupported)
	}
	return rk, nil
}

// jsonProblem describes a JSON decoding error without quoting the input.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "a JSON " + te.Value + " where " + te.Type.String() + " is wanted"
	}
	return "invalid JSON"
}
