package diskimage

import (
	"slices"
	"testing"

	"github.com/ingot-linux/ingot/layout"
)

func TestBootCmdlineSignedConfig(t *testing.T) {
	for _, require := range []bool{false, true} {
		got := bootCmdline(Options{EncryptRoot: layout.EncryptNone, RequireSignedConfig: require}).Values(layout.KeyConfigSigned)
		if want := map[bool][]string{true: {"yes"}}[require]; !slices.Equal(got, want) {
			t.Errorf("RequireSignedConfig %v: %s= %q, want %q", require, layout.KeyConfigSigned, got, want)
		}
	}
}
