package artifact_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/artifact/artifacttest"
	"github.com/ingot-linux/ingot/ingottest"
)

func TestWriteRoundTrip(t *testing.T) {
	out := t.TempDir()
	in := artifacttest.Inputs(t, t.TempDir(), "1.2.0", "round trip")
	dir := filepath.Join(out, artifact.DirName("1.2.0"))
	m, err := artifact.Write(dir, in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := filepath.Base(dir), "ingot_1.2.0.update"; got != want {
		t.Errorf("DirName = %q, want %q", got, want)
	}
	a, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.Manifest.Version != "1.2.0" || a.Manifest.Name != "ingot" || a.Manifest.Architecture != "x86-64" ||
		a.Manifest.SchemaVersion != 1 || a.Manifest.UsrHash != hex.EncodeToString(in.UsrHash) {
		t.Errorf("manifest = %+v", a.Manifest)
	}
	if !equalManifest(m, a.Manifest) {
		t.Errorf("Write returned %+v, Open read %+v", m, a.Manifest)
	}
	for role, src := range map[string][]byte{
		artifact.RoleUsr:    readFile(t, in.UsrPath),
		artifact.RoleVerity: readFile(t, in.VerityPath),
		artifact.RoleUKI:    in.UKI,
	} {
		if got := readFile(t, a.Path(role)); !bytes.Equal(got, src) {
			t.Errorf("%s differs from its input", a.Path(role))
		}
		f, _ := m.File(role)
		if sum := sha256.Sum256(src); f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(src)) {
			t.Errorf("manifest entry %+v does not describe the input", f)
		}
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("output directory holds %v, want only the artifact", names(entries))
	}
	files, _ := os.ReadDir(dir)
	if got, want := strings.Join(names(files), " "), "ingot.efi manifest.json usr.erofs usr.verity"; got != want {
		t.Errorf("artifact holds %q, want %q", got, want)
	}
	checkMode(t, dir, 0o755|fs.ModeDir)
	for _, f := range files {
		checkMode(t, filepath.Join(dir, f.Name()), 0o644)
	}
}

func TestManifestJSON(t *testing.T) {
	in := artifacttest.Inputs(t, t.TempDir(), "1.0.0", "json")
	dir := filepath.Join(t.TempDir(), "a")
	if _, err := artifact.Write(dir, in); err != nil {
		t.Fatal(err)
	}
	b := string(readFile(t, filepath.Join(dir, artifact.ManifestFile)))
	keys := []string{`"architecture"`, `"files"`, `"name": "ingot.efi"`, `"role": "uki"`, `"sha256"`, `"size"`,
		`"name": "usr.erofs"`, `"name": "usr.verity"`, `"name": "ingot"`, `"schemaVersion": 1`, `"usrhash"`, `"version": "1.0.0"`}
	last := -1
	for _, k := range keys {
		i := strings.Index(b, k)
		if i < last {
			t.Errorf("%s at %d, before the previous key (at %d): keys or files not sorted\n%s", k, i, last, b)
		}
		last = i
	}
	if !strings.HasSuffix(b, "}\n") {
		t.Errorf("manifest does not end in a newline")
	}
}

func TestWriteReproducible(t *testing.T) {
	// Two independent builds of the same content give the same bytes.
	var trees []map[string][]byte
	for range 2 {
		in := artifacttest.Inputs(t, t.TempDir(), "3.0", "same seed")
		dir := filepath.Join(t.TempDir(), artifact.DirName("3.0"))
		if _, err := artifact.Write(dir, in); err != nil {
			t.Fatal(err)
		}
		tree := map[string][]byte{}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			tree[e.Name()] = readFile(t, filepath.Join(dir, e.Name()))
		}
		trees = append(trees, tree)
	}
	if len(trees[0]) != 4 {
		t.Fatalf("artifact has %d files, want 4", len(trees[0]))
	}
	for name, b := range trees[0] {
		if !bytes.Equal(b, trees[1][name]) {
			t.Errorf("%s differs between two builds of the same inputs", name)
		}
	}
}

