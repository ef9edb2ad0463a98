//go:build vm

package vm_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/vm"
)

// configRun is what ingot-init left in /run/ingot/config.json: the
// status, and how long the step took.
type configRun struct {
	layout.ConfigStatus
	TookMS int64 `json:"tookMs"`
}

// TestConfigDebian is TestConfig on the Debian fixture (with
// openssh-server added: the default fixture has no sshd), one disk booted
// four times:
//
//  1. a configuration on the ESP, another as an SMBIOS credential and a
//     NoCloud seed as mkfs.vfat makes it for a small disk (FAT12) with
//     #cloud-config: hostname (the seed's: it comes last), a user whose
//     key logs in with the real ssh client through a hostfwd, a file with
//     its mode and owner, a unit enabled and running, static addresses,
//     and the seed's user, key and file;
//  2. the ESP file changed to add 50 files and 10 users: applied, and
//     only what changed is rewritten;
//  3. the ESP file an empty configuration, no credential, no seed: the
//     step's cost for an empty configuration;
//  4. three bad sources at once (a file into ingot's state on the ESP, a
//     wrong type in the credential, invalid YAML in the seed): a console
//     line each, nothing changed, the boot goes on, ingot status says why.
func TestConfigDebian(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("VM tests boot real machines; not in -short")
	}
	dir := t.TempDir()
	key, pub := sshKey(t, dir)
	bin := binaries(t)
	res, err := diskimage.Build(context.Background(), diskimage.Options{
		RootFS: debianRootfsWith(t, "openssh-server"), Version: "1.0.0", OutputDir: filepath.Join(dir, "out"), Epoch: epoch,
		InitPath: filepath.Join(bin, "ingot-init"), AgentPath: filepath.Join(bin, "ingot-agent"), Autologin: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &configMachine{t: t, disk: filepath.Join(dir, "disk.raw"), size: res.DiskBytes + 2<<30, sshPort: freePort(t),
		creds: map[string][]byte{layout.ConfigCredential: []byte("version: 1\nhostname: from-credential\nfiles: [{path: /etc/from-credential, content: cred}]\n")}}
	ingottest.Run(t, "cp", "--sparse=always", res.DiskPath, c.disk)
	espWrite(t, c.disk, layout.ConfigESPPath, espConfigFor(pub, "one", "adm", 0))
	seed := fatSeed(t, dir, fmt.Sprintf(`#cloud-config
hostname: from-cidata
users:
  - name: cloudy
    ssh_authorized_keys: [%q]
write_files:
  - {path: /etc/cloud-note, content: "cloud\n", permissions: '0600'}
`, pub))
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	defer c.stop()

	// 1. Every source applied; the seed's hostname wins.
	m := c.start(ctx, seed)
	booted(ctx, t, m)
	expectGuest(ctx, t, m, map[string]string{
		"cat /etc/hostname":                              "from-cidata",
		"cat /etc/from-credential":                       "cred",
		"stat -c '%a %U:%G' /etc/ops-note":               "640 ops:adm",
		"systemctl is-enabled hello.service":             "enabled",
		"systemctl is-active hello.service ssh.service":  "active\nactive",
		"stat -c '%a %U' /home/ops/.ssh/authorized_keys": "600 ops",
		"stat -c '%a %s' /etc/cloud-note":                "600 6",
	})
	checkAddresses(ctx, t, m, "10.0.2.15/24", "10.0.2.50/24")
	for _, user := range []string{"ops", "cloudy"} {
		if got := sshAs(ctx, t, c.sshPort, key, user); got != user {
			t.Errorf("ssh as %s: %q", user, got)
		}
	}
	first := configStatus(ctx, t, m)
	unitTime := run(ctx, t, m, "stat -c %Y /etc/systemd/system/hello.service")
	c.poweroff(ctx)

	// 2. The ESP file changed: 50 files and 10 users more, the note
	// changed; the unit, unchanged, is not rewritten.
	espWrite(t, c.disk, layout.ConfigESPPath, espConfigFor(pub, "two", "adm", 50))
	m = c.start(ctx, seed)
	booted(ctx, t, m)
	expectGuest(ctx, t, m, map[string]string{
		"cat /etc/ops-note":                            "two",
		"ls /etc/bulk | wc -l":                         "50",
		"grep -c '^u[0-9]:' /etc/passwd":               "10",
		"stat -c %Y /etc/systemd/system/hello.service": unitTime,
		"systemctl is-active hello.service":            "active",
	})
	bulk := configStatus(ctx, t, m)
	for _, p := range bulk.Changed {
		if strings.HasPrefix(p, "/etc/systemd/") || p == "/etc/hostname" || p == "/etc/cloud-note" {
			t.Errorf("boot 2 rewrote %s, which did not change", p)
		}
	}
	noteTime := run(ctx, t, m, "stat -c %Y /etc/ops-note")
	c.poweroff(ctx)

	// 3. An empty configuration and nothing else.
	espWrite(t, c.disk, layout.ConfigESPPath, "version: 1\n")
	c.creds = nil
	m = c.start(ctx)
	booted(ctx, t, m)
	empty := configStatus(ctx, t, m)
	if empty.Error != "" || len(empty.Changed) != 0 || len(empty.Sources) != 1 {
		t.Errorf("an empty configuration: %+v", empty.ConfigStatus)
	}
	c.poweroff(ctx)

	// 4. Three bad sources: a line each, nothing changed.
	espWrite(t, c.disk, layout.ConfigESPPath, "version: 1\nhostname: bad\nfiles:\n  - {path: /var/lib/ingot/config/extensions.json, content: x}\n")
	c.creds = map[string][]byte{layout.ConfigCredential: []byte("version: 1\nhostname: [bad]\n")}
	m = c.start(ctx, fatSeed(t, t.TempDir(), "#cloud-config\nhostname: [bad\n"))
	from := m.Cursor()
	for _, want := range []string{
		`esp:4:12: files\[0\]\.path: /var/lib/ingot/ is ingot's own state`,
		`credential:2:11: hostname: want a string`,
		`nocloud:2:11: YAML: `,
	} {
		re := regexp.MustCompile(`ingot-init: config: ` + want + `[^\n]*; nothing applied`)
		if _, err := m.WaitForRegexp(ctx, re, 8*time.Minute); err != nil {
			t.Errorf("no console line %q: %v", want, err)
		}
		m.SetCursor(from)
	}
	booted(ctx, t, m)
	expectGuest(ctx, t, m, map[string]string{
		"cat /etc/hostname":        "from-cidata",
		"stat -c %Y /etc/ops-note": noteTime,
		"test -e /var/lib/ingot/config/extensions.json || echo absent": "absent",
	})
	if st := run(ctx, t, m, "ingot status"); !strings.Contains(st, "credential:2:11") || !strings.Contains(st, "ingot's own state") {
		t.Errorf("ingot status does not give the reasons:\n%s", st)
	}
	t.Logf("the configuration step in ingot-init (TCG, load %s): first boot, %d sources, %d changes: %d ms; "+
		"50 files + 10 users added (%d changes): %d ms; an empty configuration alone: %d ms; three bad sources refused: %d ms",
		loadavg(), len(first.Sources), len(first.Changed), first.TookMS, len(bulk.Changed), bulk.TookMS, empty.TookMS, configStatus(ctx, t, m).TookMS)
}

// configStatus reads what ingot-init left of the configuration step.
func configStatus(ctx context.Context, t *testing.T, m *vm.Machine) configRun {
	t.Helper()
	var st configRun
	runJSON(ctx, t, m, "cat "+layout.ConfigStatusPath, &st)
	return st
}

// debianRootfsWith is the Debian fixture with more packages, cached
// beside it (test/fixtures/debian-rootfs.sh with INGOT_DEBIAN_EXTRA).
func debianRootfsWith(t *testing.T, packages string) string {
	t.Helper()
	ingottest.LookTool(t, "mmdebstrap", "mmdebstrap")
	cmd := exec.Command("bash", filepath.Join(repoRoot, "test/fixtures/debian-rootfs.sh"))
	cmd.Env = append(os.Environ(), "INGOT_DEBIAN_EXTRA="+packages)
	cmd.Stderr = &testWriter{t: t}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the Debian fixture with %s: %v", packages, err)
	}
	return strings.TrimSpace(string(out))
}

// fatSeed makes a NoCloud seed as the cloud-init docs do for a vfat
// one: mkfs.vfat -n CIDATA on a small disk (so FAT12, its default there)
// and mcopy of user-data and meta-data.
func fatSeed(t *testing.T, dir, userData string) string {
	t.Helper()
	disk := filepath.Join(dir, "seed.img")
	for name, content := range map[string]string{"user-data": userData, "meta-data": "instance-id: i-1\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ingottest.Run(t, "mkfs.vfat", "-n", "CIDATA", "-C", disk, "2048")
	cmd := exec.Command("mcopy", "-i", disk, filepath.Join(dir, "user-data"), filepath.Join(dir, "meta-data"), "::/")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, out)
	}
	bs := make([]byte, 512)
	if f, err := os.Open(disk); err != nil {
		t.Fatal(err)
	} else {
		f.ReadAt(bs, 0)
		f.Close()
	}
	if got := string(bs[0x36:0x3b]); got != "FAT12" {
		t.Fatalf("mkfs.vfat made %q, want FAT12 (what it makes for a small seed)", got)
	}
	return disk
}

// loadavg is the host's 1-minute load, for the figures.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
