package sandbox_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/builder/sandbox"
	"github.com/ingot-linux/ingot/builder/sandbox/sandboxtest"

	"github.com/ingot-linux/ingot/ingottest"
)

// harden05Role selects what the test binary does in
// TestHarden05NoControllingTerminal: "session" is `ingot build` started
// from a terminal (a session leader whose controlling terminal is a pty and
// whose stdout and stderr are that pty); "probe" is the build inside the
// sandbox, trying to reach a terminal.
const harden05Role = "INGOT_TEST_HARDEN05"

// harden05Typed is what the probe tries to type into the terminal; the
// probe never prints it, so seeing it anywhere means it got through.
const harden05Typed = "harden05-typed\n"

// TestHarden05NoControllingTerminal checks that a sandboxed command cannot
// reach the terminal of the process that started the sandbox: no
// /dev/tty, no terminal on fds 0-2, TIOCSTI types nothing, and a
// terminal-mode change from a background process group cannot stop the
// build with SIGTTOU.
func TestHarden05NoControllingTerminal(t *testing.T) {
	switch os.Getenv(harden05Role) {
	case "probe":
		probeTerminal(os.Stdout)
		return
	case "session":
		runProbe(t)
		return
	}
	sandboxtest.Require(t)
	master, slave := openPTY(t)
	out, err := runInTerminal(t, master, slave)
	if err != nil {
		t.Fatalf("session on a terminal: %v\n%s", err, out)
	}
	if !strings.Contains(out, "probe: done") {
		t.Fatalf("the probe did not finish:\n%s", out)
	}
	if strings.Contains(out, "reached terminal") {
		t.Errorf("the sandboxed command reached the caller's terminal:\n%s", out)
	}
	if strings.Contains(out, strings.TrimSpace(harden05Typed)) {
		t.Errorf("the terminal echoed input typed from the sandbox:\n%s", out)
	}
	if in := pendingInput(t, slave); strings.Contains(in, strings.TrimSpace(harden05Typed)) {
		t.Errorf("the sandbox typed %q into the caller's terminal", in)
	}
}

// runInTerminal runs this test again as "session" in a new session whose
// controlling terminal is slave, and returns what it wrote to the terminal.
func runInTerminal(t *testing.T, master, slave *os.File) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHarden05NoControllingTerminal$", "-test.v")
	cmd.Env = append(os.Environ(), harden05Role+"=session")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	var out bytes.Buffer
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(&out, master) })
	err := cmd.Run()
	// Let the terminal deliver what is left, then stop reading.
	master.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	wg.Wait()
	return out.String(), err
}

// runProbe is the session: it runs the probe in a sandbox with its own
// terminal as the sandbox's stdout and stderr.
func runProbe(t *testing.T) {
	mounts, files, err := sandbox.HostSystem()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = sandbox.Namespaces{}.Run(ctx, &sandbox.Spec{
		Mounts: append(mounts, sandbox.Mount{Source: os.Args[0], Target: "/probe"}),
		Files:  files,
		// sh stays PID 1, so the probe can be stopped by job control.
		Args:   []string{"/bin/sh", "-c", "/probe -test.run='^TestHarden05NoControllingTerminal$'; echo probe: exit $?"},
		Env:    []string{"PATH=/usr/bin:/bin", harden05Role + "=probe"},
		Stdout: os.Stdout, Stderr: os.Stderr,
	})
	if err != nil {
		t.Fatalf("sandbox (stopped by SIGTTOU if it timed out): %v", err)
	}
}

// probeTerminal tries every way to a terminal a build could take and
// prints "reached terminal" for each that works.
func probeTerminal(w io.Writer) {
	fds := []int{0, 1, 2}
	if tty, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_NOCTTY, 0); err == nil {
		fmt.Fprintln(w, "probe: reached terminal: opened /dev/tty")
		fds = append(fds, tty)
	}
	for _, fd := range fds {
		if _, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP); err == nil {
			fmt.Fprintf(w, "probe: reached terminal: fd %d is a controlling terminal\n", fd)
		}
		for _, c := range []byte(harden05Typed) {
			if err := unix.IoctlSetPointerInt(fd, unix.TIOCSTI, int(c)); err != nil {
				break
			}
			if c == '\n' {
				fmt.Fprintf(w, "probe: reached terminal: TIOCSTI typed through fd %d\n", fd)
			}
		}
	}
	// ninja's case: a background process group changing a terminal's
	// modes is stopped by SIGTTOU, for ever.
	unix.Setpgid(0, 0)
	for _, fd := range fds {
		if tio, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
			unix.IoctlSetTermios(fd, unix.TCSETS, tio)
		}
	}
	fmt.Fprintln(w, "probe: done")
}

// openPTY opens a pseudo-terminal pair by hand; the master does not block,
// so reads on it take deadlines.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		ingottest.Skip(t, "no pseudo-terminals: %v", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

// pendingInput returns what waits to be read on the terminal, typed lines
// and unfinished ones alike.
func pendingInput(t *testing.T, slave *os.File) string {
	t.Helper()
	fd := int(slave.Fd())
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Lflag &^= unix.ICANON
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 0, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _ := unix.Read(fd, buf)
	return string(buf[:max(n, 0)])
}
