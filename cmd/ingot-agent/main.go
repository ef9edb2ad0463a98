// Command ingot-agent is the ingot a device runs: images install it as
// /usr/bin/ingot, so on the device it is `ingot status`, `ingot update …`,
// `ingot rollback`, `ingot reset` and the verbs systemd runs. It carries
// only those verbs (package agentcli), not the workstation's builder,
// imager or VM driver.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ingot-linux/ingot/internal/agentcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := agentcli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
