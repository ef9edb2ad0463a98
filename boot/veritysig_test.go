package boot

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

func TestVerifyUsrSig(t *testing.T) {
	keys, err := trust.LoadKeys("../trust/testdata/keys", trust.WithTime(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	usrHash, _ := hex.DecodeString(hash)
	otherHash := bytes.Repeat([]byte{7}, 32)
	sign := func(h []byte, k trust.SigningKey) []byte {
		sig, err := trust.SignRootHash(h, k.Signer, k.Cert)
		if err != nil {
			t.Fatal(err)
		}
		return append(sig, make([]byte, 1<<16)...) // the rest of the partition
	}
	tests := []struct {
		name    string
		cert    bool   // the initrd carries verity.crt
		sig     []byte // the partition's content; nil: no partition
		wantErr string
	}{
		{"unsigned image", false, nil, ""},
		{"unsigned image ignores a signature", false, sign(otherHash, keys.Verity), ""},
		{"signed", true, sign(usrHash, keys.Verity), ""},
		{"no partition", true, nil, "no usr-verity-sig partition"},
		{"empty partition", true, make([]byte, 4096), "empty"},
		{"another usr", true, sign(otherHash, keys.Verity), "signs root hash"},
		{"another key", true, sign(usrHash, keys.DB), "verity signature"},
		{"garbage after the padding", true, append(sign(usrHash, keys.Verity), 1), "after the NUL padding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			s := &State{Config: Config{Root: root, Console: &bytes.Buffer{}}, Params: layout.DefaultBoot(), Disk: "/dev/vda", Slot: "a"}
			s.Params.UsrHash = usrHash
			if tt.cert {
				write(t, filepath.Join(root, VerityCertPath), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: keys.Verity.Cert.Raw}))
			}
			if tt.sig != nil {
				s.SigPart = "/dev/vda4"
				write(t, filepath.Join(root, s.SigPart), tt.sig)
			}
			err := verifyUsrSig(context.Background(), s)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
