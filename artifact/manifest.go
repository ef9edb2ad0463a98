package artifact

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/ingot-linux/ingot/layout"
)

// ErrInvalidManifest is returned, wrapped, for a manifest that is not valid
// JSON, has unknown fields, or breaks a rule of [Manifest.Validate].
var ErrInvalidManifest = errors.New("invalid artifact manifest")

// MaxManifestBytes bounds the manifest a reader accepts; a real one is about
// 600 bytes.
const MaxManifestBytes = 64 << 10

// Largest UKI and verity signature a manifest may declare: installers
// hold these files in memory (see Payload).
const (
	MaxUKIBytes       = 512 << 20
	MaxVeritySigBytes = 1 << 20
)

// maxRoleBytes bounds the roles held in memory.
var maxRoleBytes = map[string]int64{RoleUKI: MaxUKIBytes, RoleVeritySig: MaxVeritySigBytes}

// Manifest describes an artifact: what it is and, for each file, its size
// and sha256. Its JSON field names are part of the on-disk contract; they
// are declared in sorted order so the encoding has sorted keys.
type Manifest struct {
	// Architecture is the machine architecture of the UKI and /usr, e.g.
	// "x86-64".
	Architecture string `json:"architecture"`
	// Files are the artifact's payload files, sorted by name when written.
	Files []File `json:"files"`
	// Name is the OS name, always "ingot".
	Name string `json:"name"`
	// SchemaVersion is the manifest format version, SchemaVersion.
	SchemaVersion int `json:"schemaVersion"`
	// UsrHash is the dm-verity root hash of usr.erofs, lowercase hex; the
	// UKI's command line carries the same value as usrhash=.
	UsrHash string `json:"usrhash"`
	// Version is the image version (IMAGE_VERSION).
	Version string `json:"version"`
}

// File is one payload file of an artifact.
type File struct {
	// Name is the file name inside the artifact directory.
	Name string `json:"name"`
	// Role says what the file is: RoleUsr, RoleVerity, RoleUKI or
	// RoleVeritySig.
	Role string `json:"role"`
	// SHA256 is the file's sha256 digest, lowercase hex.
	SHA256 string `json:"sha256"`
	// Size is the file's length in bytes.
	Size int64 `json:"size"`
}

// roleFiles maps each role of schema version 1 to its fixed file name.
var roleFiles = map[string]string{
	RoleUsr:    FileUsr,
	RoleVerity: FileVerity,
	RoleUKI:    FileUKI,
	// optional
	RoleVeritySig: FileVeritySig,
}

var (
	archPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
	hexPattern  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ParseManifest decodes and validates a manifest. It is strict, as fits
// input that arrives over the network: unknown fields, trailing data, a
// schema version other than SchemaVersion and anything Validate rejects are
// errors wrapping ErrInvalidManifest.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidManifest, len(b), MaxManifestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalidManifest)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the manifest's fields: the schema version, name "ingot",
// a valid version and architecture name, a 64-digit lowercase hex usrhash,
// and exactly one file for each role (at most one of the optional
// RoleVeritySig), with the role's fixed name, a
// positive size (at most MaxUKIBytes for the UKI and MaxVeritySigBytes
// for the verity signature) and a 64-digit lowercase hex sha256. The errors wrap
// ErrInvalidManifest.
func (m *Manifest) Validate() error {
	var errs []error
	if m.SchemaVersion != SchemaVersion {
		errs = append(errs, fmt.Errorf("schema version %d is not supported (want %d)", m.SchemaVersion, SchemaVersion))
	}
	if m.Name != layout.Name {
		errs = append(errs, fmt.Errorf("name %q is not %q", m.Name, layout.Name))
	}
	if err := layout.CheckVersion(m.Version); err != nil {
		errs = append(errs, err)
	}
	if !archPattern.MatchString(m.Architecture) {
		errs = append(errs, fmt.Errorf("architecture %q is not a valid name", m.Architecture))
	}
	if !hexPattern.MatchString(m.UsrHash) {
		errs = append(errs, fmt.Errorf("usrhash %q is not 64 lowercase hex digits", m.UsrHash))
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		want, ok := roleFiles[f.Role]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("file %q has unknown role %q", f.Name, f.Role))
			continue
		case seen[f.Role]:
			errs = append(errs, fmt.Errorf("more than one file has role %q", f.Role))
		case f.Name != want:
			errs = append(errs, fmt.Errorf("file of role %q is named %q, not %q", f.Role, f.Name, want))
		}
		seen[f.Role] = true
		if f.Size <= 0 {
			errs = append(errs, fmt.Errorf("file %q has size %d", f.Name, f.Size))
		}
		if most, ok := maxRoleBytes[f.Role]; ok && f.Size > most {
			errs = append(errs, fmt.Errorf("file %q declares %d bytes, more than the %d a %s may have", f.Name, f.Size, most, f.Role))
		}
		if !hexPattern.MatchString(f.SHA256) {
			errs = append(errs, fmt.Errorf("file %q: sha256 %q is not 64 lowercase hex digits", f.Name, f.SHA256))
		}
	}
	for _, role := range []string{RoleUsr, RoleVerity, RoleUKI} {
		if !seen[role] {
			errs = append(errs, fmt.Errorf("no file has role %q", role))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	return nil
}

// File returns the file of the given role.
func (m *Manifest) File(role string) (File, bool) {
	for _, f := range m.Files {
		if f.Role == role {
			return f, true
		}
	}
	return File{}, false
}

// Marshal returns the manifest's canonical encoding: indented JSON with
// sorted keys and files sorted by name, ending in a newline. It validates
// the manifest first.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	c := *m
	c.Files = slices.Clone(m.Files)
	slices.SortFunc(c.Files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// UsrHashBytes returns the usrhash as bytes.
func (m *Manifest) UsrHashBytes() ([]byte, error) {
	b, err := hex.DecodeString(m.UsrHash)
	if err != nil {
		return nil, fmt.Errorf("%w: usrhash: %w", ErrInvalidManifest, err)
	}
	return b, nil
}
