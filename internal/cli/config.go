package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/internal/agentcli"
	"github.com/ingot-linux/ingot/machineconfig"
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
	cmd.AddCommand(newConfigSchemaCmd(g), newConfigValidateCmd(g), &cobra.Command{
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
