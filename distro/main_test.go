package distro_test

import (
	"os"
	"testing"

	"github.com/ingot-linux/ingot/builder/sandbox"
)

// TestMain lets the re-executed test binary become the sandbox's first
// process (the extension tests build packages with Namespaces).
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}
