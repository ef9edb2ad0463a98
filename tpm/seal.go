// Package tpm is all of ingot that talks to a TPM 2.0 or computes what a
// TPM computes: extending and reading PCRs the way systemd-pcrphase does
// (ExtendPCR, Measure, through the kernel's resource manager at Device),
// the TPM2 policy digests (PolicyPCRDigest, PolicyDigest), the PCR key's
// encodings (.pcrpkey, its fingerprint), the .pcrsig document that signs
// PCR policies (SignPCRValues, VerifyPolicySignature), and sealing a
// secret, such as a LUKS2 keyslot passphrase, under a policy that a
// PCR-signing key authorizes, the scheme of systemd-cryptenroll
// --tpm2-public-key: the TPM releases the secret to whoever shows a
// signature by that key over the TPM2_PolicyPCR digest of the current PCR
// values, as a UKI's .pcrsig section carries (see trust.PCRSig). Updating
// the UKI, and so the PCR 11 values, needs no re-sealing, only a new
// signature by the same key.
//
// It imports nothing of ingot: trust builds PCR 11 predictions and signs
// them with it, ingot-init measures, seals and unseals with it, the agent
// checks that an update still unseals.
//
// Sealing, at install time:
//
//	s, err := tpm.Seal(tpm, secret, pcrKey, PCRKernelBoot)
//	if err != nil { ... }
//	token, err := s.Token(keyslot) // the LUKS2 token JSON
//	// add a LUKS2 keyslot with passphrase tpm.Passphrase(secret)
//
// Unsealing, at boot:
//
//	s, err := tpm.ParseToken(token)
//	if err != nil { ... }
//	secret, err := tpm.Unseal(tpm, s, pcrsig) // pcrsig: the UKI's .pcrsig
//
// # How
//
// The storage primary key is created afresh (transient) under the owner
// hierarchy with systemd's ECC P-256 template (or its RSA-2048 one when
// the TPM lacks ECC), the template systemd uses for tokens without a
// "tpm2_srk" field. It is derived from the owner seed, so it comes out
// the same after every reboot until the TPM is cleared. (systemd 254 and
// later, when enrolling, keep an SRK with the TCG template persistent at
// handle 0x81000001 and record its name in "tpm2_srk"; this package
// neither uses nor needs it.) Like systemd, Seal and Unseal assume the
// owner hierarchy has an empty authorization value.
//
// The secret is a keyedhash sealed-data object under that primary with
// userWithAuth clear, so it can only be used with a policy session,
// whose authPolicy is TPM2_PolicyAuthorize(name of the PCR public key,
// empty policyRef). The PCR public key's TPM name is that of the
// TPM2B_PUBLIC systemd loads it as (see PCRKeyName). To unseal, a policy
// session runs TPM2_PolicyPCR on the bound PCRs; the TPM checks the
// signature over the resulting digest (TPM2_VerifySignature) and
// TPM2_PolicyAuthorize replaces the digest by the authorized one.
//
// Sessions that carry the secret are salted with the primary key and
// encrypt it with AES-128-CFB on the bus (parameter encryption). The
// primary key's public part is taken from the TPM without checking it
// against a known name, so this protects against a passive bus sniffer
// but not against an active interposer.
package tpm

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Errors that callers may act on; the errors returned wrap them. When
// the TPM itself refuses a command (for example TPM_RC_SIGNATURE for a
// signature that is not by the PCR key, or TPM_RC_POLICY_FAIL), the
// error wraps the TPM's response code, a tpm2.TPMRC that errors.Is
// matches against the tpm2.TPMRC* constants.
var (
	// ErrNoPolicy means the signed PCR policies (.pcrsig) have none for
	// the PCR values the TPM holds now: the UKI booted is not the one
	// signed for, or the boot went on to a phase not signed for.
	ErrNoPolicy = errors.New("PCR values not signed for")
	// ErrKeyMismatch means a PCR public key or signature is not by the
	// key the secret was sealed to.
	ErrKeyMismatch = errors.New("not the PCR key the secret is sealed to")
	// ErrMalformed means a token, sealed blob or .pcrsig document cannot
	// be parsed or is inconsistent.
	ErrMalformed = errors.New("malformed input")
	// ErrUnsupported means a well-formed token uses a feature this
	// package does not implement, such as a PIN.
	ErrUnsupported = errors.New("unsupported")
	// ErrBoundPCRs means the PCRs bound directly (Sealed.PCRs) do not
	// have the values they had at sealing time.
	ErrBoundPCRs = errors.New("bound PCRs changed")
	// ErrKeyType means a PCR key is not an RSA key of at least
	// MinPCRKeyBits.
	ErrKeyType = errors.New("unsupported key type")
)

