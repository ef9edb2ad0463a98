// Package distrotest holds test helpers for extensions built from
// packages: the shared test store, the debug extension (strace) built
// from it, and the independent checks of an extension image
// (systemd-dissect, veritysetup verify) and of its SBOM.
//
//	res := distrotest.Strace(t, keys, "1.0.0", t.TempDir())
//	// res.Path is debug_1.raw, signed by keys' verity key
package distrotest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/builder"
	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/distro"
	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/recipes"
	"github.com/ingot-linux/ingot/trust"
)

// TestStore is the build store the distribution's tests share across runs
// (outside the clone, so a machine builds the base once): INGOT_TEST_STORE,
// or ingot-test/store under /var/cache (root) or the user's cache
// directory. Where it does not exist yet, the test skips (building the
// base from source takes most of an hour) unless INGOT_REQUIRE_TOOLS=1,
// where it is built, as make check's TestDistroBoot does.
func TestStore(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds packages from source into the test store; not in -short")
	}
	s := os.Getenv("INGOT_TEST_STORE")
	if s == "" && os.Geteuid() == 0 {
		s = "/var/cache/ingot-test/store"
	}
	if s == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		s = filepath.Join(c, "ingot-test", "store")
	}
	if _, err := os.Stat(s); err != nil && !ingottest.RequireTools() {
		t.Skipf("no test store at %s (ingot build --store %s builds the base into it; INGOT_REQUIRE_TOOLS=1 builds it here)", s, s)
	}
	return s
}

// Strace makes the debug sysext, version 1, of the strace recipe for OS
// version forVersion in outDir, signed by keys (nil: unsigned): what
// `ingot ext build --name debug --version 1 --packages strace --for
// forVersion` makes, built against the test store (strace is built into
// it once, in a few minutes; later calls take seconds).
func Strace(t testing.TB, keys *trust.Keys, forVersion, outDir string) *distro.ExtensionResult {
	t.Helper()
	d, err := builder.LoadDistribution(recipes.FS(), "recipes")
	if err != nil {
		t.Fatal(err)
	}
	res, err := distro.Extension(context.Background(), distro.ExtensionOptions{
		Build:    builder.Options{Distribution: d, Recipes: recipes.FS(), Store: TestStore(t)},
		Packages: []string{"strace"},
		Tool:     "ingot-test",
		Ext: diskimage.ExtensionOptions{Name: "debug", Kind: ext.Sysext, Version: "1", For: forVersion,
			Keys: keys, OutputDir: outDir, Epoch: diskimage.EpochFromContent},
	})
	if err != nil {
		t.Fatalf("ext build --packages strace: %v", err)
	}
	return res
}

// Validate checks an extension image with the host's reference tools:
// systemd-dissect must find its EROFS and verity partitions and take a
// sysext for one whose release says release (e.g. "SYSEXT_LEVEL=1.0.0");
// veritysetup verify must accept its data partition against its hash
// partition and root hash; fsck.erofs must check and extract the data,
// which must hold each of files (image paths such as "usr/bin/strace"),
// and a confext's release file must say release (systemd before 254
// knows no confext).
func Validate(t testing.TB, res *diskimage.ExtensionResult, release string, files ...string) {
	t.Helper()
	dir := t.TempDir()
	named := filepath.Join(dir, res.Name+".raw") // systemd-dissect takes the name from the file's
	b, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(named, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := ingottest.SystemdDissect(t, named, "--json=short")
	wants := []string{`"designator":"root-verity"`, `"fstype":"erofs"`}
	if res.Kind == string(ext.Sysext) {
		wants = append(wants, `"useSystemExtension":true`, release)
	} else {
		// systemd before 254 knows no confext: it is checked by the
		// release file fsck.erofs extracts.
		files = append(files, ext.Confext.ReleasePath(res.Name))
	}
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("systemd-dissect says no %s:\n%s", want, out)
		}
	}
	im, err := ext.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	data := ingottest.Extract(t, named, im.DataOffset(), im.DataReader().Size(), dir, "data")
	hash := ingottest.Extract(t, named, im.HashOffset(), im.HashReader().Size(), dir, "hash")
	ingottest.VeritySetupVerify(t, data, hash, res.RootHash)
	tree := filepath.Join(dir, "tree")
	ingottest.LookTool(t, "fsck.erofs", "erofs-utils")
	ingottest.Run(t, "fsck.erofs", "--extract="+tree, data)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(tree, f))
		if err != nil || len(b) == 0 {
			t.Errorf("fsck.erofs --extract gives no %s: %v", f, err)
		}
		if strings.Contains(f, "extension-release.") && !strings.Contains(string(b), release) {
			t.Errorf("%s (as fsck.erofs extracts it) says no %s:\n%s", f, release, b)
		}
	}
}

// CheckSBOM checks that an SPDX document names each package (name →
// version) as a package of the bill.
func CheckSBOM(t testing.TB, doc []byte, want map[string]string) {
	t.Helper()
	var d struct {
		SPDXVersion string `json:"spdxVersion"`
		Packages    []struct {
			Name    string `json:"name"`
			Version string `json:"versionInfo"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(doc, &d); err != nil || d.SPDXVersion != "SPDX-2.3" {
		t.Fatalf("SBOM is not SPDX 2.3 JSON (%q): %v", d.SPDXVersion, err)
	}
	got := map[string]string{}
	for _, p := range d.Packages {
		got[p.Name] = p.Version
	}
	for name, version := range want {
		if got[name] != version {
			t.Errorf("SBOM names %s %q, want %q (it has %v)", name, got[name], version, got)
		}
	}
}
