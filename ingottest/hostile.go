package ingottest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Victim makes the empty directory dir/victim, a place a hostile input
// (a package, an archive) tries to write to, and returns its path and a
// check, to call after the attempt, that it is still empty.
func Victim(t testing.TB, dir string) (victim string, untouched func()) {
	t.Helper()
	victim = filepath.Join(dir, "victim")
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	return victim, func() {
		t.Helper()
		if ents, _ := os.ReadDir(victim); len(ents) != 0 {
			t.Errorf("a hostile input wrote %s into %s", ents[0].Name(), victim)
		}
	}
}

// WantError fails the test unless err is an error whose message holds
// every part; it logs the message, so -v shows what a user would read.
func WantError(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one naming %q", parts)
	}
	t.Logf("error: %v", err)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name %q", err, p)
		}
	}
}