// MaxSecretSize is the largest secret a TPM seals (MAX_SYM_DATA).
// systemd-cryptenroll seals 32 random bytes.
const MaxSecretSize = 128

// Primary key algorithms, as the token's "tpm2-primary-alg" names them.
const (
	PrimaryECC = "ecc"
	PrimaryRSA = "rsa"
)

// PCRBankSHA256 is the only PCR bank, as the token's "tpm2-pcr-bank"
// names it, that Seal binds to and Unseal supports.
const PCRBankSHA256 = "sha256"

// Passphrase returns the LUKS2 keyslot passphrase systemd-cryptsetup
// derives from an unsealed secret: its base64 encoding (standard
// alphabet, padded, no newline). The keyslot a token names must have
// this passphrase for systemd to unlock the volume with the token.
func Passphrase(secret []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(secret))
}

// Seal seals secret (1 to MaxSecretSize bytes) to the TPM so that Unseal
// releases it only with a signature by pcrKey (RSA, at least 2048 bits)
// over the PolicyPCR digest of the current value of PCR pcr (SHA-256
// bank), such as trust.SignPCRValues makes. The signed PCR's value at
// sealing time does not matter.
//
// bound PCRs, if any, are bound to the values they have now, as
// systemd-cryptenroll --tpm2-pcrs does (the token's "tpm2-pcrs"): PCR 7,
// the Secure Boot policy, ties the secret to a boot with Secure Boot on
// and the same keys enrolled.
func Seal(tpm transport.TPM, secret []byte, pcrKey crypto.PublicKey, pcr int, bound ...int) (*Sealed, error) {
	if len(secret) == 0 || len(secret) > MaxSecretSize {
		return nil, fmt.Errorf("seal: secret of %d bytes, want 1 to %d", len(secret), MaxSecretSize)
	}
	if pcr < 0 || pcr > 23 {
		return nil, fmt.Errorf("seal: PCR %d is not in 0-23", pcr)
	}
	bound, err := sortedPCRs(bound)
	if err != nil {
		return nil, fmt.Errorf("seal: bound PCRs: %w", err)
	}
	if slices.Contains(bound, pcr) {
		return nil, fmt.Errorf("seal: PCR %d cannot be both signed for and bound", pcr)
	}
	pemKey, err := PCRPubKeyPEM(pcrKey)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	values, err := readPCRs(tpm, bound)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	policy, err := BoundPolicyDigest(pcrKey, bound, values)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}

	primary, alg, err := createPrimaryAny(tpm)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	defer flush(tpm, primary.ObjectHandle)
	s, err := sealUnder(tpm, primary, secret, policy)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	s.PrimaryAlg, s.PubKey, s.PubKeyPCRs, s.PCRs = alg, pemKey, []int{pcr}, bound
	if _, _, err := s.check(); err != nil {
		return nil, fmt.Errorf("seal: the TPM made an unexpected object: %w", err)
	}
	return s, nil
}

// sealUnder creates the sealed object for secret with authPolicy policy
// under primary and returns it with its policy hash and PCR bank set.
func sealUnder(tpm transport.TPM, primary *primaryKey, secret, policy []byte) (*Sealed, error) {
	// A salted session encrypts the secret on its way to the TPM.
	sess := tpm2.HMAC(tpm2.TPMAlgSHA256, 16,
		tpm2.Salted(primary.ObjectHandle, primary.pub),
		tpm2.AESEncryption(128, tpm2.EncryptIn))
	rsp, err := tpm2.Create{
		ParentHandle: tpm2.AuthHandle{Handle: primary.ObjectHandle, Name: primary.Name, Auth: sess},
		InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
			Data: tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: secret}),
		}},
		InPublic: tpm2.New2B(sealedTemplate(policy)),
	}.Execute(tpm)
	if err != nil {
		return nil, fmt.Errorf("create the sealed object: %w", err)
	}
	return &Sealed{
		Blob:       append(tpm2.Marshal(rsp.OutPrivate), tpm2.Marshal(rsp.OutPublic)...),
		PCRBank:    PCRBankSHA256,
		PolicyHash: policy,
	}, nil
}

