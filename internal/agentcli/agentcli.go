// Package agentcli is the command line a device runs as /usr/bin/ingot:
// status, update, rollback, reset and the verbs systemd runs (health,
// boot-marker, measure-phase). It is a table of verbs on the standard
// library's flag package and links neither cobra nor the builder, the
// imager or the VM driver, so the device binary (cmd/ingot-agent) stays
// within its size budget and carries only what a device runs. The
// workstation ingot forwards the same verbs here, so each has one
// implementation.
//
//	os.Exit(agentcli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr))
package agentcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/ingot-linux/ingot/internal/clio"
)

// Name is the program's name on the device and in every message.
const Name = "ingot"

// Verb describes a device verb to a command line that forwards to
// Execute (the workstation ingot lists them in its own help).
type Verb struct {
	Name   string
	Short  string
	Hidden bool
}

// Verbs lists the device verbs in the order help shows them.
func Verbs() []Verb {
	var vs []Verb
	for _, v := range verbs(&env{clio.Output{Stdout: io.Discard, Stderr: io.Discard}}) {
		vs = append(vs, Verb{Name: v.name, Short: v.short, Hidden: v.hidden})
	}
	return vs
}

// Run executes the device command line args (without the program name)
// and returns the process exit code: 0, 1 for failures, 130 when ctx was
// cancelled. A failure is one line on stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := Execute(ctx, args, stdout, stderr)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", Name, err)
	if errors.Is(err, context.Canceled) {
		return 130
	}
	return 1
}

// Execute runs one device verb: args is the verb's name and its flags and
// arguments, optionally preceded by the global flags --json and -v.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	e := &env{clio.Output{Stdout: stdout, Stderr: stderr}}
	table := verbs(e)
	name, rest, err := splitVerb(e, args)
	switch {
	case errors.Is(err, errHelp):
		printRootHelp(stdout, table)
		return nil
	case err != nil:
		return err
	case name == "":
		return nil // --version
	}
	for _, v := range table {
		if v.name == name {
			return v.execute(ctx, rest)
		}
	}
	return fmt.Errorf("unknown command %q for %q", name, Name)
}

// env is what every verb shares: the global flags and where output goes.
type env struct {
	clio.Output
}

// progressInterval is how often a progress line is redrawn (a serial
// console is slow).
const progressInterval = time.Second

// version is the module version this program was built from ("dev" for
// a build outside a module version).
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
