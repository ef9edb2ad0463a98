package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// startTimeout bounds how long Start waits for QEMU to accept QMP.
const startTimeout = 60 * time.Second

// Machine is a running QEMU virtual machine. Its methods are safe for
// concurrent use. A Machine must be closed with Close.
type Machine struct {
	cfg       Config // resolved
	args      []string
	ownRunDir bool
	log       *slog.Logger
	logFile   *os.File

	lifecycle sync.Mutex // serializes Restart, Close
	runMu     sync.Mutex // one Run at a time
	sendMu    sync.Mutex // keeps each Send's bytes together

	mu      sync.Mutex
	text    []byte        // cleaned console output
	arrived []arrival     // when each stretch of text came, in order
	started time.Time     // when the current QEMU process was started
	cursor  int           // WaitFor searches text[cursor:]
	changed chan struct{} // closed and replaced when text or state changes
	running bool          // the current QEMU process has not exited
	closed  bool
	p       *proc
	runSeq  int

	launchCtx    context.Context // what the current process was started under
	recovering   bool            // a hang restart is replacing the process
	hangRestarts int
}

// proc is one QEMU process: Restart makes a new one.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser // nil when Config.Stdin is set
	stderr *tailBuffer
	qmp    *qmpClient // set once the handshake is done; guarded by Machine.mu
	tpm    *swtpmProc // nil without Config.TPM; stopped when QEMU exits
	done   chan struct{}
	err    error // the exit status; set before done is closed
}

// Start prepares the disk and NVRAM, starts QEMU and waits until it has
// accepted its QMP connection (the guest then runs; Start does not wait for
// any guest output). ctx bounds the life of the machine: when ctx is done,
// QEMU is terminated. Start cleans up after itself when it fails.
func Start(ctx context.Context, cfg Config) (*Machine, error) {
	c, err := cfg.resolve()
	if err != nil {
		return nil, fmt.Errorf("vm config: %w", err)
	}
	m := &Machine{log: c.Logger, changed: make(chan struct{})}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if c.RunDir == "" {
		if c.RunDir, err = os.MkdirTemp("", "ingot-vm-"); err != nil {
			return nil, fmt.Errorf("vm run dir: %w", err)
		}
		m.ownRunDir = true
	} else if err := os.MkdirAll(c.RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("vm run dir: %w", err)
	}
	m.cfg, m.args = c, c.Args()

	fail := func(err error) (*Machine, error) {
		if m.logFile != nil {
			m.logFile.Close()
		}
		if m.ownRunDir {
			os.RemoveAll(c.RunDir)
		}
		return nil, err
	}
	if err := prepareDisk(ctx, c); err != nil {
		return fail(fmt.Errorf("vm disk: %w", err))
	}
	if err := prepareWriteLog(c); err != nil {
		return fail(fmt.Errorf("vm write log: %w", err))
	}
	if err := prepareVars(c); err != nil {
		return fail(fmt.Errorf("vm firmware: %w", err))
	}
	if m.logFile, err = os.Create(c.logPath()); err != nil {
		return fail(fmt.Errorf("vm console log: %w", err))
	}
	if err := m.launch(ctx); err != nil {
		return fail(err)
	}
	return m, nil
}

// launch starts a QEMU process and waits for its QMP greeting.
func (m *Machine) launch(ctx context.Context) error {
	var tpm *swtpmProc
	if m.cfg.TPM {
		var err error
		if tpm, err = m.startTPM(ctx); err != nil {
			return err
		}
	}
	local, remote, err := socketpair()
	if err != nil {
		tpm.stop()
		return fmt.Errorf("qmp socket: %w", err)
	}
	defer remote.Close()

	cmd := exec.CommandContext(ctx, m.cfg.QEMU, m.args...)
	cmd.ExtraFiles = []*os.File{remote} // fd 3, see Config.Args
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return terminate(cmd.Process) }
	cmd.WaitDelay = 5 * time.Second
	p := &proc{cmd: cmd, stderr: &tailBuffer{max: 16 << 10}, tpm: tpm, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if m.cfg.Stdin != nil {
		cmd.Stdin = m.cfg.Stdin
	} else if p.stdin, err = cmd.StdinPipe(); err != nil {
		local.Close()
		tpm.stop()
		return fmt.Errorf("qemu stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		local.Close()
		tpm.stop()
		return fmt.Errorf("qemu stdout: %w", err)
	}
	restore := saveTerminal(m.cfg.Stdin)

	m.log.Debug("starting qemu", "cmd", m.cfg.QEMU+" "+strings.Join(m.args, " "))
	if err := cmd.Start(); err != nil {
		local.Close()
		tpm.stop()
		return fmt.Errorf("start qemu: %w", err)
	}
	remote.Close()
	m.mu.Lock()
	m.p, m.running = p, true
	m.started = time.Now()
	m.launchCtx = ctx
	from := len(m.text)
	m.notifyLocked()
	m.mu.Unlock()
	go m.readConsole(p, stdout, restore)

	conn, err := net.FileConn(local)
	local.Close()
	if err == nil {
		var q *qmpClient
		q, err = dialQMP(ctx, conn, startTimeout, p.done, m.log)
		if err == nil {
			m.mu.Lock()
			p.qmp = q
			m.mu.Unlock()
			if m.cfg.HangRestart > 0 {
				go m.watchHang(p, from)
			}
			return nil
		}
		conn.Close()
	}
	cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("start qemu: qmp: %w%s", err, p.stderrSuffix())
}

// readConsole copies QEMU's standard output into the log until QEMU exits,
// then records the exit.
func (m *Machine) readConsole(p *proc, stdout io.Reader, restore func()) {
	var cl cleaner
	out := m.cfg.Output
	buf := make([]byte, 32<<10)
	for {
		n, err := stdout.Read(buf)
		if n > 0 {
			if out != nil {
				if _, werr := out.Write(buf[:n]); werr != nil {
					m.log.Debug("console output writer failed; no longer copying", "err", werr)
					out = nil
				}
			}
			m.mu.Lock()
			old := len(m.text)
			m.text = cl.clean(m.text, buf[:n])
			if len(m.text) > old {
				m.arrived = append(m.arrived, arrival{end: len(m.text), at: time.Now()})
			}
			if m.logFile != nil && len(m.text) > old {
				if _, werr := m.logFile.Write(m.text[old:]); werr != nil {
					m.log.Debug("console log write failed", "err", werr)
				}
			}
			m.notifyLocked()
			m.mu.Unlock()
		}
		if err != nil {
			break
		}
	}
	err := p.cmd.Wait()
	restore()
	p.tpm.stop()
	if err != nil {
		err = fmt.Errorf("qemu: %w%s", err, p.stderrSuffix())
	}
	m.log.Debug("qemu exited", "err", err)
	m.mu.Lock()
	p.err = err
	if m.p == p && !m.recovering {
		m.running = false
	}
	m.notifyLocked()
	m.mu.Unlock()
	close(p.done)
}

func (p *proc) stderrSuffix() string {
	if s := strings.TrimSpace(p.stderr.String()); s != "" {
		return "; stderr: " + s
	}
	return ""
}

// notifyLocked wakes everything waiting for output or a state change.
func (m *Machine) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *Machine) current() *proc {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.p
}

