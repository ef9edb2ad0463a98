package boot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

// VerityCertPath is where a signed image's initrd carries the certificate
// of its verity key. The initrd is inside the signed UKI, so the
// certificate is as trusted as the kernel.
const VerityCertPath = "/usr/" + layout.TrustDir + "/verity.crt"

// maxSigBytes bounds what is read of a usr-verity-sig partition.
const maxSigBytes = 1 << 20

// verifyUsrSig checks, when the initrd carries a verity certificate, that
// the booted slot's usr-verity-sig partition holds a signature of usrhash by
// that key. usrhash already comes from the signed UKI; the signature is the
// Discoverable Partitions Specification's second, independent pin on /usr,
// and the one that catches an update installed by anything but the agent.
func verifyUsrSig(_ context.Context, s *State) error {
	roots, err := trust.LoadCertificates(s.path(VerityCertPath))
	if errors.Is(err, os.ErrNotExist) {
		return nil // an unsigned image
	}
	if err != nil {
		return fmt.Errorf("load the verity certificate: %w", err)
	}
	if s.SigPart == "" {
		return fmt.Errorf("this image requires a signed /usr, and %s has no usr-verity-sig partition for slot %s", s.Disk, s.Slot)
	}
	blob, err := readSig(s.path(s.SigPart))
	if err != nil {
		return err
	}
	h, err := trust.VerifyRootHashSig(blob, roots)
	if err != nil {
		return fmt.Errorf("usr-verity-sig %s: %w", s.SigPart, err)
	}
	if !bytes.Equal(h, s.Params.UsrHash) {
		return fmt.Errorf("usr-verity-sig %s signs root hash %x, not usrhash %x", s.SigPart, h, s.Params.UsrHash)
	}
	s.logf("usr signature verified (slot %s)", s.Slot)
	return nil
}

// readSig reads a usr-verity-sig partition: the JSON object and the NUL
// padding up to the partition's end (anything else after the object is
// refused by trust.VerifyRootHashSig).
func readSig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSigBytes))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}
