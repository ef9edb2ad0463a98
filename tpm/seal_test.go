package tpm

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/ingot-linux/ingot/ingottest"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// sealTo seals testSecret on tpm to key for PCR 11 and checks the result.
func sealTo(t *testing.T, tpm transport.TPM, key *rsa.PrivateKey) *Sealed {
	t.Helper()
	s, err := Seal(tpm, testSecret, key.Public(), PCRKernelBoot)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := PolicyDigest(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := PCRPubKeyPEM(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if s.PrimaryAlg != PrimaryECC || s.PCRBank != "sha256" || fmt.Sprint(s.PubKeyPCRs) != "[11]" ||
		!bytes.Equal(s.PolicyHash, policy) || !bytes.Equal(s.PubKey, pemKey) {
		t.Fatalf("Seal = %+v, want ECC primary, sha256 bank, PCR 11, policy %x and the PEM key", s, policy)
	}
	return s
}

// mustNotUnseal checks that Unseal fails with an error wrapping target.
func mustNotUnseal(t *testing.T, tpm transport.TPM, s *Sealed, sig []byte, target error) error {
	t.Helper()
	got, err := Unseal(tpm, s, sig)
	if err == nil || got != nil {
		t.Fatalf("Unseal succeeded (%d bytes), want an error", len(got))
	}
	if !errors.Is(err, target) {
		t.Fatalf("Unseal: %v, want %v", err, target)
	}
	if strings.Contains(err.Error(), string(testSecret)) {
		t.Fatalf("error shows the secret: %v", err)
	}
	return err
}

func TestSealUnseal(t *testing.T) {
	sim := startSwtpm(t, "", false)
	tpm := sim.TPM
	a, _ := testKeys(t)
	if v := pcr11(t, tpm); !bytes.Equal(v, make([]byte, 32)) {
		ingottest.Skip(t, "swtpm's PCR 11 is %x after startup, not zero", v)
	}
	s := sealTo(t, tpm, a)

	v := extend(t, tpm, make([]byte, 32), "enter-initrd", "leave-initrd")
	if got := pcr11(t, tpm); !bytes.Equal(got, v) {
		t.Fatalf("PCR 11 = %x, computed %x", got, v)
	}
	other := pcrValue(make([]byte, 32), "something-else")
	for _, sig := range [][]byte{
		pcrsig(t, a, v),
		pcrsig(t, a, other, v), // the matching entry not first
	} {
		got, err := Unseal(tpm, s, sig)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, testSecret) {
			t.Fatalf("Unseal = %q, want %q", got, testSecret)
		}
	}
	checkNoHandlesLeft(t, tpm)
}

func TestUnsealWrongKey(t *testing.T) {
	tpm := startSwtpm(t, "", false).TPM
	a, b := testKeys(t)
	s := sealTo(t, tpm, a)
	v := extend(t, tpm, make([]byte, 32), "enter-initrd")

	t.Run("signed by another key", func(t *testing.T) {
		err := mustNotUnseal(t, tpm, s, pcrsig(t, b, v), ErrKeyMismatch)
		t.Log(err)
	})
	t.Run("forged: the sealed key's fingerprint, another key's signature", func(t *testing.T) {
		var doc map[string][]map[string]any
		if err := json.Unmarshal(pcrsig(t, a, v), &doc); err != nil {
			t.Fatal(err)
		}
		var other map[string][]map[string]any
		if err := json.Unmarshal(pcrsig(t, b, v), &other); err != nil {
			t.Fatal(err)
		}
		doc["sha256"][0]["sig"] = other["sha256"][0]["sig"]
		forged, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		err = mustNotUnseal(t, tpm, s, forged, tpm2.TPMRCSignature)
		t.Log(err)
	})
	t.Run("forged: the sealed key's fingerprint, no fingerprint, garbage signature", func(t *testing.T) {
		var doc map[string][]map[string]any
		if err := json.Unmarshal(pcrsig(t, a, v), &doc); err != nil {
			t.Fatal(err)
		}
		delete(doc["sha256"][0], "pkfp")
		doc["sha256"][0]["sig"] = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 256))
		forged, _ := json.Marshal(doc)
		mustNotUnseal(t, tpm, s, forged, tpm2.TPMRCSignature)
	})
	t.Run("token pointed at another key", func(t *testing.T) {
		pemB, _ := PCRPubKeyPEM(b.Public())
		policyB, _ := PolicyDigest(b.Public())
		swapped := *s
		swapped.PubKey = pemB
		mustNotUnseal(t, tpm, &swapped, pcrsig(t, b, v), ErrKeyMismatch)
		swapped.PolicyHash = policyB
		mustNotUnseal(t, tpm, &swapped, pcrsig(t, b, v), ErrKeyMismatch)
	})
	t.Run("sealed object's policy rewritten to another key", func(t *testing.T) {
		// The TPM checks the public area against the private one, so
		// this object does not load.
		pemB, _ := PCRPubKeyPEM(b.Public())
		policyB, _ := PolicyDigest(b.Public())
		priv, pub, err := splitBlob(s.Blob)
		if err != nil {
			t.Fatal(err)
		}
		area, _ := pub.Contents()
		area.AuthPolicy.Buffer = policyB
		forged := *s
		forged.Blob = append(tpm2.Marshal(priv), tpm2.Marshal(tpm2.New2B(*area))...)
		forged.PubKey, forged.PolicyHash = pemB, policyB
		err = mustNotUnseal(t, tpm, &forged, pcrsig(t, b, v), tpm2.TPMRCIntegrity)
		t.Log(err)
	})
	// And the right signature still works.
	if got, err := Unseal(tpm, s, pcrsig(t, a, v)); err != nil || !bytes.Equal(got, testSecret) {
		t.Fatalf("Unseal = %q, %v", got, err)
	}
	checkNoHandlesLeft(t, tpm)
}

