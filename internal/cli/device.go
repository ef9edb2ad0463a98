package cli

import (
	"fmt"
	"io"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/agent"
)

// Device verbs: they act on the running ingot system.

func rebootNow() error {
	if err := exec.Command("systemctl", "reboot").Run(); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}

func newUpdateCmd(g *globals) *cobra.Command {
	var reboot bool
	cmd := &cobra.Command{
		Use:   "update SOURCE",
		Short: "Install a new version into the other A/B slot (on the device)",
		Long: `Install the update artifact SOURCE (a directory made by ingot image or
ingot pull) into the slot the booted UKI does not use, then put its UKI on the
ESP with three boot tries. Every file's sha256 and the verity root hash are
checked against the manifest and the usrhash inside the new UKI first.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, cleanup, err := fetchSource(cmd, g, args[0])
			if err != nil {
				return err
			}
			defer cleanup()
			res, err := agent.New(agent.Config{Logger: g.logger()}).Update(cmd.Context(), src)
			if err != nil {
				return err
			}
			err = g.render(res, func(w io.Writer) {
				fmt.Fprintf(w, "installed %s into slot %s (was %q); next boot starts it\n", res.Version, res.Slot, res.FromVersion)
			})
			if err != nil || !reboot {
				return err
			}
			return rebootNow()
		},
	}
	cmd.Flags().BoolVar(&reboot, "reboot", false, "reboot when done")
	return cmd
}

// fetchSource turns an update source (oci://… or a directory) into a local
// artifact directory.
func fetchSource(cmd *cobra.Command, g *globals, src string) (string, func(), error) {
	return pullSource(cmd, g, src)
}

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the booted version, both slots and the boot entries (on the device)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := agent.New(agent.Config{Logger: g.logger()}).Status()
			if err != nil {
				return err
			}
			return g.render(st, func(w io.Writer) {
				fmt.Fprintf(w, "version  %s (slot %s)\nusrhash  %s\nother    %s\n", st.Version, st.Slot, st.UsrHash, orNone(st.OtherSlotVersion))
				if st.Pending != "" {
					fmt.Fprintf(w, "pending  %s (next boot)\n", st.Pending)
				}
				if st.RolledBack != nil {
					fmt.Fprintf(w, "rolled back from %s: %s\n", st.RolledBack.From, st.RolledBack.Reason)
				}
				for _, e := range st.Entries {
					mark := " "
					if e.Booted {
						mark = "*"
					}
					tries := "blessed"
					if e.TriesLeft >= 0 {
						tries = fmt.Sprintf("%d tries left, %d done", e.TriesLeft, e.TriesDone)
					}
					fmt.Fprintf(w, "%s %-28s %s\n", mark, e.File, tries)
				}
			})
		},
	}
}

func orNone(s string) string {
	if s == "" {
		return "(empty)"
	}
	return s
}

func newRollbackCmd(g *globals) *cobra.Command {
	var reboot bool
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Make the previous version the next boot (on the device)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			to, err := agent.New(agent.Config{Logger: g.logger()}).Rollback()
			if err != nil {
				return err
			}
			err = g.render(map[string]string{"next": to}, func(w io.Writer) { fmt.Fprintf(w, "next boot: %s\n", to) })
			if err != nil || !reboot {
				return err
			}
			return rebootNow()
		},
	}
	cmd.Flags().BoolVar(&reboot, "reboot", false, "reboot when done")
	return cmd
}

func newResetCmd(g *globals) *cobra.Command {
	var reboot bool
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Factory reset: the next boot starts with a fresh root partition (on the device)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := agent.New(agent.Config{Logger: g.logger()}).Reset(); err != nil {
				return err
			}
			err := g.render(map[string]bool{"reset": true}, func(w io.Writer) {
				fmt.Fprintln(w, "the root partition is dropped; the next boot makes a fresh one")
			})
			if err != nil || !reboot {
				return err
			}
			return rebootNow()
		},
	}
	cmd.Flags().BoolVar(&reboot, "reboot", false, "reboot when done")
	return cmd
}
