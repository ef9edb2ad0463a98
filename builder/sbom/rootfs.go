package sbom

import (
	"bytes"
	"os"
	"path/filepath"

	"github.com/ingot-linux/ingot/internal/fileutil"
)

// ForRootFS is the SPDX JSON document of an image made from a root
// filesystem that ingot did not build: one package, the root filesystem
// at path, with the sha256 of a tarball (nothing is known about what is
// inside; a directory gets no checksum).
func ForRootFS(path, version string, o Options) ([]byte, error) {
	p := Package{Name: filepath.Base(path), Version: version, Licence: "NOASSERTION", Shipped: true,
		Description: "root filesystem given to ingot image --rootfs"}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		sum, err := fileutil.SHA256(path)
		if err != nil {
			return nil, err
		}
		p.Sources = []Source{{URL: "NOASSERTION", SHA256: sum}}
	}
	var buf bytes.Buffer
	if err := New([]Package{p}, o).Write(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
