package build

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

	"github.com/ingot-linux/ingot/build/toolchain"
)

// victimDir makes an empty directory outside everything a test builds or
// assembles, and returns a check that it is still empty.
func victimDir(t *testing.T, dir string) (string, func()) {
	t.Helper()
	victim := filepath.Join(dir, "victim")
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	return victim, func() {
		t.Helper()
		if ents, _ := os.ReadDir(victim); len(ents) != 0 {
			t.Errorf("a package wrote %s into the victim directory %s", ents[0].Name(), victim)
		}
	}
}

// wantErr fails unless err is an error whose message holds every part.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one naming %q", parts)
	}
	t.Logf("error: %v", err)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name %q", err, p)
		}
	}
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
	victim, untouched := victimDir(t, dir)
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
	wantErr(t, err, "evil-data.tar", `"sub"`, "symbolic link")
	untouched()
	if c := run.took(); len(c) != 0 {
		t.Errorf("built %v from refused sources", c)
	}
	checkNoPartial(t, st)
}
