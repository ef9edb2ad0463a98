package ext

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// AnyID is the release file's ID of an extension that fits any OS.
const AnyID = "_any"

// maxReleaseBytes bounds a release file.
const maxReleaseBytes = 16 << 10

// Release is what an extension-release file says: the OS (ID) and the
// version of it (SYSEXT_LEVEL or CONFEXT_LEVEL) the extension fits.
// ingot's images carry no VERSION_ID or *_LEVEL of their own, so
// systemd-sysext checks only ID; ingot checks Level against the running
// image's IMAGE_VERSION before anything is mounted.
type Release struct {
	Kind Kind
	// ID is the os-release ID of the OS, or AnyID.
	ID string
	// Level is the image version the extension fits; empty with AnyID.
	Level string
}

// levelKey is the release file's key for the version an extension fits.
func (k Kind) levelKey() string {
	if k == Confext {
		return "CONFEXT_LEVEL"
	}
	return "SYSEXT_LEVEL"
}

// Bytes is the release file's content.
func (r Release) Bytes() []byte {
	if r.ID == AnyID {
		return []byte("ID=" + AnyID + "\n")
	}
	return []byte(fmt.Sprintf("ID=%s\n%s=%s\n", r.ID, r.Kind.levelKey(), r.Level))
}

// ParseRelease parses a release file of an extension of kind k (os-release
// syntax: KEY=VALUE lines, optionally quoted, '#' comments). It needs ID
// and, unless ID is AnyID, the kind's level key or VERSION_ID.
func ParseRelease(k Kind, b []byte) (Release, error) {
	if len(b) > maxReleaseBytes {
		return Release{}, fmt.Errorf("release file of %d bytes exceeds %d: %w", len(b), maxReleaseBytes, ErrMalformed)
	}
	m, err := parseEnv(b)
	if err != nil {
		return Release{}, err
	}
	r := Release{Kind: k, ID: m["ID"]}
	switch {
	case r.ID == "":
		return Release{}, fmt.Errorf("release file has no ID: %w", ErrMalformed)
	case r.ID == AnyID:
		return r, nil
	}
	if r.Level = m[k.levelKey()]; r.Level == "" {
		r.Level = m["VERSION_ID"]
	}
	if r.Level == "" {
		return Release{}, fmt.Errorf("release file has neither %s nor VERSION_ID: %w", k.levelKey(), ErrMalformed)
	}
	return r, nil
}

// parseEnv parses os-release syntax.
func parseEnv(b []byte) (map[string]string, error) {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t\"'") {
			return nil, fmt.Errorf("release file line %d: not KEY=VALUE: %w", n, ErrMalformed)
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		m[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("release file: %v: %w", err, ErrMalformed)
	}
	return m, nil
}

// Fits returns nil if the extension fits the OS with os-release ID id
// running image version version, else an error wrapping ErrWrongOS that
// says why.
func (r Release) Fits(id, version string) error {
	if r.ID == AnyID {
		return nil
	}
	if r.ID != id {
		return fmt.Errorf("extension is for ID=%s, this system is ID=%s: %w", r.ID, id, ErrWrongOS)
	}
	if r.Level != version {
		return fmt.Errorf("extension is for %s %s, this system runs %s: %w", r.ID, r.Level, version, ErrWrongOS)
	}
	return nil
}

// OSRelease returns ID and IMAGE_VERSION of an os-release file.
func OSRelease(b []byte) (id, version string, err error) {
	if len(b) > maxReleaseBytes {
		return "", "", fmt.Errorf("os-release of %d bytes exceeds %d: %w", len(b), maxReleaseBytes, ErrMalformed)
	}
	m, err := parseEnv(b)
	if err != nil {
		return "", "", err
	}
	return m["ID"], m["IMAGE_VERSION"], nil
}
