package sbom

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestForRootFS(t *testing.T) {
	dir := t.TempDir()
	tarball := filepath.Join(dir, "rootfs.tar")
	if err := os.WriteFile(tarball, []byte("tar"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, sum string
	}{
		{tarball, "90aebae315675cbf04612de4f7d5874850f48e0b8dd82becbeaa47ca93f5ebfb"},
		{dir, ""}, // a directory: nothing to hash
	}
	for _, tc := range tests {
		b, err := ForRootFS(tc.path, "1.0.0", Options{Name: "ingot 1.0.0", Created: time.Unix(1700000000, 0), Tool: "ingot-test"})
		if err != nil {
			t.Fatal(err)
		}
		var doc Document
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if got, want := doc.CreationInfo.Created, "2023-11-14T22:13:20Z"; got != want {
			t.Errorf("%s: created %s, want %s", tc.path, got, want)
		}
		var sum string
		if cs := doc.Packages[0].Checksums; len(cs) > 0 {
			sum = cs[0].ChecksumValue
		}
		if sum != tc.sum {
			t.Errorf("%s: checksum %q, want %q", tc.path, sum, tc.sum)
		}
	}
}