// Unseal returns the secret s seals, using the signed PCR policies in
// pcrsig (a .pcrsig JSON document, see trust.PCRSig): the one for the
// PCR bank and PCRs s is bound to, for their current values, and signed
// by the key s is sealed to. Without such a policy the error wraps
// ErrNoPolicy and names the current PCR values; when there is one only
// with a different key fingerprint, ErrKeyMismatch. A signature that
// does not verify is refused by the TPM (tpm2.TPMRCSignature).
func Unseal(tpm transport.TPM, s *Sealed, pcrsig []byte) ([]byte, error) {
	if s == nil {
		return nil, errors.New("unseal: no sealed secret given")
	}
	pub, key, err := s.check()
	if err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}
	entries, err := parsePCRSig(pcrsig, s.PCRBank)
	if err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}
	priv, pubArea, err := splitBlob(s.Blob)
	if err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}

	primary, err := createPrimary(tpm, s.PrimaryAlg)
	if err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}
	defer flush(tpm, primary.ObjectHandle)
	obj, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: primary.ObjectHandle, Name: primary.Name, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    priv,
		InPublic:     pubArea,
	}.Execute(tpm)
	if err != nil {
		return nil, fmt.Errorf("unseal: load the sealed object (made on another TPM, TPM cleared since, or altered?): %w", err)
	}
	defer flush(tpm, obj.ObjectHandle)

	// The session is salted with the primary key and encrypts the
	// secret on its way back from TPM2_Unseal.
	sess, closeSess, err := tpm2.PolicySession(tpm, tpm2.TPMAlgSHA256, 16,
		tpm2.Salted(primary.ObjectHandle, primary.pub),
		tpm2.AESEncryption(128, tpm2.EncryptOut))
	if err != nil {
		return nil, fmt.Errorf("unseal: start a policy session: %w", err)
	}
	defer closeSess()

	pcrs := pcrSelection(s.PubKeyPCRs)
	if _, err := (tpm2.PolicyPCR{PolicySession: sess.Handle(), Pcrs: pcrs}).Execute(tpm); err != nil {
		return nil, fmt.Errorf("unseal: TPM2_PolicyPCR: %w", err)
	}
	pol, err := policyDigest(tpm, sess.Handle())
	if err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}
	fp, err := PCRKeyFingerprint(key)
	if err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}
	sig, err := findSignature(entries, s.PubKeyPCRs, pol, fp)
	if errors.Is(err, ErrNoPolicy) {
		return nil, fmt.Errorf("unseal: no signed policy matches %s: %w", describePCRs(tpm, s.PubKeyPCRs), err)
	}
	if err != nil {
		return nil, fmt.Errorf("unseal: signed policy for %s: %w", describePCRs(tpm, s.PubKeyPCRs), err)
	}

	ext, err := tpm2.LoadExternal{
		InPublic:  tpm2.New2B(pub),
		Hierarchy: tpm2.TPMRHOwner, // a ticket from the null hierarchy would not do
	}.Execute(tpm)
	if err != nil {
		return nil, fmt.Errorf("unseal: load the PCR public key: %w", err)
	}
	defer flush(tpm, ext.ObjectHandle)
	wantName, err := tpm2.ObjectName(&pub)
	if err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}
	if !bytes.Equal(ext.Name.Buffer, wantName.Buffer) {
		return nil, fmt.Errorf("unseal: the TPM names the PCR public key %x, want %x", ext.Name.Buffer, wantName.Buffer)
	}
	// aHash = H(approvedPolicy || policyRef), policyRef empty.
	aHash := sha256.Sum256(pol)
	ver, err := tpm2.VerifySignature{
		KeyHandle: tpm2.NamedHandle{Handle: ext.ObjectHandle, Name: ext.Name},
		Digest:    tpm2.TPM2BDigest{Buffer: aHash[:]},
		Signature: tpm2.TPMTSignature{
			SigAlg: tpm2.TPMAlgRSASSA,
			Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgRSASSA, &tpm2.TPMSSignatureRSA{
				Hash: tpm2.TPMAlgSHA256,
				Sig:  tpm2.TPM2BPublicKeyRSA{Buffer: sig},
			}),
		},
	}.Execute(tpm)
	if err != nil {
		return nil, fmt.Errorf("unseal: the TPM refuses the signed policy for %s: %w", describePCRs(tpm, s.PubKeyPCRs), err)
	}
	if _, err := (tpm2.PolicyAuthorize{
		PolicySession:  sess.Handle(),
		ApprovedPolicy: tpm2.TPM2BDigest{Buffer: pol},
		KeySign:        ext.Name,
		CheckTicket:    ver.Validation,
	}).Execute(tpm); err != nil {
		return nil, fmt.Errorf("unseal: TPM2_PolicyAuthorize: %w", err)
	}
	if len(s.PCRs) > 0 {
		// The bound PCRs at their current values, after the signed part,
		// in systemd's order.
		if _, err := (tpm2.PolicyPCR{PolicySession: sess.Handle(), Pcrs: pcrSelection(s.PCRs)}).Execute(tpm); err != nil {
			return nil, fmt.Errorf("unseal: TPM2_PolicyPCR of the bound PCRs: %w", err)
		}
	}
	got, err := policyDigest(tpm, sess.Handle())
	if err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}
	if !bytes.Equal(got, s.PolicyHash) {
		if len(s.PCRs) > 0 {
			return nil, fmt.Errorf("unseal: %s are not the values the secret is bound to (Secure Boot turned off, or its keys changed?): %w", describePCRs(tpm, s.PCRs), ErrBoundPCRs)
		}
		return nil, fmt.Errorf("unseal: policy digest %x after TPM2_PolicyAuthorize, want %x: %w", got, s.PolicyHash, ErrKeyMismatch)
	}
	out, err := tpm2.Unseal{
		ItemHandle: tpm2.AuthHandle{Handle: obj.ObjectHandle, Name: obj.Name, Auth: sess},
	}.Execute(tpm)
	if err != nil {
		return nil, fmt.Errorf("unseal: TPM2_Unseal: %w", err)
	}
	return out.OutData.Buffer, nil
}

