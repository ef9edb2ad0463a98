package builder

import (
	"os"
	"testing"

	"github.com/ingot-linux/ingot/builder/sandbox"
)

// TestMain lets the re-executed test binary become the sandbox's first
// process (the sandbox build tests run Namespaces).
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}
