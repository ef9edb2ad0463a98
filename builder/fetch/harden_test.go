package fetch

import (
	"archive/tar"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
)

// writeArchive writes a tar archive of entries to dir/name.
func writeArchive(t *testing.T, dir, name string, entries []entry) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, makeTar(t, entries), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantRefused fails unless err is one error naming every part and src
// holds exactly the names want afterwards (nothing of the refused archive).
func wantRefused(t *testing.T, err error, src string, want []string, parts ...string) {
	t.Helper()
	ingottest.WantError(t, err, parts...)
	if got := dirNames(t, src); !slices.Equal(got, want) {
		t.Errorf("source tree after the refusal: %q, want %q", got, want)
	}
}

// TestHarden07LinkFromEarlierSource: source 1 ships a symbolic link out of
// the source tree (absolute or relative); source 2, unpacked to a
// destination through it, is refused with an error naming source 2's
// archive and the destination, and nothing lands outside.
func TestHarden07LinkFromEarlierSource(t *testing.T) {
	for _, tc := range []struct{ name, link, dest string }{
		{"absolute", "", "sub"},
		{"relative", "../victim", "sub"},
		{"below the link", "../victim", "sub/deeper"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			victim, untouched := ingottest.Victim(t, dir)
			if tc.link == "" {
				tc.link = victim
			}
			src := filepath.Join(dir, "src")
			first := writeArchive(t, dir, "first.tar", []entry{{name: "p-1/", typ: tar.TypeDir}, {name: "p-1/sub", typ: tar.TypeSymlink, link: tc.link}})
			if err := unpackInto(t, first, src, ""); err != nil {
				t.Fatal(err)
			}
			second := writeArchive(t, dir, "second.tar", []entry{{name: "q-1/", typ: tar.TypeDir}, {name: "q-1/payload", body: "pwned"}})
			err := unpackInto(t, second, src, tc.dest)
			wantRefused(t, err, src, []string{"sub"}, "unpack second.tar", `"`+tc.dest+`"`, "symbolic link")
			untouched()
		})
	}
}

// TestHarden07LinkThenFileInOneArchive: an archive that makes a symbolic
// link and then puts an entry under it (or hard-links through it) is
// refused with an error naming the archive and the entry, and leaves
// nothing in the source tree.
func TestHarden07LinkThenFileInOneArchive(t *testing.T) {
	for _, tc := range []struct {
		name, link string
		last       entry
	}{
		{"absolute", "", entry{name: "p/l/payload", body: "pwned"}},
		{"relative", "../../../victim", entry{name: "p/l/payload", body: "pwned"}},
		{"inside", "../keep", entry{name: "p/l/payload", body: "pwned"}},
		{"hard link", "", entry{name: "p/h", typ: tar.TypeLink, link: "p/l/secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			victim, untouched := ingottest.Victim(t, dir)
			if tc.link == "" {
				tc.link = victim
			}
			if err := os.WriteFile(filepath.Join(victim, "secret"), []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			a := writeArchive(t, dir, "evil.tar", []entry{{name: "p/", typ: tar.TypeDir}, {name: "p/keep/", typ: tar.TypeDir},
				{name: "p/l", typ: tar.TypeSymlink, link: tc.link}, tc.last})
			err := unpackInto(t, a, filepath.Join(dir, "src"), "")
			wantRefused(t, err, filepath.Join(dir, "src"), nil, "unpack evil.tar", `entry "`+tc.last.name+`"`, "symbolic link")
			os.Remove(filepath.Join(victim, "secret"))
			untouched()
		})
	}
}
