package tpm

import (
	"bytes"
	"os"
	"testing"
)

// FuzzParseToken checks that ParseToken, which reads tokens from disk,
// never panics, and that what it accepts Token writes back to the same
// Sealed.
func FuzzParseToken(f *testing.F) {
	tok, err := os.ReadFile("testdata/systemd-252-token.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.TrimSpace(tok))
	f.Add([]byte(`{"type":"systemd-tpm2","keyslots":["0"],"tpm2-blob":"AAEAAAEA","tpm2-pcrs":[],"tpm2-policy-hash":"00","tpm2_pubkey_pcrs":[11],"tpm2_pubkey":""}`))
	f.Add([]byte(`{"type":"systemd-tpm2","keyslots":["1"],"tpm2-pcrs":[7],"tpm2-pin":true,"tpm2_srk":"AA=="}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseToken(b)
		if err != nil {
			if s != nil {
				t.Fatalf("ParseToken returned %+v and error %v", s, err)
			}
			return
		}
		again, err := s.Token(3)
		if err != nil {
			t.Fatalf("Token of a parsed token: %v", err)
		}
		s2, err := ParseToken(again)
		if err != nil {
			t.Fatalf("ParseToken(Token): %v\n%s", err, again)
		}
		if !sealedEqual(s, s2) {
			t.Fatalf("ParseToken(Token(s)) = %+v, want %+v", s2, s)
		}
	})
}