func (m *Machine) exitErr() error {
	p := m.current()
	select {
	case <-p.done:
		if p.err == nil {
			return errors.New("exit status 0")
		}
		return p.err
	default:
		return errors.New("still running")
	}
}

// Send types s on the console's keyboard, as is: add "\n" to end a line
// for a Linux shell ("\r" for the UEFI shell).
func (m *Machine) Send(s string) error {
	p := m.current()
	if p.stdin == nil {
		return errors.New("send: console input comes from Config.Stdin")
	}
	select {
	case <-p.done:
		return fmt.Errorf("send: %w", ErrExited)
	default:
	}
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	if _, err := io.WriteString(p.stdin, s); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// Kill cuts the power: it sends SIGKILL to QEMU and waits until it has
// exited. Writes the guest had flushed are in the disk file (even qcow2
// metadata: QEMU hands it to the host on every guest flush, cache=unsafe
// only skips the host fsync), so Restart then boots like a machine after a
// power loss. Killing a machine that has exited is a no-op.
func (m *Machine) Kill() error {
	p := m.current()
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill qemu: %w", err)
	}
	<-p.done
	return nil
}

// Wait waits for the current QEMU process to exit and returns its exit
// error: nil when the guest powered off, an error wrapping *exec.ExitError
// (for example "signal: killed" after Kill) otherwise.
func (m *Machine) Wait() error {
	p := m.current()
	<-p.done
	return p.err
}

// Done returns a channel that is closed when the current QEMU process has
// exited. After Restart, call Done again for the new process.
func (m *Machine) Done() <-chan struct{} {
	return m.current().done
}

// Running reports whether QEMU is running.
func (m *Machine) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running
}

// Restart powers the machine off hard if it is running (as Kill does) and
// starts a new QEMU process on the same disks and NVRAM, as if the power
// came back. The console log goes on, and the cursor stays where it was.
// ctx bounds the life of the new process.
func (m *Machine) Restart(ctx context.Context) error {
	m.lifecycle.Lock()
	defer m.lifecycle.Unlock()
	if m.isClosed() {
		return errors.New("restart: machine is closed")
	}
	if err := m.Kill(); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	m.closeQMP()
	if err := m.launch(ctx); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}

// Close kills QEMU, closes the console log and removes the run directory if
// Start made it (with the overlay; a Persist image is kept). It returns the
// first error from these and may be called more than once.
func (m *Machine) Close() error {
	m.lifecycle.Lock()
	defer m.lifecycle.Unlock()
	if m.isClosed() {
		return nil
	}
	errs := []error{m.Kill()}
	m.closeQMP()
	m.mu.Lock()
	m.closed = true
	m.notifyLocked()
	m.mu.Unlock()
	if err := m.logFile.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close console log: %w", err))
	}
	if m.ownRunDir {
		if err := os.RemoveAll(m.cfg.RunDir); err != nil {
			errs = append(errs, fmt.Errorf("remove run dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (m *Machine) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

func (m *Machine) closeQMP() {
	m.mu.Lock()
	q := m.p.qmp
	m.mu.Unlock()
	if q != nil {
		q.close()
	}
}

// LogPath returns the file the cleaned console log is written to. Unless
// Config.LogFile or Config.RunDir was set, Close removes it.
func (m *Machine) LogPath() string { return m.cfg.logPath() }

// RunDir returns the directory with the overlay and the NVRAM copy.
func (m *Machine) RunDir() string { return m.cfg.RunDir }

// Config returns the configuration with the defaults Start filled in.
func (m *Machine) Config() Config { return m.cfg }

// Args returns QEMU's command line (without the binary).
func (m *Machine) Args() []string { return append([]string(nil), m.args...) }

// tailBuffer is an io.Writer that keeps the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
