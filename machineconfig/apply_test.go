package machineconfig

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fakeRoot is a booted system's root with factory accounts and a unit in
// /usr.
func fakeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"etc/passwd":                          "root:x:0:0:root:/root:/bin/sh\nsshd:x:22:22::/var/empty:/sbin/nologin\n",
		"etc/group":                           "root:x:0:\nwheel:x:10:root\nsshd:x:22:\n",
		"etc/shadow":                          "root:*:::::::\nsshd:!:::::::\n",
		"usr/lib/systemd/system/sshd.service": "[Service]\nExecStart=/usr/sbin/sshd -D\n[Install]\nWantedBy=multi-user.target\n",
		"usr/lib/systemd/system/systemd-networkd.service":        "[Service]\n[Install]\nWantedBy=multi-user.target\nAlso=systemd-networkd.socket\nAlias=dbus-org.freedesktop.network1.service\n",
		"etc/systemd/system/multi-user.target.wants/old.service": "",
		"usr/share/zoneinfo/Europe/Berlin":                       "TZif",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func render(t *testing.T, root, doc string) []Entry {
	t.Helper()
	c, err := Parse("m.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := Render(root, c)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func TestApply(t *testing.T) {
	root := fakeRoot(t)
	doc := strings.Replace(full, "units:\n", "units:\n  - name: sshd.service\n    enabled: true\n  - name: old.service\n    enabled: false\n", 1)
	entries := render(t, root, doc)
	changed, err := Apply(root, entries)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) < 10 {
		t.Errorf("changed %v", changed)
	}
	for name, want := range map[string]string{
		"etc/hostname":                      "web-1\n",
		"etc/passwd":                        "root:x:0:0:root:/root:/bin/sh\nsshd:x:22:22::/var/empty:/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/sh\n",
		"etc/group":                         "root:x:0:\nwheel:x:10:root,alice\nsshd:x:22:\nalice:x:1000:\n",
		"etc/shadow":                        "root:*:::::::\nsshd:!:::::::\nalice:$6$salt$hash:::::::\n",
		"home/alice/.ssh/authorized_keys":   "ssh-ed25519 AAAA alice@laptop\n",
		"var/lib/app/token":                 "secret",
		"etc/sysctl.d/50-ingot-config.conf": "net.ipv4.ip_forward = 1\n",
		"etc/ingot/update.conf":             "CHANNEL=oci://registry.example.com/fleet/ingot:stable\nWINDOW=02:00-04:00\n",
		"etc/systemd/network/10-ingot-config-00.network": "[Match]\nName=eth0\n\n[Network]\nAddress=192.0.2.10/24\nGateway=192.0.2.1\nDNS=192.0.2.53\n\n[Route]\nDestination=198.51.100.0/24\nGateway=192.0.2.254\n",
		"etc/systemd/system/hello.service.d/10-env.conf": "[Service]\n",
		"var/lib/ingot/config/extensions.json":           "[\n  {\n    \"source\": \"oci://registry.example.com/ext/debug-tools:1.0\"\n  },\n  {\n    \"source\": \"/var/lib/ext/net.raw\",\n    \"sha256\": \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\n  }\n]\n",
	} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	checkMode(t, root, "etc/shadow", 0o600, 0)
	checkMode(t, root, "var/lib/app/token", 0o600, 0)
	checkMode(t, root, "home/alice/.ssh/authorized_keys", 0o600, 1000)
	checkMode(t, root, "home/alice", 0o700, 1000)
	if l, _ := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/sshd.service")); l != "/usr/lib/systemd/system/sshd.service" {
		t.Errorf("sshd.service not enabled: %q", l)
	}
	for _, l := range []string{"multi-user.target.wants/systemd-networkd.service", "dbus-org.freedesktop.network1.service"} {
		if got, _ := os.Readlink(filepath.Join(root, "etc/systemd/system", l)); got != "/usr/lib/systemd/system/systemd-networkd.service" {
			t.Errorf("network: without networkd enabled: %s → %q", l, got)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/old.service")); err == nil {
		t.Error("old.service still enabled")
	}
	if _, err := os.Stat(filepath.Join(root, "etc", stagingName)); err == nil {
		t.Error("staging directory left behind")
	}

	// The same configuration again changes nothing, not even a timestamp.
	before := mtimes(t, root)
	again := render(t, root, doc)
	if changed, err := Apply(root, again); err != nil || len(changed) != 0 {
		t.Errorf("second apply changed %v, %v", changed, err)
	}
	if after := mtimes(t, root); after != before {
		t.Error("second apply rewrote files")
	}

	// A configuration without extensions removes the list.
	if _, err := Apply(root, render(t, root, "version: 1\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ExtensionsPath)); err == nil {
		t.Errorf("%s left after the extensions were dropped", ExtensionsPath)
	}
}

func checkMode(t *testing.T, root, name string, perm os.FileMode, uid int) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != perm || int(fi.Sys().(*syscall.Stat_t).Uid) != uid {
		t.Errorf("%s: mode %v uid %d, want %v uid %d", name, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid, perm, uid)
	}
}

func mtimes(t *testing.T, root string) string {
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			b.WriteString(p + fi.ModTime().String() + "\n")
		}
		return nil
	})
	return b.String()
}

func TestApplyRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(root string)
		entry Entry
		want  string
	}{
		{"outside", nil, Entry{Path: "/usr/bin/x"}, "refused: only clean paths"},
		{"dotdot", nil, Entry{Path: "/etc/../.ingot/x"}, "refused"},
		{"through a link", func(root string) { os.Symlink("../.ingot", filepath.Join(root, "var/state")) }, Entry{Path: "/var/state/x"}, "/var/state is a symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeRoot(t)
			os.MkdirAll(filepath.Join(root, "var"), 0o755)
			if tc.setup != nil {
				tc.setup(root)
			}
			_, err := Apply(root, []Entry{{Path: "/etc/ok", Mode: 0o644}, tc.entry})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(root, "etc/ok")); err == nil {
				t.Error("wrote a file before refusing")
			}
		})
	}
}

func TestRenderRefuses(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"url", "version: 1\nfiles: [{path: /etc/x, url: https://e.com/x, sha256: " + strings.Repeat("a", 64) + "}]\n", "refused at boot (the initrd has no network)"},
		{"conflict", "version: 1\nhostname: a\nfiles: [{path: /etc/hostname, content: b}]\n", "hostname and files[0] both write /etc/hostname"},
		{"no group", "version: 1\nusers: [{name: a, groups: [nope]}]\n", "group nope of user a does not exist"},
		{"no install", "version: 1\nunits: [{name: a.service, content: \"[Service]\\n\", enabled: true}]\n", "has no [Install] section"},
		{"no unit", "version: 1\nunits: [{name: nope.service, enabled: true}]\n", "no unit nope.service"},
		{"owner", "version: 1\nfiles: [{path: /etc/x, owner: nobody}]\n", "no user nobody"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("m.yaml", []byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Render(fakeRoot(t), c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("network without networkd", func(t *testing.T) {
		root := fakeRoot(t)
		if err := os.Remove(filepath.Join(root, "usr/lib/systemd/system/systemd-networkd.service")); err != nil {
			t.Fatal(err)
		}
		c, err := Parse("m.yaml", []byte("version: 1\nnetwork: [{name: eth0, dhcp: true}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Render(root, c); err == nil || !strings.Contains(err.Error(), "network: enable systemd-networkd.service: no unit") {
			t.Errorf("err %v", err)
		}
	})
}
