package cli

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/tpm"
	"github.com/ingot-linux/ingot/trust"
)

// keyInfo describes one key of a key set (stable JSON field names).
type keyInfo struct {
	// Role is PK, KEK, db, verity or pcr.
	Role string `json:"role"`
	// Subject, Serial and the validity are those of the certificate;
	// the PCR key has none.
	Subject   string    `json:"subject,omitempty"`
	Serial    string    `json:"serial,omitempty"`
	NotBefore time.Time `json:"notBefore,omitzero"`
	NotAfter  time.Time `json:"notAfter,omitzero"`
	// SHA256 is the certificate's fingerprint (SHA-256 of its DER), or
	// for the PCR key the "pkfp" systemd puts in .pcrsig.
	SHA256 string `json:"sha256"`
}

// keysResult is what keys init and keys show print.
type keysResult struct {
	Dir   string    `json:"dir"`
	Files []string  `json:"files"`
	Keys  []keyInfo `json:"keys"`
}

func newKeysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Make and inspect Secure Boot, PCR and verity signing keys",
		Long: `Make and inspect the keys of ingot's trust chain: the Secure Boot
PK, KEK and db keys with their EFI enrollment files (.esl, .auth), the key
that signs the expected PCR 11 values of UKIs, and the key that signs /usr
verity root hashes.`,
	}
	cmd.AddCommand(newKeysInitCmd(g), newKeysShowCmd(g))
	return cmd
}

func newKeysInitCmd(g *globals) *cobra.Command {
	var (
		name  string
		years int
	)
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Make a new key set in DIR",
		Long: `Make random RSA-2048 keys and self-signed certificates in DIR (created
with mode 0700 if missing):

  PK.{key,crt,esl,auth}   Platform Key; PK.auth and KEK.auth are signed by it
  KEK.{key,crt,esl,auth}  Key Exchange Key; db.auth is signed by it
  db.{key,crt,esl,auth}   signs systemd-boot and UKIs (Authenticode)
  pcr.key pcr.pem         signs expected PCR 11 values (.pcrsig/.pcrpkey)
  verity.key verity.crt   signs /usr verity root hashes (usr-verity-sig)

Private keys are written with mode 0600. Nothing is overwritten: init fails
if any of these files exists. The .auth files are what systemd-boot's
secure-boot-enroll writes to the firmware from loader/keys/NAME/ on the ESP.
Keep the .key files secret and backed up: they cannot be made again.`,
		Example: "  ingot keys init keys/",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if years <= 0 {
				return fmt.Errorf("--validity-years %d: want a positive number: %w", years, errUsage)
			}
			dir := args[0]
			k, err := trust.InitKeys(dir, trust.KeyOptions{
				Name:     name,
				Validity: time.Duration(years) * 365 * 24 * time.Hour,
			})
			if err != nil {
				return err
			}
			g.Logger().Debug("made key set", "path", dir)
			res, err := describeKeys(dir, k)
			if err != nil {
				return err
			}
			return g.Render(res, func(w io.Writer) {
				fmt.Fprintf(w, "made keys in %s\n", dir)
				printKeys(w, res)
				fmt.Fprintf(w, "keep the .key files secret and backed up\n")
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "ingot", "name put in the certificate subjects")
	cmd.Flags().IntVar(&years, "validity-years", 10, "years the certificates are valid")
	return cmd
}

func newKeysShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show DIR",
		Short: "Check and describe the key set in DIR",
		Long: `Load the key set in DIR, check that every key matches its certificate
(or pcr.pem), is RSA of at least 2048 bits and that every certificate is
valid now, and print subjects, validity and fingerprints. Secret key
material is never printed.`,
		Example: "  ingot keys show keys/",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := trust.LoadKeys(args[0])
			if err != nil {
				return err
			}
			res, err := describeKeys(args[0], k)
			if err != nil {
				return err
			}
			return g.Render(res, func(w io.Writer) { printKeys(w, res) })
		},
	}
}

// describeKeys lists the public facts about a key set.
func describeKeys(dir string, k *trust.Keys) (*keysResult, error) {
	res := &keysResult{Dir: dir, Files: trust.KeyFiles(dir)}
	for _, c := range []struct {
		role string
		cert *x509.Certificate
	}{{"PK", k.PK.Cert}, {"KEK", k.KEK.Cert}, {"db", k.DB.Cert}, {"verity", k.Verity.Cert}} {
		fp := sha256.Sum256(c.cert.Raw)
		res.Keys = append(res.Keys, keyInfo{
			Role:      c.role,
			Subject:   c.cert.Subject.String(),
			Serial:    fmt.Sprintf("%x", c.cert.SerialNumber),
			NotBefore: c.cert.NotBefore.UTC(),
			NotAfter:  c.cert.NotAfter.UTC(),
			SHA256:    hex.EncodeToString(fp[:]),
		})
	}
	pkfp, err := tpm.PCRKeyFingerprint(k.PCR.Public())
	if err != nil {
		return nil, err
	}
	res.Keys = append(res.Keys, keyInfo{Role: "pcr", SHA256: hex.EncodeToString(pkfp)})
	return res, nil
}

func printKeys(w io.Writer, res *keysResult) {
	for _, k := range res.Keys {
		if k.Subject == "" {
			fmt.Fprintf(w, "%-7s %-40s %-21s sha256 %s\n", k.Role, filepath.Join(res.Dir, k.Role+".pem"), "", k.SHA256)
			continue
		}
		fmt.Fprintf(w, "%-7s %-40s until %-15s sha256 %s\n", k.Role, k.Subject, k.NotAfter.Format(time.DateOnly), k.SHA256)
	}
}
