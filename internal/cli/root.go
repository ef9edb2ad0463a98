// Package cli is the ingot command line: one constructor per verb, flags
// turned into library options, results printed as text or --json.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ingot-linux/ingot/internal/clio"

	"github.com/spf13/cobra"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/diskimage/rootfs"
)

// Version is the ingot tool's version, set at link time.
var Version = "dev"

// globals are the flags every verb shares.
type globals struct {
	clio.Output
	stdin io.Reader
}

// progressInterval is how often a progress line is redrawn.
const progressInterval = 100 * time.Millisecond

// newRoot builds the command tree.
func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "ingot",
		Short: "Build, boot and update image-based Linux systems",
		Long: `ingot turns a root filesystem into a verified, reproducible disk image
(/usr as EROFS + dm-verity, a UKI that pins it, systemd-boot, A/B slots)
and boots it.

  ingot image --rootfs ROOTFS --version 1.0.0 --output out/
  ingot vm out/ingot_1.0.0.raw`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.PersistentFlags().BoolVar(&g.JSON, "json", false, "print results as JSON")
	root.PersistentFlags().BoolVarP(&g.Verbose, "verbose", "v", false, "log details to stderr")
	root.SetIn(g.stdin)
	root.SetOut(g.Stdout)
	root.SetErr(g.Stderr)
	root.AddCommand(newImageCmd(g), newVMCmd(g),
		newPushCmd(g), newPullCmd(g), newInspectCmd(g), newKeysCmd(g), newBuildCmd(g), newExtCmd(g), newConfigCmd(g))
	root.AddCommand(newDeviceCmds(g)...)
	return root
}

// Run executes the ingot command line and returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{Output: clio.Output{Stdout: stdout, Stderr: stderr}, stdin: stdin}
	root := newRoot(g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "ingot: %v\n", err)
	return exitCode(err)
}

// Exit codes: 1 for failures, 2 for bad input, 130 for interrupts.
func exitCode(err error) int {
	var in *diskimage.InputError
	switch {
	case errors.Is(err, context.Canceled):
		return 130
	case errors.As(err, &in), errors.Is(err, errUsage), errors.Is(err, errInvalidConfig), errors.Is(err, rootfs.ErrLimit), errors.Is(err, rootfs.ErrTooLarge):
		return 2
	}
	return 1
}

var errUsage = errors.New("usage")
