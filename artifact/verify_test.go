package artifact_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/artifact/artifacttest"
)

// TestVerifyFailures breaks a good artifact in each way Verify must notice.
// Cases that change a payload file on purpose refresh the manifest's size
// and sha256, so the check under test is the one that fires.
func TestVerifyFailures(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good")
	artifacttest.Write(t, good, "1.0", "good")
	other := t.TempDir()
	otherUsr, otherVerity, otherRoot := artifacttest.Usr(t, other, "other")
	ctx := context.Background()

	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		opts   []artifact.Option
		check  func(t *testing.T, err error)
	}{
		{"sha256 mismatch", func(t *testing.T, dir string) {
			flipByte(t, filepath.Join(dir, artifact.FileUsr), 100)
		}, nil, wantMismatch(artifact.FileUsr, "sha256")},
		{"truncated file", func(t *testing.T, dir string) {
			truncate(t, filepath.Join(dir, artifact.FileVerity), 5000)
		}, nil, wantMismatch(artifact.FileVerity, "size")},
		{"longer file", func(t *testing.T, dir string) {
			appendBytes(t, filepath.Join(dir, artifact.FileUKI), []byte("x"))
		}, nil, wantMismatch(artifact.FileUKI, "size")},
		{"root hash mismatch", func(t *testing.T, dir string) {
			copyFile(t, otherUsr, filepath.Join(dir, artifact.FileUsr))
			copyFile(t, otherVerity, filepath.Join(dir, artifact.FileVerity))
			refresh(t, dir, nil)
		}, nil, func(t *testing.T, err error) {
			wantMismatch(artifact.FileUsr, "verity root hash")(t, err)
			var mm *artifact.MismatchError
			if errors.As(err, &mm) && mm.Got != hex.EncodeToString(otherRoot) {
				t.Errorf("Got = %s, want the other image's root hash %x", mm.Got, otherRoot)
			}
		}},
		{"corrupt hash tree", func(t *testing.T, dir string) {
			flipByte(t, filepath.Join(dir, artifact.FileVerity), 4096+40)
			refresh(t, dir, nil)
		}, nil, wantMismatch(artifact.FileVerity, "hash tree")},
		{"corrupt verity superblock", func(t *testing.T, dir string) {
			flipByte(t, filepath.Join(dir, artifact.FileVerity), 0)
			refresh(t, dir, nil)
		}, nil, wantText("usr.verity")},
		{"usr size differs from superblock", func(t *testing.T, dir string) {
			appendBytes(t, filepath.Join(dir, artifact.FileUsr), make([]byte, 4096))
			refresh(t, dir, nil)
		}, nil, wantMismatch(artifact.FileUsr, "size")},
		{"usrhash in UKI differs from manifest", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, artifact.FileUKI), artifacttest.UKI(t, "console=ttyS0 usrhash="+hex.EncodeToString(otherRoot)))
			refresh(t, dir, nil)
		}, nil, wantMismatch(artifact.FileUKI, "usrhash")},
		{"two usrhash values in UKI", func(t *testing.T, dir string) {
			a := open(t, dir)
			writeFile(t, filepath.Join(dir, artifact.FileUKI), artifacttest.UKI(t, "usrhash="+a.Manifest.UsrHash+" usrhash="+hex.EncodeToString(otherRoot)))
			refresh(t, dir, nil)
		}, nil, wantMismatch(artifact.FileUKI, "usrhash")},
		{"UKI without usrhash", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, artifact.FileUKI), artifacttest.UKI(t, "console=ttyS0"))
			refresh(t, dir, nil)
		}, nil, func(t *testing.T, err error) {
			wantMismatch(artifact.FileUKI, "usrhash")(t, err)
			wantText("usrhash is none")(t, err)
		}},
		{"UKI is not a PE file", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, artifact.FileUKI), []byte("MZ but not really"))
			refresh(t, dir, nil)
		}, nil, wantText("ingot.efi")},
		{"manifest for another arch", func(t *testing.T, dir string) {
			refresh(t, dir, func(m *artifact.Manifest) { m.Architecture = "arm64" })
		}, nil, wantArch("x86-64", "arm64")},
		{"asked for another arch", func(t *testing.T, dir string) {},
			[]artifact.Option{artifact.WithArch("arm64")}, wantArch("arm64", "x86-64")},
		{"missing file", func(t *testing.T, dir string) {
			remove(t, filepath.Join(dir, artifact.FileVerity))
		}, nil, wantIs(fs.ErrNotExist)},
		{"file is a directory", func(t *testing.T, dir string) {
			remove(t, filepath.Join(dir, artifact.FileUKI))
			if err := os.Mkdir(filepath.Join(dir, artifact.FileUKI), 0o755); err != nil {
				t.Fatal(err)
			}
		}, nil, wantText("not a regular file")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			copyDir(t, good, dir)
			tt.damage(t, dir)
			err := open(t, dir).Verify(ctx, tt.opts...)
			if err == nil {
				t.Fatal("Verify succeeded")
			}
			t.Log(err)
			tt.check(t, err)
		})
	}
}

func TestOpenFailures(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good")
	artifacttest.Write(t, good, "1.0", "open")
	tests := []struct {
		name     string
		manifest []byte // nil: remove it
		want     error
	}{
		{"bad manifest JSON", []byte(`{"schemaVersion": 1,`), artifact.ErrInvalidManifest},
		{"manifest not an object", []byte(`[]`), artifact.ErrInvalidManifest},
		{"invalid manifest", []byte(`{"schemaVersion": 1}`), artifact.ErrInvalidManifest},
		{"huge manifest", make([]byte, artifact.MaxManifestBytes+1), artifact.ErrInvalidManifest},
		{"no manifest", nil, fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			copyDir(t, good, dir)
			path := filepath.Join(dir, artifact.ManifestFile)
			if tt.manifest == nil {
				remove(t, path)
			} else {
				writeFile(t, path, tt.manifest)
			}
			_, err := artifact.Open(dir)
			if !errors.Is(err, tt.want) {
				t.Errorf("Open: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyCanceled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	a := artifacttest.Write(t, dir, "1.0", "cancel")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Verify(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with a canceled context: %v", err)
	}
}

func wantArch(want, got string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var ae *artifact.ArchError
		if !errors.As(err, &ae) {
			t.Fatalf("error %v is not an *ArchError", err)
		}
		if ae.Want != want || ae.Got != got {
			t.Errorf("ArchError %+v, want Want %s Got %s", ae, want, got)
		}
		wantText(want)(t, err)
		wantText(got)(t, err)
	}
}

// refresh rewrites the manifest with the current sizes and digests of the
// payload files, after applying change.
func refresh(t *testing.T, dir string, change func(*artifact.Manifest)) {
	t.Helper()
	a := open(t, dir)
	for i, f := range a.Manifest.Files {
		b := readFile(t, filepath.Join(dir, f.Name))
		sum := sha256.Sum256(b)
		a.Manifest.Files[i].Size, a.Manifest.Files[i].SHA256 = int64(len(b)), hex.EncodeToString(sum[:])
	}
	if change != nil {
		change(a.Manifest)
	}
	b, err := a.Manifest.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, artifact.ManifestFile), b)
}

func open(t *testing.T, dir string) *artifact.Artifact {
	t.Helper()
	a, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) { t.Helper(); writeFile(t, dst, readFile(t, src)) }

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, off int) {
	t.Helper()
	b := readFile(t, path)
	b[off] ^= 0xff
	writeFile(t, path, b)
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, extra []byte) {
	t.Helper()
	writeFile(t, path, append(readFile(t, path), extra...))
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
