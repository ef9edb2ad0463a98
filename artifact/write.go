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

	"github.com/ingot-linux/ingot/internal/fileutil"
	"github.com/ingot-linux/ingot/layout"
)

// Inputs are the parts of a built image that make up its artifact.
type Inputs struct {
	// Version is the image version.
	Version string
	// Arch is the architecture name; "" means ArchX86_64.
	Arch string
	// UsrHash is the dm-verity root hash of UsrPath.
	UsrHash []byte
	// UsrPath is the EROFS /usr image, padded to whole 4096-byte blocks.
	UsrPath string
	// VerityPath is the dm-verity hash file of UsrPath: superblock at
	// offset 0, hash tree from offset 4096.
	VerityPath string
	// UKI is the unified kernel image; UKIPath names a file holding it
	// instead. Exactly one of them must be set.
	UKI     []byte
	UKIPath string
	// VeritySig is the usr-verity-sig content of a signed image; nil for
	// an unsigned one.
	VeritySig []byte
}

// DirName is the conventional name of the artifact directory of version:
// "ingot_<version>.update".
func DirName(version string) string { return layout.Name + "_" + version + ".update" }

func (in *Inputs) check() error {
	var errs []error
	if err := layout.CheckVersion(in.Version); err != nil {
		errs = append(errs, err)
	}
	if in.Arch == "" {
		in.Arch = ArchX86_64
	}
	if !archPattern.MatchString(in.Arch) {
		errs = append(errs, fmt.Errorf("architecture %q is not a valid name", in.Arch))
	}
	if len(in.UsrHash) != sha256.Size {
		errs = append(errs, fmt.Errorf("usrhash has %d bytes, want %d", len(in.UsrHash), sha256.Size))
	}
	if in.UsrPath == "" || in.VerityPath == "" {
		errs = append(errs, errors.New("usr and verity paths are required"))
	}
	if (in.UKI == nil) == (in.UKIPath == "") {
		errs = append(errs, errors.New("give exactly one of UKI and UKIPath"))
	}
	return errors.Join(errs...)
}

// Write makes the artifact directory dir from in and returns its manifest.
// It copies the files into a temporary directory next to dir, fsyncs them,
// verifies the result (so an artifact whose UKI or hash tree does not match
// UsrHash is never written), and renames it into place, replacing an
// earlier artifact or empty directory at dir (see CheckReplaceable). On error nothing is left behind. The same inputs give
// the same bytes.
func Write(dir string, in Inputs) (*Manifest, error) {
	m, err := write(dir, in)
	if err != nil {
		return nil, fmt.Errorf("write artifact %s: %w", dir, err)
	}
	return m, nil
}

func write(dir string, in Inputs) (*Manifest, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	stage, err := fileutil.NewStaging(dir)
	if err != nil {
		return nil, err
	}
	defer stage.Discard()
	tmp := stage.Dir

	m := &Manifest{
		SchemaVersion: SchemaVersion,
		Name:          layout.Name,
		Version:       in.Version,
		Architecture:  in.Arch,
		UsrHash:       hex.EncodeToString(in.UsrHash),
	}
	type source struct {
		role, path string
		data       []byte
	}
	sources := []source{
		{role: RoleUKI, path: in.UKIPath, data: in.UKI},
		{role: RoleUsr, path: in.UsrPath},
		{role: RoleVerity, path: in.VerityPath},
	}
	if in.VeritySig != nil {
		sources = append(sources, source{role: RoleVeritySig, data: in.VeritySig})
	}
	for _, s := range sources {
		name := roleFiles[s.role]
		var r io.Reader = bytes.NewReader(s.data)
		if s.data == nil {
			f, err := os.Open(s.path)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			r = f
		}
		sum, size, err := writeFile(filepath.Join(tmp, name), r)
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, File{Name: name, Role: s.role, SHA256: sum, Size: size})
	}
	b, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	if _, _, err := writeFile(filepath.Join(tmp, ManifestFile), bytes.NewReader(b)); err != nil {
		return nil, err
	}
	a := &Artifact{Dir: tmp, Manifest: m}
	p, err := a.openPayload(context.Background(), &options{arch: in.Arch, tempDir: tmp})
	if err != nil {
		return nil, err
	}
	p.Close()
	if err := Commit(tmp, dir); err != nil {
		return nil, err
	}
	stage.Keep()
	return m, nil
}

// writeFile copies r to a new file at path with mode 0644, fsyncs it, and
// returns the hex sha256 and length of what it wrote.
func writeFile(path string, r io.Reader) (string, int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	if err := f.Chmod(0o644); err != nil { // whatever the umask
		return "", 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		return "", 0, fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		return "", 0, fmt.Errorf("sync %s: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Commit moves a complete artifact directory tmp to dir: it makes tmp mode
// 0755, fsyncs it, and renames it to dir, atomically replacing a directory
// already there (on Linux), then fsyncs dir's parent. tmp must be on the
// same filesystem as dir, e.g. made with os.MkdirTemp(filepath.Dir(dir),
// ...), and its files already synced. A dir that CheckReplaceable refuses
// is left alone. On error tmp is left for the caller to remove.
func Commit(tmp, dir string) error {
	if err := CheckReplaceable(dir); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := fileutil.SyncDir(tmp); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := replaceDir(tmp, dir); err != nil {
		return fmt.Errorf("move artifact into place: %w", err)
	}
	if err := fileutil.SyncDir(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Dir(dir), err)
	}
	return nil
}

// CheckReplaceable reports whether dir may be replaced by an artifact:
// it is missing, an empty directory, or an earlier artifact (a directory
// holding a manifest.json that parses and nothing but artifact files).
// Anything else, such as a directory of other files or a symbolic link,
// gives an error saying so.
func CheckReplaceable(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory; refusing to replace it with an artifact", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		return err
	}
	known := map[string]bool{ManifestFile: true}
	for _, name := range roleFiles {
		known[name] = true
	}
	for _, e := range entries {
		if !known[e.Name()] || !e.Type().IsRegular() {
			return fmt.Errorf("%s holds %s, which is no artifact file; refusing to replace it (give an empty or new directory)", dir, e.Name())
		}
	}
	if _, err := Open(dir); err != nil {
		return fmt.Errorf("%s is not an earlier artifact; refusing to replace it (give an empty or new directory): %w", dir, err)
	}
	return nil
}
