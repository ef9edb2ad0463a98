package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/ingot-linux/ingot/format/luks2"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/tpm"
	"github.com/ingot-linux/ingot/trust"
)

// ErrSealedRoot says a new UKI could not unlock the machine's sealed root
// partition.
var ErrSealedRoot = errors.New("the new UKI cannot unlock this machine's sealed root partition; booting it would need the recovery key")

// checkSealedRoot refuses a UKI that would not unseal the root partition:
// on a machine whose root partition is LUKS2 with a systemd-tpm2 token,
// the new UKI's .pcrpkey must be the PCR key the root is sealed to, and
// its .pcrsig must carry that key's signature of the policy the UKI gives
// when ingot-init unseals. A plain root (or one without a TPM token) is
// not checked.
func (a *Agent) checkSealedRoot(info *layout.BootInfo, version string, ukiData []byte) error {
	sealed, err := a.sealedRoot(info)
	if err != nil || sealed == nil {
		return err
	}
	pub, err := trust.ParsePublicKey(sealed.PubKey)
	if err != nil {
		return fmt.Errorf("PCR key of the root partition's %s token: %w", tpm.TokenType, err)
	}
	if err := trust.VerifyPCRSig(bytes.NewReader(ukiData), pub, trust.UnsealPhase); err != nil {
		return fmt.Errorf("version %s: %w: %w", version, ErrSealedRoot, err)
	}
	return nil
}

// sealedRoot returns the sealed object of the root partition's
// systemd-tpm2 token, or nil when the root is not sealed to a TPM.
func (a *Agent) sealedRoot(info *layout.BootInfo) (*tpm.Sealed, error) {
	if info.RootPart == "" {
		return nil, nil
	}
	f, err := os.Open(a.path(info.RootPart))
	if err != nil {
		return nil, fmt.Errorf("open root partition: %w", err)
	}
	defer f.Close()
	h, err := luks2.ReadHeader(f)
	if errors.Is(err, luks2.ErrNoHeader) {
		return nil, nil // plain ext4
	}
	if err != nil {
		return nil, fmt.Errorf("root partition %s: %w", info.RootPart, err)
	}
	for _, tok := range h.Tokens {
		if tok.Type == tpm.TokenType {
			s, err := tpm.ParseToken(tok.JSON)
			if err != nil {
				return nil, fmt.Errorf("root partition %s: %w", info.RootPart, err)
			}
			return s, nil
		}
	}
	return nil, nil
}
