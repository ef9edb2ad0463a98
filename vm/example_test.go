package vm_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/ingot-linux/ingot/vm"
)

// A scripted session: boot, log in on the serial console, run a command,
// reboot, and cut the power. (Compiled, not run: it needs an ingot image.)
func Example() {
	ctx := context.Background()
	m, err := vm.Start(ctx, vm.Config{
		Image:  "ingot.raw",
		Output: vm.LineWriter(func(s string) { log.Print("console: ", s) }),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	if _, err := m.WaitFor(ctx, "login: ", 2*time.Minute); err != nil {
		log.Fatal(err) // the error quotes the end of the console
	}
	m.Send("root\n")
	m.WaitFor(ctx, "# ", time.Minute)
	out, code, err := m.Run(ctx, "uname -r", 30*time.Second)
	fmt.Println(out, code, err)

	m.Send("reboot\n")
	m.WaitFor(ctx, "login: ", 2*time.Minute) // the second boot: no login prompt since the first

	m.Kill()       // power cut
	m.Restart(ctx) // power on: same overlay, same NVRAM
	fmt.Println(m.LogPath())
}

// An interactive session on this terminal, as `ingot vm IMAGE` runs it.
// Ctrl-A X quits.
func Example_interactive() {
	m, err := vm.Start(context.Background(), vm.Config{
		Image:       "ingot.raw",
		Interactive: true,
		Stdin:       os.Stdin,
		Output:      os.Stdout,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	if err := m.Wait(); err != nil {
		log.Print(err)
	}
}
