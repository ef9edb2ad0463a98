package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/trust"
)

func TestConfigSign(t *testing.T) {
	keys := filepath.Join("..", "..", "trust", "testdata", "keys")
	dir := t.TempDir()
	good := filepath.Join(dir, "config.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("version: 1\nhostname: web-1\n"), 0o644)
	os.WriteFile(bad, []byte("version: 1\nhostnme: web-1\n"), 0o644)
	tests := []struct {
		name      string
		args      []string
		code      int
		stderrHas string
	}{
		{"good", []string{"config", "sign", "--key", filepath.Join(keys, "verity.key"), good}, 0, ""},
		{"invalid file", []string{"config", "sign", "--key", filepath.Join(keys, "verity.key"), bad}, 2, `unknown key "hostnme"`},
		{"key and certificate differ", []string{"config", "sign", "--key", filepath.Join(keys, "db.key"), "--cert", filepath.Join(keys, "verity.crt"), good}, 1, "--key"},
		{"no key", []string{"config", "sign", good}, 1, "key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderrHas) {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr, tc.code, tc.stderrHas)
			}
		})
	}
	if _, err := os.Stat(bad + ".sig"); err == nil {
		t.Error("an invalid file was signed")
	}
	sig, err := os.ReadFile(good + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	roots, err := trust.LoadCertificates(filepath.Join(keys, "verity.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.VerifyDetached(data, sig, roots); err != nil {
		t.Errorf("the signature does not verify: %v", err)
	}
}
