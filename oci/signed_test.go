package oci_test

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/artifact/artifacttest"
	"github.com/ingot-linux/ingot/oci"
	"github.com/ingot-linux/ingot/trust"
)

// TestRoundTripSignedArtifact: the verity signature of a signed image
// travels as a fourth layer and comes back byte for byte.
func TestRoundTripSignedArtifact(t *testing.T) {
	keys, err := trust.LoadKeys("../trust/testdata/keys", trust.WithTime(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := artifacttest.Inputs(t, dir, "1.0.0", "signed")
	if in.VeritySig, err = trust.SignRootHash(in.UsrHash, keys.Verity.Signer, keys.Verity.Cert); err != nil {
		t.Fatal(err)
	}
	adir := filepath.Join(dir, artifact.DirName("1.0.0"))
	if _, err := artifact.Write(adir, in); err != nil {
		t.Fatal(err)
	}
	host, _ := memRegistry(t, nil)
	ctx := context.Background()
	ref := "oci://" + host + "/ingot/update:signed"
	pushed, err := oci.Push(ctx, adir, ref)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(pushed.Layers); n != 4 || pushed.Layers[3].MediaType != oci.MediaTypeVeritySig || pushed.Layers[3].Name != artifact.FileVeritySig {
		t.Fatalf("pushed layers %+v, want the verity signature fourth", pushed.Layers)
	}
	out := filepath.Join(t.TempDir(), "pulled")
	if _, err := oci.Pull(ctx, ref, out); err != nil {
		t.Fatal(err)
	}
	sameTree(t, adir, out)
	a, err := artifact.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	roots := []*x509.Certificate{keys.Verity.Cert}
	if _, err := trust.VerifyRootHashSig(mustRead(t, a.Path(artifact.RoleVeritySig)), roots); err != nil {
		t.Errorf("pulled signature does not verify: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