// PCRKeyTemplate returns the public area systemd loads the RSA PCR public
// key pub as (TPM2_LoadExternal), which determines the key's TPM name
// and so the sealed object's policy: an unrestricted decrypt and sign
// key with userWithAuth, SHA-256 name algorithm, no scheme or symmetric
// algorithm, and the exponent spelled out even when it is the default
// 65537.
func PCRKeyTemplate(pub crypto.PublicKey) (tpm2.TPMTPublic, error) {
	// PCRKeyFingerprint checks for an RSA key of at least 2048 bits.
	if _, err := PCRKeyFingerprint(pub); err != nil {
		return tpm2.TPMTPublic{}, err
	}
	k := pub.(*rsa.PublicKey)
	if k.E <= 0 || int64(k.E) > 1<<32-1 {
		return tpm2.TPMTPublic{}, fmt.Errorf("RSA exponent %d does not fit a TPM: %w", k.E, ErrKeyType)
	}
	n := k.N.Bytes()
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgRSA,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			Decrypt:      true,
			SignEncrypt:  true,
			UserWithAuth: true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme:    tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgNull},
			KeyBits:   tpm2.TPMKeyBits(len(n) * 8),
			Exponent:  uint32(k.E),
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: n}),
	}, nil
}

// PCRKeyName returns the TPM name (SHA-256) of the PCR public key pub
// loaded as PCRKeyTemplate.
func PCRKeyName(pub crypto.PublicKey) (tpm2.TPM2BName, error) {
	t, err := PCRKeyTemplate(pub)
	if err != nil {
		return tpm2.TPM2BName{}, err
	}
	name, err := tpm2.ObjectName(&t)
	if err != nil {
		return tpm2.TPM2BName{}, err
	}
	return *name, nil
}

