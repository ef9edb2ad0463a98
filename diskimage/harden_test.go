package diskimage_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/layout"
)

// TestHarden10DebugShellWithEncryptedRoot: ingot.debug=shell on an
// image with an encrypted root would give a shell with the root unlocked
// and PCR 11 still in the initrd phase. ingot image refuses the pair.
func TestHarden10DebugShellWithEncryptedRoot(t *testing.T) {
	for _, mode := range []string{layout.EncryptTPM, layout.EncryptIfTPM} {
		out := filepath.Join(t.TempDir(), "out")
		_, err := diskimage.Build(context.Background(), diskimage.Options{
			RootFS: "/nonexistent", Version: "1.0.0", OutputDir: out,
			EncryptRoot: mode, Cmdline: []string{"console=ttyS0 ingot.debug=shell"},
		})
		if err == nil || !strings.Contains(err.Error(), "ingot.debug=shell with an encrypted root") {
			t.Fatalf("%s: %v", mode, err)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: output directory made for a refused build", mode)
		}
	}
}
