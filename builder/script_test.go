package builder

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/ingot-linux/ingot/cookbook"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestScript compares each builder's script with testdata/script/<type>.sh.
func TestScript(t *testing.T) {
	for _, typ := range []string{cookbook.Autotools, cookbook.Meson, cookbook.CMake, cookbook.Make, cookbook.Kernel, cookbook.Steps} {
		t.Run(typ, func(t *testing.T) {
			r := &cookbook.Recipe{Name: "pkg", Version: "1.0", Patches: []string{"fix build.patch"},
				Builder: cookbook.Builder{Type: typ, Dir: "src", Env: []string{`CFLAGS=-O2 -g "$EXTRA"`},
					Prepare: []string{"sed -i s/a/b/ Makefile"}, ConfigureArgs: []string{"--with-x=$SYSROOT/usr"},
					MakeArgs: []string{"V=1"}, PostInstall: []string{"rm -rf usr/share/info"}}}
			switch typ {
			case cookbook.Kernel:
				r.Builder.Config, r.Builder.Fragments, r.Builder.ConfigureArgs = "tinyconfig", []string{"ingot.config"}, nil
			case cookbook.Steps:
				r.Builder.Steps, r.Builder.ConfigureArgs, r.Builder.MakeArgs = []string{"make -j\"$JOBS\"", "make install DESTDIR=\"$DESTDIR\""}, nil, nil
			}
			got := Script(r)
			golden := filepath.Join("testdata", "script", typ+".sh")
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("script differs from %s (-update to accept):\n%s", golden, got)
			}
		})
	}
	if w := word(`a b$X"c`); w != `"a b$X\"c"` {
		t.Errorf("word = %s", w)
	}
}
