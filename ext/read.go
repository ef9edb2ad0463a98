package ext

import (
	"fmt"
	"io"
	"io/fs"

	erofs "github.com/erofs/go-erofs"
)

// ReadRelease reads the release file of the extension name of kind k from
// its EROFS partition. It reads the image as it is, before dm-verity:
// for checks at build time and in tests; a device reads the release file
// from the verified mount.
func (im *Image) ReadRelease(k Kind, name string) (Release, error) {
	fsys, err := erofs.Open(im.DataReader())
	if err != nil {
		return Release{}, fmt.Errorf("extension image: EROFS: %v: %w", err, ErrMalformed)
	}
	f, err := fsys.Open(k.ReleasePath(name))
	if err != nil {
		return Release{}, fmt.Errorf("extension image: release file %s: %w", k.ReleasePath(name), err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxReleaseBytes+1))
	if err != nil {
		return Release{}, fmt.Errorf("extension image: read %s: %w", k.ReleasePath(name), err)
	}
	return ParseRelease(k, b)
}

// FS is the image's EROFS tree, read without verity (tests, inspection).
func (im *Image) FS() (fs.FS, error) {
	fsys, err := erofs.Open(im.DataReader())
	if err != nil {
		return nil, fmt.Errorf("extension image: EROFS: %v: %w", err, ErrMalformed)
	}
	return fsys, nil
}
