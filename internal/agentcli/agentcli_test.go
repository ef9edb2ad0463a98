package agentcli

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func run(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestRun(t *testing.T) {
	noChannel := filepath.Join(t.TempDir(), "update.conf")
	if err := os.WriteFile(noChannel, []byte("WINDOW=00:00-23:59\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		args      []string
		code      int
		stdout    string
		stderrHas string
	}{
		{"help", []string{"--help"}, 0, "  status", ""},
		{"no verb", nil, 0, "  update", ""},
		{"help verb", []string{"help", "update"}, 0, "Install the update artifact SOURCE", ""},
		{"update help", []string{"update", "--help"}, 0, "      --allow-downgrade", ""},
		{"update help default", []string{"update", "-h"}, 0, `(default "/etc/ingot/update.conf")`, ""},
		{"global flags in help", []string{"status", "--help"}, 0, "-v, --verbose", ""},
		{"version", []string{"--version"}, 0, "ingot version ", ""},
		{"unknown verb", []string{"frobnicate"}, 1, "", `unknown command "frobnicate"`},
		{"unknown flag", []string{"status", "--frob"}, 1, "", "-frob"},
		{"extra argument", []string{"status", "now"}, 1, "", "accepts no arguments, received 1"},
		{"missing argument", []string{"measure-phase"}, 1, "", "accepts 1 arg(s), received 0"},
		{"no source", []string{"update"}, 1, "", "no update source"},
		{"no channel file", []string{"--json", "update", "--channel", "--config", "/nonexistent.conf"}, 1, "", "read update channel configuration"},
		{"channel without CHANNEL", []string{"update", "--config", noChannel, "--channel"}, 1, "", "CHANNEL= in " + noChannel},
		{"flags after the source", []string{"update", "/nonexistent", "--check", "-v"}, 1, "", "ingot: "},
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

func TestRootHelpHidesSystemdVerbs(t *testing.T) {
	_, stdout, _ := run("--help")
	for _, v := range Verbs() {
		if shown := strings.Contains(stdout, "  "+v.Name+" "); shown == v.Hidden {
			t.Errorf("verb %s: shown %v, hidden %v", v.Name, shown, v.Hidden)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args    []string
		pos     []string
		reboot  bool
		confArg string
	}{
		{[]string{"src"}, []string{"src"}, false, ""},
		{[]string{"src", "--reboot"}, []string{"src"}, true, ""},
		{[]string{"--reboot", "src", "--config", "c"}, []string{"src"}, true, "c"},
		{[]string{"--config=c", "a", "b"}, []string{"a", "b"}, false, "c"},
		{[]string{"a", "--", "--reboot"}, []string{"a", "--reboot"}, false, ""},
		{nil, nil, false, ""},
	}
	for _, tc := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		reboot := fs.Bool("reboot", false, "")
		conf := fs.String("config", "", "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.pos) || *reboot != tc.reboot || *conf != tc.confArg {
			t.Errorf("parseInterspersed(%q) = %q, %v (reboot %v, config %q); want %q (reboot %v, config %q)",
				tc.args, pos, err, *reboot, *conf, tc.pos, tc.reboot, tc.confArg)
		}
	}
}

// maxDeviceBytes is the budget of the program a device runs as
// /usr/bin/ingot.
const maxDeviceBytes = 8<<20 + 512<<10

// deviceMustNotLink are packages the device binary must not contain:
// what only a workstation runs (builder, imager, VM driver, the cobra
// command line).
var deviceMustNotLink = []string{
	"github.com/ingot-linux/ingot/builder",
	"github.com/ingot-linux/ingot/diskimage",
	"github.com/ingot-linux/ingot/vm",
	"github.com/ingot-linux/ingot/internal/cli",
	"github.com/spf13/cobra",
	"github.com/spf13/pflag",
}

// TestDeviceBinary builds cmd/ingot-agent as make build does and checks
// its size and what it links.
func TestDeviceBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the device binary")
	}
	const pkg = "github.com/ingot-linux/ingot/cmd/ingot-agent"
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range deviceMustNotLink {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("the device binary links %s: only the workstation ingot may", dep)
			}
		}
	}
	bin := filepath.Join(t.TempDir(), "ingot-agent")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > maxDeviceBytes {
		t.Errorf("the device binary is %d bytes, over its budget of %d (8.5 MiB): see docs/design.md, What runs where", fi.Size(), maxDeviceBytes)
	}
	t.Logf("device binary: %d bytes (%d under the budget)", fi.Size(), maxDeviceBytes-fi.Size())
}
