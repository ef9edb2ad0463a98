package agentcli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// errHelp says --help was asked for; the help has been printed.
var errHelp = flag.ErrHelp

// verb is one entry of the verb table: its help, its flags and what it
// runs. The flag values live in the closure of the constructor that made
// it, as cobra commands keep theirs.
type verb struct {
	name   string
	usage  string // after the program name: "update [SOURCE]"
	short  string
	long   string // default: short
	hidden bool
	// minArgs and maxArgs bound the positional arguments.
	minArgs, maxArgs int
	flags            *flag.FlagSet
	run              func(ctx context.Context, args []string) error
	e                *env
}

// verbs is the table, in the order help shows them.
func verbs(e *env) []*verb {
	return []*verb{
		newUpdate(e), newStatus(e), newRollback(e), newReset(e),
		newConfig(e), newExt(e), newBootMarker(e), newHealth(e), newMeasurePhase(e),
	}
}

// newVerb makes a verb whose flag set already has the global flags.
func newVerb(e *env, name, usage, short string) *verb {
	fs := flag.NewFlagSet(Name+" "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&e.JSON, "json", false, "print results as JSON")
	fs.BoolVar(&e.Verbose, "verbose", false, "log details to stderr")
	fs.BoolVar(&e.Verbose, "v", false, "log details to stderr")
	return &verb{name: name, usage: usage, short: short, flags: fs, e: e}
}

// execute parses args (flags and arguments in any order, as cobra
// allows) and runs the verb; --help prints its help instead.
func (v *verb) execute(ctx context.Context, args []string) error {
	pos, err := parseInterspersed(v.flags, args)
	if errors.Is(err, flag.ErrHelp) {
		v.printHelp(v.e.Stdout)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", v.name, err)
	}
	if len(pos) < v.minArgs || len(pos) > v.maxArgs {
		return fmt.Errorf("%s: %s, received %d (usage: %s %s)", v.name, v.wantArgs(), len(pos), Name, v.usage)
	}
	return v.run(ctx, pos)
}

func (v *verb) wantArgs() string {
	switch {
	case v.maxArgs == 0:
		return "accepts no arguments"
	case v.minArgs == v.maxArgs:
		return fmt.Sprintf("accepts %d arg(s)", v.maxArgs)
	}
	return fmt.Sprintf("accepts %d to %d arg(s)", v.minArgs, v.maxArgs)
}

// parseInterspersed parses flags wherever they are among the arguments
// and returns the arguments; "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// splitVerb parses the global flags before the verb and returns the verb
// and what follows it; no verb (or --help) gives errHelp, --version prints
// the version and gives "".
func splitVerb(e *env, args []string) (string, []string, error) {
	fs := flag.NewFlagSet(Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&e.JSON, "json", false, "")
	fs.BoolVar(&e.Verbose, "verbose", false, "")
	fs.BoolVar(&e.Verbose, "v", false, "")
	showVersion := fs.Bool("version", false, "")
	if err := fs.Parse(args); err != nil {
		return "", nil, err
	}
	if *showVersion {
		fmt.Fprintf(e.Stdout, "%s version %s\n", Name, version())
		return "", nil, nil
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] == "help" && len(rest) == 1 {
		return "", nil, errHelp
	}
	if rest[0] == "help" {
		return rest[1], []string{"--help"}, nil
	}
	return rest[0], rest[1:], nil
}

func printRootHelp(w io.Writer, table []*verb) {
	fmt.Fprintf(w, "%s on the device: the running system's versions, updates and boot entries.\n\nUsage:\n  %s [command]\n\nCommands:\n", Name, Name)
	for _, v := range table {
		if !v.hidden {
			fmt.Fprintf(w, "  %-10s %s\n", v.name, v.short)
		}
	}
	fmt.Fprintf(w, "\nFlags:\n      --json      print results as JSON\n  -v, --verbose   log details to stderr\n      --version   print the version\n\nUse \"%s [command] --help\" for more about a command.\n", Name)
}

// printHelp prints the verb's help in cobra's shape: the long text, the
// usage line, the flags.
func (v *verb) printHelp(w io.Writer) {
	long := v.long
	if long == "" {
		long = v.short
	}
	fmt.Fprintf(w, "%s\n\nUsage:\n  %s %s [flags]\n\nFlags:\n", long, Name, v.usage)
	var lines []flagLine
	v.flags.VisitAll(func(f *flag.Flag) {
		if f.Name == "v" {
			return
		}
		name := "    --" + f.Name
		if f.Name == "verbose" {
			name = "-v, --verbose"
		}
		if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); !isBool {
			name += " string"
		}
		usage := f.Usage
		if f.DefValue != "" && f.DefValue != "false" {
			usage += fmt.Sprintf(" (default %q)", f.DefValue)
		}
		lines = append(lines, flagLine{f.Name, name, usage})
	})
	width := 0
	for _, l := range lines {
		width = max(width, len(l.shown))
	}
	slices.SortFunc(lines, func(a, b flagLine) int { return strings.Compare(a.name, b.name) })
	for _, l := range lines {
		fmt.Fprintf(w, "  %-*s   %s\n", width, l.shown, l.usage)
	}
}

// flagLine is one line of a verb's help: the flag as shown and its usage.
type flagLine struct{ name, shown, usage string }
