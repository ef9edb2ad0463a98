package artifact_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/artifact"
)

const (
	hashA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	hashB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// validManifest is a manifest ParseManifest accepts, with {{}} slots.
const validManifest = `{
  "architecture": "x86-64",
  "files": [
    {"name": "ingot.efi", "role": "uki", "sha256": "` + hashA + `", "size": 1000},
    {"name": "usr.erofs", "role": "usr", "sha256": "` + hashB + `", "size": 8192},
    {"name": "usr.verity", "role": "verity", "sha256": "` + hashA + `", "size": 8192}
  ],
  "name": "ingot",
  "schemaVersion": 1,
  "usrhash": "` + hashB + `",
  "version": "1.0.0"
}`

func TestParseManifest(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantErr string // "" for success
	}{
		{"valid", validManifest, ""},
		{"files in any order", strings.Replace(strings.Replace(validManifest, `"name": "ingot.efi", "role": "uki"`, `"name": "usr.verity", "role": "verity"`, 1),
			`"name": "usr.verity", "role": "verity", "sha256": "`+hashA+`", "size": 8192`, `"name": "ingot.efi", "role": "uki", "sha256": "`+hashA+`", "size": 1000`, 1), ""},
		{"unknown field", strings.Replace(validManifest, `"name": "ingot"`, `"name": "ingot", "extra": 1`, 1), "unknown field"},
		{"trailing data", validManifest + "{}", "after the JSON object"},
		{"not JSON", "ingot", "invalid character"},
		{"empty", "", "EOF"},
		{"null", "null", "schema version 0"},
		{"schema 2", strings.Replace(validManifest, `"schemaVersion": 1`, `"schemaVersion": 2`, 1), "schema version 2"},
		{"other OS", strings.Replace(validManifest, `"name": "ingot"`, `"name": "other"`, 1), `name "other"`},
		{"bad version", strings.Replace(validManifest, `"1.0.0"`, `"../1"`, 1), "version"},
		{"bad arch", strings.Replace(validManifest, `"x86-64"`, `"X86 64"`, 1), "architecture"},
		{"uppercase usrhash", strings.Replace(validManifest, `"usrhash": "b`, `"usrhash": "B`, 1), "usrhash"},
		{"short sha256", strings.Replace(validManifest, `"sha256": "`+hashB+`"`, `"sha256": "bb"`, 1), "sha256"},
		{"path in name", strings.Replace(validManifest, `"usr.erofs"`, `"../usr.erofs"`, 1), `named "../usr.erofs"`},
		{"unknown role", strings.Replace(validManifest, `"role": "uki"`, `"role": "initrd"`, 1), `unknown role "initrd"`},
		{"duplicate role", strings.Replace(validManifest, `"role": "verity"`, `"role": "usr"`, 1), `more than one file has role "usr"`},
		{"zero size", strings.Replace(validManifest, `"size": 1000`, `"size": 0`, 1), "size 0"},
		{"negative size", strings.Replace(validManifest, `"size": 1000`, `"size": -1`, 1), "size -1"},
		{"size not a number", strings.Replace(validManifest, `"size": 1000`, `"size": "1000"`, 1), "cannot unmarshal"},
		{"no files", strings.Replace(validManifest, `"files": [`, `"files": [], "x": [`, 1), "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := artifact.ParseManifest([]byte(tt.json))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if f, ok := m.File(artifact.RoleUsr); !ok || f.Size != 8192 || f.SHA256 != hashB {
					t.Errorf("usr file = %+v", f)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseManifest succeeded, want an error mentioning %q", tt.wantErr)
			}
			if !errors.Is(err, artifact.ErrInvalidManifest) {
				t.Errorf("error %v does not wrap ErrInvalidManifest", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestManifestMarshalRoundTrip(t *testing.T) {
	m, err := artifact.ParseManifest([]byte(validManifest))
	if err != nil {
		t.Fatal(err)
	}
	// Reverse the files: Marshal sorts them.
	m.Files[0], m.Files[2] = m.Files[2], m.Files[0]
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := artifact.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := m2.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Errorf("Marshal is not stable:\n%s\n%s", b, b2)
	}
	if m2.Files[0].Name != "ingot.efi" {
		t.Errorf("files not sorted by name: %+v", m2.Files)
	}
	if _, err := (&artifact.Manifest{}).Marshal(); !errors.Is(err, artifact.ErrInvalidManifest) {
		t.Errorf("Marshal of an empty manifest: %v", err)
	}
}

func ExampleParseManifest() {
	m, err := artifact.ParseManifest([]byte(validManifest))
	if err != nil {
		fmt.Println(err)
		return
	}
	usr, _ := m.File(artifact.RoleUsr)
	fmt.Println(m.Name, m.Version, m.Architecture, usr.Name, usr.Size)
	// Output: ingot 1.0.0 x86-64 usr.erofs 8192
}
