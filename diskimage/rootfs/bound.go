package rootfs

import (
	"errors"
	"fmt"
)

// The default bound on a root filesystem's content (the sizes of its
// regular files, holes of sparse files included): EROFS has no holes as
// go-erofs writes it, so every byte is written out, and a small tarball can
// declare a huge sparse or zero-filled file.
const (
	// ExpansionRatio is how many times its stored size a root filesystem
	// may expand to.
	ExpansionRatio = 100
	// MinContentBytes is the least bound, for small inputs.
	MinContentBytes = 1 << 30
)

// ErrTooLarge marks a root filesystem whose content is beyond its bound.
var ErrTooLarge = errors.New("beyond the bound on content, by default 100 times what the input stores and at least 1 GiB")

// ContentBound is the default bound on the content of a root filesystem
// that stores storedBytes: ExpansionRatio times as much, at least
// MinContentBytes.
func ContentBound(storedBytes int64) int64 {
	return max(MinContentBytes, ExpansionRatio*storedBytes)
}

// tooLarge says that the file at p takes the content to total bytes,
// beyond bound.
func tooLarge(p string, size, total, bound int64) error {
	return fmt.Errorf("/%s: its %d bytes take the root filesystem's content to %d bytes, past %d (a sparse file, or a compression bomb?): %w",
		p, size, total, bound, ErrTooLarge)
}
