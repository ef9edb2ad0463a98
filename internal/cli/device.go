package cli

import (
	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/internal/agentcli"
)

// Device verbs: they act on the running ingot system and live in
// agentcli, which the device's own binary (cmd/ingot-agent) runs as
// /usr/bin/ingot. The workstation ingot forwards them, so they work on a
// development machine booted from an ingot image too, with one
// implementation each.

// newDeviceCmds returns one command per device verb that hands its
// arguments, flags and --help included, to agentcli.
func newDeviceCmds(g *globals) []*cobra.Command {
	var cmds []*cobra.Command
	for _, v := range agentcli.Verbs() {
		if v.Name == "config" || v.Name == "ext" {
			continue // under ingot config and ingot ext, with the workstation's verbs
		}
		cmds = append(cmds, &cobra.Command{
			Use:                v.Name,
			Short:              v.Short,
			Hidden:             v.Hidden,
			DisableFlagParsing: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				return agentcli.Execute(cmd.Context(), forwardArgs(g, v.Name, args), g.Stdout, g.Stderr)
			},
		})
	}
	return cmds
}

// forwardArgs puts the global flags given before the verb back in front
// of it.
func forwardArgs(g *globals, verb string, args []string) []string {
	var fwd []string
	if g.JSON {
		fwd = append(fwd, "--json")
	}
	if g.Verbose {
		fwd = append(fwd, "--verbose")
	}
	return append(append(fwd, verb), args...)
}
