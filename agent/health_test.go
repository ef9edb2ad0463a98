package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const healthyHash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

const healthyMounts = `22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda8 rw
23 22 253:0 / /usr ro,relatime shared:2 - erofs /dev/mapper/usr ro
24 22 0:21 / /etc rw,relatime shared:3 - overlay overlay rw,lowerdir=/usr/share/ingot/factory/etc
`

func healthRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	base := map[string]string{
		"run/ingot/boot.json": `{"usrhash":"` + healthyHash + `","slot":"a"}`,
		"proc/cmdline":        "console=ttyS0 usrhash=" + healthyHash + " quiet\n",
		"proc/self/mountinfo": healthyMounts,
		"usr/lib/os-release":  "ID=ingot\nIMAGE_VERSION=1.2.3\n",
	}
	for k, v := range files {
		base[k] = v
	}
	for k, v := range base {
		if v == "-" {
			continue
		}
		p := filepath.Join(root, k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestHealth(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string // "" = healthy; else a substring of the error
	}{
		{"healthy", nil, ""},
		{"not ingot", map[string]string{"run/ingot/boot.json": "-"}, "not booted by ingot-init"},
		{"other usrhash", map[string]string{"proc/cmdline": "usrhash=" + strings.Repeat("f", 64)}, "ingot-init set up /usr with"},
		{"no usrhash", map[string]string{"proc/cmdline": "quiet"}, "no usrhash="},
		{"usr rw", map[string]string{"proc/self/mountinfo": strings.Replace(healthyMounts, "/usr ro,", "/usr rw,", 1)}, "read-write"},
		{"usr not verity", map[string]string{"proc/self/mountinfo": strings.Replace(healthyMounts, "/dev/mapper/usr", "/dev/vda3", 1)}, "want the dm-verity device"},
		{"usr not erofs", map[string]string{"proc/self/mountinfo": strings.Replace(healthyMounts, "erofs", "ext4", 1)}, "want erofs"},
		{"no usr", map[string]string{"proc/self/mountinfo": strings.Split(healthyMounts, "\n")[0] + "\n"}, "/usr is not mounted"},
		{"root ro", map[string]string{"proc/self/mountinfo": strings.Replace(healthyMounts, "/ / rw,", "/ / ro,", 1)}, "root file system"},
		{"no version", map[string]string{"usr/lib/os-release": "ID=ingot\n"}, "IMAGE_VERSION"},
		{"bad mountinfo", map[string]string{"proc/self/mountinfo": "garbage\n"}, "malformed"},
		{"sysext merged", map[string]string{"proc/self/mountinfo": healthyMounts +
			"40 23 0:40 / /usr ro,nodev,relatime shared:20 - overlay sysext ro,lowerdir=/run/systemd/sysext/meta/usr:/run/extensions/debug/usr:/run/systemd/sysext/.../usr\n"}, ""},
		{"usr covered writable", map[string]string{"proc/self/mountinfo": healthyMounts +
			"40 23 0:40 / /usr rw,relatime shared:20 - overlay overlay rw,lowerdir=/usr,upperdir=/tmp/u\n"}, "only systemd-sysext's read-only overlay"},
		{"usr covered by a disk", map[string]string{"proc/self/mountinfo": healthyMounts +
			"40 23 8:1 / /usr ro,relatime shared:20 - ext4 /dev/sdb1 ro\n"}, "covered by a ext4 mount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := New(Config{Root: healthRoot(t, tc.files)}).Health()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Health: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Health = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/x\`: `/x\`, `/y\09`: `/y\09`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}
