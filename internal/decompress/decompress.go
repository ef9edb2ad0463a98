// Package decompress recognises gzip, bzip2, xz and zstd streams by their
// magic numbers and returns a reader of the plain data, for tarballs of
// any of them.
//
//	r, done, err := decompress.Reader(f)
//	defer done()
package decompress

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Reader returns a reader of r's plain stream and a function that frees
// the decompressor; a stream without a known magic number is returned as
// it is.
func Reader(r io.Reader) (io.Reader, func(), error) {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 1<<20 {
		br = bufio.NewReaderSize(r, 1<<20)
	}
	magic, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return z, func() { z.Close() }, nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return bzip2.NewReader(br), func() {}, nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		z, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("xz: %w", err)
		}
		return z, func() {}, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return z, z.Close, nil
	}
	return br, func() {}, nil
}
