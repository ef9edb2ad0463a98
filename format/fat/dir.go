package fat

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Directory entry attributes.
const (
	attrReadOnly  = 0x01
	attrHidden    = 0x02
	attrSystem    = 0x04
	attrVolumeID  = 0x08
	attrDirectory = 0x10
	attrArchive   = 0x20
	attrLongName  = attrReadOnly | attrHidden | attrSystem | attrVolumeID
)

// Long file name constants.
const (
	maxNameUnits   = 255 // UTF-16 code units in a long name
	lfnUnitsPerEnt = 13
	lfnLast        = 0x40 // flag in the sequence number of the last LFN entry
)

// lfnUnitOffset returns the byte offset of UTF-16 code unit j (0 to 12) in
// an LFN entry: 5 units at 1, 6 at 14 and 2 at 28.
func lfnUnitOffset(j int) int {
	switch {
	case j < 5:
		return 1 + 2*j
	case j < 11:
		return 14 + 2*(j-5)
	default:
		return 28 + 2*(j-11)
	}
}

// validateName checks one path element for use as a long file name.
func validateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name")
	case name == "." || name == "..":
		return fmt.Errorf("name %q is reserved", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("name %q is not valid UTF-8", name)
	case strings.HasSuffix(name, ".") || strings.HasSuffix(name, " "):
		return fmt.Errorf("name %q ends with a dot or space", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7F || strings.ContainsRune(`"*/:<>?\|`, r) {
			return fmt.Errorf("name %q contains invalid character %q", name, r)
		}
	}
	if n := len(utf16.Encode([]rune(name))); n > maxNameUnits {
		return fmt.Errorf("name %q is too long: %d UTF-16 units, maximum is %d", name, n, maxNameUnits)
	}
	return nil
}

// isShortChar reports whether c may appear in a short (8.3) name. Lower-case
// letters are excluded: short names are stored in upper case. Space is
// excluded because it is ambiguous with padding.
func isShortChar(c byte) bool {
	switch {
	case 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c >= 0x80:
		return false
	}
	return strings.IndexByte("!#$%&'()-@^_`{}~", c) >= 0
}

// shortName returns the 8.3 form of name and true if name is exactly a
// valid upper-case 8.3 name, which is stored without long name entries.
func shortName(name string) ([11]byte, bool) {
	var s [11]byte
	base, ext, hasDot := strings.Cut(name, ".")
	if len(base) < 1 || len(base) > 8 || len(ext) > 3 || (hasDot && ext == "") {
		return s, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] != '.' && !isShortChar(name[i]) {
			return s, false
		}
	}
	if strings.Contains(ext, ".") {
		return s, false
	}
	copy(s[:], "           ")
	copy(s[:8], base)
	copy(s[8:], ext)
	return s, true
}

// basisName derives the short-name basis of a long name as described in
// Microsoft's FAT specification: upper-cased, spaces and leading dots
// removed, invalid characters replaced by '_', base truncated to 8 and the
// extension (after the last dot) to 3 characters. exact reports whether the
// basis is the upper-cased long name itself, in which case it needs no
// numeric tail.
func basisName(name string) (base, ext string, exact bool) {
	upper := strings.ToUpper(name)
	lossy := false
	var b strings.Builder
	for _, r := range upper {
		switch {
		case r == ' ':
			lossy = true
		case r == '.':
			b.WriteByte('.')
		case r < utf8.RuneSelf && isShortChar(byte(r)):
			b.WriteByte(byte(r))
		default:
			lossy = true
			b.WriteByte('_')
		}
	}
	s := b.String()
	if t := strings.TrimLeft(s, "."); t != s {
		lossy = true
		s = t
	}
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		ext = s[i+1:]
		s = s[:i]
	}
	base = strings.ReplaceAll(s, ".", "")
	if len(base) > 8 || len(ext) > 3 || base != s {
		lossy = true
	}
	base = base[:min(len(base), 8)]
	ext = ext[:min(len(ext), 3)]
	if base == "" {
		base, lossy = "_", true
	}
	return base, ext, !lossy
}

// packShort packs base and ext into the 11-byte short name field.
func packShort(base, ext string) [11]byte {
	var s [11]byte
	copy(s[:], "           ")
	copy(s[:8], base)
	copy(s[8:], ext)
	return s
}

