package distro_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ingot-linux/ingot/builder"
	"github.com/ingot-linux/ingot/builder/sandbox/sandboxtest"
	"github.com/ingot-linux/ingot/builder/toolchain"
	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/distro"
	"github.com/ingot-linux/ingot/distro/distrotest"
	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/ext/extfs"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/trust"
)

// stepsRecipe is a recipe without sources whose build installs files
// (path → content) into $DESTDIR.
func stepsRecipe(name string, deps []string, files map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nversion: \"2.%d\"\nlicence: MIT\ndeps: [%s]\nbuilder:\n  type: steps\n  steps:\n",
		name, len(name), strings.Join(deps, ", "))
	for _, p := range slices.Sorted(maps.Keys(files)) {
		fmt.Fprintf(&b, "    - mkdir -p \"$DESTDIR/%s\" && printf '%s' > \"$DESTDIR/%s\"\n", filepath.Dir(p), files[p], p)
	}
	return b.String()
}

// miniDistribution is a base of one package (core) and packages to
// extend it with, built for real in the sandbox (a second each) into a
// store of the test's.
func miniDistribution(t *testing.T) builder.Options {
	t.Helper()
	runner := sandboxtest.Require(t)
	fsys := fstest.MapFS{"sets.yaml": {Data: []byte("base: [core]\n")}}
	for name, r := range map[string]string{
		"core": stepsRecipe("core", nil, map[string]string{"usr/bin/core": "core", "usr/lib/os-release": `ID=ingot\nNAME=ingot\n`}),
		// tool needs libdep (not in the base: carried) and core (the base's).
		"tool":   stepsRecipe("tool", []string{"libdep", "core"}, map[string]string{"usr/bin/tool": "tool", "opt/tool/data": "d"}),
		"libdep": stepsRecipe("libdep", nil, map[string]string{"usr/lib/libdep.so.1": "lib"}),
		"etcpkg": stepsRecipe("etcpkg", nil, map[string]string{"usr/bin/etcpkg": "x", "etc/etcpkg.conf": "y"}),
		"trusty": stepsRecipe("trusty", nil, map[string]string{"usr/lib/ingot/keys/verity.crt": "not ours"}),
		"shadow": stepsRecipe("shadow", nil, map[string]string{"usr/bin/core": "another core"}),
	} {
		fsys[name+"/recipe.yaml"] = &fstest.MapFile{Data: []byte(r)}
	}
	d, err := builder.LoadDistribution(fsys, "testrecipes")
	if err != nil {
		t.Fatal(err)
	}
	return builder.Options{Distribution: d, Recipes: fsys, Store: filepath.Join(t.TempDir(), "store"), Runner: runner,
		Jobs: 2, Toolchain: []toolchain.Probe{{Name: "sh", Path: "sh"}}}
}

func extOptions(b builder.Options, out string, packages ...string) distro.ExtensionOptions {
	return distro.ExtensionOptions{Build: b, Packages: packages, Tool: "ingot-test", Ext: diskimage.ExtensionOptions{
		Name: "debug", Kind: ext.Sysext, Version: "1", For: "1.0.0", OutputDir: out, Epoch: diskimage.EpochFromContent}}
}

// TestExtensionFromPackages: an extension of packages carries them and
// each runtime dependency the base lacks (saying which), not the base's
// own, with its SBOM inside and next to it; two runs give the same bytes.
func TestExtensionFromPackages(t *testing.T) {
	b := miniDistribution(t)
	var sums []string
	for i := range 2 {
		out := filepath.Join(t.TempDir(), "out")
		res, err := distro.Extension(context.Background(), extOptions(b, out, "tool"))
		if err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprint(res.Carried)
		if !strings.Contains(got, "{libdep 2.6 ") || !strings.Contains(got, " true}") || !strings.Contains(got, "{tool 2.4 ") || strings.Contains(got, "core") {
			t.Errorf("carried %s: want tool and libdep (a dependency), not the base's core", got)
		}
		im := openImage(t, res.Path)
		tree, err := extfs.FS(im)
		if err != nil {
			t.Fatal(err)
		}
		files := listFiles(t, tree)
		for _, want := range []string{"usr/bin/tool", "opt/tool/data", "usr/lib/libdep.so.1", distro.SBOMImagePath("debug"), ext.Sysext.ReleasePath("debug")} {
			if !strings.Contains(files, want+"\n") {
				t.Errorf("the extension has no %s:\n%s", want, files)
			}
		}
		if strings.Contains(files, "usr/bin/core") || strings.Contains(files, "os-release") {
			t.Errorf("the extension carries the base's files:\n%s", files)
		}
		rel, err := extfs.ReadRelease(im, ext.Sysext, "debug")
		if err != nil || rel.ID != "ingot" || rel.Level != "1.0.0" {
			t.Errorf("release %+v, %v: want ID=ingot SYSEXT_LEVEL=1.0.0", rel, err)
		}
		sbom, err := os.ReadFile(res.SBOM)
		if err != nil {
			t.Fatal(err)
		}
		inside, err := fs.ReadFile(tree, distro.SBOMImagePath("debug"))
		if err != nil || !bytes.Equal(inside, sbom) {
			t.Errorf("the SBOM inside (%v) differs from the one next to the image", err)
		}
		distrotest.CheckSBOM(t, sbom, map[string]string{"tool": "2.4", "libdep": "2.6"})
		if !bytes.Contains(sbom, []byte("part of the base the extension extends")) {
			t.Errorf("the SBOM does not say core is the base's:\n%s", sbom)
		}
		if i == 0 {
			distrotest.Validate(t, res.ExtensionResult, "SYSEXT_LEVEL=1.0.0", "usr/bin/tool")
		}
		sums = append(sums, ingottest.FileSHA256(t, res.Path)+" "+ingottest.FileSHA256(t, res.SBOM))
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds of the same packages differ: %s and %s", sums[0], sums[1])
	}
}

