// Command ingot builds, boots and updates ingot images. See `ingot --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ingot-linux/ingot/builder/sandbox"
	"github.com/ingot-linux/ingot/internal/cli"
)

func main() {
	// ingot build runs each build in a sandbox that re-executes this
	// binary; in that process Main takes over and does not return.
	sandbox.Main()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
