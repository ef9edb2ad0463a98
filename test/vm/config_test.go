//go:build vm

package vm_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
	"github.com/ingot-linux/ingot/vm"
)

// configMachine is one disk of the musl base, made with image defaults,
// booted several times with the same SMBIOS credential and an SSH forward.
type configMachine struct {
	t       *testing.T
	disk    string
	size    int64
	sshPort int
	creds   map[string][]byte // SMBIOS credentials
	m       *vm.Machine
	boot    int
}

// start boots the disk with extra disks attached.
func (c *configMachine) start(ctx context.Context, extraDisks ...string) *vm.Machine {
	t := c.t
	t.Helper()
	c.stop()
	c.boot++
	cfg := vm.Config{
		Image: c.disk, Persist: true, DiskSizeBytes: c.size, ExtraDisks: extraDisks,
		LogFile:           filepath.Join(os.TempDir(), "ingot-vm-"+t.Name()+"-"+strconv.Itoa(c.boot)+".log"),
		SMBIOSCredentials: c.creds,
		UserNet:           &vm.UserNet{HostForwards: []vm.Forward{{HostPort: c.sshPort, GuestPort: 22}}},
	}
	m, err := vm.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.m = m
	boot := c.boot
	t.Cleanup(func() {
		if t.Failed() && c.m == m {
			t.Logf("console of boot %d (full log in %s):\n%s", boot, cfg.LogFile, m.Tail(6000))
		}
	})
	return m
}

// stop closes the running machine, if any.
func (c *configMachine) stop() {
	if c.m != nil {
		c.m.Close()
		c.m = nil
	}
}

// poweroff shuts the guest down and waits for QEMU to exit.
func (c *configMachine) poweroff(ctx context.Context) {
	c.t.Helper()
	if err := c.m.Send("systemctl poweroff\n"); err != nil {
		c.t.Fatal(err)
	}
	waitOff(ctx, c.t, c.m)
	c.stop()
}