// assignShortNames gives every child of d a short name that is unique within
// d and records whether it needs long name entries. Children must be sorted.
// Names that need no numeric tail are assigned first so that generated
// aliases never take them.
func assignShortNames(d *node) error {
	used := make(map[[11]byte]bool, len(d.children))
	var tails []*node
	for _, c := range d.sorted {
		if s, ok := shortName(c.name); ok {
			c.short, c.lfn = s, false
		} else if base, ext, exact := basisName(c.name); exact {
			c.short, c.lfn = packShort(base, ext), true
		} else {
			tails = append(tails, c)
			continue
		}
		if used[c.short] {
			return fmt.Errorf("short name %q of %q is not unique", strings.TrimSpace(string(c.short[:])), c.name)
		}
		used[c.short] = true
	}
	next := map[string]int{} // next numeric tail to try per basis
	for _, c := range tails {
		base, ext, _ := basisName(c.name)
		c.lfn = true
		key := base + "." + ext
		found := false
		for n := max(1, next[key]); n <= 999999 && !found; n++ {
			tail := "~" + strconv.Itoa(n)
			s := packShort(base[:min(len(base), 8-len(tail))]+tail, ext)
			if !used[s] {
				c.short, found = s, true
				used[s] = true
				next[key] = n + 1
			}
		}
		if !found {
			return fmt.Errorf("no unique short name for %q", c.name)
		}
	}
	return nil
}

// lfnChecksum computes the checksum of a short name stored in LFN entries.
func lfnChecksum(short [11]byte) byte {
	var sum byte
	for _, c := range short {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	return sum
}

// lfnCount returns the number of LFN entries that name needs (0 if it is
// stored as a plain short name).
func lfnCount(name string) int {
	if _, ok := shortName(name); ok {
		return 0
	}
	units := len(utf16.Encode([]rune(name)))
	return (units + lfnUnitsPerEnt - 1) / lfnUnitsPerEnt
}

// dirEntryCount returns the number of 32-byte entries of directory d.
func dirEntryCount(d *node) int {
	n := 2 // "." and ".." or the volume label
	if d.parent == nil {
		n = 1
	}
	for _, c := range d.children {
		n += 1 + lfnCount(c.name)
	}
	return n
}

// dirent holds the fields of a short directory entry.
type dirent struct {
	name    [11]byte
	attr    byte
	cluster uint32
	size    uint32
}

// stamp holds the encoded timestamp written to every entry.
type stamp struct {
	date, time uint16
	hundredths uint8
}

// put encodes e at b[0:32].
func (e dirent) put(b []byte, ts stamp) {
	copy(b[0:11], e.name[:])
	b[11] = e.attr
	b[12] = 0
	b[13] = ts.hundredths
	binary.LittleEndian.PutUint16(b[14:], ts.time)
	binary.LittleEndian.PutUint16(b[16:], ts.date)
	binary.LittleEndian.PutUint16(b[18:], ts.date)
	binary.LittleEndian.PutUint16(b[20:], uint16(e.cluster>>16))
	binary.LittleEndian.PutUint16(b[22:], ts.time)
	binary.LittleEndian.PutUint16(b[24:], ts.date)
	binary.LittleEndian.PutUint16(b[26:], uint16(e.cluster))
	binary.LittleEndian.PutUint32(b[28:], e.size)
}

// putLFN encodes the long name entries of name for short name s at the
// start of b and returns the number of bytes used.
func putLFN(b []byte, name string, s [11]byte) int {
	units := utf16.Encode([]rune(name))
	n := (len(units) + lfnUnitsPerEnt - 1) / lfnUnitsPerEnt
	sum := lfnChecksum(s)
	for i := 0; i < n; i++ {
		seq := n - i // entries are stored last part first
		e := b[i*dirEntrySize : (i+1)*dirEntrySize]
		clear(e)
		e[0] = byte(seq)
		if i == 0 {
			e[0] |= lfnLast
		}
		e[11] = attrLongName
		e[13] = sum
		for j := range lfnUnitsPerEnt {
			k := (seq-1)*lfnUnitsPerEnt + j
			var u uint16
			switch {
			case k < len(units):
				u = units[k]
			case k == len(units):
				u = 0x0000
			default:
				u = 0xFFFF
			}
			binary.LittleEndian.PutUint16(e[lfnUnitOffset(j):], u)
		}
	}
	return n * dirEntrySize
}

// encodeDir returns the contents of directory d, padded with zeros to its
// cluster allocation. Short names must have been assigned.
func (w *Writer) encodeDir(d *node) []byte {
	b := make([]byte, int64(d.clusters)*w.geo.clusterSize())
	off := 0
	if d.parent == nil {
		dirent{name: w.label, attr: attrVolumeID}.put(b[off:], w.stamp)
		off += dirEntrySize
	} else {
		dirent{name: packShort(".", ""), attr: attrDirectory, cluster: d.cluster}.put(b[off:], w.stamp)
		off += dirEntrySize
		parent := d.parent.cluster
		if d.parent.parent == nil {
			parent = 0 // ".." of a first-level directory points to cluster 0
		}
		dirent{name: packShort("..", ""), attr: attrDirectory, cluster: parent}.put(b[off:], w.stamp)
		off += dirEntrySize
	}
	for _, c := range d.sorted {
		if c.lfn {
			off += putLFN(b[off:], c.name, c.short)
		}
		e := dirent{name: c.short, cluster: c.cluster}
		if c.dir {
			e.attr = attrDirectory
		} else {
			e.attr = attrArchive
			e.size = uint32(c.size)
		}
		e.put(b[off:], w.stamp)
		off += dirEntrySize
	}
	return b
}