func TestWriteReplaces(t *testing.T) {
	dir := filepath.Join(t.TempDir(), artifact.DirName("1.0"))
	first := artifacttest.Write(t, dir, "1.0", "first")
	second := artifacttest.Write(t, dir, "1.0", "second")
	if first.Manifest.UsrHash == second.Manifest.UsrHash {
		t.Fatal("test inputs have the same usrhash")
	}
	a, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.Manifest.UsrHash != second.Manifest.UsrHash {
		t.Errorf("artifact still has the first usrhash")
	}
	if err := a.Verify(context.Background()); err != nil {
		t.Error(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("parent holds %v, want only the artifact", names(entries))
	}
}

func TestWriteRejects(t *testing.T) {
	work := t.TempDir()
	good := artifacttest.Inputs(t, work, "1.0", "good")
	otherUsr, otherVerity, otherRoot := artifacttest.Usr(t, t.TempDir(), "other")
	tests := []struct {
		name   string
		change func(in *artifact.Inputs)
		check  func(t *testing.T, err error)
	}{
		{"UKI pins another usr", func(in *artifact.Inputs) {
			in.UKI = artifacttest.UKI(t, "usrhash="+hex.EncodeToString(otherRoot))
		}, wantMismatch(artifact.FileUKI, "usrhash")},
		{"usrhash is not the tree's", func(in *artifact.Inputs) {
			in.UsrPath, in.VerityPath = otherUsr, otherVerity
		}, wantMismatch(artifact.FileUsr, "verity root hash")},
		{"bad version", func(in *artifact.Inputs) { in.Version = "../x" }, wantText("version")},
		{"short usrhash", func(in *artifact.Inputs) { in.UsrHash = in.UsrHash[:5] }, wantText("usrhash has 5 bytes")},
		{"two UKIs", func(in *artifact.Inputs) { in.UKIPath = "x.efi" }, wantText("exactly one of UKI and UKIPath")},
		{"missing usr", func(in *artifact.Inputs) { in.UsrPath = filepath.Join(work, "nope") }, wantIs(fs.ErrNotExist)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := good
			tt.change(&in)
			out := t.TempDir()
			_, err := artifact.Write(filepath.Join(out, "a"), in)
			if err == nil {
				t.Fatal("Write succeeded")
			}
			tt.check(t, err)
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("a failed Write left %v", names(entries))
			}
		})
	}
}

func TestWriteUKIPath(t *testing.T) {
	in := artifacttest.Inputs(t, t.TempDir(), "1.0", "path")
	in.UKIPath = filepath.Join(t.TempDir(), "uki.efi")
	if err := os.WriteFile(in.UKIPath, in.UKI, 0o600); err != nil {
		t.Fatal(err)
	}
	in.UKI = nil
	dir := filepath.Join(t.TempDir(), "a")
	if _, err := artifact.Write(dir, in); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, artifact.FileUKI)), readFile(t, in.UKIPath)) {
		t.Error("ingot.efi differs from UKIPath")
	}
}

// helpers

func wantMismatch(file, field string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var mm *artifact.MismatchError
		if !errors.As(err, &mm) {
			t.Fatalf("error %v (%T) is not a *MismatchError", err, err)
		}
		if mm.File != file || mm.Field != field {
			t.Errorf("mismatch of %s %s, want %s %s: %v", mm.File, mm.Field, file, field, err)
		}
		if mm.Want == mm.Got {
			t.Errorf("mismatch with Want == Got: %v", err)
		}
	}
}

func wantIs(target error) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, target) {
			t.Errorf("error %v is not %v", err, target)
		}
	}
}

func wantText(s string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func names(entries []os.DirEntry) []string {
	var n []string
	for _, e := range entries {
		n = append(n, e.Name())
	}
	return n
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Errorf("%s has mode %v, want %v", path, fi.Mode(), want)
	}
}

func equalManifest(a, b *artifact.Manifest) bool {
	x, err1 := a.Marshal()
	y, err2 := b.Marshal()
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// TestValidators checks a written artifact with the reference tools:
// fsck.erofs on the /usr image and veritysetup on its hash tree.
func TestValidators(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	a := artifacttest.Write(t, dir, "1.0", "validators")
	ingottest.FsckErofs(t, a.Path(artifact.RoleUsr))
	ingottest.VeritySetupVerify(t, a.Path(artifact.RoleUsr), a.Path(artifact.RoleVerity), a.Manifest.UsrHash)
}
