package agentcli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ingot-linux/ingot/agent"
	"github.com/ingot-linux/ingot/internal/kernel"
	"github.com/ingot-linux/ingot/tpm"
)

// Verbs systemd runs on the device; hidden from help.

// newBootMarker prints the line that says a boot completed. It runs from
// ingot-boot-marker.service after boot-complete.target.
func newBootMarker(e *env) *verb {
	v := newVerb(e, "boot-marker", "boot-marker", "Print the boot-complete marker on the console (run by systemd on the device)")
	v.hidden = true
	v.run = func(context.Context, []string) error {
		a := agent.New(agent.Config{Logger: e.Logger()})
		running, err := a.Running()
		if err != nil {
			return err
		}
		announce(e.Stdout, fmt.Sprintf("ingot: boot complete version=%s slot=%s usrhash=%s\n", running.Version, running.Slot, running.UsrHash))
		// Reaching boot-complete.target is what makes a boot good.
		if blessed, err := a.Bless(); err != nil {
			return fmt.Errorf("bless boot entry: %w", err)
		} else if blessed != "" {
			fmt.Fprintf(e.Stdout, "ingot: blessed %s\n", blessed)
		}
		// A good boot settles what the machine can boot: the extension
		// sets of versions in neither slot go. A failure here is not the
		// boot's.
		if pruned, err := a.ExtPrune(); err != nil {
			fmt.Fprintf(e.Stderr, "ingot: prune extension sets: %v\n", err)
		} else if len(pruned) > 0 {
			fmt.Fprintf(e.Stdout, "ingot: removed the extension sets of %s (in neither slot)\n", strings.Join(pruned, ", "))
		}
		if st, err := a.Status(); err == nil && st.RolledBack != nil {
			announce(e.Stdout, fmt.Sprintf("ingot: rolled back from %s: %s\n", st.RolledBack.From, st.RolledBack.Reason))
		}
		return nil
	}
	return v
}

// announce writes line on the console (when there is one) and on w.
func announce(w io.Writer, line string) {
	if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		fmt.Fprint(c, line)
		c.Close()
	}
	fmt.Fprint(w, line)
}

// newMeasurePhase extends PCR 11 with a boot phase word, as
// systemd-pcrphase does (run by ingot-pcrphase*.service).
func newMeasurePhase(e *env) *verb {
	v := newVerb(e, "measure-phase", "measure-phase WORD", "Measure a boot phase into PCR 11 (run by systemd on the device)")
	v.hidden, v.minArgs, v.maxArgs = true, 1, 1
	v.run = func(_ context.Context, args []string) error {
		banks, err := kernel.Linux{}.MeasurePCR(tpm.PCRKernelBoot, []byte(args[0]))
		if err != nil {
			return fmt.Errorf("measure %s into PCR 11: %w", args[0], err)
		}
		fmt.Fprintf(e.Stdout, "ingot: measured %s into PCR 11 (%s)\n", args[0], strings.Join(banks, ", "))
		return nil
	}
	return v
}

// newHealth runs ingot's own health check (ingot-health.service, before
// boot-complete.target).
func newHealth(e *env) *verb {
	v := newVerb(e, "health", "health", "Check that the running system is the one its boot entry describes (run by systemd on the device)")
	v.hidden = true
	v.run = func(context.Context, []string) error {
		if err := agent.New(agent.Config{Logger: e.Logger()}).Health(); err != nil {
			return err
		}
		fmt.Fprintln(e.Stdout, "ingot: healthy")
		return nil
	}
	return v
}
