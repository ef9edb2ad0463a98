package tpm

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestParseSystemdToken parses a token systemd-cryptenroll 252 made
// (--tpm2-public-key=trust/testdata/keys/pcr.pem
// --tpm2-public-key-pcrs=11 --tpm2-pcrs= on a swtpm) and writes it back.
func TestParseSystemdToken(t *testing.T) {
	tok, err := os.ReadFile("testdata/systemd-252-token.json")
	if err != nil {
		t.Fatal(err)
	}
	tok = bytes.TrimSpace(tok)
	s, err := ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := os.ReadFile("../trust/testdata/keys/pcr.pem")
	if err != nil {
		t.Fatal(err)
	}
	key, err := parsePEMKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := PolicyDigest(key)
	if err != nil {
		t.Fatal(err)
	}
	want := &Sealed{Blob: s.Blob, PrimaryAlg: "ecc", PCRBank: "sha256", PolicyHash: policy, PubKey: pemKey, PubKeyPCRs: []int{11}}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("ParseToken = %+v, want %+v", s, want)
	}
	again, err := s.Token(1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, tok) {
		t.Errorf("Token differs from systemd's:\n got %s\nwant %s", again, tok)
	}
}

// TestParseTokenRejects changes the systemd token one field at a time.
func TestParseTokenRejects(t *testing.T) {
	tok, err := os.ReadFile("testdata/systemd-252-token.json")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := testKeys(t)
	pemA, _ := PCRPubKeyPEM(a.Public())
	with := func(key string, v any) []byte {
		var m map[string]any
		if err := json.Unmarshal(tok, &m); err != nil {
			t.Fatal(err)
		}
		if v == nil {
			delete(m, key)
		} else {
			m[key] = v
		}
		b, _ := json.Marshal(m)
		return b
	}
	var m map[string]any
	json.Unmarshal(tok, &m)
	blob := m["tpm2-blob"].(string)
	tests := []struct {
		name   string
		token  []byte
		target error
		msg    string
	}{
		{"not JSON", []byte("{"), ErrMalformed, "not a JSON object"},
		{"JSON array", []byte("[]"), ErrMalformed, "not a JSON object"},
		{"null", []byte("null"), ErrMalformed, "not a JSON object"},
		{"wrong type", with("type", "systemd-fido2"), ErrMalformed, `token type "systemd-fido2"`},
		{"no type", with("type", nil), ErrMalformed, `no "type" field`},
		{"no keyslots", with("keyslots", []string{}), ErrMalformed, "no keyslot"},
		{"bad keyslot", with("keyslots", []string{"01"}), ErrMalformed, `keyslot "01"`},
		{"keyslot number", with("keyslots", []int{1}), ErrMalformed, `field "keyslots": a JSON number`},
		{"no blob", with("tpm2-blob", nil), ErrMalformed, `no "tpm2-blob" field`},
		{"blob not base64", with("tpm2-blob", "!!"), ErrMalformed, "not base64"},
		{"blob truncated", with("tpm2-blob", blob[:40]), ErrMalformed, "TPM2B_PRIVATE"},
		{"blob array", with("tpm2-blob", []string{blob}), ErrMalformed, `field "tpm2-blob": a JSON array`},
		{"blob trailing bytes", with("tpm2-blob", blob+"AAAA"), ErrMalformed, "trailing bytes"},
		{"policy hash not hex", with("tpm2-policy-hash", "xyz"), ErrMalformed, "not hex"},
		{"policy hash short", with("tpm2-policy-hash", "abcd"), ErrMalformed, "policy hash of 2 bytes"},
		{"policy hash other", with("tpm2-policy-hash", strings.Repeat("ab", 32)), ErrKeyMismatch, "not the one for its PCR public key"},
		{"another PCR key", with("tpm2_pubkey", pemA), ErrKeyMismatch, "not the one for its PCR public key"},
		{"PCR key not PEM", with("tpm2_pubkey", []byte("hello")), ErrMalformed, "PEM"},
		{"no PCR key", with("tpm2_pubkey", nil), ErrMalformed, `no "tpm2_pubkey" field`},
		{"no PCR key PCRs", with("tpm2_pubkey_pcrs", nil), ErrUnsupported, "no signed PCR policy"},
		{"PCR key PCRs out of range", with("tpm2_pubkey_pcrs", []int{24}), ErrMalformed, "PCR 24"},
		{"PCR key PCRs unsorted", with("tpm2_pubkey_pcrs", []int{11, 7}), ErrMalformed, "increasing order"},
		{"PCR key PCRs fractional", with("tpm2_pubkey_pcrs", []float64{11.5}), ErrMalformed, "tpm2_pubkey_pcrs"},
		{"bound PCR also signed for", with("tpm2-pcrs", []int{11}), ErrMalformed, "both bound and signed"},
		{"bound PCRs unsorted", with("tpm2-pcrs", []int{7, 0}), ErrMalformed, "increasing order"},
		{"bound PCR out of range", with("tpm2-pcrs", []int{30}), ErrMalformed, "bound PCRs [30]"},
		{"no tpm2-pcrs", with("tpm2-pcrs", nil), ErrMalformed, `no "tpm2-pcrs" field`},
		{"PIN", with("tpm2-pin", true), ErrUnsupported, "PIN"},
		{"pcrlock", with("tpm2_pcrlock", true), ErrUnsupported, "PCR lock"},
		{"SRK", with("tpm2_srk", "AAAA"), ErrUnsupported, `"tpm2_srk"`},
		{"salt", with("tpm2_salt", "AAAA"), ErrUnsupported, `"tpm2_salt"`},
		{"SHA-1 bank by default", with("tpm2-pcr-bank", nil), ErrUnsupported, `PCR bank "sha1"`},
		{"SHA-384 bank", with("tpm2-pcr-bank", "sha384"), ErrUnsupported, `PCR bank "sha384"`},
		{"primary alg", with("tpm2-primary-alg", "sm2"), ErrUnsupported, `"sm2"`},
	}
	for _, tc := range tests {
		s, err := ParseToken(tc.token)
		if err == nil {
			t.Errorf("%s: ParseToken = %+v, want an error", tc.name, s)
			continue
		}
		if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: ParseToken: %v, want %v saying %q", tc.name, err, tc.target, tc.msg)
		}
	}
	// Fields systemd does not know or that change nothing are ignored.
	if _, err := ParseToken(with("x-ingot", 1)); err != nil {
		t.Errorf("unknown non-tpm2 field: %v", err)
	}
	if _, err := ParseToken(with("tpm2_pcrlock", false)); err != nil {
		t.Errorf("tpm2_pcrlock false: %v", err)
	}
	if _, err := ParseToken(with("tpm2-primary-alg", nil)); err != nil {
		t.Errorf("no tpm2-primary-alg (ECC): %v", err)
	}
}
