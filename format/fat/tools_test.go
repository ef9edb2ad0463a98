package fat

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
)

// tool returns the path of an external validator. A missing tool skips the
// test, or fails it when INGOT_REQUIRE_TOOLS=1.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} { // not in PATH for non-root users
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	ingottest.Skip(t, "%s not installed", name)
	return ""
}

// run runs a tool and returns its combined output, failing on a non-zero
// exit code.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	cmd.Env = append(os.Environ(), "MTOOLSRC=/dev/null", "LC_ALL=C.UTF-8")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	if name != "mtype" {
		out = append(out, stderr.Bytes()...)
	}
	return out
}

// fsckProblems are fragments of fsck.vfat messages that report a problem.
// fsck.vfat -n exits 0 for some of them (e.g. boot sector backup
// differences), so the output is checked as well as the exit code.
var fsckProblems = []string{
	"will be", "wrong", "differ", "orrect", "fixing", "Leaving filesystem unchanged",
	"dirty", "orphan", "bad", "invalid", "warning", "reclaim", "truncat", "unable",
	"not ", "error", "perform changes", "?",
}

// fsck runs fsck.vfat read-only with a verification pass and fails on any
// reported problem.
func fsck(t *testing.T, img string) {
	t.Helper()
	out := run(t, "fsck.vfat", "-n", "-v", "-V", img)
	// The image path contains the test name; keep it out of the match.
	lower := strings.ToLower(strings.ReplaceAll(string(out), img, "IMAGE"))
	for _, p := range fsckProblems {
		if strings.Contains(lower, strings.ToLower(p)) {
			t.Fatalf("fsck.vfat reports a problem (%q):\n%s", p, out)
		}
	}
}

// mtoolsSkip is a directory of test volumes that mtools cannot list
// correctly: mtools 4.0 prints each half of a UTF-16 surrogate pair as '_'.
const mtoolsSkip = "non-bmp/"

// mtoolsPaths removes the paths that mtools cannot show from paths.
func mtoolsPaths(paths []string) []string {
	return slices.DeleteFunc(slices.Clone(paths), func(p string) bool {
		return strings.HasPrefix(p, mtoolsSkip)
	})
}

// mdirPaths checks the volume label and serial number with mtools and
// lists every path of the volume in the form used by the reader tests:
// "a/b" for files, "a/b/" for directories.
func mdirPaths(t *testing.T, img, label string, serial uint32) []string {
	t.Helper()
	out := string(run(t, "mdir", "-i", img, "::"))
	wantLabel := fmt.Sprintf(" Volume in drive : is %-11s\n", label)
	wantSerial := fmt.Sprintf(" Volume Serial Number is %04X-%04X\n", serial>>16, serial&0xFFFF)
	if !strings.Contains(out, wantLabel) || !strings.Contains(out, wantSerial) {
		t.Errorf("mdir output lacks %q or %q:\n%s", wantLabel, wantSerial, out)
	}
	if strings.Contains(out, "\nNo files\n") {
		return nil // mdir -/ -b fails on an empty volume
	}
	out = string(run(t, "mdir", "-i", img, "-/", "-b", "::"))
	var paths []string
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\n")
		if line == "" {
			continue
		}
		p, ok := strings.CutPrefix(line, "::/")
		if !ok {
			t.Fatalf("unexpected mdir line %q", line)
		}
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return mtoolsPaths(paths)
}

// mtype reads a file of the volume with mtools.
func mtype(t *testing.T, img, path string) []byte {
	t.Helper()
	// mtools treats [ and ] as wildcards; '?' matches them.
	path = strings.NewReplacer("[", "?", "]", "?").Replace(path)
	return run(t, "mtype", "-i", img, "::"+path)
}
