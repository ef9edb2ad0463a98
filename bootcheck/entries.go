package bootcheck

import (
	"cmp"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/ingot-linux/ingot/layout"
)

// Entry is a Boot Loader Specification type #2 entry: a UKI in EFI/Linux
// on the ESP, as systemd-boot sees it.
type Entry struct {
	// File is the name under EFI/Linux.
	File string
	// ID is the lower-case file name without the boot counter.
	ID string
	// TriesLeft and TriesDone are the boot counters of the name; TriesLeft
	// is -1 when the name has none (a blessed entry).
	TriesLeft, TriesDone int
	// SortKey and Version come from the UKI's .osrel (IMAGE_ID or ID;
	// IMAGE_VERSION, VERSION, VERSION_ID or BUILD_ID); empty when the UKI
	// cannot be read.
	SortKey, Version string
}

// parseEntryName splits the boot counter off a UKI name:
// "ingot_1.2+2-1.efi" has ID "ingot_1.2.efi", 2 tries left, 1 done.
func parseEntryName(name string) (Entry, bool) {
	lower := strings.ToLower(name)
	base, ok := strings.CutSuffix(lower, ".efi")
	if !ok || strings.HasPrefix(name, ".") {
		return Entry{}, false
	}
	e := Entry{File: name, ID: lower, TriesLeft: -1}
	i := strings.LastIndexByte(base, '+')
	if i < 0 {
		return e, true
	}
	left, done, hasDone := strings.Cut(base[i+1:], "-")
	l, err := strconv.Atoi(left)
	if err != nil || l < 0 || strings.HasPrefix(left, "+") {
		return e, true // not a counter: part of the name
	}
	d := 0
	if hasDone {
		if d, err = strconv.Atoi(done); err != nil || d < 0 {
			return e, true
		}
	}
	e.TriesLeft, e.TriesDone = l, d
	e.ID = base[:i] + ".efi"
	return e, true
}

// compareEntries orders entries as systemd-boot's config_entry_compare:
// entries without tries left last; entries with a sort key before those
// without, by sort key, then newest version first; then by ID, newest
// first; then more tries left first, fewer tries done first.
func compareEntries(a, b Entry) int {
	if r := cmpBool(a.TriesLeft == 0, b.TriesLeft == 0); r != 0 {
		return r
	}
	if r := cmpBool(a.SortKey == "", b.SortKey == ""); r != 0 {
		return r
	}
	if a.SortKey != "" {
		if r := cmp.Compare(a.SortKey, b.SortKey); r != 0 {
			return r
		}
		if r := -strverscmp(a.Version, b.Version); r != 0 {
			return r
		}
	}
	if r := -strverscmp(a.ID, b.ID); r != 0 {
		return r
	}
	if a.TriesLeft < 0 || b.TriesLeft < 0 {
		return 0
	}
	if r := -cmp.Compare(a.TriesLeft, b.TriesLeft); r != 0 {
		return r
	}
	return cmp.Compare(a.TriesDone, b.TriesDone)
}

func sortEntries(es []Entry) {
	sort.SliceStable(es, func(i, j int) bool { return compareEntries(es[i], es[j]) < 0 })
}

// selectDefault picks the entry systemd-boot starts without a key press:
// the LoaderEntryDefault EFI variable's entry when it exists, else the
// first entry matching loader.conf's default pattern, else the first.
// es must be sorted. It returns -1 for no entries.
func selectDefault(es []Entry, efiDefault, confDefault string) int {
	if efiDefault != "" {
		want := strings.ToLower(efiDefault)
		for i, e := range es {
			if e.ID == want || strings.ToLower(e.File) == want {
				return i
			}
		}
	}
	if confDefault != "" {
		pat := strings.ToLower(confDefault)
		for i, e := range es {
			if ok, _ := path.Match(pat, e.ID); ok {
				return i
			}
		}
	}
	if len(es) == 0 {
		return -1
	}
	return 0
}

// loaderDefault returns the pattern of loader.conf's "default" line, or "".
func loaderDefault(esp fs.FS) (string, error) {
	b, err := fs.ReadFile(esp, layout.LoaderConfPath)
	if err != nil {
		if isNotExist(err) {
			return "", nil
		}
		return "", fmt.Errorf("read %s: %w", layout.LoaderConfPath, err)
	}
	def := ""
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		if k == "default" {
			def = strings.TrimSpace(v)
		}
	}
	return def, nil
}