// TestExtensionFromPackagesRefused: what an extension may not carry is
// refused with the package and path named, and nothing is left behind.
func TestExtensionFromPackagesRefused(t *testing.T) {
	b := miniDistribution(t)
	tests := []struct {
		name     string
		packages []string
		mod      func(*distro.ExtensionOptions)
		want     []string
	}{
		{"outside /usr and /opt", []string{"etcpkg"}, nil, []string{"package etcpkg ships /etc", "may only hold /usr and /opt"}},
		{"reserved for the image", []string{"trusty"}, nil, []string{"package trusty ships /usr/lib/ingot", "only the image may hold it"}},
		{"shadows the base", []string{"shadow"}, nil, []string{"package shadow ships /usr/bin/core", "shadow /usr/bin/core of the base"}},
		{"part of the base", []string{"core"}, nil, []string{"core", "part of the base"}},
		{"unknown", []string{"nosuch"}, nil, []string{"nosuch"}},
		{"the base set", []string{"base"}, nil, []string{"base has all of it"}},
		{"no packages", nil, nil, []string{"Packages", "at least one"}},
		{"and a directory", []string{"tool"}, func(o *distro.ExtensionOptions) { o.Ext.Contents = t.TempDir() }, []string{"not both"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			o := extOptions(b, out, tc.packages...)
			if tc.mod != nil {
				tc.mod(&o)
			}
			res, err := distro.Extension(context.Background(), o)
			if err == nil {
				t.Fatalf("made %s", res.Path)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("output directory left behind: %v", err)
			}
		})
	}
}

func openImage(t *testing.T, path string) *ext.Image {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	im, err := ext.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// listFiles lists an image's files and links, a line each.
func listFiles(t *testing.T, tree fs.FS) string {
	t.Helper()
	var b strings.Builder
	err := fs.WalkDir(tree, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b.WriteString(p + "\n")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestExtensionStrace: ingot ext build --packages strace against the test
// store (the base built there, strace built on demand, not part of the
// base) makes a signed sysext that systemd-dissect and veritysetup accept,
// with strace's binary and an SBOM that names strace and its version.
func TestExtensionStrace(t *testing.T) {
	keys, err := trust.InitKeys(filepath.Join(t.TempDir(), "keys"), trust.KeyOptions{Name: "ingot test"})
	if err != nil {
		t.Fatal(err)
	}
	res := distrotest.Strace(t, keys, "1.0.0", filepath.Join(t.TempDir(), "out"))
	if filepath.Base(res.Path) != "debug_1.raw" || !res.Signed {
		t.Errorf("made %s (signed %v), want debug_1.raw, signed", res.Path, res.Signed)
	}
	if got := fmt.Sprint(res.Carried); !strings.HasPrefix(got, "[{strace 6.1 ") || strings.Count(got, "{") != 1 {
		t.Errorf("carries %s, want strace alone (its musl is the base's)", got)
	}
	im := openImage(t, res.Path)
	if _, err := im.Verify([]*x509.Certificate{keys.Verity.Cert}); err != nil {
		t.Errorf("signature: %v", err)
	}
	distrotest.Validate(t, res.ExtensionResult, "SYSEXT_LEVEL=1.0.0", "usr/bin/strace", distro.SBOMImagePath("debug"))
	sbom, err := os.ReadFile(res.SBOM)
	if err != nil {
		t.Fatal(err)
	}
	distrotest.CheckSBOM(t, sbom, map[string]string{"strace": "6.1"})
}

// TestConfextFromDirectory: a confext of a directory passes the same
// checks (systemd-dissect, veritysetup verify).
func TestConfextFromDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc/site"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/site/site.conf"), []byte("x=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := diskimage.BuildExtension(context.Background(), diskimage.ExtensionOptions{Name: "site", Kind: ext.Confext,
		Version: "3", For: "1.0.0", Contents: dir, OutputDir: filepath.Join(t.TempDir(), "out"), Epoch: 1_700_000_000})
	if err != nil {
		t.Fatal(err)
	}
	distrotest.Validate(t, res, "CONFEXT_LEVEL=1.0.0", "etc/site/site.conf")
}
