package ingottest

import (
	"bytes"
	"io"
)

// MemFile is an in-memory file that grows as it is written: an
// io.ReaderAt and io.WriterAt for tests of on-disk formats and write logs.
type MemFile struct {
	// B holds the contents.
	B []byte
}

// WriteAt writes p at off, growing the file with zeros as needed.
func (m *MemFile) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.B)) {
		m.B = append(m.B, make([]byte, end-int64(len(m.B)))...)
	}
	return copy(m.B[off:], p), nil
}

// ReadAt reads from the contents.
func (m *MemFile) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(m.B).ReadAt(p, off)
}

var _ interface {
	io.ReaderAt
	io.WriterAt
} = (*MemFile)(nil)
