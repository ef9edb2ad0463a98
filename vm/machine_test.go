package vm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeEnv makes the test binary act as QEMU (see fakeQEMU).
const fakeEnv = "INGOT_VM_FAKE_QEMU"

func TestMain(m *testing.M) {
	if os.Getenv(fakeEnv) == "1" {
		fakeQEMU()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crlf is a console: it turns "\n" into "\r\n" as a serial tty does.
type crlf struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *crlf) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n")))
	return len(p), err
}

// fakeQEMU stands in for QEMU in tests that need no guest: it answers QMP
// on fd 3 and puts a /bin/sh on the "serial console" (stdin/stdout), echoing
// typed lines the way a terminal does.
func fakeQEMU() {
	console := &crlf{w: os.Stdout}
	qmp := os.NewFile(3, "qmp")
	fmt.Fprintln(qmp, `{"QMP": {"version": {}, "capabilities": ["oob"]}}`)
	go func() {
		dec := json.NewDecoder(qmp)
		for {
			var req struct {
				Execute string `json:"execute"`
				ID      int    `json:"id"`
			}
			if dec.Decode(&req) != nil {
				return
			}
			if req.Execute == "system_reset" {
				fmt.Fprint(console, "\x1b[2Jfake: reset\n")
			}
			fmt.Fprintf(qmp, `{"timestamp": {}, "event": "RESET", "data": {}}`+"\n")
			fmt.Fprintf(qmp, `{"return": {}, "id": %d}`+"\n", req.ID)
		}
	}()
	sh := exec.Command("/bin/sh", "-i") // interactive: errors do not end it
	sh.Stdout, sh.Stderr = console, console
	// Its own session, without a controlling terminal: an interactive
	// shell in the test's session would try job control on the terminal the
	// tests were started from, and spin on SIGTTIN in the background.
	sh.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true}
	in, _ := sh.StdinPipe()
	if err := sh.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		sh.Wait()
		os.Exit(0)
	}()
	fmt.Fprint(console, "\x1b[1mfake qemu ready\x1b[0m\n# ")
	r := bufio.NewReader(os.Stdin)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			fmt.Fprint(console, line) // the terminal's echo
			io.WriteString(in, line)
		}
		if err != nil {
			in.Close()
			select {}
		}
	}
}

