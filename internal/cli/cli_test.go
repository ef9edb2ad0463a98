package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestCLI(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		code      int
		stdout    string
		stderrHas string
	}{
		{"help", []string{"--help"}, 0, "ingot image --rootfs ROOTFS", ""},
		{"image help", []string{"image", "--help"}, 0, "SOURCE_DATE_EPOCH", ""},
		{"completion", []string{"completion", "bash"}, 0, "bash completion", ""},
		{"unknown verb", []string{"frobnicate"}, 1, "", `unknown command "frobnicate"`},
		{"image from missing recipes", []string{"image", "--recipes", "/nonexistent-recipes"}, 1, "", "/nonexistent-recipes"},
		{"bad size", []string{"image", "--rootfs", "x", "--version", "1", "--usr-size", "lots"}, 1, "", `--usr-size: "lots" is not a size`},
		{"missing rootfs", []string{"image", "--rootfs", "/nonexistent", "--version", "1", "--output", "/tmp/ingot-cli-test-out", "--init", "/nonexistent-init"}, 1, "", "ingot-init binary"},
		{"vm without image", []string{"vm"}, 1, "", "none in out/"},
		{"vm missing image", []string{"vm", "/nonexistent.raw"}, 1, "", "disk image: stat /nonexistent.raw"},
		{"device verb help", []string{"update", "--help"}, 0, "      --allow-downgrade", ""},
		{"ext build dir and packages", []string{"ext", "build", "--name", "d", "--version", "1", "--for", "1.0.0", "--dir", "/tmp", "--packages", "strace"}, 1, "", "--dir and --packages exclude each other"},
		{"ext build without contents", []string{"ext", "build", "--name", "d", "--version", "1", "--for", "1.0.0"}, 1, "", "--dir DIR (a directory or tarball) or --packages"},
		{"ext build packages with base", []string{"ext", "build", "--name", "d", "--version", "1", "--packages", "strace", "--base", "/"}, 1, "", "--base is for --dir"},
		{"ext build packages of the base", []string{"ext", "build", "--name", "d", "--version", "1", "--for", "1.0.0", "--packages", "busybox", "--store", "/nonexistent-store"}, 1, "", "--packages busybox: is part of the base already"},
		{"device verb flags forwarded", []string{"--json", "update", "--channel", "--config", "/nonexistent.conf"}, 1, "", "read update channel configuration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, stdout)
			}
			if !strings.Contains(stderr, tc.stderrHas) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderrHas, stderr)
			}
			if tc.code != 0 && strings.Count(stderr, "ingot: ") != 1 {
				t.Errorf("want exactly one error line, got:\n%s", stderr)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "512": 512, "4K": 4 << 10, "512M": 512 << 20, "2G": 2 << 30, "1t": 1 << 40} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "G", "1.5G", "0"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

// TestHarden15ImageLeavesNoDirectories: a failed ingot image removes the
// output directories it made and leaves alone what was there before.
func TestHarden15ImageLeavesNoDirectories(t *testing.T) {
	base := t.TempDir()
	rootfs := filepath.Join(base, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "usr"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--rootfs", rootfs, "--init", "/nonexistent-init"},
		{"--recipes", "/nonexistent-recipes"},
	} {
		out := filepath.Join(base, "a/b/c")
		code, _, stderr := run(append([]string{"image", "--version", "1", "--output", out}, args...)...)
		if code == 0 {
			t.Fatalf("ingot image %v succeeded", args)
		}
		if _, err := os.Stat(filepath.Join(base, "a")); !os.IsNotExist(err) {
			t.Errorf("ingot image %v failed (%s) and left the output directories it made: %v", args, strings.TrimSpace(stderr), err)
		}
		out = filepath.Join(base, "existing")
		if err := os.MkdirAll(filepath.Join(out, "old"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, "keep"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, _, _ := run(append([]string{"image", "--version", "1", "--output", out}, args...)...); code == 0 {
			t.Fatalf("ingot image %v succeeded", args)
		}
		if left, _ := os.ReadDir(out); len(left) != 2 || left[0].Name() != "keep" || left[1].Name() != "old" {
			t.Errorf("a failed ingot image %v changed the existing output directory: %v", args, left)
		}
	}
}