func TestUnsealPCRChanged(t *testing.T) {
	tpm := startSwtpm(t, "", false).TPM
	a, _ := testKeys(t)
	s := sealTo(t, tpm, a)
	v := extend(t, tpm, make([]byte, 32), "enter-initrd")
	sig := pcrsig(t, a, v)
	if _, err := Unseal(tpm, s, sig); err != nil {
		t.Fatal(err)
	}
	v2 := extend(t, tpm, v, "leave-initrd")
	err := mustNotUnseal(t, tpm, s, sig, ErrNoPolicy)
	if want := fmt.Sprintf("no signed policy matches PCR 11 = %x", v2); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	mustNotUnseal(t, tpm, s, nil, ErrNoPolicy)
	mustNotUnseal(t, tpm, s, []byte(`{"sha1":[]}`), ErrNoPolicy)
	mustNotUnseal(t, tpm, s, []byte(`{"sha256":[{"pcrs":[11],"pol":"00","sig":"AA=="`), ErrMalformed)
	checkNoHandlesLeft(t, tpm)
}

// TestUnsealAfterUpdateAndRestart seals, restarts the TPM (a reboot:
// PCRs reset, primary key recreated from the same owner seed) and
// unseals with a policy signed later for a new UKI's PCR 11 value.
func TestUnsealAfterUpdateAndRestart(t *testing.T) {
	sim := startSwtpm(t, "", false)
	a, _ := testKeys(t)
	s := sealTo(t, sim.TPM, a)
	v1 := extend(t, sim.TPM, make([]byte, 32), "enter-initrd")
	sig1 := pcrsig(t, a, v1)
	if _, err := Unseal(sim.TPM, s, sig1); err != nil {
		t.Fatal(err)
	}
	for i, word := range []string{"new-uki-1", "new-uki-2"} {
		sim.Stop()
		sim = startSwtpm(t, sim.Dir, false)
		if v := pcr11(t, sim.TPM); !bytes.Equal(v, make([]byte, 32)) {
			t.Fatalf("restart %d: PCR 11 = %x, not reset", i, v)
		}
		v := extend(t, sim.TPM, make([]byte, 32), word, "enter-initrd")
		sig := pcrsig(t, a, v)
		got, err := Unseal(sim.TPM, s, sig)
		if err != nil {
			t.Fatalf("restart %d: %v", i, err)
		}
		if !bytes.Equal(got, testSecret) {
			t.Fatalf("restart %d: Unseal = %q", i, got)
		}
		mustNotUnseal(t, sim.TPM, s, sig1, ErrNoPolicy)
	}
	// A fresh TPM (another owner seed) cannot load the object at all.
	other := startSwtpm(t, "", false)
	v := extend(t, other.TPM, make([]byte, 32), "enter-initrd")
	mustNotUnseal(t, other.TPM, s, pcrsig(t, a, v), tpm2.TPMRCIntegrity)
}

