package trust

import (
	"bytes"
	"crypto"

	"crypto/sha256"

	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/ingot-linux/ingot/format/uki"

	"github.com/ingot-linux/ingot/tpm"
)

// Oldest and newest systemd-stub versions whose PCR 11 measurements
// PredictPCR11 models. Newer versions are assumed to measure as the
// newest known one.
const (
	MinStubVersion    = 252
	NewestStubVersion = 262
)

// DefaultPhases returns the boot phases systemd-measure signs for when
// given none: from entering the initrd to the system being up.
func DefaultPhases() []string {
	return []string{
		"enter-initrd",
		"enter-initrd:leave-initrd",
		"enter-initrd:leave-initrd:sysinit",
		"enter-initrd:leave-initrd:sysinit:ready",
	}
}

// MeasuredSections returns the UKI sections systemd-stub of the given
// systemd version measures into PCR 11, in the order it measures them
// (the order of systemd's UnifiedSection enum, src/fundamental/tpm-pcr.h
// in 252–253, uki.h since 254). .pcrsig is never measured (it signs the
// result); .pcrpkey always is.
//
//	252–253: .linux .osrel .cmdline .initrd .splash .dtb .pcrpkey
//	254–255: .uname and .sbat added after .dtb
//	256–:    .ucode added after .initrd
//
// systemd 257 added .profile, .dtbauto and .hwids and 258 .efifw, which
// make multi-profile and multi-devicetree UKIs; PredictPCR11 refuses UKIs
// that have them.
func MeasuredSections(systemdVersion int) ([]string, error) {
	switch {
	case systemdVersion < MinStubVersion:
		return nil, fmt.Errorf("systemd-stub %d: versions before %d are not supported: %w", systemdVersion, MinStubVersion, ErrUnsupported)
	case systemdVersion < 254:
		return []string{uki.SectionLinux, uki.SectionOSRel, uki.SectionCmdline, uki.SectionInitrd,
			uki.SectionSplash, uki.SectionDTB, uki.SectionPCRPKey}, nil
	case systemdVersion < 256:
		return []string{uki.SectionLinux, uki.SectionOSRel, uki.SectionCmdline, uki.SectionInitrd,
			uki.SectionSplash, uki.SectionDTB, uki.SectionUname, uki.SectionSBAT, uki.SectionPCRPKey}, nil
	}
	return []string{uki.SectionLinux, uki.SectionOSRel, uki.SectionCmdline, uki.SectionInitrd,
		uki.SectionUcode, uki.SectionSplash, uki.SectionDTB, uki.SectionUname, uki.SectionSBAT,
		uki.SectionPCRPKey}, nil
}

// unsupportedSections returns the sections of multi-profile UKIs that a
// stub of the given version understands.
func unsupportedSections(systemdVersion int) []string {
	switch {
	case systemdVersion < 257:
		return nil
	case systemdVersion < 258:
		return []string{".profile", ".dtbauto", ".hwids"}
	}
	return []string{".profile", ".dtbauto", ".hwids", ".efifw"}
}

// PCROptions configure PredictPCR11 and PCRSig. The zero value predicts
// DefaultPhases for the stub's own version.
type PCROptions struct {
	// Phases are the boot phase paths to predict PCR 11 for: each a
	// colon-separated list of the words systemd-pcrphase measures, such
	// as "enter-initrd:leave-initrd"; "" is the state right after the
	// stub. They are normalized and sorted as systemd-measure does. None
	// (nil or empty) means DefaultPhases.
	Phases []string
	// StubVersion is the systemd version of the stub (such as 252); 0
	// means read it from the stub's .sdmagic section.
	StubVersion int
}

// PredictPCR11 returns the PCR 11 values a UKI made by
// uki.Build(w, stub, sections) will have in each boot phase: PCR 11
// starts at zero; systemd-stub extends it, for each measured section
// present (see MeasuredSections; the stub's own sections, such as its
// .sbat, count too), with SHA-256 of the section name including its NUL
// byte and then with SHA-256 of the section contents; then each word of
// the phase path is extended as SHA-256 of the word (without NUL). This
// is what systemd-measure calculate computes, for the sha256 bank.
func PredictPCR11(stub []byte, sections []uki.Section, o PCROptions) ([]tpm.PhaseValue, error) {
	img, err := uki.Open(bytes.NewReader(stub))
	if err != nil {
		return nil, fmt.Errorf("read stub: %w", err)
	}
	all, err := stubSections(img)
	if err != nil {
		return nil, err
	}
	for _, s := range sections {
		if slices.ContainsFunc(all, func(t uki.Section) bool { return t.Name == s.Name }) {
			return nil, fmt.Errorf("section %q given twice (or already in the stub): %w", s.Name, ErrMalformed)
		}
		all = append(all, s)
	}
	return predict(img, all, o)
}

// PredictPCR11UKI returns the PCR 11 values of the built UKI r in each
// boot phase, as PredictPCR11 does for its parts.
func PredictPCR11UKI(r io.ReaderAt, o PCROptions) ([]tpm.PhaseValue, error) {
	img, err := uki.Open(r)
	if err != nil {
		return nil, err
	}
	all, err := stubSections(img)
	if err != nil {
		return nil, err
	}
	return predict(img, all, o)
}

