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

	"github.com/containerd/go-dmverity/pkg/verity"

	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

// Artifact is an artifact directory whose manifest has been read. Nothing
// but the manifest's syntax is checked until Verify.
type Artifact struct {
	// Dir is the artifact directory.
	Dir string
	// Manifest is the parsed manifest.json.
	Manifest *Manifest
}

// Open reads and parses dir/manifest.json.
func Open(dir string) (*Artifact, error) {
	b, err := readLimited(filepath.Join(dir, ManifestFile), MaxManifestBytes)
	if err != nil {
		return nil, fmt.Errorf("open artifact %s: %w", dir, err)
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("open artifact %s: %w", dir, err)
	}
	return &Artifact{Dir: dir, Manifest: m}, nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", path, ErrInvalidManifest, limit)
	}
	return b, nil
}

// Path returns the path of the file with the given role.
func (a *Artifact) Path(role string) string {
	f, _ := a.Manifest.File(role)
	return filepath.Join(a.Dir, f.Name)
}

// MismatchError says a file differs from what the manifest (or the UKI)
// says it should be.
type MismatchError struct {
	// File is the file's name in the artifact, e.g. "usr.erofs".
	File string
	// Field is what differs: "size", "sha256", "usrhash" (the UKI's
	// command line), "verity root hash", "hash tree" or "digest" (an OCI
	// blob).
	Field string
	// Want is the expected value, Got the actual one ("" if there is none,
	// e.g. a UKI without usrhash=).
	Want, Got string
}

func (e *MismatchError) Error() string {
	got := e.Got
	if got == "" {
		got = "none"
	}
	return fmt.Sprintf("%s: %s is %s, want %s", e.File, e.Field, got, e.Want)
}

// ArchError says an artifact is for another architecture.
type ArchError struct {
	// Want is the architecture asked for, Got the artifact's.
	Want, Got string
}

func (e *ArchError) Error() string {
	return fmt.Sprintf("artifact is for architecture %s, not %s", e.Got, e.Want)
}

// Option configures Verify.
type Option func(*options)

type options struct {
	arch    string
	tempDir string
	limits  Limits
}

func makeOptions(opts []Option) *options {
	o := &options{arch: ArchX86_64}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// WithArch sets the architecture the artifact must be for; the default is
// ArchX86_64, the one architecture ingot builds for.
func WithArch(arch string) Option { return func(o *options) { o.arch = arch } }

// WithTempDir sets where Verify may write a scratch copy of the hash tree
// when the tree does not verify, to tell a wrong root hash from a corrupt
// tree; the default is os.TempDir().
func WithTempDir(dir string) Option { return func(o *options) { o.tempDir = dir } }

// WithLimits bounds the artifact's files, e.g. by the partitions they are
// written to: a file larger than its limit is refused before it is read.
func WithLimits(l Limits) Option { return func(o *options) { o.limits = l } }

// Verify checks the artifact as described in the package documentation and
// returns the first problem found, or nil.
func (a *Artifact) Verify(ctx context.Context, opts ...Option) error {
	p, err := a.OpenPayload(ctx, opts...)
	if err != nil {
		return err
	}
	return p.Close()
}

// hashReader returns the hex sha256 and length of r's content, stopping
// early when ctx is done.
func hashReader(ctx context.Context, r io.Reader) (string, int64, error) {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return "", n, err
		}
		k, err := r.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil)), n, nil
		}
		if err != nil {
			return "", n, err
		}
	}
}

// checkUKI checks that the UKI's command line pins usrhash and that its
// signed os-release names version (IMAGE_VERSION), so the artifact's
// label is what the UKI says it is. Every usrhash= on the line must
// carry the value: if they disagreed, which one counts would be up to the
// parser.
func checkUKI(b []byte, usrHash, version string) error {
	img, err := uki.Open(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s: %w", FileUKI, err)
	}
	cmdline, err := img.Cmdline()
	if err != nil {
		return fmt.Errorf("%s: %w", FileUKI, err)
	}
	boot, err := layout.ParseBoot(cmdline)
	if errors.Is(err, layout.ErrNoUsrHash) {
		return &MismatchError{File: FileUKI, Field: "usrhash", Want: usrHash}
	}
	if err != nil {
		return &MismatchError{File: FileUKI, Field: "usrhash", Want: usrHash, Got: err.Error()}
	}
	if g := hex.EncodeToString(boot.UsrHash); g != usrHash {
		return &MismatchError{File: FileUKI, Field: "usrhash", Want: usrHash, Got: g}
	}
	osrel, err := img.OSRelease()
	if err != nil {
		return fmt.Errorf("%s: %w", FileUKI, err)
	}
	if v := osrel["IMAGE_VERSION"]; v != version {
		return &MismatchError{File: FileUKI, Field: "IMAGE_VERSION in .osrel (the label is version " + version + ")", Want: version, Got: v}
	}
	return nil
}

