package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/agent"
	"github.com/ingot-linux/ingot/internal/sys"
	"github.com/ingot-linux/ingot/tpm"
)

// newBootMarkerCmd prints the line that says a boot completed. It runs on the
// device, from ingot-boot-marker.service after boot-complete.target.
func newBootMarkerCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "boot-marker",
		Short:  "Print the boot-complete marker on the console (run by systemd on the device)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a := agent.New(agent.Config{Logger: g.logger()})
			running, err := a.Running()
			if err != nil {
				return err
			}
			line := fmt.Sprintf("ingot: boot complete version=%s slot=%s usrhash=%s\n", running.Version, running.Slot, running.UsrHash)
			if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
				fmt.Fprint(c, line)
				c.Close()
			}
			fmt.Fprint(g.stdout, line)
			// Reaching boot-complete.target is what makes a boot good.
			if blessed, err := a.Bless(); err != nil {
				return fmt.Errorf("bless boot entry: %w", err)
			} else if blessed != "" {
				fmt.Fprintf(g.stdout, "ingot: blessed %s\n", blessed)
			}
			if st, err := a.Status(); err == nil && st.RolledBack != nil {
				msg := fmt.Sprintf("ingot: rolled back from %s: %s\n", st.RolledBack.From, st.RolledBack.Reason)
				if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
					fmt.Fprint(c, msg)
					c.Close()
				}
				fmt.Fprint(g.stdout, msg)
			}
			return nil
		},
	}
}

// newMeasurePhaseCmd extends PCR 11 with a boot phase word, as
// systemd-pcrphase does (run by ingot-pcrphase*.service on the device).
func newMeasurePhaseCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "measure-phase WORD",
		Short:  "Measure a boot phase into PCR 11 (run by systemd on the device)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			banks, err := sys.Linux{}.MeasurePCR(tpm.PCRKernelBoot, []byte(args[0]))
			if err != nil {
				return fmt.Errorf("measure %s into PCR 11: %w", args[0], err)
			}
			fmt.Fprintf(g.stdout, "ingot: measured %s into PCR 11 (%s)\n", args[0], strings.Join(banks, ", "))
			return nil
		},
	}
}

// newHealthCmd runs ingot's own health check (ingot-health.service, before
// boot-complete.target on the device).
func newHealthCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "health",
		Short:  "Check that the running system is the one its boot entry describes (run by systemd on the device)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := agent.New(agent.Config{Logger: g.logger()}).Health(); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "ingot: healthy")
			return nil
		},
	}
}
