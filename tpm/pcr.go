package tpm

import (
	"bytes"
	"fmt"
	"os"
	"slices"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// Device is the kernel's TPM 2.0 resource manager: every open gets its
// own view of transient objects and sessions, so ingot never disturbs
// another user of the TPM.
const Device = "/dev/tpmrm0"

// Open opens the TPM at Device. Without a TPM the error wraps
// fs.ErrNotExist (os.Stat's error).
func Open() (transport.TPMCloser, error) {
	if _, err := os.Stat(Device); err != nil {
		return nil, fmt.Errorf("no TPM: %w", err)
	}
	t, err := linuxtpm.Open(Device)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", Device, err)
	}
	return t, nil
}

// Measure extends PCR pcr of the TPM at Device with data, the way
// systemd-pcrphase measures a boot phase word (see ExtendPCR). It returns
// the names of the banks it extended. Without a TPM the error wraps
// fs.ErrNotExist.
func Measure(pcr int, data []byte) ([]string, error) {
	t, err := Open()
	if err != nil {
		return nil, err
	}
	defer t.Close()
	return ExtendPCR(t, pcr, data)
}

// PCRInUse reports whether any bank of PCR pcr of t has been extended
// since the last reset, that is, holds neither all zeros nor all ones.
func PCRInUse(t transport.TPM, pcr int) (bool, error) {
	_, good, err := pcrBanksOf(t, pcr)
	return len(good) > 0, err
}

type pcrBank struct {
	alg  tpm2.TPMAlgID
	name string
}

// pcrBanks are the hash algorithms ExtendPCR can measure with, in the
// order it lists them.
var pcrBanks = []pcrBank{
	{tpm2.TPMAlgSHA1, "sha1"},
	{tpm2.TPMAlgSHA256, "sha256"},
	{tpm2.TPMAlgSHA384, "sha384"},
	{tpm2.TPMAlgSHA512, "sha512"},
}

// ExtendPCR extends PCR pcr with data in one TPM2_PCR_Extend, as
// systemd's tpm2_extend_bytes does for systemd-pcrphase: each bank gets
// the digest of data in that bank's own algorithm (not a SHA-256 digest
// padded or cut to size). The banks are the "good" ones in systemd's
// sense (tpm2_get_good_pcr_banks): allocated, of an algorithm ingot can
// compute, and with PCR pcr holding neither all zeros nor all ones, that
// is, banks the firmware and systemd-stub measured into. When no bank is
// good, systemd falls back to SHA-256 (or SHA-1 when SHA-256 is not
// allocated); so does ExtendPCR. It returns the names of the extended
// banks.
func ExtendPCR(t transport.TPM, pcr int, data []byte) ([]string, error) {
	allocated, good, err := pcrBanksOf(t, pcr)
	if err != nil {
		return nil, err
	}
	if len(good) == 0 {
		for _, fallback := range []tpm2.TPMAlgID{tpm2.TPMAlgSHA256, tpm2.TPMAlgSHA1} {
			if slices.Contains(allocated, fallback) {
				good = []tpm2.TPMAlgID{fallback}
				break
			}
		}
	}
	if len(good) == 0 {
		return nil, fmt.Errorf("the TPM has neither a SHA-256 nor a SHA-1 bank for PCR %d", pcr)
	}
	var digests []tpm2.TPMTHA
	var names []string
	for _, b := range pcrBanks {
		if !slices.Contains(good, b.alg) {
			continue
		}
		h, err := b.alg.Hash()
		if err != nil {
			return nil, err
		}
		w := h.New()
		w.Write(data)
		digests = append(digests, tpm2.TPMTHA{HashAlg: b.alg, Digest: w.Sum(nil)})
		names = append(names, b.name)
	}
	_, err = tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: digests},
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("extend PCR %d: %w", pcr, err)
	}
	return names, nil
}

// pcrBanksOf returns the banks of PCR pcr that are allocated and of an
// algorithm ingot knows, and those of them that are good: neither all
// zeros nor all ones.
func pcrBanksOf(t transport.TPM, pcr int) (allocated, good []tpm2.TPMAlgID, err error) {
	if pcr < 0 || pcr > 23 {
		return nil, nil, fmt.Errorf("PCR %d is not in 0-23", pcr)
	}
	capRsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, PropertyCount: 1}.Execute(t)
	if err != nil {
		return nil, nil, fmt.Errorf("read the TPM's PCR banks: %w", err)
	}
	sel, err := capRsp.CapabilityData.Data.AssignedPCR()
	if err != nil {
		return nil, nil, fmt.Errorf("read the TPM's PCR banks: %w", err)
	}
	for _, s := range sel.PCRSelections {
		known := slices.ContainsFunc(pcrBanks, func(b pcrBank) bool { return b.alg == s.Hash })
		if !known || !selected(s.PCRSelect, pcr) {
			continue
		}
		allocated = append(allocated, s.Hash)
		v, err := readPCR(t, s.Hash, pcr)
		if err != nil {
			return nil, nil, err
		}
		if !allOf(v, 0x00) && !allOf(v, 0xff) {
			good = append(good, s.Hash)
		}
	}
	return allocated, good, nil
}

// ReadPCR returns the value of PCR pcr in the bank of hash algorithm alg
// ("sha1", "sha256", "sha384" or "sha512").
func ReadPCR(t transport.TPM, alg string, pcr int) ([]byte, error) {
	for _, b := range pcrBanks {
		if b.name == alg {
			return readPCR(t, b.alg, pcr)
		}
	}
	return nil, fmt.Errorf("unknown PCR bank %q", alg)
}

func readPCR(t transport.TPM, alg tpm2.TPMAlgID, pcr int) ([]byte, error) {
	rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash: alg, PCRSelect: tpm2.PCClientCompatible.PCRs(uint(pcr)),
	}}}}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("read PCR %d: %w", pcr, err)
	}
	if len(rsp.PCRValues.Digests) != 1 {
		return nil, fmt.Errorf("read PCR %d: the TPM returned %d values", pcr, len(rsp.PCRValues.Digests))
	}
	return rsp.PCRValues.Digests[0].Buffer, nil
}

// selected reports whether bit pcr is set in a TPMS_PCR_SELECTION bitmap.
func selected(bitmap []byte, pcr int) bool {
	return pcr/8 < len(bitmap) && bitmap[pcr/8]&(1<<(pcr%8)) != 0
}

func allOf(b []byte, v byte) bool {
	return len(b) > 0 && bytes.Count(b, []byte{v}) == len(b)
}