// PolicyDigest returns the authPolicy of a secret sealed to the PCR
// public key pub: the SHA-256 policy digest of TPM2_PolicyAuthorize with
// PCRKeyName(pub) and an empty policyRef, the token's
// "tpm2-policy-hash".
func PolicyDigest(pub crypto.PublicKey) ([]byte, error) {
	return BoundPolicyDigest(pub, nil, nil)
}

// BoundPolicyDigest returns the authPolicy of a secret sealed to the PCR
// public key pub with the PCRs bound (increasing order) to values (one
// SHA-256 digest each): PolicyDigest(pub) extended by TPM2_PolicyPCR of
// those values. With no bound PCRs it is PolicyDigest(pub).
func BoundPolicyDigest(pub crypto.PublicKey, bound []int, values [][]byte) ([]byte, error) {
	if len(bound) != len(values) {
		return nil, fmt.Errorf("%d bound PCRs with %d values", len(bound), len(values))
	}
	name, err := PCRKeyName(pub)
	if err != nil {
		return nil, err
	}
	calc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		return nil, err
	}
	if err := (tpm2.PolicyAuthorize{KeySign: name}).Update(calc); err != nil {
		return nil, fmt.Errorf("compute PolicyAuthorize digest: %w", err)
	}
	if len(bound) == 0 {
		return calc.Hash().Digest, nil
	}
	h := sha256.New()
	for _, v := range values {
		h.Write(v)
	}
	pcrPolicy := tpm2.PolicyPCR{Pcrs: pcrSelection(bound), PcrDigest: tpm2.TPM2BDigest{Buffer: h.Sum(nil)}}
	if err := pcrPolicy.Update(calc); err != nil {
		return nil, fmt.Errorf("compute PolicyPCR digest: %w", err)
	}
	return calc.Hash().Digest, nil
}

// readPCRs reads the SHA-256 values of pcrs.
func readPCRs(tpm transport.TPM, pcrs []int) ([][]byte, error) {
	values := make([][]byte, len(pcrs))
	for i, p := range pcrs {
		v, err := ReadPCR(tpm, PCRBankSHA256, p)
		if err != nil {
			return nil, fmt.Errorf("read PCR %d: %w", p, err)
		}
		values[i] = v
	}
	return values, nil
}

// sealedTemplate is the public area of the sealed object, as systemd
// makes it: a keyedhash data object that only the policy unlocks.
func sealedTemplate(policy []byte) tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgKeyedHash,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:    true,
			FixedParent: true,
		},
		AuthPolicy: tpm2.TPM2BDigest{Buffer: policy},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{
			Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BDigest{Buffer: make([]byte, sha256.Size)}),
	}
}

// primaryTemplate returns systemd's template for the transient storage
// primary key (tpm2_get_legacy_template; before systemd 254 the only
// one): a restricted decryption key with AES-128-CFB, userWithAuth and
// dictionary-attack protection, and an empty unique field. It differs
// from the TCG SRK template (tpm2.ECCSRKTemplate) in noDA and unique, so
// gives a different key.
func primaryTemplate(alg string) (tpm2.TPMTPublic, error) {
	attrs := tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		Restricted:          true,
		Decrypt:             true,
	}
	sym := tpm2.TPMTSymDefObject{
		Algorithm: tpm2.TPMAlgAES,
		KeyBits:   tpm2.NewTPMUSymKeyBits(tpm2.TPMAlgAES, tpm2.TPMKeyBits(128)),
		Mode:      tpm2.NewTPMUSymMode(tpm2.TPMAlgAES, tpm2.TPMAlgCFB),
	}
	switch alg {
	case PrimaryECC:
		return tpm2.TPMTPublic{
			Type:             tpm2.TPMAlgECC,
			NameAlg:          tpm2.TPMAlgSHA256,
			ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
				Symmetric: sym,
				Scheme:    tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
				CurveID:   tpm2.TPMECCNistP256,
				KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
			}),
			Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
		}, nil
	case PrimaryRSA:
		return tpm2.TPMTPublic{
			Type:             tpm2.TPMAlgRSA,
			NameAlg:          tpm2.TPMAlgSHA256,
			ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
				Symmetric: sym,
				Scheme:    tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgNull},
				KeyBits:   2048,
			}),
			Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{}),
		}, nil
	}
	return tpm2.TPMTPublic{}, fmt.Errorf("primary key algorithm %q: %w", alg, ErrUnsupported)
}

