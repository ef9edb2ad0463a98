package diskimage

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/tpm"
	"github.com/ingot-linux/ingot/trust"
)

// signing is what a signer adds to an image; without keys every field
// is empty and pe returns its input.
type signing struct {
	keys       *trust.Keys
	sections   []uki.Section
	loader     []byte
	veritySig  []byte
	loaderConf string
	auth       []struct {
		path string
		data []byte
	}
}

// sign adds .pcrpkey and .pcrsig to the UKI's sections, signs systemd-boot,
// and signs the verity root hash. The UKI itself is signed after assembly
// (pe).
func (g signer) sign(stub []byte, sections []uki.Section, loader, rootHash []byte) (*signing, error) {
	s := &signing{keys: g.keys, sections: sections, loader: loader}
	if g.keys == nil {
		return s, nil
	}
	k := g.keys
	pk, err := tpm.PCRPubKeyPEM(k.PCR.Public())
	if err != nil {
		return nil, err
	}
	s.sections = append(append([]uki.Section{}, sections...), uki.Section{Name: uki.SectionPCRPKey, Data: pk})
	sig, err := trust.PCRSig(stub, s.sections, k.PCR, trust.PCROptions{Phases: g.phases})
	if err != nil {
		return nil, fmt.Errorf("sign PCR 11 policy: %w", err)
	}
	s.sections = append(s.sections, uki.Section{Name: uki.SectionPCRSig, Data: sig})
	if s.loader, err = trust.SignPE(loader, k.DB.Signer, k.DB.Cert); err != nil {
		return nil, fmt.Errorf("sign systemd-boot: %w", err)
	}
	if s.veritySig, err = trust.SignRootHash(rootHash, k.Verity.Signer, k.Verity.Cert); err != nil {
		return nil, err
	}
	// systemd-boot enrolls loader/keys/auto when the firmware is in setup
	// mode (secure-boot-enroll; if-safe needs systemd-boot ≥ 253).
	if g.keyDir != "" {
		s.loaderConf = "secure-boot-enroll if-safe\n"
		for _, name := range []string{"PK", "KEK", "db"} {
			b, err := os.ReadFile(filepath.Join(g.keyDir, name+".auth"))
			if err != nil {
				return nil, fmt.Errorf("read %s.auth for enrollment: %w", name, err)
			}
			s.auth = append(s.auth, struct {
				path string
				data []byte
			}{"loader/keys/auto/" + name + ".auth", b})
		}
	}
	return s, nil
}

// pe Authenticode-signs a PE image with db.
func (s *signing) pe(img []byte) ([]byte, error) {
	if s.keys == nil {
		return img, nil
	}
	return trust.SignPE(img, s.keys.DB.Signer, s.keys.DB.Cert)
}
