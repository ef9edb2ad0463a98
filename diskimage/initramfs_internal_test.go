package diskimage

import (
	"testing"

	"github.com/ingot-linux/ingot/diskimage/kmod"
)

// TestModuleLine checks the words ingot-init reads for each kind of module
// (boot.parseModules).
func TestModuleLine(t *testing.T) {
	tests := []struct {
		name string
		m    kmod.Module
		want string
	}{
		{"boot", kmod.Module{Name: "erofs", Requested: true, Deps: []string{"libcrc32c"}}, "k/m.ko boot dep:libcrc32c\n"},
		{"driver", kmod.Module{Name: "nvme", Requested: true, DeviceAliases: []string{"pci:v*d*sv*sd*bc01sc08i02*"}}, "k/m.ko alias:pci:v*d*sv*sd*bc01sc08i02*\n"},
		{"encrypted root", kmod.Module{Name: "dm_crypt", Requested: true, Deps: []string{"dm_mod"}}, "k/m.ko crypt dep:dm_mod\n"},
		{"only a dependency", kmod.Module{Name: "dm_mod"}, "k/m.ko\n"},
	}
	for _, tt := range tests {
		if got := moduleLine("k/m.ko", tt.m); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