// TestConfig boots the musl base, made with a machine configuration as
// its defaults, with a configuration on the ESP and another in an SMBIOS
// credential, and checks what ingot-init applied before systemd started:
//
//  1. hostname from the credential (it comes after the ESP), a user who
//     logs in with its key through the real ssh client, a file with its
//     mode and owner, a unit enabled and running, static addresses;
//  2. a changed ESP file (50 files and 10 users more) and a NoCloud CIDATA
//     disk (user-data, meta-data, network-config): all applied, and what
//     did not change is not rewritten;
//  3. a reboot with nothing changed: nothing rewritten, nothing logged;
//  4. invalid YAML on the ESP: one console line naming it, nothing
//     changed, and the machine still boots.
func TestConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, pub := sshKey(t, dir)
	res := baseVersionWith(t, "1.0.0", func(o *diskimage.Options) {
		o.MachineConfig = []byte("version: 1\nhostname: from-image\nfiles: [{path: /etc/from-image, content: image}]\n")
		o.MachineConfigName = "defaults.yaml"
	})
	c := &configMachine{t: t, disk: filepath.Join(dir, "disk.raw"), size: res.DiskBytes + 1<<30,
		sshPort: freePort(t), creds: map[string][]byte{layout.ConfigCredential: []byte("version: 1\nhostname: from-credential\n")}}
	ingottest.Run(t, "cp", "--sparse=always", res.DiskPath, c.disk)
	espWrite(t, c.disk, layout.ConfigESPPath, espConfig(pub, "one", 0))
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()
	defer c.stop()

	// 1. First boot: every source applied, the credential's hostname wins.
	m := c.start(ctx)
	t1 := timeToMarker(ctx, t, m)
	expectGuest(ctx, t, m, map[string]string{
		"cat /etc/hostname":                              "from-credential",
		"cat /etc/from-image":                            "image",
		"stat -c '%a %U:%G' /etc/ops-note":               "640 ops:wheel",
		"systemctl is-active hello.service":              "active",
		"systemctl is-enabled hello.service":             "enabled",
		"stat -c '%a %U' /home/ops/.ssh/authorized_keys": "600 ops",
	})
	checkAddresses(ctx, t, m, "10.0.2.15/24", "10.0.2.50/24")
	if got := sshAs(ctx, t, c.sshPort, key, "ops"); got != "ops" {
		t.Errorf("ssh as ops: %q", got)
	}
	unitTime := run(ctx, t, m, "stat -c %Y /etc/systemd/system/hello.service")
	c.poweroff(ctx)

	// 2. A changed ESP file and a NoCloud seed.
	espWrite(t, c.disk, layout.ConfigESPPath, espConfig(pub, "two", 50))
	m = c.start(ctx, cidataDisk(t, dir, pub))
	t2 := timeToMarker(ctx, t, m)
	expectGuest(ctx, t, m, map[string]string{
		"cat /etc/hostname":                              "from-cidata",
		"cat /etc/ops-note":                              "two",
		"ls /etc/bulk | wc -l":                           "50",
		"grep -c '^u[0-9]:' /etc/passwd":                 "10",
		"stat -c '%a %s' /etc/cloud-note":                "600 6",
		"stat -c %Y /etc/systemd/system/hello.service":   unitTime,
		"systemctl is-active hello.service sshd.service": "active\nactive",
	})
	if got := sshAs(ctx, t, c.sshPort, key, "cloudy"); got != "cloudy" {
		t.Errorf("ssh as cloudy (cloud-config): %q", got)
	}
	checkAddresses(ctx, t, m, "10.0.2.15/24", "10.0.2.70/24") // from network-config
	noteTime := run(ctx, t, m, "stat -c %Y /etc/ops-note")

	// 3. A reboot with nothing changed rewrites nothing.
	from := m.Cursor()
	reboot(t, m)
	t3 := timeToMarker(ctx, t, m)
	if strings.Contains(m.Log()[from:], "config: applied") {
		t.Error("a reboot with unchanged sources applied the configuration again")
	}
	var st layout.ConfigStatus
	runJSON(ctx, t, m, "cat "+layout.ConfigStatusPath, &st)
	if st.Error != "" || len(st.Changed) != 0 || len(st.Sources) != 6 {
		t.Errorf("status after an unchanged reboot: %+v", st)
	}
	expectGuest(ctx, t, m, map[string]string{"stat -c %Y /etc/ops-note": noteTime})
	logSlowSteps(t, m)
	c.poweroff(ctx)

	// 4. Invalid YAML on the ESP: one line, nothing changed.
	espWrite(t, c.disk, layout.ConfigESPPath, "version: 1\nhostname: [broken\n")
	m = c.start(ctx)
	line, err := m.WaitForRegexp(ctx, regexp.MustCompile(`ingot-init: config: esp:[^\n]*\n`), 8*time.Minute)
	if err != nil {
		t.Fatalf("no console line for the invalid ESP file: %v", err)
	}
	if !strings.Contains(line[0], "nothing applied") {
		t.Errorf("console line %q does not say nothing was applied", line[0])
	}
	timeToMarker(ctx, t, m)
	expectGuest(ctx, t, m, map[string]string{
		"cat /etc/hostname":        "from-cidata",
		"cat /etc/ops-note":        "two",
		"stat -c %Y /etc/ops-note": noteTime,
		"grep -c '\"error\": \"esp:' " + layout.ConfigStatusPath: "1",
	})
	t.Logf("time to the boot marker and shell (TCG, noisy): first boot (root made, config applied) %v, "+
		"QEMU start with 50 files + 10 users + cloud-config applied %v, reboot with nothing changed %v", t1, t2, t3)
}

// logSlowSteps logs how long the configuration step took in m's boots
// when it took more than a second: ingot-init names such steps.
func logSlowSteps(t *testing.T, m *vm.Machine) {
	t.Helper()
	slow := 0
	for _, l := range strings.Split(m.Log(), "\n") {
		if strings.Contains(l, "apply machine configuration took") {
			t.Logf("console: %s", strings.TrimSpace(l))
			slow++
		}
	}
	if slow == 0 {
		t.Log("the configuration step took under 1 s in boots 2 and 3 (ingot-init names steps over 1 s)")
	}
}

