package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

// initArg0 is the argv[0] that makes a re-executed binary the sandbox's
// first process (see Main).
const initArg0 = "ingot-sandbox-init"

// mainRan is the byte Main writes first on the setup-error pipe, so that
// Run tells a binary that never called Main (which would run its own main
// instead of the command) from a command that ran.
const mainRan = '+'

// protocol is what the parent sends the sandbox's first process on fd 3.
type protocol struct {
	Root string `json:"root"`
	Spec *Spec  `json:"spec"`
}

// Namespaces runs commands in new user, mount, PID, network, UTS and IPC
// namespaces. The calling user becomes root inside (mapped to itself
// outside), so it works unprivileged where the kernel allows user
// namespaces. The zero value is ready to use.
type Namespaces struct{}

var _ Runner = Namespaces{}

// Run runs s.Args in a new sandbox and waits for it. When ctx ends the whole
// sandbox is killed (its PID namespace dies with its first process).
func (Namespaces) Run(ctx context.Context, s *Spec) error {
	if err := s.Validate(); err != nil {
		return err
	}
	root, err := os.MkdirTemp("", "ingot-sandbox-*")
	if err != nil {
		return fmt.Errorf("sandbox root: %w", err)
	}
	defer os.Remove(root)
	specR, specW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer specR.Close()
	defer specW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer errR.Close()
	defer errW.Close()

	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{initArg0}
	cmd.Env = []string{}
	cmd.Stdin = nil // /dev/null
	cmd.Stdout, cmd.Stderr = throughPipe(s.Stdout), throughPipe(s.Stderr)
	cmd.ExtraFiles = []*os.File{specR, errW}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID |
			syscall.CLONE_NEWNET | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
		Pdeathsig:                  syscall.SIGKILL,
		// A new session without a controlling terminal: the build can
		// neither push input into the caller's terminal (TIOCSTI) nor be
		// stopped by job control signals (SIGTTOU, SIGTTIN) from it.
		Setsid: true,
	}
	// Pdeathsig fires when the forking thread exits: keep it alive.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("%w: create user namespace: %v (are user namespaces enabled? see sysctl user.max_user_namespaces and kernel.unprivileged_userns_clone)", ErrUnsupported, err)
		}
		return fmt.Errorf("start sandbox: %w", err)
	}
	specR.Close()
	errW.Close()
	enc := json.NewEncoder(specW)
	werr := enc.Encode(protocol{Root: root, Spec: s})
	specW.Close()
	msg, _ := io.ReadAll(errR) // EOF when the command was executed
	err = cmd.Wait()
	if len(msg) == 0 && ctx.Err() != nil {
		return ctx.Err()
	}
	if len(msg) == 0 || msg[0] != mainRan {
		return fmt.Errorf("%w (%s)", ErrNoMain, os.Args[0])
	}
	msg = msg[1:]
	switch {
	case len(msg) > 0:
		return &SetupError{Msg: string(msg)}
	case werr != nil && err == nil:
		return fmt.Errorf("send sandbox spec: %w", werr)
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return &ExitError{Code: -1, Signal: ws.Signal().String()}
			}
			return &ExitError{Code: ee.ExitCode()}
		}
		return fmt.Errorf("run sandbox: %w", err)
	}
	return nil
}

// throughPipe makes os/exec copy the command's output through a pipe even
// when w is an *os.File: a terminal's file descriptor handed down would let
// the command reach that terminal. A nil w stays nil (/dev/null).
func throughPipe(w io.Writer) io.Writer {
	if w == nil {
		return nil
	}
	return struct{ io.Writer }{w}
}
