package diskimage_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/ext/extfs"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/trust"
)

// extDir makes an extension's contents: files (path → content) in a new
// directory.
func extDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func testKeys(t *testing.T, name string) *trust.Keys {
	t.Helper()
	k, err := trust.InitKeys(filepath.Join(t.TempDir(), "keys"), trust.KeyOptions{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func buildExt(t *testing.T, mod func(*diskimage.ExtensionOptions)) (*diskimage.ExtensionResult, error) {
	t.Helper()
	o := diskimage.ExtensionOptions{Name: "debug", Kind: ext.Sysext, Version: "1", For: "1.0.0",
		Contents:  extDir(t, map[string]string{"usr/bin/hello": "#!/bin/sh\necho hello\n"}),
		OutputDir: filepath.Join(t.TempDir(), "out"), Epoch: 1700000000}
	if mod != nil {
		mod(&o)
	}
	return diskimage.BuildExtension(context.Background(), o)
}

func openExt(t *testing.T, path string) *ext.Image {
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

func TestExtensionSigned(t *testing.T) {
	keys := testKeys(t, "ingot test")
	res, err := buildExt(t, func(o *diskimage.ExtensionOptions) { o.Keys = keys })
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(res.Path) != "debug_1.raw" || !res.Signed {
		t.Errorf("result %+v: want debug_1.raw, signed", res)
	}
	im := openExt(t, res.Path)
	if _, err := im.Verify([]*x509.Certificate{keys.Verity.Cert}); err != nil {
		t.Errorf("Verify with the verity certificate: %v", err)
	}
	other := testKeys(t, "ingot other")
	if _, err := im.Verify([]*x509.Certificate{other.Verity.Cert}); !errors.Is(err, trust.ErrUntrusted) {
		t.Errorf("Verify with another key: %v, want ErrUntrusted", err)
	}
	rel, err := extfs.ReadRelease(im, ext.Sysext, "debug")
	if err != nil || rel.Fits("ingot", "1.0.0") != nil || !errors.Is(rel.Fits("ingot", "2.0.0"), ext.ErrWrongOS) {
		t.Errorf("release %+v, %v: want one for ingot 1.0.0 only", rel, err)
	}
	validateExt(t, res, im)
}

// validateExt runs the host's reference tools over an extension image.
func validateExt(t *testing.T, res *diskimage.ExtensionResult, im *ext.Image) {
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
	ingottest.SgdiskVerify(t, named)
	out := ingottest.SystemdDissect(t, named, "--json=short")
	for _, want := range []string{`"useSystemExtension":true`, `"designator":"root-verity"`, "SYSEXT_LEVEL=1.0.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("systemd-dissect says no %s:\n%s", want, out)
		}
	}
	data := ingottest.Extract(t, named, im.DataOffset(), im.DataReader().Size(), dir, "data")
	hash := ingottest.Extract(t, named, im.HashOffset(), im.HashReader().Size(), dir, "hash")
	ingottest.FsckErofs(t, data)
	ingottest.VeritySetupVerify(t, data, hash, res.RootHash)
}

func TestExtensionReproducible(t *testing.T) {
	contents := extDir(t, map[string]string{"usr/bin/hello": "hi\n", "opt/x/y": "z"})
	var sums []string
	for range 2 {
		res, err := buildExt(t, func(o *diskimage.ExtensionOptions) { o.Contents = contents })
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, ingottest.FileSHA256(t, res.Path))
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds differ: %s and %s", sums[0], sums[1])
	}
}

func TestExtensionConfext(t *testing.T) {
	res, err := buildExt(t, func(o *diskimage.ExtensionOptions) {
		o.Name, o.Kind, o.For, o.AnyVersion = "site", ext.Confext, "", true
		o.Contents = extDir(t, map[string]string{"etc/site.conf": "x=1\n"})
	})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := extfs.ReadRelease(openExt(t, res.Path), ext.Confext, "site")
	if err != nil || rel.ID != ext.AnyID || rel.Fits("other", "9") != nil {
		t.Errorf("confext release %+v, %v: want ID=_any", rel, err)
	}
}

func TestExtensionBadInput(t *testing.T) {
	base := extDir(t, map[string]string{"usr/bin/sh": "base sh", "usr/lib/os-release": "ID=ingot\nIMAGE_VERSION=3.0\n"})
	tests := []struct {
		name string
		mod  func(o *diskimage.ExtensionOptions)
		want string
	}{
		{"name with slash", func(o *diskimage.ExtensionOptions) { o.Name = "a/b" }, `extension name "a/b": character '/'`},
		{"no version for", func(o *diskimage.ExtensionOptions) { o.For = "" }, "For"},
		{"for and any", func(o *diskimage.ExtensionOptions) { o.AnyVersion = true }, "conflicts with AnyVersion"},
		{"outside usr", func(o *diskimage.ExtensionOptions) {
			o.Contents = extDir(t, map[string]string{"etc/passwd": "x"})
		}, "/etc/passwd is outside"},
		{"confext with usr", func(o *diskimage.ExtensionOptions) {
			o.Kind = ext.Confext
		}, "/usr/bin/hello is outside"},
		{"shadows base", func(o *diskimage.ExtensionOptions) {
			o.Base, o.Contents = base, extDir(t, map[string]string{"usr/bin/sh": "mine"})
		}, "/usr/bin/sh of the extension shadows /usr/bin/sh of the base"},
		{"missing contents", func(o *diskimage.ExtensionOptions) { o.Contents = filepath.Join(t.TempDir(), "none") }, "read extension contents"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out string
			_, err := buildExt(t, func(o *diskimage.ExtensionOptions) { tc.mod(o); out = o.OutputDir })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("output directory left behind: %v", err)
			}
		})
	}
}

func TestExtensionBaseVersion(t *testing.T) {
	base := extDir(t, map[string]string{"usr/bin/sh": "base sh", "usr/lib/os-release": "ID=ingot\nIMAGE_VERSION=3.0\n"})
	res, err := buildExt(t, func(o *diskimage.ExtensionOptions) { o.For, o.Base = "", base })
	if err != nil {
		t.Fatal(err)
	}
	if res.Release != "ID=ingot\nSYSEXT_LEVEL=3.0\n" {
		t.Errorf("release %q, want the base's IMAGE_VERSION", res.Release)
	}
}

// TestExtensionCompressed: a compressed extension is what the validators
// accept (fsck.erofs extracts it, veritysetup verifies it, systemd-dissect
// reads it), and smaller than the same files uncompressed.
func TestExtensionCompressed(t *testing.T) {
	contents := extDir(t, map[string]string{"usr/bin/hello": "#!/bin/sh\necho hello\n", "usr/share/hello/data": strings.Repeat("compress me\n", 50000)})
	sizes := map[string]int64{}
	for _, c := range []string{"none", "lz4hc", "zstd"} {
		res, err := buildExt(t, func(o *diskimage.ExtensionOptions) { o.Contents, o.Compression = contents, c })
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		sizes[c] = res.SizeBytes
		validateExt(t, res, openExt(t, res.Path))
	}
	if sizes["lz4hc"] >= sizes["none"] || sizes["zstd"] >= sizes["none"] {
		t.Errorf("sizes %v: compressed not smaller", sizes)
	}
	if _, err := buildExt(t, func(o *diskimage.ExtensionOptions) { o.Compression = "gzip" }); err == nil || !strings.Contains(err.Error(), "Compression") {
		t.Errorf("gzip: %v, want a field error on Compression", err)
	}
}
