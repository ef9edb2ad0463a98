package boot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/trust"
)

// measureSys records PCR extensions; the other Sys methods are not used.
type measureSys struct {
	Sys
	err      error
	inUse    bool
	mountErr error
	measured []string
	mounts   []string
}

func (f *measureSys) PCRInUse(pcr int) (bool, error) {
	if f.err != nil {
		return false, f.err
	}
	return f.inUse, nil
}

func (f *measureSys) MeasurePCR(pcr int, data []byte) ([]string, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.measured = append(f.measured, fmt.Sprintf("%d:%s", pcr, data))
	return []string{"sha256"}, nil
}

func (f *measureSys) Mount(source, target, fstype string, flags uintptr, data string) error {
	f.mounts = append(f.mounts, fstype)
	return f.mountErr
}

func TestMeasurePhases(t *testing.T) {
	stubVar := func(root string) {
		p := filepath.Join(root, stubPCRVar)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("\x06\x00\x00\x001\x001\x00\x00\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(root string, f *measureSys) (*State, string, error) {
		var console bytes.Buffer
		s := &State{Config: Config{Sys: f, Root: root, Console: &console}}
		if err := measureEnter(context.Background(), s); err != nil {
			t.Fatalf("enter: %v", err)
		}
		err := measureLeave(context.Background(), s)
		return s, console.String(), err
	}

	t.Run("stub measured", func(t *testing.T) {
		root := t.TempDir()
		stubVar(root)
		f := &measureSys{}
		s, console, err := run(root, f)
		if err != nil || !s.Measured {
			t.Fatalf("leave: %v, measured %v", err, s.Measured)
		}
		if want := []string{"11:enter-initrd", "11:leave-initrd"}; !slices.Equal(f.measured, want) {
			t.Errorf("measured %v, want %v", f.measured, want)
		}
		if !strings.Contains(console, "measured enter-initrd into PCR 11 (sha256)") {
			t.Errorf("console:\n%s", console)
		}
	})
	t.Run("stub did not measure", func(t *testing.T) {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, efivarsDir), 0o755)
		f := &measureSys{}
		s, console, err := run(root, f)
		if err != nil || s.Measured || len(f.measured) != 0 {
			t.Fatalf("measured %v (%v)", f.measured, err)
		}
		if !slices.Equal(f.mounts, []string{"efivarfs"}) {
			t.Errorf("mounts %v, want efivarfs", f.mounts)
		}
		if strings.Count(console, "\n") != 1 || !strings.Contains(console, "not measured") {
			t.Errorf("console:\n%s", console)
		}
	})
	t.Run("no efivarfs, PCR 11 in use", func(t *testing.T) {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, efivarsDir), 0o755)
		f := &measureSys{inUse: true, mountErr: errors.New("unknown filesystem type 'efivarfs'")}
		s, _, err := run(root, f)
		if err != nil || !s.Measured || len(f.measured) != 2 {
			t.Fatalf("measured %v (%v)", f.measured, err)
		}
	})
	t.Run("no efivarfs, PCR 11 unused", func(t *testing.T) {
		root := t.TempDir()
		f := &measureSys{}
		s, console, err := run(root, f)
		if err != nil || s.Measured || len(f.measured) != 0 {
			t.Fatalf("measured %v (%v)", f.measured, err)
		}
		if !strings.Contains(console, "did not measure") {
			t.Errorf("console:\n%s", console)
		}
	})
	t.Run("no efivarfs, no TPM", func(t *testing.T) {
		f := &measureSys{err: fmt.Errorf("no TPM: %w", fs.ErrNotExist)}
		_, console, err := run(t.TempDir(), f)
		if err != nil || !strings.Contains(console, "no TPM device") || strings.Count(console, "\n") != 1 {
			t.Fatalf("console %q, %v", console, err)
		}
	})
	t.Run("no TPM device", func(t *testing.T) {
		root := t.TempDir()
		stubVar(root)
		f := &measureSys{err: fmt.Errorf("no TPM: %w", fs.ErrNotExist)}
		s, console, err := run(root, f)
		if err != nil || s.Measured {
			t.Fatalf("measured %v, %v", s.Measured, err)
		}
		if !strings.Contains(console, "no TPM device") {
			t.Errorf("console:\n%s", console)
		}
	})
	t.Run("leave fails", func(t *testing.T) {
		root := t.TempDir()
		stubVar(root)
		f := &measureSys{}
		var console bytes.Buffer
		s := &State{Config: Config{Sys: f, Root: root, Console: &console}}
		measureEnter(context.Background(), s)
		f.err = errors.New("TPM failure")
		if err := measureLeave(context.Background(), s); err == nil || !strings.Contains(err.Error(), "leave-initrd") {
			t.Errorf("leave: %v", err)
		}
	})
	t.Run("no measurer", func(t *testing.T) {
		s := &State{Config: Config{Root: t.TempDir(), Console: &bytes.Buffer{}}}
		if err := measureEnter(context.Background(), s); err != nil || s.Measured {
			t.Fatal(err)
		}
		if err := measureLeave(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPhasesMatchPolicy checks that what ingot-init measures is the start
// of the phase paths the UKI's PCR policy is signed for.
func TestPhasesMatchPolicy(t *testing.T) {
	want := phaseEnter + ":" + phaseLeave
	if !slices.Contains(trust.DefaultPhases(), phaseEnter) || !slices.Contains(trust.DefaultPhases(), want) {
		t.Errorf("trust.DefaultPhases() = %v has no %q or %q", trust.DefaultPhases(), phaseEnter, want)
	}
	for _, p := range trust.DefaultPhases() {
		if !strings.HasPrefix(p, phaseEnter) {
			t.Errorf("signed phase %q does not start with %s", p, phaseEnter)
		}
	}
}
