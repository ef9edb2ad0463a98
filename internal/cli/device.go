package cli

import (
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/agent"
	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/oci"
)

// Device verbs: they act on the running ingot system.

func rebootNow() error {
	if err := exec.Command("systemctl", "reboot").Run(); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}

func newUpdateCmd(g *globals) *cobra.Command {
	var (
		reboot, check, channel bool
		allowDowngrade         bool
		confPath               string
	)
	cmd := &cobra.Command{
		Use:   "update [SOURCE]",
		Short: "Install a new version into the other A/B slot (on the device)",
		Long: `Install the update artifact SOURCE (a directory made by ingot image or
ingot pull) into the slot the booted UKI does not use, then put its UKI on the
ESP with three boot tries. Every file's sha256 and the verity root hash are
checked against the manifest and the usrhash inside the new UKI first.

SOURCE is oci://registry/repo:tag (or @sha256:…), an https:// URL of an
artifact directory, or a local directory. With
--channel it comes from /etc/ingot/update.conf (CHANNEL=oci://…), and the
update runs only inside its WINDOW (e.g. WINDOW=02:00-04:00, UTC); this is
what ingot-update.timer runs when it is enabled.

A version older than the running one is refused unless --allow-downgrade;
then the running entry is marked as ingot rollback marks it, so the older
version is the newest entry with tries left and boots next, and the running
one comes back if it fails its three tries. Before anything is downloaded, the sizes the manifest declares are
checked against the slot's partitions, the ESP and the free space.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var source string
			if len(args) == 1 {
				source = args[0]
			}
			if channel {
				conf, err := readUpdateConf(confPath)
				if err != nil {
					return err
				}
				if source == "" {
					source = conf.Channel
				}
				if !conf.InWindow(time.Now()) {
					return g.render(map[string]any{"skipped": "outside the update window " + conf.Window}, func(w io.Writer) {
						fmt.Fprintf(w, "outside the update window %s: nothing to do\n", conf.Window)
					})
				}
			}
			if source == "" {
				return fmt.Errorf("no update source: give SOURCE, or --channel with CHANNEL= in %s", confPath)
			}
			a := agent.New(agent.Config{Logger: g.logger(), Progress: func(step string) {
				fmt.Fprintf(g.stderr, "ingot: update: %s\n", step)
			}})
			avail, err := checkSource(cmd, a, source)
			if err != nil {
				return err
			}
			if !avail.Available && !check && !channel {
				return fmt.Errorf("update to %s: %w", avail.Version, agent.ErrSameVersion)
			}
			if check || !avail.Available {
				return g.render(avail, func(w io.Writer) {
					if avail.Available {
						fmt.Fprintf(w, "update available: %s (running %s)\n", avail.Version, avail.Running)
					} else {
						fmt.Fprintf(w, "up to date: %s\n", avail.Running)
					}
				})
			}
			limits, err := a.UpdateLimits()
			if err != nil {
				return err
			}
			src, cleanup, err := pullSource(cmd, g, source, limits)
			if err != nil {
				return err
			}
			defer cleanup()
			res, err := a.Update(cmd.Context(), src, agent.WithAllowDowngrade(allowDowngrade))
			if err != nil {
				return err
			}
			err = g.render(res, func(w io.Writer) {
				fmt.Fprintf(w, "installed %s into slot %s (was %q); next boot starts it: %s\n", res.Version, res.Slot, res.FromVersion, res.NextBoot)
			})
			if err != nil || !reboot {
				return err
			}
			return rebootNow()
		},
	}
	cmd.Flags().BoolVar(&reboot, "reboot", false, "reboot when done")
	cmd.Flags().BoolVar(&check, "check", false, "only report whether SOURCE has a different version than the one running")
	cmd.Flags().BoolVar(&channel, "channel", false, "follow the channel configured in --config, inside its window")
	cmd.Flags().BoolVar(&allowDowngrade, "allow-downgrade", false, "install a version older than the running one and boot it next (the running entry is marked as a rollback marks it)")
	cmd.Flags().StringVar(&confPath, "config", "/etc/ingot/update.conf", "update channel configuration")
	return cmd
}

// Availability says whether a source holds another version than the
// running one.
type Availability struct {
	Available bool   `json:"available"`
	Version   string `json:"version"`
	UsrHash   string `json:"usrhash"`
	Running   string `json:"running"`
}

// checkSource reads the manifest only (for OCI: no layers are downloaded).
func checkSource(cmd *cobra.Command, a *agent.Agent, source string) (*Availability, error) {
	st, err := a.Running()
	if err != nil {
		return nil, err
	}
	var m *artifact.Manifest
	if strings.HasPrefix(source, "https://") {
		return &Availability{Available: true, Running: st.Version}, nil // known after the download
	}
	if strings.HasPrefix(source, "oci://") {
		info, err := oci.Inspect(cmd.Context(), source)
		if err != nil {
			return nil, err
		}
		m = info.Manifest
	} else {
		art, err := artifact.Open(source)
		if err != nil {
			return nil, err
		}
		m = art.Manifest
	}
	return &Availability{Available: m.UsrHash != st.UsrHash, Version: m.Version, UsrHash: m.UsrHash, Running: st.Version}, nil
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
				if st.Default != "" {
					fmt.Fprintf(w, "default  %s (LoaderEntryDefault)\n", st.Default)
				}
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
