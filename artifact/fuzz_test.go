package artifact_test

import (
	"bytes"
	"testing"

	"github.com/ingot-linux/ingot/artifact"
)

// FuzzParseManifest: ParseManifest never panics, and whatever it accepts
// marshals to a canonical form that parses back to the same bytes.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(validManifest))
	f.Add([]byte(`{"schemaVersion": 1}`))
	f.Add([]byte(`{"files": [{"name": "usr.erofs", "role": "usr", "size": 1}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := artifact.ParseManifest(b)
		if err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("accepted manifest does not marshal: %v", err)
		}
		m2, err := artifact.ParseManifest(out)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, out)
		}
		out2, err := m2.Marshal()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("canonical form is not stable: %v\n%s\n%s", err, out, out2)
		}
		if _, err := m.UsrHashBytes(); err != nil {
			t.Fatalf("accepted usrhash does not decode: %v", err)
		}
	})
}