// checkVerity checks that usr.verity's tree, with the parameters of its
// superblock, proves the data in usr.erofs to have the root hash usrHash.
func checkVerity(dataPath, hashPath, usrHash, tempDir string) error {
	want, err := hex.DecodeString(usrHash)
	if err != nil {
		return err
	}
	hf, err := os.Open(hashPath)
	if err != nil {
		return err
	}
	sb, err := verity.ReadSuperblock(hf, 0)
	hf.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", FileVerity, err)
	}
	fi, err := os.Stat(dataPath)
	if err != nil {
		return err
	}
	if dataBytes := sb.DataBlocks * uint64(sb.DataBlockSize); uint64(fi.Size()) != dataBytes {
		return &MismatchError{File: FileUsr, Field: "size", Want: strconv.FormatUint(dataBytes, 10) + " (verity superblock)", Got: strconv.FormatInt(fi.Size(), 10)}
	}
	// Zero fields are taken from the superblock, which sits at offset 0 of
	// the separate hash file; the tree follows in the next hash block.
	var params verity.Params
	err = verity.Verify(&params, dataPath, hashPath, want)
	if err == nil {
		return nil
	}
	if diag := diagnoseVerity(params, dataPath, hashPath, usrHash, tempDir); diag != nil {
		return diag
	}
	return fmt.Errorf("%s: dm-verity: %w", FileVerity, err)
}

// diagnoseVerity rebuilds the hash tree of dataPath with params (as
// verity.Verify took them from the superblock) to tell a data file whose
// root hash is not usrHash from a corrupt hash tree. It returns nil if it
// finds neither or cannot tell.
func diagnoseVerity(params verity.Params, dataPath, hashPath, usrHash, tempDir string) error {
	if params.DataBlocks == 0 || params.HashBlockSize == 0 {
		return nil // the superblock was not adopted
	}
	tmp, err := os.CreateTemp(tempDir, "ingot-verity-*")
	if err != nil {
		return nil
	}
	defer os.Remove(tmp.Name())
	tmp.Close()
	params.NoSuperblock = true
	params.HashAreaOffset = 0
	root, err := verity.Create(&params, dataPath, tmp.Name())
	if err != nil {
		return nil
	}
	if got := hex.EncodeToString(root); got != usrHash {
		return &MismatchError{File: FileUsr, Field: "verity root hash", Want: usrHash, Got: got}
	}
	tree, err := os.ReadFile(tmp.Name())
	if err != nil {
		return nil
	}
	hf, err := os.Open(hashPath)
	if err != nil {
		return nil
	}
	defer hf.Close()
	have := make([]byte, len(tree))
	n, _ := hf.ReadAt(have, int64(params.HashBlockSize))
	if n != len(have) || !bytes.Equal(have, tree) {
		wantSum, gotSum := sha256.Sum256(tree), sha256.Sum256(have[:n])
		return &MismatchError{File: FileVerity, Field: "hash tree", Want: "sha256:" + hex.EncodeToString(wantSum[:]), Got: "sha256:" + hex.EncodeToString(gotSum[:])}
	}
	return nil
}

// checkVeritySig makes sure an artifact's verity signature, if it has one,
// is for its usrhash. Whether it is trusted is the installer's question.
func checkVeritySig(sig []byte, usrHash string) error {
	if sig == nil {
		return nil
	}
	h, err := trust.SignedRootHash(sig)
	if err != nil {
		return fmt.Errorf("%s: %w", FileVeritySig, err)
	}
	if got := hex.EncodeToString(h); got != usrHash {
		return &MismatchError{File: FileVeritySig, Field: "root hash", Want: usrHash, Got: got}
	}
	return nil
}
