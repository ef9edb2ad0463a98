package artifact

import (
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Limit bounds the size of one file of an artifact.
type Limit struct {
	// Bytes is the most the file may have.
	Bytes int64
	// What names where the file goes, for errors: "slot b's usr
	// partition".
	What string
}

// Limits bound the files of an artifact by role (RoleUsr, …), e.g. by
// the partitions they are written to. A role without a Limit is not
// bounded.
type Limits map[string]Limit

// SizeError says a file of an artifact is larger than where it goes.
type SizeError struct {
	// File is the file's name, e.g. "usr.erofs", or "the artifact (…)"
	// for all its files together.
	File string
	// Size is the size the manifest declares, Limit the most there is
	// room for in What.
	Size, Limit int64
	What        string
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("%s declares %d bytes, more than the %d bytes of %s", e.File, e.Size, e.Limit, e.What)
}

// Check returns a *SizeError for the first file of m that is larger than
// its limit.
func (l Limits) Check(m *Manifest) error {
	for _, f := range m.Files {
		if lim, ok := l[f.Role]; ok && f.Size > lim.Bytes {
			return &SizeError{File: f.Name, Size: f.Size, Limit: lim.Bytes, What: lim.What}
		}
	}
	return nil
}

// CheckFreeSpace returns a *SizeError when the files of m together
// (and their manifest) need more than the space free to unprivileged
// users in dir's filesystem.
func CheckFreeSpace(dir string, m *Manifest) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("free space in %s: %w", dir, err)
	}
	free := int64(st.Bavail) * st.Bsize
	need := int64(MaxManifestBytes)
	var names []string
	for _, f := range m.Files {
		need += f.Size
		names = append(names, fmt.Sprintf("%s %d", f.Name, f.Size))
	}
	if need > free {
		return &SizeError{File: "the artifact (" + strings.Join(names, ", ") + ")", Size: need, Limit: free, What: "free space in " + filepath.Clean(dir)}
	}
	return nil
}
