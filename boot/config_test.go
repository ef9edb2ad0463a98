package boot

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

// configRoot is an initrd root with a booted system in /sysroot: factory
// accounts in its /etc, and the image's configuration in its /usr.
func configRoot(t *testing.T, imageConfig string) string {
	t.Helper()
	root := t.TempDir()
	writeRooted(t, root, sysroot+"/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
	writeRooted(t, root, sysroot+"/etc/group", "root:x:0:\n")
	writeRooted(t, root, sysroot+"/etc/shadow", "root:*:::::::\n")
	writeRooted(t, root, sysroot+"/usr/"+layout.ConfigDefaultsPath, imageConfig)
	return root
}

func writeRooted(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// smbios11 is a raw SMBIOS type 11 structure holding strs.
func smbios11(strs ...string) string {
	var b bytes.Buffer
	b.Write([]byte{11, 5, 0, 0, byte(len(strs))})
	for _, s := range strs {
		b.WriteString(s + "\x00")
	}
	b.WriteByte(0)
	return b.String()
}

// dmiTable is an SMBIOS table holding structs (raw structures) between a
// type 0 structure and the end-of-table one, as /sys/firmware/dmi/tables/DMI.
func dmiTable(structs ...string) string {
	return "\x00\x04\x00\x00bios\x00\x00" + strings.Join(structs, "") + "\x7f\x04\xff\xff\x00\x00"
}

func runConfig(t *testing.T, root string) (*layout.ConfigStatus, string) {
	t.Helper()
	return runConfigWith(t, root, layout.DefaultBoot())
}

// runConfigWith runs the step with the command line's settings params.
func runConfigWith(t *testing.T, root string, params layout.Boot) (*layout.ConfigStatus, string) {
	t.Helper()
	var console bytes.Buffer
	s := &State{Config: Config{Root: root, Console: &console}, Params: params}
	if err := applyConfig(context.Background(), s); err != nil {
		t.Fatalf("applyConfig failed the boot: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(root, layout.ConfigStatusPath))
	if err != nil {
		t.Fatal(err)
	}
	var st layout.ConfigStatus
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return &st, console.String()
}

func readRooted(t *testing.T, root, name string) string {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(root, sysroot, name))
	return string(b)
}

func TestApplyConfig(t *testing.T) {
	root := configRoot(t, "version: 1\nhostname: factory\nfiles: [{path: /etc/motd, content: hi}]\n")
	cred := base64.StdEncoding.EncodeToString([]byte("version: 1\nhostname: vm-7\nusers: [{name: ops, password_hash: \"$6$x$topsecret\"}]\n"))
	writeRooted(t, root, dmiTablePath, dmiTable(smbios11("other"), smbios11("io.systemd.credential.binary:ingot.config="+cred)))

	st, console := runConfig(t, root)
	if st.Error != "" || len(st.Sources) != 2 || st.Sources[1].Name != "credential" || len(st.Changed) == 0 {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(console, "config: applied") || strings.Contains(console+st.Merged, "topsecret") {
		t.Errorf("console %q, merged %q", console, st.Merged)
	}
	if got := readRooted(t, root, "etc/hostname"); got != "vm-7\n" {
		t.Errorf("hostname %q", got)
	}
	if got := readRooted(t, root, "etc/motd"); got != "hi" {
		t.Errorf("motd %q", got)
	}

	// Unchanged sources: nothing rendered, nothing rewritten.
	fi, _ := os.Stat(filepath.Join(root, sysroot, "etc/hostname"))
	st, console = runConfig(t, root)
	if st.Error != "" || len(st.Changed) != 0 || console != "" {
		t.Errorf("second boot: status %+v, console %q", st, console)
	}
	if fi2, _ := os.Stat(filepath.Join(root, sysroot, "etc/hostname")); !fi2.ModTime().Equal(fi.ModTime()) {
		t.Error("second boot rewrote /etc/hostname")
	}

	// A changed source that does not validate: one line, nothing applied.
	bad := base64.StdEncoding.EncodeToString([]byte("version: 1\nhostname: vm-8\nhostnme: typo\n"))
	writeRooted(t, root, dmiTablePath, dmiTable(smbios11("io.systemd.credential.binary:ingot.config="+bad)))
	st, console = runConfig(t, root)
	if !strings.HasPrefix(st.Error, "credential:3:1: the document: unknown key \"hostnme\"") || strings.Count(console, "\n") != 1 {
		t.Errorf("bad source: status %+v, console %q", st, console)
	}
	if got := readRooted(t, root, "etc/hostname"); got != "vm-7\n" {
		t.Errorf("a bad source changed the hostname to %q", got)
	}
}

func TestApplyConfigNoSources(t *testing.T) {
	root := t.TempDir()
	st, console := runConfig(t, root)
	if st.Error != "" || len(st.Sources) != 0 || console != "" {
		t.Errorf("status %+v, console %q", st, console)
	}
}

func TestApplyConfigSigned(t *testing.T) {
	keys := filepath.Join("..", "trust", "testdata", "keys")
	verity := loadTestKey(t, keys, "verity")
	cred := []byte("version: 1\nhostname: signed\n")
	sign := func(k *trust.SigningKey, data []byte) []byte {
		sig, err := trust.SignDetached(data, k.Signer, k.Cert)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	tests := []struct {
		name      string
		sig       []byte // nil: no ingot.config.sig
		noCred    bool
		noCert    bool
		wantHost  string
		wantError string
	}{
		{name: "good", sig: sign(verity, cred), wantHost: "signed\n"},
		{name: "image defaults need no signature", noCred: true, wantHost: "factory\n"},
		{name: "unsigned", wantError: "credential: not signed"},
		{name: "other key", sig: sign(loadTestKey(t, keys, "db"), cred), wantError: "credential: signature: signer 1: signed by"},
		{name: "tampered", sig: sign(verity, []byte("version: 1\nhostname: other\n")), wantError: "credential: signature: signer 1: signature does not verify"},
		{name: "no certificate in the image", sig: sign(verity, cred), noCert: true, wantError: "ingot.config_signed=yes, and the configuration certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := configRoot(t, "version: 1\nhostname: factory\n")
			if !tt.noCert {
				crt, _ := os.ReadFile(filepath.Join(keys, "verity.crt"))
				writeRooted(t, root, sysroot+"/usr/"+layout.ConfigCertPath, string(crt))
			}
			if !tt.noCred {
				strs := []string{"io.systemd.credential.binary:ingot.config=" + base64.StdEncoding.EncodeToString(cred)}
				if tt.sig != nil {
					strs = append(strs, "io.systemd.credential.binary:ingot.config.sig="+base64.StdEncoding.EncodeToString(tt.sig))
				}
				writeRooted(t, root, dmiTablePath, dmiTable(smbios11(strs...)))
			}
			params := layout.DefaultBoot()
			params.RequireSignedConfig = true
			st, console := runConfigWith(t, root, params)
			if !strings.HasPrefix(st.Error, tt.wantError) || (tt.wantError == "") != (st.Error == "") {
				t.Errorf("error %q, want %q", st.Error, tt.wantError)
			}
			if tt.wantError != "" && (strings.Count(console, "\n") != 1 || !strings.Contains(console, "nothing applied")) {
				t.Errorf("console %q, want one line saying nothing was applied", console)
			}
			if got := readRooted(t, root, "etc/hostname"); got != tt.wantHost {
				t.Errorf("hostname %q, want %q", got, tt.wantHost)
			}
		})
	}
}

func loadTestKey(t *testing.T, dir, role string) *trust.SigningKey {
	t.Helper()
	k, err := trust.LoadSigningKey(filepath.Join(dir, role+".key"), filepath.Join(dir, role+".crt"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// seedImage makes a NoCloud seed with the real tools, holding user-data
// (and meta-data, as cloud-localds writes it), and returns its path.
func seedImage(t *testing.T, kind, label, userData string) string {
	t.Helper()
	files := map[string]string{"meta-data": "instance-id: i-1\n"}
	if userData != "" {
		files["user-data"] = userData
	}
	return seedImageFiles(t, kind, label, files)
}

// seedImageFiles makes a NoCloud seed holding files.
func seedImageFiles(t *testing.T, kind, label string, content map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for name, data := range content {
		writeRooted(t, src, name, data)
	}
	img := filepath.Join(dir, "seed.img")
	run := func(tool string, args ...string) {
		t.Helper()
		ingottest.LookTool(t, tool, tool)
		cmd := exec.Command(tool, args...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "MTOOLSRC=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
		}
	}
	files, _ := filepath.Glob(filepath.Join(src, "*"))
	switch kind {
	case "FAT12", "FAT16", "FAT32":
		size := map[string]string{"FAT12": "2048", "FAT16": "32768", "FAT32": "66000"}[kind]
		run("mkfs.vfat", "-n", label, "-C", img, size) // the type mkfs.vfat picks for the size
		run("mcopy", append(append([]string{"-i", img}, files...), "::/")...)
	case "genisoimage":
		run("genisoimage", "-quiet", "-output", img, "-volid", label, "-joliet", "-rock", src)
	case "xorriso":
		run("xorriso", "-as", "mkisofs", "-quiet", "-o", img, "-V", label, "-J", "-r", src)
	default:
		t.Fatalf("seed kind %s", kind)
	}
	return img
}

// TestApplyConfigNoCloud finds NoCloud seeds as mkfs.vfat + mcopy and
// genisoimage/xorriso (cloud-localds) make them on a second disk, ignores
// disks that are not seeds, and names a seed without user-data.
func TestApplyConfigNoCloud(t *testing.T) {
	cc := "#cloud-config\nhostname: seeded\nwrite_files:\n  - {path: /etc/seeded, content: yes}\n"
	for _, tc := range []struct {
		name, kind, label, userData string
		wantErr                     string // in the error; "" when applied
		notSeed                     bool
	}{
		{"FAT12 by mkfs.vfat", "FAT12", "CIDATA", cc, "", false},
		{"FAT16 by mkfs.vfat", "FAT16", "cidata", cc, "", false},
		{"FAT32 by mkfs.vfat", "FAT32", "CIDATA", cc, "", false},
		{"ISO 9660 by genisoimage", "genisoimage", "cidata", cc, "", false},
		{"ISO 9660 by xorriso", "xorriso", "CIDATA", cc, "", false},
		{"FAT, another label", "FAT16", "DATA", cc, "", true},
		{"ISO 9660, another label", "genisoimage", "install", cc, "", true},
		{"seed without user-data", "genisoimage", "cidata", "", "/dev/vdb (ISO 9660) is labelled CIDATA but has no user-data", false},
		{"seed with a bad user-data", "FAT12", "CIDATA", "#cloud-config\nhostname: [x\n", "nocloud:2:11: YAML: sequence end token ']' not found", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := configRoot(t, "version: 1\nhostname: factory\n")
			writeRooted(t, root, "sys/class/block/vdb/dev", "254:16\n")
			img, err := os.ReadFile(seedImage(t, tc.kind, tc.label, tc.userData))
			if err != nil {
				t.Fatal(err)
			}
			writeRooted(t, root, "dev/vdb", string(img))
			st, console := runConfig(t, root)
			switch {
			case tc.wantErr != "":
				if !strings.HasPrefix(st.Error, "nocloud") || !strings.Contains(st.Error, tc.wantErr) || !strings.Contains(console, "nothing applied") {
					t.Errorf("status %+v, console %q; want the error %q", st, console, tc.wantErr)
				}
				if got := readRooted(t, root, "etc/hostname"); got != "" {
					t.Errorf("a bad seed applied the hostname %q", got)
				}
			case tc.notSeed:
				if st.Error != "" || len(st.Sources) != 1 || readRooted(t, root, "etc/hostname") != "factory\n" {
					t.Errorf("a disk that is no seed: status %+v", st)
				}
			default:
				if st.Error != "" || len(st.Sources) != 3 || st.Sources[1].Name != "nocloud-meta-data" || st.Sources[2].Name != "nocloud" {
					t.Fatalf("status %+v", st)
				}
				if got := readRooted(t, root, "etc/hostname") + readRooted(t, root, "etc/seeded"); got != "seeded\nyes" {
					t.Errorf("applied %q", got)
				}
			}
		})
	}
}

// TestApplyConfigNoCloudMetaAndNetwork reads a seed's meta-data and
// network-config beside its user-data: the host name comes from
// meta-data unless user-data sets one, the network-config becomes a
// networkd file, and a network-config ingot cannot apply in full stops
// the whole configuration with a line naming it.
func TestApplyConfigNoCloudMetaAndNetwork(t *testing.T) {
	netcfg := "version: 2\nethernets:\n  lan:\n    match: {macaddress: '52:54:00:12:34:56'}\n    addresses: [192.0.2.7/24]\n    gateway4: 192.0.2.1\n    nameservers: {addresses: [192.0.2.53]}\n"
	for _, tc := range []struct {
		name     string
		files    map[string]string
		host     string // "" when nothing is applied
		network  string // the .network file, when applied
		wantErr  string
		nSources int
	}{
		{
			name: "meta-data host name, v2 network",
			files: map[string]string{
				"meta-data":      "instance-id: i-7\nlocal-hostname: edge-7\n",
				"network-config": netcfg,
				"user-data":      "#cloud-config\nwrite_files: [{path: /etc/seeded, content: yes}]\n",
			},
			host:     "edge-7\n",
			network:  "[Match]\nName=*\nMACAddress=52:54:00:12:34:56\n\n[Network]\nAddress=192.0.2.7/24\nGateway=192.0.2.1\nDNS=192.0.2.53\n",
			nSources: 4,
		},
		{
			name: "user-data's host name wins",
			files: map[string]string{
				"meta-data": "{\"instance-id\": \"i-8\", \"local-hostname\": \"from-meta\"}",
				"user-data": "#cloud-config\nhostname: from-user\n",
			},
			host:     "from-user\n",
			nSources: 3,
		},
		{
			name: "a bond is refused whole",
			files: map[string]string{
				"meta-data":      "local-hostname: edge-9\n",
				"network-config": "network:\n  version: 2\n  bonds:\n    bond0: {interfaces: [eth0, eth1]}\n",
				"user-data":      "#cloud-config\n",
			},
			wantErr:  "nocloud-network-config:3:3: bonds are not supported in network-config",
			nSources: 4,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := configRoot(t, "version: 1\nhostname: factory\n")
			writeRooted(t, root, sysroot+"/usr/lib/systemd/system/systemd-networkd.service", "[Service]\n[Install]\nWantedBy=multi-user.target\n")
			writeRooted(t, root, "sys/class/block/vdb/dev", "254:16\n")
			img, err := os.ReadFile(seedImageFiles(t, "FAT12", "CIDATA", tc.files))
			if err != nil {
				t.Fatal(err)
			}
			writeRooted(t, root, "dev/vdb", string(img))
			st, console := runConfig(t, root)
			if len(st.Sources) != tc.nSources {
				t.Errorf("sources %+v, want %d", st.Sources, tc.nSources)
			}
			if tc.wantErr != "" {
				if !strings.Contains(st.Error, tc.wantErr) || !strings.Contains(console, tc.wantErr) || readRooted(t, root, "etc/hostname") != "" {
					t.Errorf("status %+v, console %q; want the error %q and nothing applied", st, console, tc.wantErr)
				}
				return
			}
			if st.Error != "" {
				t.Fatalf("status %+v", st)
			}
			if got := readRooted(t, root, "etc/hostname"); got != tc.host {
				t.Errorf("hostname %q, want %q", got, tc.host)
			}
			if got := readRooted(t, root, "etc/systemd/network/10-ingot-config-00.network"); got != tc.network {
				t.Errorf("network file %q, want %q", got, tc.network)
			}
		})
	}
}

// TestApplyConfigReportsEachBadSource gives two bad sources at once: each
// is its own console line, ingot status gets both, nothing is applied,
// and a good source beside them is not applied either.
func TestApplyConfigReportsEachBadSource(t *testing.T) {
	root := configRoot(t, "version: 1\nhostname: factory\n")
	writeRooted(t, root, dmiTablePath, dmiTable(smbios11("io.systemd.credential:ingot.config=version: 1\nhostname: [vm-8]\n")))
	writeRooted(t, root, "sys/class/block/vdb/dev", "254:16\n")
	img, err := os.ReadFile(seedImage(t, "FAT12", "CIDATA", "#cloud-config\nwrite_files: [{path: /usr/bin/x, content: x}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	writeRooted(t, root, "dev/vdb", string(img))
	st, console := runConfig(t, root)
	lines := strings.Split(strings.TrimSpace(console), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "config: credential:2:11: hostname: want a string; nothing applied") ||
		!strings.Contains(lines[1], "config: nocloud: files[0].path: want a clean absolute path under /etc or /var; nothing applied") {
		t.Errorf("console:\n%s", console)
	}
	if !strings.Contains(st.Error, "credential:") || !strings.Contains(st.Error, "nocloud") || len(st.Sources) != 4 || len(st.Changed) != 0 {
		t.Errorf("status %+v", st)
	}
	if got := readRooted(t, root, "etc/hostname"); got != "" {
		t.Errorf("the image's hostname was applied beside bad sources: %q", got)
	}
}
