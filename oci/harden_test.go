package oci_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/oci"
)

// TestHarden09PullReplacesOnlyArtifacts: ingot pull REF DIR replaces a
// missing or empty DIR or an earlier artifact, and refuses anything else
// before downloading, leaving it as it was.
func TestHarden09PullReplacesOnlyArtifacts(t *testing.T) {
	ctx := context.Background()
	a := writeArtifact(t, "1.0", "replace", artifact.ArchX86_64)
	host, rl := memRegistry(t, nil)
	ref := host + "/ingot/update:1.0"
	if _, err := oci.Push(ctx, a.Dir, ref); err != nil {
		t.Fatal(err)
	}
	earlier := writeArtifact(t, "0.9", "earlier", artifact.ArchX86_64)
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		refused string
	}{
		{"missing", func(t *testing.T, dir string) {}, ""},
		{"empty", func(t *testing.T, dir string) { mkdir(t, dir) }, ""},
		{"earlier artifact", func(t *testing.T, dir string) {
			if err := os.CopyFS(dir, os.DirFS(earlier.Dir)); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"someone's files", func(t *testing.T, dir string) {
			mkdir(t, dir)
			write(t, filepath.Join(dir, "thesis.tex"), "years of work")
		}, "thesis.tex, which is no artifact file"},
		{"an artifact plus someone's file", func(t *testing.T, dir string) {
			if err := os.CopyFS(dir, os.DirFS(earlier.Dir)); err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(dir, "notes"), "keep me")
		}, "notes, which is no artifact file"},
		{"artifact names without a manifest", func(t *testing.T, dir string) {
			mkdir(t, dir)
			write(t, filepath.Join(dir, artifact.FileUsr), "not an artifact")
		}, "not an earlier artifact"},
		{"a file", func(t *testing.T, dir string) { write(t, dir, "a file") }, "not a directory"},
		{"a symlink", func(t *testing.T, dir string) {
			if err := os.Symlink(t.TempDir(), dir); err != nil {
				t.Fatal(err)
			}
		}, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "update")
			tt.prepare(t, dir)
			before := snapshot(t, filepath.Dir(dir))
			blobsBefore := len(rl.matching("GET", "/blobs/"))
			_, err := oci.Pull(ctx, ref, dir)
			if tt.refused == "" {
				if err != nil {
					t.Fatal(err)
				}
				sameTree(t, a.Dir, dir)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.refused) {
				t.Fatalf("Pull: %v, want a refusal saying %q", err, tt.refused)
			}
			if after := snapshot(t, filepath.Dir(dir)); after != before {
				t.Errorf("the refused pull changed %s:\n%s\nwas\n%s", dir, after, before)
			}
			if n := len(rl.matching("GET", "/blobs/")) - blobsBefore; n > 1 { // the config blob only
				t.Errorf("%d blobs downloaded before refusing", n)
			}
		})
	}
}

// TestHarden08PullChecksSizesFirst: a manifest declaring a file larger
// than the limits is refused before any layer is downloaded.
func TestHarden08PullChecksSizesFirst(t *testing.T) {
	ctx := context.Background()
	a := writeArtifact(t, "1.0", "sizes", artifact.ArchX86_64)
	host, rl := memRegistry(t, nil)
	ref := host + "/ingot/update:1.0"
	if _, err := oci.Push(ctx, a.Dir, ref); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	limits := artifact.Limits{artifact.RoleUsr: {Bytes: 4096, What: "slot b's usr partition"}}
	blobsBefore := len(rl.matching("GET", "/blobs/"))
	_, err := oci.Pull(ctx, ref, filepath.Join(parent, "update"), oci.WithLimits(limits))
	var se *artifact.SizeError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "usr.erofs declares") || !strings.Contains(err.Error(), "4096 bytes of slot b's usr partition") {
		t.Fatalf("Pull: %v, want a *SizeError naming usr.erofs and the limit", err)
	}
	if n := len(rl.matching("GET", "/blobs/")) - blobsBefore; n > 1 {
		t.Errorf("%d blobs downloaded before refusing", n)
	}
	if l := leftovers(t, parent); len(l) != 0 {
		t.Errorf("refused pull left %v", l)
	}
}

// snapshot lists a directory tree with its file contents.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String())
		if fi.Mode().IsRegular() {
			c, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.WriteString(" " + string(c[:min(len(c), 64)]))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
