package agentcli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/ingot-linux/ingot/agent"
	"github.com/ingot-linux/ingot/layout"
)

// newConfig is "config show": the machine configuration in force.
func newConfig(e *env) *verb {
	v := newVerb(e, "config", "config show", "Show the machine configuration in force, secrets redacted (on the device)")
	v.long = `Show the machine configuration ingot-init merged from its sources in this
boot (the image's defaults, the ESP's ingot/config.yaml, the ingot.config
credential, a NoCloud seed), with password hashes and secret files
redacted, and why nothing was applied if a source was refused.`
	v.minArgs, v.maxArgs = 1, 1
	v.run = func(_ context.Context, args []string) error {
		if args[0] != "show" {
			return fmt.Errorf("config: unknown subcommand %q (show)", args[0])
		}
		st, err := agent.New(agent.Config{Logger: e.Logger()}).Config()
		if err != nil {
			return err
		}
		if st == nil {
			st = &layout.ConfigStatus{}
		}
		return e.Render(st, func(w io.Writer) {
			printConfigStatus(w, st)
			fmt.Fprint(w, st.Merged)
		})
	}
	return v
}

// printConfigStatus is the configuration's line of ingot status.
func printConfigStatus(w io.Writer, st *layout.ConfigStatus) {
	if st == nil {
		return
	}
	var names []string
	for _, s := range st.Sources {
		names = append(names, s.Name)
	}
	from := strings.Join(names, ", ")
	if from == "" {
		from = "no sources"
	}
	switch {
	case st.Error != "":
		fmt.Fprintf(w, "config   NOT APPLIED: %s\n", st.Error)
	case len(st.Changed) > 0:
		fmt.Fprintf(w, "config   %s (%d changes this boot)\n", from, len(st.Changed))
	default:
		fmt.Fprintf(w, "config   %s (unchanged)\n", from)
	}
	for _, i := range st.Ignored {
		fmt.Fprintf(w, "         %s\n", i)
	}
}
