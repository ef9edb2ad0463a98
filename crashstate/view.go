package crashstate

import "io"

// View is one crash state: an Overlay (everything durable before the
// state's epoch) with some of the epoch's writes on top, in log order. It
// implements io.ReaderAt and Fingerprint; it is valid until the Overlay
// changes, that is until the enumeration moves on.
type View struct {
	base *Overlay
	top  []Write
}

// NewView returns base with top applied in order.
func NewView(base *Overlay, top []Write) *View { return &View{base: base, top: top} }

// Size is the disk size in bytes.
func (v *View) Size() int64 { return v.base.size }

// ReadAt reads the disk as the crash state has it.
func (v *View) ReadAt(p []byte, off int64) (int, error) {
	n, err := v.base.ReadAt(p, off)
	if n == 0 {
		return n, err
	}
	for _, w := range v.top {
		e := extent{w.Off, w.Len, w.Src, w.SrcOff, w.ID}
		if cerr := copyExtent(p[:n], off, e); cerr != nil {
			return 0, cerr
		}
	}
	return n, err
}

// Fingerprint is a hash of what the state holds in [off, off+n); see
// Overlay.Fingerprint. It does not depend on which writes are durable and
// which are on top, only on the bytes they leave.
func (v *View) Fingerprint(off, n int64) [32]byte {
	var ext []extent
	for _, w := range v.top {
		lo, hi := max(off, w.Off), min(off+n, w.Off+w.Len)
		if lo >= hi {
			continue
		}
		if ext == nil {
			ext = v.base.region(off, n)
		}
		ext = insert(ext, extent{lo, hi - lo, w.Src, srcAdd(w.Src, w.SrcOff, lo-w.Off), w.ID})
	}
	if ext == nil {
		return v.base.Fingerprint(off, n)
	}
	return hashExtents(ext)
}

var _ io.ReaderAt = (*View)(nil)
