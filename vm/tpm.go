package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// tpmStartTimeout bounds how long launch waits for swtpm's socket.
const tpmStartTimeout = 10 * time.Second

// maxSocketPath is the longest path a Unix socket address holds
// (sun_path is 108 bytes with its terminating NUL).
const maxSocketPath = 107

// swtpmProc is the TPM emulator of one QEMU process.
type swtpmProc struct {
	cmd    *exec.Cmd
	stderr *tailBuffer
	done   chan struct{}
}

// swtpmArgs returns swtpm's command line (without the binary) for the
// resolved config c: a TPM 2.0 whose state is in c.tpmStateDir(), whose
// control channel (which also hands over the data channel) is the socket
// QEMU's -chardev connects to, and which exits when QEMU closes it.
func (c Config) swtpmArgs() []string {
	return []string{"socket", "--tpm2",
		"--tpmstate", "dir=" + c.tpmStateDir() + ",mode=0600",
		"--ctrl", "type=unixio,path=" + c.tpmSocket() + ",mode=0600",
		"--log", "file=" + filepath.Join(c.RunDir, tpmLogName) + ",level=1",
		"--terminate"}
}

// startTPM starts swtpm for the next QEMU process and waits until its
// socket accepts connections.
func (m *Machine) startTPM(ctx context.Context) (*swtpmProc, error) {
	c := m.cfg
	for _, p := range []string{c.tpmStateDir(), c.tpmSocket(), c.RunDir} {
		if strings.Contains(p, ",") {
			return nil, fmt.Errorf("tpm: swtpm cannot take the path %q (it has a comma)", p)
		}
	}
	if len(c.tpmSocket()) > maxSocketPath {
		return nil, fmt.Errorf("tpm: socket path %s is longer than %d bytes; use a shorter RunDir", c.tpmSocket(), maxSocketPath)
	}
	if err := os.MkdirAll(c.tpmStateDir(), 0o700); err != nil {
		return nil, fmt.Errorf("tpm state: %w", err)
	}
	os.Remove(c.tpmSocket())
	args := c.swtpmArgs()
	cmd := exec.CommandContext(ctx, c.SWTPM, args...)
	cmd.SysProcAttr = sysProcAttr()
	t := &swtpmProc{cmd: cmd, stderr: &tailBuffer{max: 4 << 10}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = t.stderr, t.stderr
	m.log.Debug("starting swtpm", "cmd", c.SWTPM+" "+strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start swtpm: %w", err)
	}
	go func() {
		err := cmd.Wait()
		m.log.Debug("swtpm exited", "err", err)
		close(t.done)
	}()
	deadline := time.Now().Add(tpmStartTimeout)
	for {
		if _, err := os.Stat(c.tpmSocket()); err == nil {
			return t, nil
		}
		select {
		case <-t.done:
			return nil, fmt.Errorf("start swtpm: %v%s", cmd.ProcessState, t.suffix())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.stop()
			return nil, fmt.Errorf("start swtpm: no socket %s after %v%s", c.tpmSocket(), tpmStartTimeout, t.suffix())
		}
	}
}

// stop ends swtpm (it normally exits by itself once QEMU has gone) and
// waits for it. It may be called on a nil *swtpmProc.
func (t *swtpmProc) stop() {
	if t == nil {
		return
	}
	select {
	case <-t.done:
		return
	case <-time.After(time.Second):
	}
	if err := t.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.cmd.Process.Kill()
	}
	select {
	case <-t.done:
	case <-time.After(5 * time.Second):
		t.cmd.Process.Kill()
		<-t.done
	}
}

func (t *swtpmProc) suffix() string {
	if s := strings.TrimSpace(t.stderr.String()); s != "" {
		return "; swtpm: " + s
	}
	return ""
}
