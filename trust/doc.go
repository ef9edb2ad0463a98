// Package trust makes and checks the signatures of ingot's trust chain: the
// Secure Boot keys and their EFI enrollment files, Authenticode signatures
// of systemd-boot and UKIs, the signed PCR 11 policy a UKI carries
// (.pcrsig/.pcrpkey), and the signature of a /usr verity root hash
// (usr-verity-sig partition). Private keys are only ever used through
// crypto.Signer, so a hardware token can replace the key files later.
//
// Making keys and signing a UKI:
//
//	keys, err := trust.InitKeys("keys", trust.KeyOptions{Name: "ingot"})
//	if err != nil { ... }
//	// later runs: keys, err := trust.LoadKeys("keys")
//	pkey, err := trust.PCRPubKeyPEM(keys.PCR.Public())
//	if err != nil { ... }
//	sections = append(sections, uki.Section{Name: uki.SectionPCRPKey, Data: pkey})
//	sig, err := trust.PCRSig(stub, sections, keys.PCR, trust.PCROptions{})
//	if err != nil { ... }
//	sections = append(sections, uki.Section{Name: uki.SectionPCRSig, Data: sig})
//	var buf bytes.Buffer
//	if err := uki.Build(&buf, stub, sections); err != nil { ... }
//	signed, err := trust.SignPE(buf.Bytes(), keys.DB.Signer, keys.DB.Cert)
//
// Verifying, on the device:
//
//	err := trust.VerifyPE(ukiBytes, dbCerts)
//	rootHash, err := trust.VerifyRootHashSig(sigPartition, verityCerts)
//
// # Formats
//
// [InitKeys] writes PK, KEK and db (RSA-2048, self-signed X.509, as sbctl
// makes them) with an EFI signature list (.esl, one EFI_CERT_X509 entry) and
// a time-based authenticated variable (.auth: EFI_VARIABLE_AUTHENTICATION_2
// followed by the list) for each: PK signs PK.auth and KEK.auth, KEK signs
// db.auth. Their PKCS#7 signatures have no signed attributes and no embedded
// content, as the UEFI specification asks, and are byte for byte what
// efitools' sign-efi-sig-list writes for the same key and timestamp. These
// are the files systemd-boot's secure-boot-enroll reads from
// loader/keys/NAME/ on the ESP.
//
// [SignPE] writes an Authenticode signature (PKCS#7 SignedData over an
// SpcIndirectDataContent with the SHA-256 image digest) without signed
// attributes, so without a signing time: signing the same image with the
// same key twice gives the same bytes.
//
// [PCRSig] writes what systemd-measure sign writes for the sha256 bank:
//
//	{"sha256":[{"pcrs":[11],"pkfp":"<hex>","pol":"<hex>","sig":"<base64>"},...]}
//
// with one entry per boot phase; see [PredictPCR11] for the measurement
// model and which systemd-stub versions it follows.
//
// [SignRootHash] writes the usr-verity-sig partition content of the UAPI
// Discoverable Partitions Specification, as systemd-repart does:
//
//	{"rootHash":"<hex>","certificateFingerprint":"<hex>","signature":"<base64>"}
//
// padded with NUL bytes to a multiple of 4096. The signature is a detached
// PKCS#7 signature, without signed attributes, of the lowercase hex root
// hash string, which is what the kernel checks when dm-verity is set up
// with a root hash signature (veritysetup --root-hash-signature).
//
// # Verification
//
// [VerifyPE] and [VerifyRootHashSig] accept a signature when its signer
// certificate is one of the given roots or chains to one through
// certificates embedded in the signature. Like firmware and the kernel they
// do not check certificate validity periods.
package trust
