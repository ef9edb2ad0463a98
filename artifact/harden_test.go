package artifact_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/artifact/artifacttest"
)

// TestHarden02VerifyRefusesSymlinks: a payload file that is a symbolic
// link (here to a good copy elsewhere) is refused, so what is verified is
// a file of the artifact directory, not whatever a link points to later.
func TestHarden02VerifyRefusesSymlinks(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good")
	artifacttest.Write(t, good, "1.0", "symlink")
	for _, name := range []string{artifact.FileUsr, artifact.FileVerity, artifact.FileUKI} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			copyDir(t, good, dir)
			elsewhere := filepath.Join(t.TempDir(), name)
			copyFile(t, filepath.Join(dir, name), elsewhere)
			remove(t, filepath.Join(dir, name))
			if err := os.Symlink(elsewhere, filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			err := open(t, dir).Verify(context.Background())
			if err == nil || !strings.Contains(err.Error(), name+" is a symbolic link") {
				t.Fatalf("Verify: %v, want %s refused as a symbolic link", err, name)
			}
		})
	}
}

// TestHarden02CopyToWritesOnlyVerifiedBytes changes a payload file after
// it was verified in each way an attacker with the directory could, and
// checks that CopyTo never writes past the file's declared size and
// reports the change.
func TestHarden02CopyToWritesOnlyVerifiedBytes(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good")
	artifacttest.Write(t, good, "1.0", "copyto")
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
	}{
		{"swapped for a symlink to /dev/zero", func(t *testing.T, path string) {
			remove(t, path)
			if err := os.Symlink("/dev/zero", path); err != nil {
				t.Fatal(err)
			}
		}},
		{"grown", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write(bytes.Repeat([]byte{0xee}, 1<<20)); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced by other bytes of the same size", func(t *testing.T, path string) {
			b := readFile(t, path)
			b[0] ^= 0xff
			tmp := path + ".new"
			writeFile(t, tmp, b)
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"changed in place", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte{0xee, 0xee}, 1024); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			copyDir(t, good, dir)
			p, err := open(t, dir).OpenPayload(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			f, _ := p.Manifest.File(artifact.RoleUsr)
			tt.change(t, filepath.Join(dir, f.Name))

			const guard = 1 << 16
			disk := filepath.Join(t.TempDir(), "disk")
			sentinel := bytes.Repeat([]byte{0x5a}, int(f.Size)+guard)
			writeFile(t, disk, sentinel)
			w, err := os.OpenFile(disk, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			err = p.CopyTo(context.Background(), artifact.RoleUsr, w, 0, f.Size, nil)
			var mm *artifact.MismatchError
			if !errors.As(err, &mm) || mm.File != artifact.FileUsr {
				t.Fatalf("CopyTo: %v, want a *MismatchError for %s", err, artifact.FileUsr)
			}
			if got := readFile(t, disk)[f.Size:]; !bytes.Equal(got, sentinel[f.Size:]) {
				t.Error("CopyTo wrote past the file's declared size")
			}
		})
	}
}

// TestHarden02CopyToBound: a file larger than the space it goes to is
// refused before a byte is written.
func TestHarden02CopyToBound(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	artifacttest.Write(t, dir, "1.0", "bound")
	p, err := open(t, dir).OpenPayload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	f, _ := p.Manifest.File(artifact.RoleUsr)
	disk := filepath.Join(t.TempDir(), "disk")
	writeFile(t, disk, make([]byte, f.Size))
	w, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var se *artifact.SizeError
	if err := p.CopyTo(context.Background(), artifact.RoleUsr, w, 0, f.Size-1, nil); !errors.As(err, &se) {
		t.Fatalf("CopyTo into too little space: %v, want a *SizeError", err)
	}
	if !bytes.Equal(readFile(t, disk), make([]byte, f.Size)) {
		t.Error("CopyTo wrote although the file does not fit")
	}
}

// TestHarden12LabelMatchesOSRelease: an artifact labelled with one
// version whose UKI's signed .osrel names another is refused, naming both.
func TestHarden12LabelMatchesOSRelease(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	a := artifacttest.Write(t, dir, "2.0.0", "label")
	writeFile(t, filepath.Join(dir, artifact.FileUKI), artifacttest.VersionedUKI(t, "1.0.0", "usrhash="+a.Manifest.UsrHash))
	refresh(t, dir, nil)
	err := open(t, dir).Verify(context.Background())
	if err == nil || !strings.Contains(err.Error(), "IMAGE_VERSION") || !strings.Contains(err.Error(), "1.0.0") || !strings.Contains(err.Error(), "2.0.0") {
		t.Fatalf("Verify: %v, want a refusal naming IMAGE_VERSION 1.0.0 and the label 2.0.0", err)
	}
}
