package diskimage_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	erofs "github.com/erofs/go-erofs"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/trust"
)

// TestFactoryExtensions: ingot image --extension ships extensions that fit
// the image in /usr/lib/ingot/extensions, and refuses the rest naming the
// flag's value and the reason.
func TestFactoryExtensions(t *testing.T) {
	keys := testKeys(t, "factory")
	other := testKeys(t, "other")
	dir := t.TempDir()
	tarball := filepath.Join(dir, "rootfs.tar")
	writeTar(t, tarball, fixture(t))
	mk := func(name, forVersion string, k *trust.Keys) string {
		res, err := buildExt(t, func(o *diskimage.ExtensionOptions) {
			o.Name, o.For, o.Keys, o.Base = name, forVersion, k, tarball // the base gives ID=fixture
		})
		if err != nil {
			t.Fatal(err)
		}
		return res.Path
	}
	signed := func(o *diskimage.Options) { o.Keys, o.KeyDir = keys, "" }

	good := mk("debug", "1.0.0", keys)
	res, err := build(t, tarball, filepath.Join(dir, "good"), func(o *diskimage.Options) {
		signed(o)
		o.Extensions = []string{good}
	})
	if err != nil {
		t.Fatal(err)
	}
	fsys := usrFS(t, res.DiskPath)
	got, err := fs.ReadFile(fsys, "lib/ingot/extensions/debug.raw")
	if want, _ := os.ReadFile(good); err != nil || !bytes.Equal(got, want) {
		t.Errorf("/usr/lib/ingot/extensions/debug.raw: %d bytes, %v; want the %d bytes of %s", len(got), err, len(want), good)
	}

	for _, tc := range []struct {
		name   string
		file   string
		mod    func(*diskimage.Options)
		want   string
		wantIs error
	}{
		{"another version", mk("later", "2.0.0", keys), signed, "is for", ext.ErrWrongOS},
		{"another key", mk("foreign", "1.0.0", other), signed, "verity signature", trust.ErrUntrusted},
		{"unsigned on a signed image", mk("plain", "1.0.0", nil), signed, "not signed", ext.ErrUnsigned},
		{"signed on an unsigned image", good, nil, "build the image with --keys", nil},
		{"not an extension", tarball, signed, "extension image", ext.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			_, err := build(t, tarball, out, func(o *diskimage.Options) {
				if tc.mod != nil {
					tc.mod(o)
				}
				o.Extensions = []string{tc.file}
			})
			var fe *diskimage.FieldError
			if !errors.As(err, &fe) || fe.Field != "Extensions" || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a FieldError on Extensions saying %q", err, tc.want)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("got %v, want it to wrap %v", err, tc.wantIs)
			}
			if m, _ := filepath.Glob(filepath.Join(out, "*")); len(m) > 0 {
				t.Errorf("a refused image left %v", m)
			}
		})
	}
}

// usrFS opens the /usr EROFS of the disk image at path, closed with the
// test.
func usrFS(t *testing.T, path string) fs.FS {
	t.Helper()
	d, f, err := diskimage.InspectFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fsys, err := erofs.Open(io.NewSectionReader(f, d.Usr.Offset(512), d.Usr.Size(512)))
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}