// stubSections returns all sections of img as uki.Sections reading from it.
func stubSections(img *uki.Image) ([]uki.Section, error) {
	var all []uki.Section
	for _, name := range img.Sections() {
		sr, err := img.SectionReader(name)
		if err != nil {
			return nil, err
		}
		all = append(all, uki.Section{Name: name, Reader: sr, Size: sr.Size()})
	}
	return all, nil
}

func predict(img *uki.Image, all []uki.Section, o PCROptions) ([]tpm.PhaseValue, error) {
	version := o.StubVersion
	if version == 0 {
		var err error
		if version, err = StubVersion(img); err != nil {
			return nil, err
		}
	}
	measured, err := MeasuredSections(version)
	if err != nil {
		return nil, err
	}
	for _, s := range all {
		if slices.Contains(unsupportedSections(version), s.Name) {
			return nil, fmt.Errorf("UKI has a %s section (multi-profile UKI): %w", s.Name, ErrUnsupported)
		}
	}
	pcr := make([]byte, sha256.Size)
	for _, name := range measured {
		i := slices.IndexFunc(all, func(s uki.Section) bool { return s.Name == name })
		if i < 0 {
			continue
		}
		nameHash := sha256.Sum256(append([]byte(name), 0))
		pcr = extend(pcr, nameHash[:])
		h := sha256.New()
		if s := all[i]; s.Reader != nil {
			if _, err := io.Copy(h, io.NewSectionReader(s.Reader, 0, s.Size)); err != nil {
				return nil, fmt.Errorf("read section %s: %w", name, err)
			}
		} else {
			h.Write(s.Data)
		}
		pcr = extend(pcr, h.Sum(nil))
	}

	phases := DefaultPhases()
	if len(o.Phases) > 0 {
		phases = normalizePhases(o.Phases)
	}
	values := make([]tpm.PhaseValue, 0, len(phases))
	for _, ph := range phases {
		v := pcr
		for _, word := range strings.Split(ph, ":") {
			if word == "" {
				continue
			}
			h := sha256.Sum256([]byte(word))
			v = extend(v, h[:])
		}
		values = append(values, tpm.PhaseValue{Phase: ph, PCR11: v})
	}
	return values, nil
}

// normalizePhases drops empty words from each phase path, then sorts and
// deduplicates the paths, as systemd-measure does with --phase.
func normalizePhases(in []string) []string {
	out := make([]string, 0, len(in))
	for _, p := range in {
		words := slices.DeleteFunc(strings.Split(p, ":"), func(w string) bool { return w == "" })
		out = append(out, strings.Join(words, ":"))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func extend(pcr, digest []byte) []byte {
	h := sha256.New()
	h.Write(pcr)
	h.Write(digest)
	return h.Sum(nil)
}

// StubVersion returns the systemd major version of the systemd-stub that
// img (a stub or a UKI) is built on, read from its .sdmagic section.
func StubVersion(img *uki.Image) (int, error) {
	b, err := img.Section(".sdmagic")
	if errors.Is(err, uki.ErrNoSection) {
		return 0, fmt.Errorf("stub has no .sdmagic section, so it is not systemd-stub or its version is unknown; set PCROptions.StubVersion: %w", ErrUnsupported)
	}
	if err != nil {
		return 0, err
	}
	// "#### LoaderInfo: systemd-stub 252.39-1~deb12u2 ####"
	const marker = "LoaderInfo: systemd-stub "
	_, rest, ok := bytes.Cut(b, []byte(marker))
	rest = bytes.TrimPrefix(rest, []byte("v"))
	n := 0
	for n < len(rest) && n < 6 && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if !ok || n == 0 {
		return 0, fmt.Errorf("stub .sdmagic %q names no systemd-stub version: %w", bytes.TrimRight(b, "\x00"), ErrUnsupported)
	}
	v, _ := strconv.Atoi(string(rest[:n]))
	return v, nil
}

// PCRSig returns the .pcrsig section for a UKI made by
// uki.Build(w, stub, sections): for each boot phase (see PredictPCR11),
// the TPM2 PolicyPCR digest for PCR 11 (SHA-256 bank) having the
// predicted value, signed with RSASSA-PKCS1-v1_5 over its SHA-256 hash by
// signer, the PCR key, as systemd-measure sign does (and as TPM2_
// PolicyAuthorize checks with an empty policyRef):
//
//	{"sha256":[{"pcrs":[11],"pkfp":"<hex>","pol":"<hex>","sig":"<base64>"},...]}
//
// pkfp is the SHA-256 of the key's DER PKCS#1 RSAPublicKey, as systemd
// computes it (OpenSSL's i2d_PublicKey). The JSON is compact, without a trailing newline. sections must include
// the .pcrpkey section (tpm.PCRPubKeyPEM of the signer's public key), which
// is measured, and not .pcrsig.
func PCRSig(stub []byte, sections []uki.Section, signer crypto.Signer, o PCROptions) ([]byte, error) {
	for _, s := range sections {
		if s.Name == uki.SectionPCRSig {
			return nil, fmt.Errorf("sections already have a %s section", uki.SectionPCRSig)
		}
	}
	values, err := PredictPCR11(stub, sections, o)
	if err != nil {
		return nil, err
	}
	return tpm.SignPCRValues(values, signer)
}
