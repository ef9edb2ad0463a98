package diskimage

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"path"

	"github.com/ingot-linux/ingot/diskimage/rootfs"
	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/ext/extfs"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

// maxFactoryExtensionBytes bounds one extension shipped in /usr.
const maxFactoryExtensionBytes = 1 << 30

// putExtensions checks each extension image file against the image it
// goes into — its signature against keys' verity certificate (none on an
// unsigned image), its release file against the tree's os-release ID and
// version — and puts it into /usr as the image's factory set.
func putExtensions(t *rootfs.Tree, files []string, version string, keys *trust.Keys, epoch int64) error {
	if len(files) == 0 {
		return nil
	}
	osr, err := t.ReadFile("usr/lib/os-release")
	if err != nil {
		return fmt.Errorf("extensions: read os-release: %w", err)
	}
	id, _, err := ext.OSRelease(osr)
	if err != nil {
		return fmt.Errorf("extensions: %w", err)
	}
	var roots []*x509.Certificate
	if keys != nil {
		roots = []*x509.Certificate{keys.Verity.Cert}
	}
	seen := map[string]string{}
	for _, f := range files {
		b, name, err := checkFactoryExtension(f, id, version, roots)
		if err != nil {
			return &FieldError{Field: "Extensions", Value: f, Problem: "not an extension this image can ship", Err: err}
		}
		if prev, ok := seen[name]; ok {
			return &FieldError{Field: "Extensions", Value: f, Problem: fmt.Sprintf("extension %s is also %s", name, prev)}
		}
		seen[name] = f
		t.PutFile(path.Join(layout.FactoryExtensionsDir[1:], name+".raw"), b, 0o644, epoch)
	}
	return nil
}

// checkFactoryExtension reads and checks one extension image file.
func checkFactoryExtension(file, id, version string, roots []*x509.Certificate) ([]byte, string, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, "", err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxFactoryExtensionBytes {
		return nil, "", fmt.Errorf("not a regular file of at most %d bytes", maxFactoryExtensionBytes)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, "", err
	}
	im, err := ext.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, "", err
	}
	switch {
	case roots != nil:
		if _, err := im.Verify(roots); err != nil {
			return nil, "", fmt.Errorf("%w (a signed image ships only extensions signed by its verity key)", err)
		}
	case im.Sig != nil:
		return nil, "", fmt.Errorf("extension %s is signed, the image is not: build the image with --keys", im.Name)
	}
	for _, k := range []ext.Kind{ext.Sysext, ext.Confext} {
		rel, err := extfs.ReadRelease(im, k, im.Name)
		if err != nil {
			continue
		}
		if err := rel.Fits(id, version); err != nil {
			return nil, "", err
		}
		return b, im.Name, nil
	}
	return nil, "", fmt.Errorf("extension %s has no release file: %w", im.Name, ext.ErrMalformed)
}
