package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Payload is an artifact whose files are open for installing. Each file
// was opened once, by its name inside the artifact directory, without
// following a symbolic link, and had to be a regular file of the size
// the manifest gives; everything Verify checks was checked on those open
// files. The small files (the UKI and the verity signature) were read
// into memory and checked there, so an installer writes exactly the
// bytes that were verified; the large ones are copied with CopyTo, which
// hashes what it writes.
type Payload struct {
	// Manifest is the artifact's manifest.
	Manifest *Manifest
	// UKI is the verified UKI.
	UKI []byte
	// VeritySig is the verified verity signature; nil when the artifact
	// has none.
	VeritySig []byte

	dir   string
	files map[string]*os.File // the usr and verity files, by role
}

// inMemory are the roles whose files a Payload holds in memory.
var inMemory = map[string]bool{RoleUKI: true, RoleVeritySig: true}

// OpenPayload opens a's files and verifies them as Verify does. Close the
// Payload when done.
func (a *Artifact) OpenPayload(ctx context.Context, opts ...Option) (*Payload, error) {
	p, err := a.openPayload(ctx, makeOptions(opts))
	if err != nil {
		return nil, fmt.Errorf("verify artifact %s: %w", a.Dir, err)
	}
	return p, nil
}

func (a *Artifact) openPayload(ctx context.Context, o *options) (*Payload, error) {
	m := a.Manifest
	if m.Architecture != o.arch {
		return nil, &ArchError{Want: o.arch, Got: m.Architecture}
	}
	if err := o.limits.Check(m); err != nil {
		return nil, err
	}
	p := &Payload{Manifest: m, dir: a.Dir, files: map[string]*os.File{}}
	if err := p.open(ctx); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.check(ctx, o); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// open opens every file once and checks its size and sha256: the large
// files on their descriptors, the small ones on the bytes kept.
func (p *Payload) open(ctx context.Context) error {
	for _, f := range p.Manifest.Files {
		fd, err := openRegular(filepath.Join(p.dir, f.Name), f)
		if err != nil {
			return err
		}
		var r io.Reader = io.NewSectionReader(fd, 0, f.Size)
		if inMemory[f.Role] {
			b, err := io.ReadAll(r)
			fd.Close()
			if err != nil {
				return fmt.Errorf("read %s: %w", f.Name, err)
			}
			p.keep(f.Role, b)
			r = bytes.NewReader(b)
		} else {
			p.files[f.Role] = fd
		}
		if err := checkDigest(ctx, r, f); err != nil {
			return err
		}
	}
	return nil
}

func (p *Payload) keep(role string, b []byte) {
	if role == RoleUKI {
		p.UKI = b
	} else {
		p.VeritySig = b
	}
}

// check runs the checks across files: the UKI pins the usrhash and names
// the version, the signature is for the usrhash, the hash tree proves
// the usr data.
func (p *Payload) check(ctx context.Context, o *options) error {
	m := p.Manifest
	if err := checkUKI(p.UKI, m.UsrHash, m.Version); err != nil {
		return err
	}
	if err := checkVeritySig(p.VeritySig, m.UsrHash); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return checkVerity(fdPath(p.files[RoleUsr]), fdPath(p.files[RoleVerity]), m.UsrHash, o.tempDir)
}

// openRegular opens path without following a symbolic link (and without
// blocking on a FIFO), and checks that it is a regular file of want's
// size.
func openRegular(path string, want File) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("%s is a symbolic link, not a regular file", want.Name)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", want.Name)
	}
	if fi.Size() != want.Size {
		f.Close()
		return nil, sizeMismatch(want, fi.Size())
	}
	return f, nil
}

func sizeMismatch(want File, got int64) *MismatchError {
	return &MismatchError{File: want.Name, Field: "size", Want: strconv.FormatInt(want.Size, 10), Got: strconv.FormatInt(got, 10)}
}

// checkDigest compares the sha256 of r's content with the manifest's.
func checkDigest(ctx context.Context, r io.Reader, want File) error {
	sum, n, err := hashReader(ctx, r)
	if err != nil {
		return fmt.Errorf("read %s: %w", want.Name, err)
	}
	if n != want.Size {
		return sizeMismatch(want, n)
	}
	if sum != want.SHA256 {
		return &MismatchError{File: want.Name, Field: "sha256", Want: want.SHA256, Got: sum}
	}
	return nil
}

// fdPath names an open file for code that opens files by name; it is the
// same file whatever happens to its name in the directory.
func fdPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// CopyTo writes the file of role (RoleUsr or RoleVerity) to w at off:
// exactly the manifest's size, read from the descriptor that was
// verified, and never more than limit bytes (a larger file is refused
// before anything is written). It hashes what it writes and returns a
// *MismatchError when that is not the manifest's sha256, or when the
// file changed after OpenPayload (grew, shrank, or its name now points
// elsewhere); what it wrote must then be thrown away. progress, if set,
// is told every 64 MiB.
func (p *Payload) CopyTo(ctx context.Context, role string, w io.WriterAt, off, limit int64, progress func(done, total int64)) error {
	f, ok := p.Manifest.File(role)
	fd := p.files[role]
	if !ok || fd == nil {
		return fmt.Errorf("artifact has no open file of role %q", role)
	}
	if f.Size > limit {
		return &SizeError{File: f.Name, Size: f.Size, Limit: limit, What: "the space it is written to"}
	}
	h := sha256.New()
	sw := &sectionWriter{w: w, off: off, ctx: ctx, progress: progress, total: f.Size}
	n, err := io.Copy(io.MultiWriter(sw, h), io.NewSectionReader(fd, 0, f.Size))
	if err != nil {
		return fmt.Errorf("copy %s: %w", f.Name, err)
	}
	if n != f.Size {
		return sizeMismatch(f, n)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		return &MismatchError{File: f.Name, Field: "sha256 of the bytes written", Want: f.SHA256, Got: sum}
	}
	return p.unchanged(f, fd)
}

// unchanged checks that fd still has the manifest's size and that the
// artifact directory still names it.
func (p *Payload) unchanged(f File, fd *os.File) error {
	var open, named unix.Stat_t
	if err := unix.Fstat(int(fd.Fd()), &open); err != nil {
		return fmt.Errorf("stat %s: %w", f.Name, err)
	}
	if open.Size != f.Size {
		return &MismatchError{File: f.Name, Field: "size since it was verified", Want: strconv.FormatInt(f.Size, 10), Got: strconv.FormatInt(open.Size, 10)}
	}
	err := unix.Lstat(filepath.Join(p.dir, f.Name), &named)
	if err != nil || named.Dev != open.Dev || named.Ino != open.Ino {
		return &MismatchError{File: f.Name, Field: "file", Want: "the file that was verified", Got: "another file (replaced while installing)"}
	}
	return nil
}

// Close closes the payload's files.
func (p *Payload) Close() error {
	var errs []error
	for _, f := range p.files {
		errs = append(errs, f.Close())
	}
	p.files = nil
	return errors.Join(errs...)
}

// sectionWriter writes a stream to an io.WriterAt from an offset,
// stopping when ctx is done and telling progress every 64 MiB.
type sectionWriter struct {
	w        io.WriterAt
	off, n   int64
	total    int64
	ctx      context.Context
	progress func(done, total int64)
}

func (s *sectionWriter) Write(b []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := s.w.WriteAt(b, s.off+s.n)
	before := s.n
	s.n += int64(n)
	if s.progress != nil && s.n>>26 != before>>26 {
		s.progress(s.n, s.total)
	}
	return n, err
}
