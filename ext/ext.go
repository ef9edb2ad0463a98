// Package ext is the format of ingot's runtime layers: system extensions
// (sysext, below /usr and /opt) and configuration extensions (confext,
// below /etc), each a Discoverable Disk Image as `systemd-repart
// --make-ddi=sysext` makes it — a GPT with an EROFS root partition, its
// dm-verity hash partition and, when signed, a root-verity-sig partition
// holding the verity key's PKCS#7 signature over the root hash — and
// the extension-release file inside that names the OS it fits.
//
// Write lays out an image from its parts; Open reads one back and Verify
// checks its signature against the verity certificate, the same trust as
// /usr:
//
//	img, err := ext.Open(f, size)
//	hash, err := img.Verify(roots) // the root hash to give dm-verity
//
// The package does no I/O of its own beyond the reader and writer it is
// given, and no system calls.
package ext

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Kind says what an extension extends.
type Kind string

// The kinds of extension.
const (
	// Sysext extends /usr and /opt (systemd-sysext).
	Sysext Kind = "sysext"
	// Confext extends /etc (systemd-confext).
	Confext Kind = "confext"
)

// Errors callers act on.
var (
	// ErrBadName marks a name that is not a valid extension name.
	ErrBadName = errors.New("invalid extension name")
	// ErrMalformed marks an image or release file that is not well formed.
	ErrMalformed = errors.New("malformed extension")
	// ErrUnsigned marks an image without a verity signature where one is required.
	ErrUnsigned = errors.New("extension is not signed")
	// ErrWrongOS marks an extension whose release file names another OS.
	ErrWrongOS = errors.New("extension is for another OS")
)

// maxNameLen bounds an extension's name, which is a file name on the
// device and part of the release file's name.
const maxNameLen = 64

// CheckName returns an error wrapping ErrBadName unless name is a valid
// extension name: 1 to 64 letters, digits, '.', '_' or '-', starting with a
// letter or digit (no '/', never "." or "..").
func CheckName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("extension name %q: 1 to %d characters: %w", name, maxNameLen, ErrBadName)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '.' || r == '_' || r == '-')
		if !ok {
			return fmt.Errorf("extension name %q: character %q at %d: %w", name, r, i, ErrBadName)
		}
	}
	return nil
}

// ParseKind returns the Kind s names.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case Sysext, Confext:
		return k, nil
	}
	return "", fmt.Errorf("extension type %q: want %s or %s", s, Sysext, Confext)
}

// ReleasePath is where an extension of kind k named name carries its
// release file, relative to the image's root.
func (k Kind) ReleasePath(name string) string {
	if k == Confext {
		return "etc/extension-release.d/extension-release." + name
	}
	return "usr/lib/extension-release.d/extension-release." + name
}

// Tops are the top-level directories an extension of kind k may hold.
func (k Kind) Tops() []string {
	if k == Confext {
		return []string{"etc"}
	}
	return []string{"usr", "opt"}
}

// Reserved are the paths of /usr that are ingot's and the image's alone:
// its trust anchors, its own extensions and factory files, and
// os-release, which names the version extensions are checked against. A
// sysext merged over them could change what the system trusts, so none
// may hold them.
var Reserved = []string{"usr/lib/ingot", "usr/share/ingot/factory", "usr/lib/os-release", "etc/os-release"}

// IsReserved reports whether the image path p is, or is below, one of
// Reserved.
func IsReserved(p string) bool {
	p = path.Clean(strings.TrimPrefix(p, "/"))
	for _, r := range Reserved {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

// Allows reports whether the image path p (relative, "usr/bin/x") may
// be in an extension of kind k: the root, or at or below one of Tops.
func (k Kind) Allows(p string) bool {
	p = path.Clean(strings.TrimPrefix(p, "/"))
	if p == "." {
		return true
	}
	if IsReserved(p) {
		return false
	}
	top, _, _ := strings.Cut(p, "/")
	for _, t := range k.Tops() {
		if top == t {
			return true
		}
	}
	return false
}

// FileName is the name of an extension's image in an output directory,
// NAME_VERSION.raw.
func FileName(name, version string) string { return name + "_" + version + ".raw" }
