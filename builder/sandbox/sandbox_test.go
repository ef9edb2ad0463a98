package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/builder/sandbox"
	"github.com/ingot-linux/ingot/builder/sandbox/sandboxtest"

	"github.com/ingot-linux/ingot/ingottest"
)

func hostSpec(t *testing.T, script string, extra ...sandbox.Mount) (*sandbox.Spec, *bytes.Buffer) {
	t.Helper()
	mounts, files, err := sandbox.HostSystem()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	return &sandbox.Spec{
		Mounts: append(mounts, extra...),
		Files:  files,
		Args:   []string{"sh", "-c", script},
		Env:    []string{"PATH=/usr/bin:/bin", "LC_ALL=C"},
		Stdout: &out, Stderr: &out,
	}, &out
}

// TestIsolation checks what a sandboxed command sees and may do.
func TestIsolation(t *testing.T) {
	r := sandboxtest.Require(t)
	work := t.TempDir()
	s, out := hostSpec(t, `
set -e
echo "uid=$(id -u) pid=$$ host=$(hostname) umask=$(umask)"
echo "root=$(ls / | tr '\n' ' ')"
echo "env=$(env | sort | tr '\n' ' ')"
echo "net=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
touch /usr/ingot-probe 2>/dev/null && echo "usr-writable" || echo "usr-read-only"
touch /ingot-probe 2>/dev/null && echo "root-writable" || echo "root-read-only"
mount -o remount,rw /usr 2>/dev/null && echo "remount-ok" || echo "remount-refused"
grep -q '^CapEff:.0000000000000000$' /proc/self/status && echo "no-caps"
echo hello > /work/out.txt
echo tmp > /tmp/x && echo "tmp-ok"
`, sandbox.Mount{Source: work, Target: "/work", Writable: true})
	s.Dir = "/work"
	if err := r.Run(context.Background(), s); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := out.String()
	for _, want := range []string{
		"uid=0 pid=1 host=ingot umask=0022",
		"root=bin dev etc lib lib64 proc sbin tmp usr work",
		"env=LC_ALL=C PATH=/usr/bin:/bin PWD=/work \n",
		"net=lo \n", "usr-read-only", "root-read-only", "remount-refused", "no-caps", "tmp-ok",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if b, err := os.ReadFile(filepath.Join(work, "out.txt")); err != nil || string(b) != "hello\n" {
		t.Errorf("writable mount: %q %v", b, err)
	}
	if _, err := os.Stat("/usr/ingot-probe"); err == nil {
		t.Error("the sandbox wrote to the host's /usr")
	}
}

func TestExitStatus(t *testing.T) {
	r := sandboxtest.Require(t)
	s, _ := hostSpec(t, "exit 3")
	var ee *sandbox.ExitError
	if err := r.Run(context.Background(), s); !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("err = %v, want exit status 3", err)
	}
}

func TestSetupError(t *testing.T) {
	r := sandboxtest.Require(t)
	s, _ := hostSpec(t, "true", sandbox.Mount{Source: "/nonexistent-ingot", Target: "/x"})
	var se *sandbox.SetupError
	if err := r.Run(context.Background(), s); !errors.As(err, &se) || !strings.Contains(se.Msg, "/nonexistent-ingot") {
		t.Fatalf("err = %v, want a setup error naming the missing source", err)
	}
	s, _ = hostSpec(t, "true")
	s.Args = []string{"no-such-program"}
	if err := r.Run(context.Background(), s); !errors.As(err, &se) || !strings.Contains(se.Msg, "no-such-program: not found") {
		t.Fatalf("err = %v, want a setup error for the missing program", err)
	}
}

// TestCancel checks that ending the context kills the sandbox and every
// process in it, background ones included.
func TestCancel(t *testing.T) {
	r := sandboxtest.Require(t)
	work := t.TempDir()
	s, _ := hostSpec(t, "(sleep 1; echo late > /work/late) & sleep 60", sandbox.Mount{Source: work, Target: "/work", Writable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := r.Run(ctx, s); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %v", d)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(work, "late")); err == nil {
		t.Error("a background process outlived the sandbox")
	}
}

func TestValidate(t *testing.T) {
	for _, s := range []*sandbox.Spec{
		{},
		{Args: []string{"x"}, Mounts: []sandbox.Mount{{Source: "rel", Target: "/x"}}},
		{Args: []string{"x"}, Mounts: []sandbox.Mount{{Source: "/x", Target: "/"}}},
		{Args: []string{"x"}, Files: []sandbox.File{{Path: "/a/../b", Mode: fs.ModeDir}}},
		{Args: []string{"x"}, Dir: "rel"},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", s)
		}
	}
}

// TestUnprivileged runs TestIsolation again as an unprivileged user when
// the tests run as root, to check that the sandbox needs no privileges.
func TestUnprivileged(t *testing.T) {
	if os.Getenv("INGOT_SANDBOX_UNPRIVILEGED") == "1" {
		ingottest.Skip(t, "already unprivileged")
	}
	if os.Getuid() != 0 {
		ingottest.Skip(t, "not root: the other tests already run unprivileged")
	}
	sandboxtest.Require(t)
	dir, err := os.MkdirTemp("", "ingot-unpriv-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sandbox.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	for _, d := range []string{dir, tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^(TestIsolation|TestExitStatus|TestCancel)$", "-test.v")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "HOME=" + dir, "INGOT_SANDBOX_UNPRIVILEGED=1", "INGOT_REQUIRE_TOOLS=" + os.Getenv("INGOT_REQUIRE_TOOLS")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as uid 65534: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("SKIP")) {
		t.Fatalf("the unprivileged run skipped:\n%s", out)
	}
	t.Logf("as uid 65534:\n%s", out)
}

// TestMain lets the re-executed test binary become the sandbox's first
// process.
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}
