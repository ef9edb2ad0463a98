// Package extfs reads an extension image's EROFS tree in user space,
// without dm-verity: for the builder's checks, inspection and tests. A
// device reads extensions only through dm-verity (and keeps go-erofs out
// of its binary).
package extfs

import (
	"fmt"
	"io"
	"io/fs"

	erofs "github.com/erofs/go-erofs"

	"github.com/ingot-linux/ingot/ext"
)

// maxReleaseBytes bounds the release file read.
const maxReleaseBytes = 16 << 10

// ReadRelease reads the release file of the extension name of kind k from
// its EROFS partition. It reads the image as it is, before dm-verity:
// for checks at build time and in tests; a device reads the release file
// from the verified mount.
func ReadRelease(im *ext.Image, k ext.Kind, name string) (ext.Release, error) {
	fsys, err := erofs.Open(im.DataReader())
	if err != nil {
		return ext.Release{}, fmt.Errorf("extension image: EROFS: %v: %w", err, ext.ErrMalformed)
	}
	f, err := fsys.Open(k.ReleasePath(name))
	if err != nil {
		return ext.Release{}, fmt.Errorf("extension image: release file %s: %w", k.ReleasePath(name), err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxReleaseBytes+1))
	if err != nil {
		return ext.Release{}, fmt.Errorf("extension image: read %s: %w", k.ReleasePath(name), err)
	}
	return ext.ParseRelease(k, b)
}

// FS is the image's EROFS tree, read without verity (tests, inspection).
func FS(im *ext.Image) (fs.FS, error) {
	fsys, err := erofs.Open(im.DataReader())
	if err != nil {
		return nil, fmt.Errorf("extension image: EROFS: %v: %w", err, ext.ErrMalformed)
	}
	return fsys, nil
}
