package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/internal/agentcli"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/machineconfig"
	"github.com/ingot-linux/ingot/trust"
)

// newConfigCmd is the machine configuration's workstation verbs; show
// runs on the device.
func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Machine configuration: its schema, validation and signing",
		Long: `A machine configuration (YAML, version: 1) sets a machine's hostname,
timezone, users, files, units, network, sysctl and update channel. ingot-init
applies it before systemd starts, from the image's defaults (ingot image
--config), the ESP's ingot/config.yaml, the ingot.config credential and a
NoCloud seed, in that order. See docs/config.md.`,
	}
	cmd.AddCommand(newConfigSchemaCmd(g), newConfigValidateCmd(g), newConfigSignCmd(g), &cobra.Command{
		Use:                "show",
		Short:              "Show the machine configuration in force, secrets redacted (on the device)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return agentcli.Execute(cmd.Context(), forwardArgs(g, "config", append([]string{"show"}, args...)), g.Stdout, g.Stderr)
		},
	})
	return cmd
}

func newConfigSchemaCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the configuration's JSON Schema (for editors and CI)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := g.Stdout.Write(machineconfig.Schema())
			return err
		},
	}
}

func newConfigValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check configuration files; each problem is printed as file:line:column: what is wrong",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			bad := 0
			for _, name := range args {
				ignored, err := validateConfigFile(name)
				for _, line := range ignored {
					fmt.Fprintln(g.Stderr, line)
				}
				if err != nil {
					fmt.Fprintln(g.Stderr, err)
					bad++
				}
			}
			if bad > 0 {
				return fmt.Errorf("%w: %d of %d files", errInvalidConfig, bad, len(args))
			}
			return g.Render(map[string]int{"valid": len(args)}, func(w io.Writer) {
				fmt.Fprintf(w, "%d valid\n", len(args))
			})
		},
	}
}

// errInvalidConfig is a configuration file that does not validate (exit
// code 2, bad input).
var errInvalidConfig = errors.New("invalid configuration")

// validateConfigFile checks one file; ignored names the cloud-config
// keys ingot would not apply.
func validateConfigFile(name string) (ignored []string, err error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	_, ignored, err = machineconfig.ParseAny(name, data)
	return ignored, err
}

func newConfigSignCmd(g *globals) *cobra.Command {
	var keyPath, certPath string
	cmd := &cobra.Command{
		Use:   "sign --key KEY [--cert CERT] FILE",
		Short: "Write FILE.sig, a detached signature for images made with --require-signed-config",
		Long: `Sign a machine configuration (it must validate) with the verity key of
the image's --keys directory: FILE.sig is a DER PKCS#7 detached signature.
Put it next to the file: ingot/config.yaml.sig on the ESP, user-data.sig on
a NoCloud seed, or as the credential ingot.config.sig
(io.systemd.credential.binary:ingot.config.sig=BASE64).`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			sig, err := signConfigFile(args[0], keyPath, certPath)
			if err != nil {
				return err
			}
			return g.Render(map[string]string{"signature": sig}, func(w io.Writer) {
				fmt.Fprintln(w, sig)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyPath, "key", "", "private key (PEM), the image's verity key: KEYS/verity.key")
	f.StringVar(&certPath, "cert", "", "its certificate (default: KEY with .crt for .key)")
	cmd.MarkFlagRequired("key")
	return cmd
}

// signConfigFile writes name.sig, a detached signature of name, if name
// validates, and returns the signature's path.
func signConfigFile(name, keyPath, certPath string) (string, error) {
	if certPath == "" {
		certPath = strings.TrimSuffix(keyPath, ".key") + ".crt"
	}
	key, err := trust.LoadSigningKey(keyPath, certPath)
	if err != nil {
		return "", fmt.Errorf("--key: %w", err)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	if _, _, err := machineconfig.ParseAny(name, data); err != nil {
		return "", fmt.Errorf("%w: %w", errInvalidConfig, err)
	}
	sig, err := trust.SignDetached(data, key.Signer, key.Cert)
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", name, err)
	}
	out := name + layout.ConfigSigSuffix
	if err := os.WriteFile(out, sig, 0o644); err != nil {
		return "", fmt.Errorf("write the signature of %s: %w", name, err)
	}
	return out, nil
}