// TestConfigSigned boots the musl base made with --require-signed-config:
// first the ESP's file and the credential, each signed with ingot config
// sign by the image's verity key, are read with their signatures (ESP
// ingot/config.yaml.sig, credential ingot.config.sig), verified against
// /usr's config.crt, and applied. The refusals (unsigned, other key,
// tampered) are TestApplyConfigSigned's; a second boot checks one of
// them in the VM: the ESP file changed after signing.
func TestConfigSigned(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyDir := filepath.Join(dir, "keys")
	keys, err := trust.InitKeys(keyDir, trust.KeyOptions{Name: "ingot test"})
	if err != nil {
		t.Fatal(err)
	}
	res := baseVersionWith(t, "1.0.0", func(o *diskimage.Options) {
		o.Keys, o.KeyDir, o.RequireSignedConfig = keys, keyDir, true
	})
	signed := func(name, content string) (data, sig []byte) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		ingottest.Run(t, filepath.Join(binaries(t), "ingot"), "config", "sign", "--key", filepath.Join(keyDir, "verity.key"), p)
		sig, err := os.ReadFile(p + layout.ConfigSigSuffix)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(content), sig
	}
	espData, espSig := signed("esp.yaml", "version: 1\nhostname: signed-esp\nfiles: [{path: /etc/signed-note, content: esp}]\n")
	credData, credSig := signed("cred.yaml", "version: 1\nhostname: signed-credential\n")
	c := &configMachine{t: t, disk: filepath.Join(dir, "disk.raw"), size: res.DiskBytes + 1<<30, sshPort: freePort(t),
		creds: map[string][]byte{layout.ConfigCredential: credData, layout.ConfigCredential + layout.ConfigSigSuffix: credSig}}
	ingottest.Run(t, "cp", "--sparse=always", res.DiskPath, c.disk)
	espWrite(t, c.disk, layout.ConfigESPPath, string(espData))
	espWrite(t, c.disk, layout.ConfigESPPath+layout.ConfigSigSuffix, string(espSig))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	defer c.stop()

	m := c.start(ctx)
	booted(ctx, t, m)
	if !strings.Contains(m.Log(), "config: applied") {
		t.Error("no console line saying the signed configuration was applied")
	}
	expectGuest(ctx, t, m, map[string]string{
		"cat /etc/hostname":    "signed-credential",
		"cat /etc/signed-note": "esp",
		"grep -c '" + layout.KeyConfigSigned + "=yes' /proc/cmdline": "1",
		"test -s /usr/" + layout.ConfigCertPath + " && echo there":   "there",
	})
	c.poweroff(ctx)

	// The ESP file changed after signing (its signature kept): refused
	// with one line, nothing changed, the reason in ingot status.
	espWrite(t, c.disk, layout.ConfigESPPath, strings.Replace(string(espData), "content: esp", "content: forged", 1))
	m = c.start(ctx)
	if _, err := m.WaitForRegexp(ctx, regexp.MustCompile(`ingot-init: config: esp: signature: [^\n]*; nothing applied`), 8*time.Minute); err != nil {
		t.Errorf("no console line refusing the tampered ESP file: %v", err)
	}
	booted(ctx, t, m)
	expectGuest(ctx, t, m, map[string]string{
		"cat /etc/signed-note":                     "esp",
		"ingot status | grep -c 'esp: signature:'": "1",
	})
}

// timeToMarker waits for the boot (marker, then the autologin shell)
// and says how long that took from now.
func timeToMarker(ctx context.Context, t *testing.T, m *vm.Machine) time.Duration {
	t.Helper()
	start := time.Now()
	booted(ctx, t, m)
	return time.Since(start).Round(time.Second)
}

// expectGuest runs each command in the guest and compares its output.
func expectGuest(ctx context.Context, t *testing.T, m *vm.Machine, want map[string]string) {
	t.Helper()
	for cmd, w := range want {
		if got := run(ctx, t, m, cmd+" 2>&1 || true"); got != w {
			t.Errorf("guest: %s: %q, want %q", cmd, got, w)
		}
	}
}

// checkAddresses waits for networkd to configure the static addresses.
func checkAddresses(ctx context.Context, t *testing.T, m *vm.Machine, addrs ...string) {
	t.Helper()
	var cond []string
	for _, a := range addrs {
		cond = append(cond, "ip -4 addr | grep -q 'inet "+a+" '")
	}
	// No exit: the commands run in the console's login shell.
	out := runFor(ctx, t, m, "for i in $(seq 90); do "+strings.Join(cond, " && ")+" && break; sleep 1; done; ip -4 addr", 3*time.Minute)
	for _, a := range addrs {
		if !strings.Contains(out, "inet "+a+" ") {
			t.Errorf("static address %s not configured:\n%s\n%s", a, out, run(ctx, t, m, "networkctl --no-pager status || true"))
		}
	}
}

