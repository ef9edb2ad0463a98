package agentcli

import (
	"context"
	"fmt"
	"io"

	"github.com/ingot-linux/ingot/agent"
)

func newStatus(e *env) *verb {
	v := newVerb(e, "status", "status", "Show the booted version, both slots and the boot entries (on the device)")
	v.run = func(context.Context, []string) error {
		st, err := agent.New(agent.Config{Logger: e.Logger()}).Status()
		if err != nil {
			return err
		}
		return e.Render(st, func(w io.Writer) { printStatus(w, st) })
	}
	return v
}

func printStatus(w io.Writer, st *agent.Status) {
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
	printConfigStatus(w, st.Config)
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
}

func orNone(s string) string {
	if s == "" {
		return "(empty)"
	}
	return s
}

func newRollback(e *env) *verb {
	var reboot bool
	v := newVerb(e, "rollback", "rollback", "Make the previous version the next boot (on the device)")
	v.flags.BoolVar(&reboot, "reboot", false, "reboot when done")
	v.run = func(context.Context, []string) error {
		to, err := agent.New(agent.Config{Logger: e.Logger()}).Rollback()
		if err != nil {
			return err
		}
		err = e.Render(map[string]string{"next": to}, func(w io.Writer) { fmt.Fprintf(w, "next boot: %s\n", to) })
		return rebootIf(reboot, err)
	}
	return v
}

func newReset(e *env) *verb {
	var reboot bool
	v := newVerb(e, "reset", "reset", "Factory reset: the next boot starts with a fresh root partition (on the device)")
	v.flags.BoolVar(&reboot, "reboot", false, "reboot when done")
	v.run = func(context.Context, []string) error {
		if err := agent.New(agent.Config{Logger: e.Logger()}).Reset(); err != nil {
			return err
		}
		err := e.Render(map[string]bool{"reset": true}, func(w io.Writer) {
			fmt.Fprintln(w, "the root partition is dropped; the next boot makes a fresh one")
		})
		return rebootIf(reboot, err)
	}
	return v
}
