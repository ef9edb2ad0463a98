// Command ingot-init is PID 1 of ingot's initrd: it verifies and mounts /usr,
// prepares the root partition and /etc, and switches root to systemd. On any
// failure it prints one line naming the step and the cause, then reboots so
// boot counting can fall back to the other version.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ingot-linux/ingot/boot"
	"github.com/ingot-linux/ingot/internal/kernel"
)

func main() {
	console := openConsole()
	defer recovery(console)
	cfg := boot.Config{Sys: kernel.Linux{}, Root: "/", Console: console}
	if f, ok := console.(*os.File); ok && f != os.Stdout {
		cfg.Input = f // a recovery key can be typed on the console
	}
	s, err := boot.Run(context.Background(), cfg)
	fail(console, s, err)
}

// openConsole writes to /dev/console (the kernel gives PID 1 that as its
// stdout when the initramfs has the node).
func openConsole() io.Writer {
	if f, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
		return f
	}
	return os.Stdout
}

func recovery(console io.Writer) {
	if r := recover(); r != nil {
		fail(console, nil, fmt.Errorf("internal error: %v", r))
	}
}

// fail reports err, offers a rescue shell when asked for, and reboots; PID 1
// never exits.
func fail(console io.Writer, s *boot.State, err error) {
	fmt.Fprintf(console, "\ningot-init: FAILED: %v\n", err)
	delay := 10 * time.Second
	panicWait := false
	if s != nil {
		delay = s.Params.RebootDelay
		panicWait = s.Params.Panic < 0
		if s.Params.Debug == "shell" {
			if shErr := boot.RescueShell(s); shErr != nil {
				fmt.Fprintf(console, "ingot-init: no rescue shell: %v\n", shErr)
			}
		}
	}
	if panicWait {
		fmt.Fprintln(console, "ingot-init: panic=0: waiting forever")
		select {}
	}
	fmt.Fprintf(console, "ingot-init: rebooting in %v\n", delay)
	time.Sleep(delay)
	for {
		if err := (kernel.Linux{}).Reboot(); err != nil {
			fmt.Fprintf(console, "ingot-init: reboot: %v\n", err)
		}
		time.Sleep(time.Second)
	}
}
