package diskimage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ingot-linux/ingot/diskimage/rootfs"
	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/format/erofs"
	"github.com/ingot-linux/ingot/internal/fileutil"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

// ExtensionOptions say what extension image BuildExtension makes.
type ExtensionOptions struct {
	// Name names the extension: its release file and the image's file.
	Name string
	// Kind is ext.Sysext (contents below /usr and /opt) or ext.Confext
	// (below /etc).
	Kind ext.Kind
	// Version is the extension's own version (the file name's).
	Version string
	// Contents is a directory or tarball laid out as the root: usr/…,
	// opt/… or etc/….
	Contents string
	// Base, if set, is the root filesystem (directory or tarball) the
	// extension is for: no file of the extension may shadow one of it,
	// and its os-release gives the ID (and IMAGE_VERSION, if it has one,
	// for an empty For).
	Base string
	// For is the OS image version the extension fits; AnyVersion
	// instead writes ID=_any.
	For        string
	AnyVersion bool
	// Keys, if set, sign the verity root hash with the verity key.
	Keys *trust.Keys
	// Compression of the extension's files: "none" (the default, which
	// every kernel with EROFS mounts), "lz4hc" or "zstd", optionally with
	// ":LEVEL". The kernel of the OS it is for must mount it.
	Compression string
	// OutputDir receives NAME_VERSION.raw.
	OutputDir string
	// Epoch caps every timestamp (EpochFromContent: the newest in
	// Contents).
	Epoch int64
	// Files are added to the contents (dated Epoch, mode 0644) and checked
	// like them, e.g. the SBOM of the packages an extension carries.
	Files []ExtraFile
}

// ExtraFile is a file BuildExtension adds to an extension's contents.
type ExtraFile struct {
	// Path is relative to the image's root, e.g. "usr/share/…".
	Path string
	Data []byte
}

// ExtensionResult is what BuildExtension made.
type ExtensionResult struct {
	Path      string `json:"path"`
	Name      string `json:"name"`
	Kind      string `json:"type"`
	RootHash  string `json:"root_hash"`
	Signed    bool   `json:"signed"`
	SizeBytes int64  `json:"size_bytes"`
	Release   string `json:"release"`
}

