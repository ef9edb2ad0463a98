package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/agent"
	"github.com/ingot-linux/ingot/initrd"
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
			var info initrd.BootInfo
			b, err := os.ReadFile("/run/ingot/boot.json")
			if err != nil {
				return fmt.Errorf("read boot record: %w (was this system booted by ingot-init?)", err)
			}
			if err := json.Unmarshal(b, &info); err != nil {
				return fmt.Errorf("parse /run/ingot/boot.json: %w", err)
			}
			version := osReleaseField("/usr/lib/os-release", "IMAGE_VERSION")
			line := fmt.Sprintf("ingot: boot complete version=%s slot=%s usrhash=%s\n", version, info.Slot, info.UsrHash)
			if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
				fmt.Fprint(c, line)
				c.Close()
			}
			fmt.Fprint(g.stdout, line)
			// Reaching boot-complete.target is what makes a boot good.
			a := agent.New(agent.Config{Logger: g.logger()})
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

func osReleaseField(path, key string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}
