package erofs

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// xattrPrefixes are EROFS's name indexes; the two POSIX ACLs are whole
// names with an empty suffix.
var xattrPrefixes = []struct {
	prefix string
	index  uint8
}{
	{"system.posix_acl_access", 2},
	{"system.posix_acl_default", 3},
	{"user.", 1},
	{"trusted.", 4},
	{"security.", 6},
}

// xattrArea is the inline xattr area of an inode (ibody header and
// entries, names sorted), or nil without xattrs.
func xattrArea(x map[string]string) ([]byte, error) {
	if len(x) == 0 {
		return nil, nil
	}
	buf := make([]byte, 12) // erofs_xattr_ibody_header, no shared xattrs
	names := make([]string, 0, len(x))
	for k := range x {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		idx, suffix, ok := splitXattr(k)
		v := x[k]
		if !ok || len(suffix) > 255 || len(v) > 0xffff {
			return nil, fmt.Errorf("xattr %q: namespace EROFS does not keep, or name or value too long", k)
		}
		e := []byte{uint8(len(suffix)), idx, 0, 0}
		binary.LittleEndian.PutUint16(e[2:], uint16(len(v)))
		e = append(append(e, suffix...), v...)
		for len(e)%4 != 0 {
			e = append(e, 0)
		}
		buf = append(buf, e...)
	}
	if (len(buf)-12)/4+1 > 0xffff {
		return nil, fmt.Errorf("xattrs take %d bytes, over EROFS's limit", len(buf))
	}
	return buf, nil
}

// xattrCount is i_xattr_icount for an area of n bytes.
func xattrCount(n int) uint16 {
	if n == 0 {
		return 0
	}
	return uint16((n-12)/4 + 1)
}

// splitXattr returns the name index and suffix of a full xattr name.
func splitXattr(name string) (uint8, string, bool) {
	for _, p := range xattrPrefixes {
		if p.index == 2 || p.index == 3 {
			if name == p.prefix {
				return p.index, "", true
			}
			continue
		}
		if s, ok := strings.CutPrefix(name, p.prefix); ok && s != "" {
			return p.index, s, true
		}
	}
	return 0, "", false
}
