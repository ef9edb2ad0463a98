package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ingot-linux/ingot/builder/toolchain"
	"github.com/ingot-linux/ingot/ingottest"
)

// fakeEntry puts a store entry for pkg with the given runtime files (see
// writeTree) under st and returns its key.
func fakeEntry(t *testing.T, st, pkg string, files map[string]string) string {
	t.Helper()
	key := sha([]byte(pkg))
	writeTree(t, filepath.Join(st, key, "runtime"), files)
	if err := os.WriteFile(filepath.Join(st, key, "manifest.json"), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return key
}

// TestHarden06AssembleThroughLink: a package's symbolic link (absolute or
// relative, out of the root file system) where a later package has a
// directory is refused with an error naming both packages and the path,
// nothing is written through the link, and no root file system is left.
func TestHarden06AssembleThroughLink(t *testing.T) {
	for _, tc := range []struct{ name, link string }{
		{"absolute", ""}, // the victim's absolute path
		{"relative", "../../../victim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			victim, untouched := ingottest.Victim(t, dir)
			if tc.link == "" {
				tc.link = victim
			}
			st := filepath.Join(dir, "store")
			keys := map[string]string{
				"a-links": fakeEntry(t, st, "a-links", map[string]string{"usr/lib/x": "->" + tc.link}),
				"b-files": fakeEntry(t, st, "b-files", map[string]string{"usr/lib/x/file": "pwned"}),
			}
			rootfs := filepath.Join(dir, "rootfs")
			err := Assemble(st, keys, []string{"b-files", "a-links"}, rootfs)
			ingottest.WantError(t, err, "usr/lib/x", "a symbolic link in a-links", "a directory in b-files")
			untouched()
			if _, err := os.Lstat(rootfs); err == nil {
				t.Errorf("a failed assembly left %s", rootfs)
			}
		})
	}
}

// TestHarden06AssembleDirThenLink: the same conflict the other way round
// (the directory's package sorts first) gets the same clear error.
func TestHarden06AssembleDirThenLink(t *testing.T) {
	dir := t.TempDir()
	victim, untouched := ingottest.Victim(t, dir)
	st := filepath.Join(dir, "store")
	keys := map[string]string{
		"a-files": fakeEntry(t, st, "a-files", map[string]string{"usr/lib/x/file": "x"}),
		"b-links": fakeEntry(t, st, "b-links", map[string]string{"usr/lib/x": "->" + victim}),
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	err := Assemble(st, keys, []string{"a-files", "b-links"}, rootfs)
	ingottest.WantError(t, err, "usr/lib/x", "a directory in a-files", "a symbolic link in b-links")
	untouched()
	if ents, _ := os.ReadDir(rootfs); len(ents) != 0 {
		t.Errorf("a failed assembly left %s in %s", ents[0].Name(), rootfs)
	}
}

// TestHarden06SysrootThroughLink: a build input's link is not followed by
// another input's headers when the sysroot is composed.
func TestHarden06SysrootThroughLink(t *testing.T) {
	dir := t.TempDir()
	victim, untouched := ingottest.Victim(t, dir)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeTree(t, a, map[string]string{"runtime/usr/include": "->" + victim})
	writeTree(t, b, map[string]string{"dev/usr/include/evil.h": "pwned"})
	err := composeSysroot(filepath.Join(dir, "sysroot"), []input{{"a", a}, {"b", b}})
	ingottest.WantError(t, err, "usr/include", "a symbolic link in a", "a directory in b")
	untouched()
}

// linkTarball makes a .tar.gz with one top-level directory holding the
// given entries: a value "->target" is a symbolic link, anything else a
// file.
func linkTarball(t *testing.T, top string, entries [][2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: top + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1e9, 0)})
	for _, e := range entries {
		h := &tar.Header{Name: top + "/" + e[0], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e[1])), ModTime: time.Unix(1e9, 0)}
		if target, ok := strings.CutPrefix(e[1], "->"); ok {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, target, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e[1]))
	}
	tw.Close()
	return buf.Bytes()
}

// TestHarden07SecondSourceThroughLink: a recipe whose first source ships a
// link out of the source tree and whose second source is unpacked to that
// link's path fails with an error naming the second source and the
// destination; nothing lands outside, and no store entry or work
// directory is left.
func TestHarden07SecondSourceThroughLink(t *testing.T) {
	dir := t.TempDir()
	victim, untouched := ingottest.Victim(t, dir)
	up := newUpstream(t)
	url1, sha1 := up.add("evil-1.tar", linkTarball(t, "evil-1", [][2]string{{"sub", "->" + victim}}))
	url2, sha2 := up.add("evil-data.tar", linkTarball(t, "data", [][2]string{{"payload", "pwned"}}))
	fsys := fstest.MapFS{
		"sets.yaml": {Data: []byte("base: [evil]\n")},
		"evil/recipe.yaml": {Data: []byte(fmt.Sprintf(`name: evil
version: "1"
licence: MIT
sources: [{url: "%s", sha256: %s}, {url: "%s", sha256: %s, dest: sub}]
builder: {type: make}
`, url1, sha1, url2, sha2))},
	}
	d, err := LoadDistribution(fsys, "testrecipes")
	if err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(dir, "store")
	run := &fakeRunner{}
	_, err = Build(context.Background(), nil, Options{Distribution: d, Recipes: fsys, Store: st, Runner: run, Jobs: 1,
		Toolchain: []toolchain.Probe{{Name: "sh", Path: "sh"}}})
	ingottest.WantError(t, err, "evil-data.tar", `"sub"`, "symbolic link")
	untouched()
	if c := run.took(); len(c) != 0 {
		t.Errorf("built %v from refused sources", c)
	}
	checkNoPartial(t, st)
}