type primaryKey struct {
	*tpm2.CreatePrimaryResponse
	pub tpm2.TPMTPublic
}

// createPrimary creates the transient storage primary key of algorithm
// alg under the owner hierarchy (with an empty owner password).
func createPrimary(tpm transport.TPM, alg string) (*primaryKey, error) {
	template, err := primaryTemplate(alg)
	if err != nil {
		return nil, err
	}
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(template),
	}.Execute(tpm)
	if err != nil {
		return nil, fmt.Errorf("create the %s storage primary key: %w", strings.ToUpper(alg), err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		flush(tpm, rsp.ObjectHandle)
		return nil, fmt.Errorf("read the storage primary key: %w", err)
	}
	return &primaryKey{rsp, *pub}, nil
}

// createPrimaryAny creates the ECC storage primary key, or the RSA one
// when the TPM refuses ECC, as systemd does, and returns its algorithm.
func createPrimaryAny(tpm transport.TPM) (*primaryKey, string, error) {
	p, errECC := createPrimary(tpm, PrimaryECC)
	if errECC == nil {
		return p, PrimaryECC, nil
	}
	var rc tpm2.TPMRC
	if !errors.As(errECC, &rc) {
		return nil, "", errECC // not the TPM refusing ECC
	}
	p, err := createPrimary(tpm, PrimaryRSA)
	if err != nil {
		return nil, "", errors.Join(errECC, err)
	}
	return p, PrimaryRSA, nil
}

// policyDigest returns the current digest of a policy session.
func policyDigest(tpm transport.TPM, h tpm2.TPMHandle) ([]byte, error) {
	rsp, err := tpm2.PolicyGetDigest{PolicySession: h}.Execute(tpm)
	if err != nil {
		return nil, fmt.Errorf("TPM2_PolicyGetDigest: %w", err)
	}
	return rsp.PolicyDigest.Buffer, nil
}

// pcrSelection selects pcrs in the SHA-256 bank.
func pcrSelection(pcrs []int) tpm2.TPMLPCRSelection {
	u := make([]uint, len(pcrs))
	for i, p := range pcrs {
		u[i] = uint(p)
	}
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash:      tpm2.TPMAlgSHA256,
		PCRSelect: tpm2.PCClientCompatible.PCRs(u...),
	}}}
}

// describePCRs returns "PCR 11 = <hex>" for the current values of pcrs
// (SHA-256 bank), for error messages.
func describePCRs(tpm transport.TPM, pcrs []int) string {
	var parts []string
	for _, p := range pcrs {
		v, err := ReadPCR(tpm, PCRBankSHA256, p)
		if err != nil {
			parts = append(parts, fmt.Sprintf("PCR %d = (unreadable: %v)", p, err))
			continue
		}
		parts = append(parts, fmt.Sprintf("PCR %d = %x", p, v))
	}
	return strings.Join(parts, ", ")
}

// flush flushes a transient object or session, ignoring errors: it runs
// on the way out, after the result is settled.
func flush(tpm transport.TPM, h tpm2.TPMHandle) {
	tpm2.FlushContext{FlushHandle: h}.Execute(tpm)
}

// sortedPCRs returns pcrs sorted, or an error if one is out of range or
// repeated.
func sortedPCRs(pcrs []int) ([]int, error) {
	s := slices.Clone(pcrs)
	slices.Sort(s)
	for i, p := range s {
		if p < 0 || p > 23 {
			return nil, fmt.Errorf("PCR %d is not in 0-23", p)
		}
		if i > 0 && s[i-1] == p {
			return nil, fmt.Errorf("PCR %d given twice", p)
		}
	}
	return s, nil
}
