package agent

import (
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/artifact/artifacttest"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

// testKeys are the throwaway keys committed for trust's tests; the
// verity key is a different key pair from the db key.
func testKeys(t *testing.T) *trust.Keys {
	t.Helper()
	k, err := trust.LoadKeys("../trust/testdata/keys", trust.WithTime(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCheckVeritySig(t *testing.T) {
	keys := testKeys(t)
	signed := func(t *testing.T, signHash func(h []byte) []byte) *artifact.Artifact {
		dir := t.TempDir()
		in := artifacttest.Inputs(t, dir, "2.0.0", "seed")
		if signHash != nil {
			in.VeritySig = signHash(in.UsrHash)
		}
		m, err := artifact.Write(filepath.Join(dir, artifact.DirName("2.0.0")), in)
		if err != nil {
			t.Fatal(err)
		}
		return &artifact.Artifact{Dir: filepath.Join(dir, artifact.DirName("2.0.0")), Manifest: m}
	}
	good := func(h []byte) []byte {
		sig, err := trust.SignRootHash(h, keys.Verity.Signer, keys.Verity.Cert)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	wrongKey := func(h []byte) []byte { // signed by the db key, which is not the verity key
		sig, err := trust.SignRootHash(h, keys.DB.Signer, keys.DB.Cert)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	machine := func(t *testing.T, trustsVerity bool) *Agent {
		root := t.TempDir()
		if trustsVerity {
			p := filepath.Join(root, "usr", layout.TrustDir, "verity.crt")
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, pemCert(keys.Verity.Cert.Raw), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return New(Config{Root: root})
	}
	tests := []struct {
		name      string
		trusts    bool
		sign      func([]byte) []byte
		wantSig   bool
		wantError string
	}{
		{"signed machine, signed usr", true, good, true, ""},
		{"signed machine, unsigned usr", true, nil, false, "has no verity signature"},
		{"signed machine, usr signed by another key", true, wrongKey, false, "not signed by this machine's verity key"},
		{"unsigned machine, unsigned usr", false, nil, false, ""},
		{"unsigned machine keeps the signature", false, good, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			art := signed(t, tt.sign)
			p, err := art.OpenPayload(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			err = machine(t, tt.trusts).checkVeritySig(p)
			sig := p.VeritySig
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (sig != nil) != tt.wantSig {
				t.Fatalf("signature returned: %v, want %v", sig != nil, tt.wantSig)
			}
		})
	}
}

func TestArtifactRefusesSignatureOfAnotherUsr(t *testing.T) {
	keys := testKeys(t)
	dir := t.TempDir()
	in := artifacttest.Inputs(t, dir, "2.0.0", "seed")
	other := artifacttest.Inputs(t, t.TempDir(), "2.0.0", "other seed")
	sig, err := trust.SignRootHash(other.UsrHash, keys.Verity.Signer, keys.Verity.Cert)
	if err != nil {
		t.Fatal(err)
	}
	in.VeritySig = sig
	_, err = artifact.Write(filepath.Join(dir, artifact.DirName("2.0.0")), in)
	if err == nil || !strings.Contains(err.Error(), "root hash") {
		t.Fatalf("artifact.Write with another usr's signature: err = %v, want a root hash mismatch", err)
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