// espConfig is the ESP's configuration: a user with the key, a file,
// a unit, static addresses, and bulk files and users.
func espConfig(pub, note string, bulk int) string {
	return espConfigFor(pub, note, "wheel", bulk)
}

// espConfigFor is espConfig with the user in group (which must exist on
// the image) and the file owned by it.
func espConfigFor(pub, note, group string, bulk int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `version: 1
hostname: from-esp
users:
  - name: ops
    groups: [%s]
    ssh_authorized_keys: [%q]
`, group, pub)
	for i := range min(bulk, 10) {
		fmt.Fprintf(&b, "  - {name: u%d, ssh_authorized_keys: [%q]}\n", i, pub)
	}
	fmt.Fprintf(&b, `files:
  - {path: /etc/ops-note, mode: "0640", owner: "ops:%s", content: %q}
`, group, note)
	for i := range bulk {
		fmt.Fprintf(&b, "  - {path: /etc/bulk/f%02d, content: \"file %d\\n\"}\n", i, i)
	}
	b.WriteString(`units:
  - name: hello.service
    enabled: true
    content: |
      [Service]
      Type=oneshot
      RemainAfterExit=yes
      ExecStart=/bin/sh -c "echo hello"
      [Install]
      WantedBy=multi-user.target
network:
  - name: "e*"
    addresses: [10.0.2.15/24, 10.0.2.50/24]
    gateway: 10.0.2.2
    dns: [10.0.2.3]
`)
	return b.String()
}

// cidataDisk makes a NoCloud seed: FAT32 labelled CIDATA with user-data.
func cidataDisk(t *testing.T, dir, pub string) string {
	t.Helper()
	userData := filepath.Join(dir, "user-data")
	cc := fmt.Sprintf(`#cloud-config
hostname: from-cidata
users:
  - name: cloudy
    ssh_authorized_keys: [%q]
write_files:
  - {path: /etc/cloud-note, content: "cloud\n", permissions: '0600'}
`, pub)
	if err := os.WriteFile(userData, []byte(cc), 0o644); err != nil {
		t.Fatal(err)
	}
	// meta-data's host name loses to user-data's; network-config's
	// interface replaces the ESP's entry of the same name.
	metaData, netConfig := filepath.Join(dir, "meta-data"), filepath.Join(dir, "network-config")
	for p, content := range map[string]string{
		metaData:  "instance-id: iid-cidata\nlocal-hostname: from-meta-data\n",
		netConfig: "network:\n  version: 2\n  ethernets:\n    lan:\n      match: {name: \"e*\"}\n      addresses: [10.0.2.15/24, 10.0.2.70/24]\n      gateway4: 10.0.2.2\n      nameservers: {addresses: [10.0.2.3]}\n",
	} {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	disk := filepath.Join(dir, "cidata.raw")
	ingottest.Run(t, "truncate", "-s", "64M", disk)
	ingottest.Run(t, "mkfs.vfat", "-F", "32", "-n", "CIDATA", disk)
	cmd := exec.Command("mcopy", "-i", disk, userData, metaData, netConfig, "::/")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy the seed: %v\n%s", err, out)
	}
	return disk
}

// sshKey makes an ed25519 key pair (the base's sshd has no RSA without
// OpenSSL) and returns the private key's path and the public key.
func sshKey(t *testing.T, dir string) (string, string) {
	t.Helper()
	key := filepath.Join(dir, "id_ed25519")
	ingottest.Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ingot-test", "-f", key)
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return key, strings.TrimSpace(string(pub))
}

// sshAs logs in as user with the real ssh client and runs id -un,
// retrying while sshd starts.
func sshAs(ctx context.Context, t *testing.T, port int, key, user string) string {
	t.Helper()
	var out []byte
	var err error
	for try := 0; try < 30; try++ {
		cmd := exec.CommandContext(ctx, "ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-p", strconv.Itoa(port), user+"@127.0.0.1", "id -un")
		if out, err = cmd.Output(); err == nil {
			return strings.TrimSpace(string(out))
		}
		time.Sleep(3 * time.Second)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Logf("ssh as %s: %s", user, ee.Stderr)
	}
	return fmt.Sprintf("(%v)", err)
}

// freePort returns a TCP port on the loopback that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