// startFake starts a Machine on fakeQEMU.
func startFake(t *testing.T, cfg Config) *Machine {
	t.Helper()
	t.Setenv(fakeEnv, "1")
	dir := t.TempDir()
	cfg.QEMU = os.Args[0]
	cfg.Firmware = writeFile(t, filepath.Join(dir, "fw.fd"), []byte("fw"), 0)
	m, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestHarden05FakeConsoleOwnSession checks that the fake console's shell
// leads its own session and has no controlling terminal, however the tests
// were started.
func TestHarden05FakeConsoleOwnSession(t *testing.T) {
	m := startFake(t, Config{})
	ctx := t.Context()
	if _, err := m.WaitFor(ctx, "fake qemu ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	out, code, err := m.Run(ctx, `read -r pid comm state ppid pgrp sid tty rest < /proc/$$/stat; echo "leader=$((sid == $$)) tty=$tty"`, 10*time.Second)
	if err != nil || code != 0 {
		t.Fatalf("Run: %q, %d, %v", out, code, err)
	}
	if out != "leader=1 tty=0\n" {
		t.Errorf("fake console shell: %q, want it to lead its own session without a terminal (leader=1 tty=0)", out)
	}
}

func TestMachineFake(t *testing.T) {
	var raw bytes.Buffer
	var rawMu sync.Mutex
	m := startFake(t, Config{Output: writerFunc(func(p []byte) (int, error) {
		rawMu.Lock()
		defer rawMu.Unlock()
		return raw.Write(p)
	})})
	ctx := t.Context()
	if _, err := m.WaitFor(ctx, "fake qemu ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}

	t.Run("Run", func(t *testing.T) {
		tests := []struct {
			cmd, out string // out "*" is any output
			code     int
		}{
			{"echo hello; echo oops >&2", "hello\noops\n", 0},
			{"false", "", 1},
			{"sh -c 'exit 42'", "", 42},
			{"printf 'no newline'", "no newline", 0},
			{"printf '@@INGOT:S:1@@\\n'", "@@INGOT:S:1@@\n", 0},
			{"for i in 1 2 3; do echo $i; done", "1\n2\n3\n", 0},
			{"echo 'quoted \"string\"' # and a comment", "quoted \"string\"\n", 0},
			{"sleep 0 &", "", 0},
			{"if then fi", "*", 2}, // a syntax error does not lose the end marker
			{"cd /tmp", "", 0},
			{"pwd", "/tmp\n", 0},
			{"printf 'line one\n'\necho line two", "line one\nline two\n", 0},
		}
		for _, tt := range tests {
			out, code, err := m.Run(ctx, tt.cmd, 10*time.Second)
			if err != nil {
				t.Fatalf("Run(%q): %v", tt.cmd, err)
			}
			if (out != tt.out && tt.out != "*") || code != tt.code {
				t.Errorf("Run(%q) = %q, %d; want %q, %d", tt.cmd, out, code, tt.out, tt.code)
			}
		}
		if _, _, err := m.Run(ctx, "echo a\r", time.Second); err == nil {
			t.Errorf("Run with a CR succeeded")
		}
		if _, _, err := m.Run(ctx, strings.Repeat("x", 4000), time.Second); err == nil {
			t.Errorf("Run with a 4000-byte command succeeded")
		}
	})

	t.Run("cursor", func(t *testing.T) {
		if err := m.Send("echo $((40+2))x\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.WaitFor(ctx, "42x", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		_, err := m.WaitFor(ctx, "42x", 200*time.Millisecond)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "--- console") {
			t.Fatalf("second WaitFor: %v, want a timeout quoting the console", err)
		}
		m.ResetCursor()
		got, err := m.WaitForRegexp(ctx, regexpMust(`(\d+)x`), time.Second)
		if err != nil || got[0] != "42x" || got[1] != "42" {
			t.Fatalf("WaitForRegexp after reset = %q, %v", got, err)
		}
		m.SkipOutput()
		if c := m.Cursor(); c != len(m.Log()) {
			t.Errorf("cursor after SkipOutput = %d, log is %d bytes", c, len(m.Log()))
		}
	})

	t.Run("QMP", func(t *testing.T) {
		if err := m.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := m.WaitFor(ctx, "fake: reset", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := m.QMP(ctx, "query-status", nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Kill and Restart", func(t *testing.T) {
		if err := m.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := m.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("Wait after Kill = %v, want killed", err)
		}
		if m.Running() {
			t.Fatal("running after Kill")
		}
		if _, err := m.WaitFor(ctx, "anything", time.Second); !errors.Is(err, ErrExited) {
			t.Fatalf("WaitFor after Kill = %v, want ErrExited", err)
		}
		if err := m.Send("x"); !errors.Is(err, ErrExited) {
			t.Fatalf("Send after Kill = %v, want ErrExited", err)
		}
		if err := m.Kill(); err != nil {
			t.Fatalf("second Kill: %v", err)
		}
		if err := m.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := m.WaitFor(ctx, "fake qemu ready", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(m.Log(), "fake qemu ready"); n != 2 {
			t.Fatalf("log has %d boots, want 2", n)
		}
	})

	t.Run("guest exit", func(t *testing.T) {
		if err := m.Send("exit\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-m.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("fake qemu did not exit")
		}
		if err := m.Wait(); err != nil {
			t.Fatalf("Wait after a clean exit = %v", err)
		}
	})

	// The console reader sees everything, cleaned, and ends at exit.
	all, err := io.ReadAll(m.Console())
	if err != nil || string(all) != m.Log() {
		t.Errorf("Console() read %d bytes, %v; Log has %d", len(all), err, len(m.Log()))
	}
	if strings.ContainsAny(m.Log(), "\r\x1b") {
		t.Errorf("Log has CRs or escapes")
	}
	if data, err := os.ReadFile(m.LogPath()); err != nil || string(data) != m.Log() {
		t.Errorf("log file: %v, %d bytes; Log has %d", err, len(data), len(m.Log()))
	}
	rawMu.Lock()
	if !strings.Contains(raw.String(), "\x1b[1mfake qemu ready\x1b[0m\r\n") {
		t.Errorf("Output did not get the raw console: %q", raw.String())
	}
	rawMu.Unlock()

	dir := m.RunDir()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("run dir %s still there after Close: %v", dir, err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := m.Restart(ctx); err == nil {
		t.Errorf("Restart after Close succeeded")
	}
}

func TestMachineFakeContextCancel(t *testing.T) {
	t.Setenv(fakeEnv, "1")
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	m, err := Start(ctx, Config{
		QEMU:     os.Args[0],
		Firmware: writeFile(t, filepath.Join(dir, "fw.fd"), nil, 0),
		RunDir:   filepath.Join(dir, "run"),
		LogFile:  filepath.Join(dir, "console.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.WaitFor(ctx, "ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("qemu still running after its context was cancelled")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// A given run dir and log file are kept.
	if data, err := os.ReadFile(filepath.Join(dir, "console.log")); err != nil || !strings.Contains(string(data), "fake qemu ready") {
		t.Errorf("log file after Close: %q, %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "run")); err != nil {
		t.Errorf("given run dir removed: %v", err)
	}
}

func TestMachineFakeStdin(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	defer r.Close()
	m := startFake(t, Config{Stdin: r})
	if err := m.Send("x"); err == nil {
		t.Fatal("Send with Config.Stdin succeeded")
	}
	io.WriteString(w, "echo typed-$((6*7))\n")
	if _, err := m.WaitFor(t.Context(), "typed-42", 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

func regexpMust(s string) *regexp.Regexp { return regexp.MustCompile(s) }

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestArrivedAt checks the console timeline: text typed later arrived
// later, no earlier than the start, and offsets past the output have not
// arrived.
func TestArrivedAt(t *testing.T) {
	m := startFake(t, Config{})
	ctx := t.Context()
	if _, err := m.WaitFor(ctx, "fake qemu ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	first := strings.Index(m.Log(), "fake qemu ready")
	time.Sleep(50 * time.Millisecond)
	if _, _, err := m.Run(ctx, "echo second-line", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	second := strings.LastIndex(m.Log(), "second-line")
	a, okA := m.ArrivedAt(first)
	b, okB := m.ArrivedAt(second)
	switch {
	case !okA || !okB:
		t.Fatalf("ArrivedAt(%d) %v, ArrivedAt(%d) %v: want both arrived", first, okA, second, okB)
	case a.Before(m.Started()):
		t.Errorf("the first line arrived at %v, before the start %v", a, m.Started())
	case b.Sub(a) < 50*time.Millisecond:
		t.Errorf("a line typed 50ms later arrived %v after the first", b.Sub(a))
	}
	for _, off := range []int{-1, len(m.Log()) + 10} {
		if _, ok := m.ArrivedAt(off); ok {
			t.Errorf("ArrivedAt(%d) reports output that has not come", off)
		}
	}
}