// BuildExtension makes the extension image o describes. On error nothing
// is left behind, not even the output directory it made.
func BuildExtension(ctx context.Context, o ExtensionOptions) (res *ExtensionResult, err error) {
	if err := checkExtension(&o); err != nil {
		return nil, err
	}
	undo, err := fileutil.MkdirAllUndo(o.OutputDir, 0o755)
	if err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	defer func() {
		if err != nil {
			undo()
		}
	}()
	work, err := os.MkdirTemp(o.OutputDir, ".ext-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	t, rel, err := extensionTree(o, work)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return writeExtension(o, t, rel, work)
}

// checkExtension checks o's fields.
func checkExtension(o *ExtensionOptions) error {
	var errs []error
	field := func(name string, v any, problem string) {
		errs = append(errs, &FieldError{Field: name, Value: v, Problem: problem})
	}
	if err := ext.CheckName(o.Name); err != nil {
		field("Name", o.Name, err.Error())
	}
	if _, err := ext.ParseKind(string(o.Kind)); err != nil {
		field("Kind", o.Kind, err.Error())
	}
	if err := ext.CheckName(o.Version); err != nil {
		field("Version", o.Version, "not a valid version (letters, digits, '.', '_', '-')")
	}
	if o.For != "" && o.AnyVersion {
		field("For", o.For, "conflicts with AnyVersion")
	}
	if o.For != "" && ext.CheckName(o.For) != nil {
		field("For", o.For, "not a valid version")
	}
	if o.For == "" && !o.AnyVersion && o.Base == "" {
		field("For", o.For, "say which OS version the extension is for, or AnyVersion")
	}
	if o.Contents == "" {
		field("Contents", o.Contents, "required")
	}
	if _, err := erofs.ParseCompression(compressionOrNone(o.Compression)); err != nil {
		field("Compression", o.Compression, err.Error())
	}
	if o.OutputDir == "" {
		field("OutputDir", o.OutputDir, "required")
	}
	return errors.Join(errs...)
}

// extensionTree loads the contents, checks them against the kind and the
// base, and adds the release file.
func extensionTree(o ExtensionOptions, work string) (*rootfs.Tree, ext.Release, error) {
	rel := ext.Release{Kind: o.Kind, ID: layout.Name, Level: o.For}
	if o.AnyVersion {
		rel = ext.Release{Kind: o.Kind, ID: ext.AnyID}
	}
	t, err := rootfs.Load(o.Contents, rootfs.Options{TempDir: work})
	if err != nil {
		return nil, rel, fmt.Errorf("read extension contents: %w", err)
	}
	epoch := o.Epoch
	if epoch == EpochFromContent {
		epoch = newestMtime(t)
	}
	for _, f := range o.Files {
		t.PutFile(f.Path, f.Data, 0o644, epoch)
	}
	if err = checkTops(t, o.Kind); err == nil && o.Base != "" {
		rel, err = checkBase(t, o, rel, work)
	}
	if err != nil {
		t.Close()
		return nil, rel, err
	}
	t.PutFile(o.Kind.ReleasePath(o.Name), rel.Bytes(), 0o644, epoch)
	t.ClampMtimes(epoch)
	return t, rel, nil
}

// checkTops refuses what an extension of kind k may not carry.
func checkTops(t *rootfs.Tree, k ext.Kind) error {
	var bad []string
	for _, p := range t.Paths() {
		if !k.Allows(p) {
			bad = append(bad, "/"+p)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("a %s may only hold /%s: %s is outside", k, strings.Join(k.Tops(), " and /"), strings.Join(bad, ", "))
	}
	return nil
}

// checkBase refuses files that would shadow one of the base and takes the
// base's ID (and version, if the release says none).
func checkBase(t *rootfs.Tree, o ExtensionOptions, rel ext.Release, work string) (ext.Release, error) {
	base, err := rootfs.Load(o.Base, rootfs.Options{TempDir: work})
	if err != nil {
		return rel, fmt.Errorf("read base %s: %w", o.Base, err)
	}
	defer base.Close()
	var shadow []string
	for _, p := range t.Paths() {
		e, b := t.Lookup(p), base.Lookup(p)
		if b != nil && !e.IsDir() && !(b.IsDir() && e.IsDir()) {
			shadow = append(shadow, fmt.Sprintf("/%s of the extension shadows /%s of the base %s", p, p, o.Base))
		}
	}
	if len(shadow) > 0 {
		return rel, errors.New(strings.Join(shadow, "; "))
	}
	osr, err := base.ReadFile("usr/lib/os-release")
	if err != nil {
		return rel, fmt.Errorf("read os-release of the base %s: %w", o.Base, err)
	}
	id, version, err := ext.OSRelease(osr)
	if err != nil {
		return rel, fmt.Errorf("os-release of the base %s: %w", o.Base, err)
	}
	if rel.ID != ext.AnyID && id != "" {
		rel.ID = id
	}
	if rel.ID != ext.AnyID && rel.Level == "" {
		if version == "" {
			return rel, &FieldError{Field: "For", Problem: "the base names no IMAGE_VERSION: say which OS version the extension is for"}
		}
		rel.Level = version
	}
	return rel, nil
}

// writeExtension writes the tree as EROFS with its verity tree, signs the
// root hash and lays out the image, renamed into place when complete.
func writeExtension(o ExtensionOptions, t *rootfs.Tree, rel ext.Release, work string) (*ExtensionResult, error) {
	comp, err := erofs.ParseCompression(compressionOrNone(o.Compression))
	if err != nil {
		return nil, err
	}
	fsImg, err := buildVerityFS(t, ".", work, "ext", newestMtime(t), comp)
	if err != nil {
		return nil, fmt.Errorf("extension %s: %w", o.Name, err)
	}
	var sig []byte
	if o.Keys != nil {
		if sig, err = trust.SignRootHash(fsImg.RootHash, o.Keys.Verity.Signer, o.Keys.Verity.Cert); err != nil {
			return nil, fmt.Errorf("extension %s: %w", o.Name, err)
		}
	}
	data, err1 := os.Open(fsImg.DataPath)
	hash, err2 := os.Open(fsImg.HashPath)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	defer data.Close()
	defer hash.Close()
	out, err := os.CreateTemp(work, "ext-*.raw")
	if err != nil {
		return nil, err
	}
	defer out.Close()
	size, err := ext.Write(out, ext.Parts{Name: o.Name, RootHash: fsImg.RootHash, Data: data, DataBytes: fsImg.DataBytes,
		Hash: hash, HashBytes: fsImg.HashBytes, Sig: sig})
	if err != nil {
		return nil, err
	}
	if _, err := ext.Open(out, size); err != nil {
		return nil, fmt.Errorf("read back extension %s: %w", o.Name, err)
	}
	res := &ExtensionResult{Path: filepath.Join(o.OutputDir, ext.FileName(o.Name, o.Version)), Name: o.Name, Kind: string(o.Kind),
		RootHash: fmt.Sprintf("%x", fsImg.RootHash), Signed: sig != nil, SizeBytes: size, Release: string(rel.Bytes())}
	if err := commitFile(out, res.Path); err != nil {
		return nil, err
	}
	return res, nil
}

// commitFile syncs f and renames it to path.
func commitFile(f *os.File, path string) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename %s into place: %w", path, err)
	}
	return fileutil.SyncDir(filepath.Dir(path))
}

// compressionOrNone is s, or "none" when empty.
func compressionOrNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
