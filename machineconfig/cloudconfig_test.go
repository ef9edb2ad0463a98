package machineconfig

import (
	"strings"
	"testing"
)

const cloud = `#cloud-config
hostname: seeded
timezone: UTC
ssh_authorized_keys: ["ssh-ed25519 AAAA root@x"]
users:
  - default
  - name: bob
    groups: wheel, audio
    ssh_authorized_keys: ["ssh-ed25519 BBBB bob@x"]
    sudo: ALL=(ALL) NOPASSWD:ALL
write_files:
  - path: /etc/app.conf
    content: aGVsbG8=
    encoding: b64
    permissions: '0640'
packages: [vim]
runcmd: [echo hi]
`

func TestImportCloudConfig(t *testing.T) {
	c, ignored, err := ParseAny("user-data", []byte(cloud))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"user-data:6:5: users: default ignored (ingot has no default user)",
		"user-data:10:5: users: sudo ignored",
		"user-data:16:1: packages ignored",
		"user-data:17:1: runcmd ignored",
	}
	if strings.Join(ignored, "\n") != strings.Join(want, "\n") {
		t.Errorf("ignored:\n%s\nwant:\n%s", strings.Join(ignored, "\n"), strings.Join(want, "\n"))
	}
	if c.Hostname != "seeded" || len(c.Users) != 2 || c.Users[0].Name != "root" || c.Users[1].Groups[1] != "audio" ||
		c.Files[0].Mode != "0640" || c.Files[0].Encoding != "base64" {
		t.Errorf("imported %+v", c)
	}
}

func TestImportCloudConfigRefusesOutsidePaths(t *testing.T) {
	_, _, err := ParseAny("user-data", []byte("#cloud-config\nwrite_files:\n  - path: /usr/bin/x\n    content: x\n"))
	if err == nil || !strings.Contains(err.Error(), "files[0].path") {
		t.Errorf("err %v", err)
	}
}

// TestImportCloudConfigChecksPatterns feeds names that would break the
// files rendered from them (a colon in /etc/passwd, a newline in
// /etc/hostname): an imported document meets the format's patterns as a
// parsed one does.
func TestImportCloudConfigChecksPatterns(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"#cloud-config\nusers:\n  - name: 'evil:x:0:0::/root:/bin/sh'\n", "users[0].name: does not match"},
		{"#cloud-config\nhostname: \"a\\nb\"\n", "hostname: does not match"},
		{"#cloud-config\nusers:\n  - name: bob\n    shell: \"/bin/sh\\nx\"\n", "users[0].shell: does not match"},
		{"#cloud-config\nusers:\n  - groups: wheel\n", "users[0].name: is required"},
		{"#cloud-config\nwrite_files:\n  - path: /etc/x\n    encoding: gzip\n    content: eA==\n", "write_files: [0]: encoding gzip is not supported"},
	} {
		_, _, err := ParseAny("user-data", []byte(tc.doc))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.doc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: err = %v, want %q", tc.doc, err, tc.want)
		}
	}
}

func TestMerge(t *testing.T) {
	a := &Config{Hostname: "a", Users: []User{{Name: "x", Shell: "/bin/sh"}}, Sysctl: map[string]string{"k": "1", "j": "1"}, Update: &Update{Channel: "oci://a/b:c", Window: "01:00-02:00"}}
	b := &Config{Timezone: "UTC", Users: []User{{Name: "x", Shell: "/bin/bash"}, {Name: "y"}}, Sysctl: map[string]string{"k": "2"}, Update: &Update{Window: "03:00-04:00"}}
	m := Merge(a, nil, b)
	if m.Hostname != "a" || m.Timezone != "UTC" || len(m.Users) != 2 || m.Users[0].Shell != "/bin/bash" ||
		m.Sysctl["k"] != "2" || m.Sysctl["j"] != "1" || m.Update.Channel != "oci://a/b:c" || m.Update.Window != "03:00-04:00" {
		t.Errorf("merged %+v", m)
	}
	if a.Sysctl["k"] != "1" || a.Users[0].Shell != "/bin/sh" {
		t.Error("Merge changed its input")
	}
}

func FuzzImportCloudConfig(f *testing.F) {
	f.Add([]byte(cloud))
	f.Add([]byte("#cloud-config\nusers: [default]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, _, err := ImportCloudConfig("f", data)
		if err == nil && c.Validate() != nil {
			t.Errorf("imported an invalid configuration: %v", c.Validate())
		}
	})
}