func TestTokenRoundTrip(t *testing.T) {
	tpm := startSwtpm(t, "", false).TPM
	a, _ := testKeys(t)
	s := sealTo(t, tpm, a)
	tok, err := s.Token(2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(tok, []byte(`{"type":"systemd-tpm2","keyslots":["2"],"tpm2-blob":"`)) ||
		!bytes.Contains(tok, []byte(`"tpm2-pcrs":[],"tpm2-pcr-bank":"sha256","tpm2-primary-alg":"ecc","tpm2-policy-hash":"`)) ||
		!bytes.Contains(tok, []byte(`"tpm2-pin":false,"tpm2_pubkey_pcrs":[11],"tpm2_pubkey":"`)) {
		t.Errorf("token not in systemd-cryptenroll's layout: %s", tok)
	}
	parsed, err := ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !sealedEqual(parsed, s) {
		t.Fatalf("ParseToken(Token) = %+v, want %+v", parsed, s)
	}
	v := extend(t, tpm, make([]byte, 32), "enter-initrd")
	got, err := Unseal(tpm, parsed, pcrsig(t, a, v))
	if err != nil || !bytes.Equal(got, testSecret) {
		t.Fatalf("Unseal(ParseToken(Token)) = %q, %v", got, err)
	}

	// Sealed's own JSON is the token without type and keyslots.
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"tpm2-blob":`; !bytes.HasPrefix(j, []byte(want)) {
		t.Errorf("json.Marshal(Sealed) = %s, want it to start with %s", j, want)
	}
	var back Sealed
	if err := json.Unmarshal(j, &back); err != nil || !sealedEqual(&back, s) {
		t.Errorf("json round trip: %+v, %v", back, err)
	}
	if _, err := s.Token(-1); err == nil {
		t.Error("Token(-1) accepted")
	}
	checkNoHandlesLeft(t, tpm)
}

// TestPolicyDigestMatchesTPM checks the policy digest and key name
// computed offline against the TPM's: TPM2_LoadExternal's name for the
// PCR key, and a trial session running TPM2_PolicyAuthorize.
func TestPolicyDigestMatchesTPM(t *testing.T) {
	tpm := startSwtpm(t, "", false).TPM
	a, b := testKeys(t)
	for _, key := range []*rsa.PrivateKey{a, b} {
		tmpl, err := PCRKeyTemplate(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		ext, err := tpm2.LoadExternal{InPublic: tpm2.New2B(tmpl), Hierarchy: tpm2.TPMRHOwner}.Execute(tpm)
		if err != nil {
			t.Fatal(err)
		}
		defer flush(tpm, ext.ObjectHandle)
		name, err := PCRKeyName(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ext.Name.Buffer, name.Buffer) {
			t.Errorf("TPM2_LoadExternal name %x, PCRKeyName %x", ext.Name.Buffer, name.Buffer)
		}

		trial := trialDigest(t, tpm, func(h tpm2.TPMHandle) error {
			_, err := tpm2.PolicyAuthorize{
				PolicySession: h,
				KeySign:       ext.Name,
				CheckTicket:   tpm2.TPMTTKVerified{Tag: tpm2.TPMSTVerified, Hierarchy: tpm2.TPMRHNull},
			}.Execute(tpm)
			return err
		})
		offline, err := PolicyDigest(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(trial, offline) {
			t.Errorf("trial session policy %x, PolicyDigest %x", trial, offline)
		}

		// And the PolicyPCR digest the signatures are over.
		trial = trialDigest(t, tpm, func(h tpm2.TPMHandle) error {
			_, err := tpm2.PolicyPCR{PolicySession: h, Pcrs: pcrSelection([]int{11})}.Execute(tpm)
			return err
		})
		want, err := PolicyPCRDigest(pcr11(t, tpm))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(trial, want) {
			t.Errorf("trial session PolicyPCR %x, PolicyPCRDigest %x", trial, want)
		}
	}
}

func TestSealRejects(t *testing.T) {
	tpm := startSwtpm(t, "", false).TPM
	a, _ := testKeys(t)
	small := &rsa.PublicKey{N: new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 1023), big.NewInt(1)), E: 65537}
	tests := []struct {
		name   string
		secret []byte
		key    any
		pcr    int
	}{
		{"empty secret", nil, a.Public(), 11},
		{"secret too long", make([]byte, MaxSecretSize+1), a.Public(), 11},
		{"PCR out of range", testSecret, a.Public(), 24},
		{"1024-bit key", testSecret, small, 11},
		{"no key", testSecret, nil, 11},
	}
	for _, tc := range tests {
		if s, err := Seal(tpm, tc.secret, tc.key, tc.pcr); err == nil {
			t.Errorf("%s: Seal = %+v, want an error", tc.name, s)
		}
	}
	if s, err := Seal(tpm, make([]byte, MaxSecretSize), a.Public(), 7); err != nil || fmt.Sprint(s.PubKeyPCRs) != "[7]" {
		t.Errorf("Seal of %d bytes to PCR 7 = %+v, %v", MaxSecretSize, s, err)
	}
	if _, err := Unseal(tpm, nil, nil); err == nil {
		t.Error("Unseal(nil) succeeded")
	}
	checkNoHandlesLeft(t, tpm)
}

// checkNoHandlesLeft checks that no transient object or session is left
// loaded in the TPM.
func checkNoHandlesLeft(t *testing.T, tpm transport.TPM) {
	t.Helper()
	for _, first := range []tpm2.TPMHandle{0x80000000, 0x02000000, 0x03000000} {
		rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(first), PropertyCount: 64}.Execute(tpm)
		if err != nil {
			t.Fatal(err)
		}
		h, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range h.Handle {
			if uint32(x)>>24 == uint32(first)>>24 {
				t.Errorf("handle %#x left in the TPM", uint32(x))
			}
		}
	}
}

// trialDigest returns the policy digest of a trial session after
// policy.
func trialDigest(t *testing.T, tpm transport.TPM, policy func(tpm2.TPMHandle) error) []byte {
	t.Helper()
	sess, closeSess, err := tpm2.PolicySession(tpm, tpm2.TPMAlgSHA256, 16, tpm2.Trial())
	if err != nil {
		t.Fatal(err)
	}
	defer closeSess()
	if err := policy(sess.Handle()); err != nil {
		t.Fatal(err)
	}
	d, err := policyDigest(tpm, sess.Handle())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func sealedEqual(a, b *Sealed) bool {
	return bytes.Equal(a.Blob, b.Blob) && a.PrimaryAlg == b.PrimaryAlg && a.PCRBank == b.PCRBank &&
		bytes.Equal(a.PolicyHash, b.PolicyHash) && bytes.Equal(a.PubKey, b.PubKey) &&
		fmt.Sprint(a.PubKeyPCRs) == fmt.Sprint(b.PubKeyPCRs)
}

// TestRSAPrimary seals under the RSA storage primary key, which Seal
// uses on TPMs without ECC, and unseals.
func TestRSAPrimary(t *testing.T) {
	tpm := startSwtpm(t, "", false).TPM
	a, _ := testKeys(t)
	primary, err := createPrimary(tpm, PrimaryRSA)
	if err != nil {
		t.Fatal(err)
	}
	policy, _ := PolicyDigest(a.Public())
	s, err := sealUnder(tpm, primary, testSecret, policy)
	flush(tpm, primary.ObjectHandle)
	if err != nil {
		t.Fatal(err)
	}
	s.PrimaryAlg, s.PubKeyPCRs = PrimaryRSA, []int{11}
	s.PubKey, _ = PCRPubKeyPEM(a.Public())
	v := extend(t, tpm, make([]byte, 32), "enter-initrd")
	got, err := Unseal(tpm, s, pcrsig(t, a, v))
	if err != nil || !bytes.Equal(got, testSecret) {
		t.Fatalf("Unseal = %q, %v", got, err)
	}
	// Under the ECC primary key the object does not load.
	s.PrimaryAlg = PrimaryECC
	mustNotUnseal(t, tpm, s, pcrsig(t, a, v), tpm2.TPMRCIntegrity)
	checkNoHandlesLeft(t, tpm)
}

// recordingTPM keeps every command and response.
type recordingTPM struct {
	transport.TPM
	wire bytes.Buffer
}

func (r *recordingTPM) Send(cmd []byte) ([]byte, error) {
	r.wire.Write(cmd)
	rsp, err := r.TPM.Send(cmd)
	r.wire.Write(rsp)
	return rsp, err
}

// TestSecretNotOnTheBus checks that the secret crosses between the
// TPM and the host only encrypted, when sealing and unsealing.
func TestSecretNotOnTheBus(t *testing.T) {
	tpm := &recordingTPM{TPM: startSwtpm(t, "", false).TPM}
	a, _ := testKeys(t)
	secret := []byte("a secret that must not be seen on the wire")
	s, err := Seal(tpm, secret, a.Public(), 11)
	if err != nil {
		t.Fatal(err)
	}
	v := extend(t, tpm, make([]byte, 32), "enter-initrd")
	got, err := Unseal(tpm, s, pcrsig(t, a, v))
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Unseal = %q, %v", got, err)
	}
	if bytes.Contains(tpm.wire.Bytes(), secret[:16]) {
		t.Error("the secret crossed the bus in the clear")
	}
}

// TestSealBoundPCR seals with PCR 7 bound to its value (what ingot-init
// does for a sealed root: the Secure Boot state and keys), round-trips
// the token, unseals while PCR 7 holds, and refuses once PCR 7 changes
// (Secure Boot turned off, other keys enrolled), with the signed PCR 11
// policy still valid.
func TestSealBoundPCR(t *testing.T) {
	sim := startSwtpm(t, "", false)
	tpm := sim.TPM
	a, _ := testKeys(t)
	s, err := Seal(tpm, testSecret, a.Public(), PCRKernelBoot, 7)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(s.PCRs) != "[7]" {
		t.Fatalf("bound PCRs %v, want [7]", s.PCRs)
	}
	unbound, err := PolicyDigest(a.Public())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(s.PolicyHash, unbound) {
		t.Fatal("binding PCR 7 did not change the policy")
	}
	tok, err := s.Token(1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(tok), `"tpm2-pcrs":[7]`) {
		t.Fatalf("token does not bind PCR 7: %s", tok)
	}
	parsed, err := ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	v := extend(t, tpm, pcr11(t, tpm), "enter-initrd")
	got, err := Unseal(tpm, parsed, pcrsig(t, a, v))
	if err != nil || !bytes.Equal(got, testSecret) {
		t.Fatalf("Unseal with PCR 7 unchanged: %v", err)
	}
	if _, err := ExtendPCR(tpm, 7, []byte("another Secure Boot state")); err != nil {
		t.Fatal(err)
	}
	err = mustNotUnseal(t, tpm, parsed, pcrsig(t, a, v), ErrBoundPCRs)
	if !strings.Contains(err.Error(), "PCR 7 = ") {
		t.Errorf("error does not name PCR 7's value: %v", err)
	}
}

// TestSealBoundPolicyOffline checks BoundPolicyDigest against the TPM: a
// trial session running PolicyAuthorize's digest then PolicyPCR over the
// current PCR 7 ends at the digest Seal put in the object.
func TestSealBoundPolicyOffline(t *testing.T) {
	sim := startSwtpm(t, "", false)
	tpm := sim.TPM
	a, _ := testKeys(t)
	s, err := Seal(tpm, testSecret, a.Public(), PCRKernelBoot, 7)
	if err != nil {
		t.Fatal(err)
	}
	v7, err := ReadPCR(tpm, PCRBankSHA256, 7)
	if err != nil {
		t.Fatal(err)
	}
	want, err := BoundPolicyDigest(a.Public(), []int{7}, [][]byte{v7})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.PolicyHash, want) {
		t.Fatalf("sealed policy %x, offline %x", s.PolicyHash, want)
	}
	if _, err := BoundPolicyDigest(a.Public(), []int{7}, nil); err == nil {
		t.Fatal("BoundPolicyDigest accepted 1 PCR with 0 values")
	}
	if _, err := Seal(tpm, testSecret, a.Public(), 11, 11); err == nil {
		t.Fatal("Seal accepted PCR 11 both signed and bound")
	}
}
