package vm

import (
	"strings"
	"testing"
	"time"
)

func TestHangPoint(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"firmware", "BdsDxe: loading Boot0001\n", ""},
		{"kernel starting", "BdsDxe: starting\nLinux version 7.2.8 (ingot@ingot)\nvgaarb: loaded\n", "while its kernel started"},
		{"kernel done", "Linux version 7.2.8\nFreeing unused kernel image (initmem) memory: 2028K\nsystemd[1]: hi\n", ""},
		{"second kernel starting", "Linux version 7.2.8\nFreeing unused kernel image\nreboot: Restarting system\nLinux version 7.2.8\n", "while its kernel started"},
		{"reset", "Freeing unused kernel\n[   12.5] reboot: Restarting system\n", "after it asked for a reset"},
		{"after reset", "reboot: Restarting system\nBdsDxe: loading Boot0001\n", ""},
		{"power down", "reboot: Power down\n", ""},
		{"userspace", "ingot: boot complete\n# ", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hangPoint([]byte(tc.text)); got != tc.want {
				t.Errorf("hangPoint = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestMachineFakeHangRestart makes the fake guest print a kernel banner and
// go silent: the machine is started again, a waiter started before sees
// the new process's output instead of an exit, and after MaxHangRestarts
// the hang is left for the test to see.
func TestMachineFakeHangRestart(t *testing.T) {
	m := startFake(t, Config{HangRestart: time.Second})
	ctx := t.Context()
	hang := func() {
		t.Helper()
		if _, err := m.WaitFor(ctx, "fake qemu ready", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := m.Send("printf 'Linux %s 7.2\\nvgaarb: loaded\\n' version\n"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range MaxHangRestarts {
		hang()
		if _, err := m.WaitFor(ctx, "power cut, QEMU started again", 20*time.Second); err != nil {
			t.Fatalf("restart %d: %v", i+1, err)
		}
	}
	hang()
	if _, err := m.WaitFor(ctx, "fake qemu ready", 4*time.Second); err == nil {
		t.Fatal("the machine was started again after MaxHangRestarts")
	}
	if !m.Running() {
		t.Error("the machine is not running")
	}
	if n := strings.Count(m.Log(), "power cut, QEMU started again"); n != MaxHangRestarts {
		t.Errorf("%d restarts noted, want %d", n, MaxHangRestarts)
	}

	// A kernel that got past its start is left alone however long it is silent.
	m2 := startFake(t, Config{HangRestart: time.Second})
	if _, err := m2.WaitFor(ctx, "fake qemu ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	m2.Send("printf 'Linux %s 7.2\\nFreeing unused kernel image\\n' version\n")
	time.Sleep(3 * time.Second)
	if strings.Contains(m2.Log(), "QEMU started again") {
		t.Error("a guest past its kernel's start was restarted")
	}
}
