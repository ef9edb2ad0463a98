package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"golang.org/x/sys/unix"
)

// Limits of the output: what an EROFS image (as go-erofs writes it, 4 KiB
// blocks) and the Linux VFS can hold. go-erofs does not check them: beyond
// them it writes a corrupt image without an error, so Load refuses an entry
// that crosses one, naming it.
const (
	// MaxNameBytes is EROFS_NAME_LEN: the kernel refuses a directory with
	// a longer name ("Structure needs cleaning").
	MaxNameBytes = 255
	// MaxPathBytes is PATH_MAX less its NUL: no program can open a longer
	// absolute path, fsck.erofs cannot check it, and it bounds the depth
	// of the tree.
	MaxPathBytes = unix.PathMax - 1
	// MaxSymlinkBytes bounds a symlink's target the same way (readlink
	// and the kernel's path walk stop at PATH_MAX).
	MaxSymlinkBytes = unix.PathMax - 1
	// MaxID is the largest uid or gid: extended inodes hold 32 bits and
	// 0xffffffff is (uid_t)-1, which no file can have.
	MaxID = 1<<32 - 2
	// MaxDevMajor and MaxDevMinor bound device numbers: EROFS keeps
	// rdev in 32 bits (the kernel's new_encode_dev: 12-bit major, 20-bit
	// minor).
	MaxDevMajor = 1<<12 - 1
	MaxDevMinor = 1<<20 - 1
	// MaxXattrNameBytes is XATTR_NAME_MAX, prefix included.
	MaxXattrNameBytes = 255
	// MaxXattrValueBytes is EROFS's 16-bit value length (the VFS allows
	// one byte more).
	MaxXattrValueBytes = 1<<16 - 1
	// MaxXattrListBytes is XATTR_LIST_MAX: the names of one file with
	// their NULs, what listxattr returns.
	MaxXattrListBytes = 1 << 16
	// maxXattrAreaBytes follows from the 16-bit i_xattr_icount: a 12-byte
	// header plus 4-byte units.
	maxXattrAreaBytes = 12 + (1<<16-2)*4
	// blockBytes is the EROFS block size ingot writes; block addresses
	// are 32-bit.
	blockBytes = 4096
	maxBlocks  = 1<<32 - 1
)

// ErrLimit marks an entry an EROFS image cannot hold.
var ErrLimit = errors.New("beyond what an EROFS image can hold; change it in the root filesystem")

// xattrPrefixes are the namespaces the kernel's EROFS reads back. go-erofs
// stores others under no prefix, which the kernel silently drops.
var xattrPrefixes = []string{"security.", "trusted.", "user."}

// POSIX ACLs, as xattrs: EROFS keeps them under their own prefix index (2
// and 3) with an empty suffix. go-erofs's prefix table spells these
// prefixes with a trailing dot, so the writer hands it the name with one
// (erofsXattrName) to get the index the kernel reads.
const (
	aclAccess  = "system.posix_acl_access"
	aclDefault = "system.posix_acl_default"
)

// erofsXattrName is the name go-erofs must be given for xattr name.
func erofsXattrName(name string) string {
	if name == aclAccess || name == aclDefault {
		return name + "."
	}
	return name
}

// CheckEntry reports the first way e crosses a limit of the output, as an
// error naming e's path and wrapping ErrLimit.
func CheckEntry(e *Entry) error {
	if err := checkEntry(e); err != nil {
		return fmt.Errorf("/%s: %w (%w)", e.Path, err, ErrLimit)
	}
	return nil
}

func checkEntry(e *Entry) error {
	if err := checkPath(e.Path); err != nil {
		return err
	}
	if e.UID < 0 || e.UID > MaxID || e.GID < 0 || e.GID > MaxID {
		return fmt.Errorf("owner %d:%d is outside 0..%d", e.UID, e.GID, MaxID)
	}
	switch t := e.Mode.Type(); {
	case t == fs.ModeSymlink:
		if n := len(e.LinkTarget); n == 0 || n > MaxSymlinkBytes {
			return fmt.Errorf("symlink target is %d bytes, not 1..%d", n, MaxSymlinkBytes)
		}
	case t&fs.ModeDevice != 0:
		if ma, mi := unix.Major(e.Rdev), unix.Minor(e.Rdev); ma > MaxDevMajor || mi > MaxDevMinor {
			return fmt.Errorf("device %d:%d is beyond %d:%d", ma, mi, MaxDevMajor, MaxDevMinor)
		}
	case t == 0:
		if e.Size < 0 {
			return fmt.Errorf("size %d is negative", e.Size)
		}
	case t != fs.ModeDir && t != fs.ModeNamedPipe && t != fs.ModeSocket:
		return fmt.Errorf("file type %v has no EROFS form", t)
	}
	return checkXattrs(e.Xattrs)
}

// checkPath checks the tree path p ("usr/bin/x") as the absolute path it
// becomes.
func checkPath(p string) error {
	if p == "." {
		return nil
	}
	if n := len(p) + 1; n > MaxPathBytes {
		return fmt.Errorf("path is %d bytes, more than %d", n, MaxPathBytes)
	}
	for _, name := range strings.Split(p, "/") {
		if len(name) > MaxNameBytes {
			return fmt.Errorf("name %.16s… is %d bytes, more than %d", name, len(name), MaxNameBytes)
		}
	}
	return nil
}

func checkXattrs(xattrs map[string]string) error {
	list, area := 0, 12
	for _, name := range sortedKeys(xattrs) {
		value := xattrs[name]
		suffix, ok := "", name == aclAccess || name == aclDefault
		for _, p := range xattrPrefixes {
			if s, found := strings.CutPrefix(name, p); found && s != "" {
				suffix, ok = s, true
			}
		}
		switch {
		case !ok:
			return fmt.Errorf("xattr %.64q is not in a namespace EROFS keeps (%s…, or a POSIX ACL)", name, strings.Join(xattrPrefixes, "…, "))
		case len(name) > MaxXattrNameBytes:
			return fmt.Errorf("xattr name %.16q… is %d bytes, more than %d", name, len(name), MaxXattrNameBytes)
		case len(value) > MaxXattrValueBytes:
			return fmt.Errorf("xattr %s is %d bytes, more than %d", name, len(value), MaxXattrValueBytes)
		}
		list += len(name) + 1
		area += (4 + len(suffix) + len(value) + 3) &^ 3
	}
	if list > MaxXattrListBytes || area > maxXattrAreaBytes {
		return fmt.Errorf("xattrs take %d bytes of names and %d in all, more than %d and %d", list, area, MaxXattrListBytes, maxXattrAreaBytes)
	}
	return nil
}

// checkBlocks refuses a tree whose content cannot be addressed with 32-bit
// block numbers.
func (t *Tree) checkBlocks() error {
	var blocks uint64
	for _, e := range t.entries {
		blocks += 1 + uint64(e.Size+blockBytes-1)/blockBytes
	}
	if blocks > maxBlocks {
		return fmt.Errorf("root filesystem needs %d blocks of %d bytes, more than %d: %w", blocks, blockBytes, uint64(maxBlocks), ErrLimit)
	}
	return nil
}

// Check reports the first entry of t (in path order) that crosses a limit
// of the output, or a tree too large to address.
func (t *Tree) Check() error {
	for _, p := range t.Paths() {
		if err := CheckEntry(t.entries[p]); err != nil {
			return err
		}
	}
	return t.checkBlocks()
}
