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

// TestConfigValidate runs ingot config validate on files with each kind
// of problem and checks the file:line:column it prints.
func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, doc string
		code      int
		stderrHas string // after the file's path
	}{
		{"valid", "version: 1\nhostname: web-1\n", 0, "1 valid"},
		{"valid cloud-config", "#cloud-config\nhostname: web-1\n", 0, "1 valid"},
		{"cloud-config, a key ingot ignores", "#cloud-config\nhostname: web-1\npackages: [vim]\nruncmd: [reboot]\n", 0, "1 valid"},
		{"syntax, first line", "@version: 1\n", 2, ":1:1: YAML: '@' is a reserved character"},
		{"syntax, flow across lines", "hostname: [web-1\nversion: 1\n", 2, ":2:1: YAML: ',' or ']' must be specified"},
		{"syntax", "version: 1\nhostname: [web-1\n", 2, ":2:11: YAML: sequence end token ']' not found"},
		{"syntax, indentation", "version: 1\nusers:\n  - name: a\n   shell: /bin/sh\n", 2, ":4:4: YAML: "},
		{"unknown key", "version: 1\nusers:\n  - name: a\n    shel: /bin/sh\n", 2, `:4:5: users[0]: unknown key "shel"`},
		{"wrong type", "version: 1\nfiles: {path: /etc/a}\n", 2, ":2:8: files: want a list"},
		{"path outside", "version: 1\nfiles:\n  - {path: /usr/lib/a, content: x}\n", 2, ":3:12: files[0].path: want a clean absolute path under /etc or /var"},
		{"ingot's state", "version: 1\nfiles:\n  - {path: /var/lib/ingot/x, content: x}\n", 2, ":3:12: files[0].path: /var/lib/ingot/ is ingot's own state"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(p, []byte(tc.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := run("config", "validate", p)
			if tc.code == 0 && (code != 0 || stdout != tc.stderrHas+"\n") {
				t.Errorf("exit %d, stdout %q, stderr %q; want 0, %q", code, stdout, stderr, tc.stderrHas)
			}
			if tc.code != 0 && (code != tc.code || !strings.Contains(stderr, p+tc.stderrHas)) {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr, tc.code, p+tc.stderrHas)
			}
		})
	}
}
