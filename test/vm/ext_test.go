//go:build vm

package vm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/agent"
	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/distro/distrotest"
	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/oci"
	"github.com/ingot-linux/ingot/trust"
	"github.com/ingot-linux/ingot/vm"
)

// extBase is a root filesystem the extension scenario runs on.
type extBase struct {
	// image makes the base as version, signed by keyDir.
	image func(t *testing.T, version string, mod func(*diskimage.Options)) *diskimage.Result
	// buildArgs are ingot ext build's arguments that name the OS: --base
	// for a root filesystem without IMAGE_VERSION.
	buildArgs []string
	// netSetup is a guest command that brings up DHCP on the user
	// network, where the image has no network configuration of its own.
	netSetup string
	// viaConfig has the machine configuration (an SMBIOS credential) name
	// the first extension, so ingot-config-extensions.service adds it.
	viaConfig bool
	// strace adds the debug extension, strace built from its recipe
	// through the store, for 1.0.0 and 2.0.0.
	strace bool
}

// TestExtensionsBase runs the extension scenario on ingot's musl base.
func TestExtensionsBase(t *testing.T) {
	t.Parallel()
	rootfs := baseRootfs(t)
	runExtensionScenario(t, extBase{
		image: func(t *testing.T, version string, mod func(*diskimage.Options)) *diskimage.Result {
			return baseVersionWith(t, version, mod)
		},
		buildArgs: []string{"--base", rootfs},
		strace:    true,
		viaConfig: true,
	})
}

// TestExtensionsDebian runs the extension scenario on the Debian fixture.
func TestExtensionsDebian(t *testing.T) {
	t.Parallel()
	debianImage(t) // the fixture tarball, shared
	runExtensionScenario(t, extBase{
		image: func(t *testing.T, version string, mod func(*diskimage.Options)) *diskimage.Result {
			return buildVersionWith(t, version, func(o *diskimage.Options) {
				o.OutputDir = filepath.Join(t.TempDir(), "v"+version)
				mod(o)
			})
		},
		buildArgs: []string{"--base", shared.rootfs},
		netSetup:  "mkdir -p /etc/systemd/network && printf '[Match]\\nName=en* eth*\\n\\n[Network]\\nDHCP=yes\\n' > /etc/systemd/network/80-test-dhcp.network && systemctl enable systemd-networkd && systemctl restart systemd-networkd",
	})
}

// extFiles are the extension images one scenario uses.
type extFiles struct {
	dir                               string
	hello1, hello2, site1, site2      string
	flip, unsigned, otherKey, wrongOS string
	truncated, noVerity               string
}

// buildExtensions makes the scenario's extensions with the ingot CLI, as
// a user does: a sysext with a tool and a confext, for 1.0.0 and 2.0.0,
// and the bad ones.
func buildExtensions(t *testing.T, b extBase, keyDir, otherKeys string) extFiles {
	t.Helper()
	dir := t.TempDir()
	f := extFiles{dir: filepath.Join(dir, "out")}
	tree := func(name string, files map[string]string) string {
		root := filepath.Join(dir, "src", name)
		for p, content := range files {
			full := filepath.Join(root, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(content), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	ingot := filepath.Join(binaries(t), "ingot")
	build := func(name, version, kind, src string, args ...string) string {
		all := append([]string{"ext", "build", "--name", name, "--version", version, "--type", kind, "--dir", src, "--output", f.dir}, b.buildArgs...)
		ingottest.Run(t, ingot, append(all, args...)...)
		return filepath.Join(f.dir, ext.FileName(name, version))
	}
	hello := func(v string) string {
		return tree("hello"+v, map[string]string{"usr/bin/hello-ext": "#!/bin/sh\necho hello-" + v + "\n"})
	}
	site := func(v string) string {
		return tree("site"+v, map[string]string{"etc/site.conf": "site-" + v + "\n", "etc/site-local.conf": "from-confext\n"})
	}
	keys := []string{"--keys", keyDir}
	f.hello1 = build("hello", "1.0.0", "sysext", hello("1"), append(keys, "--for", "1.0.0")...)
	f.hello2 = build("hello", "2.0.0", "sysext", hello("2"), append(keys, "--for", "2.0.0")...)
	f.site1 = build("site", "1.0.0", "confext", site("1"), append(keys, "--for", "1.0.0")...)
	f.site2 = build("site", "2.0.0", "confext", site("2"), append(keys, "--for", "2.0.0")...)
	f.flip = build("flip", "1", "sysext", tree("flip", map[string]string{"usr/share/flip/data": strings.Repeat("flip me\n", 4096)}), append(keys, "--for", "1.0.0")...)
	f.unsigned = build("unsigned", "1", "sysext", hello("u"), "--for", "1.0.0")
	f.otherKey = build("otherkey", "1", "sysext", hello("o"), "--keys", otherKeys, "--for", "1.0.0")
	f.wrongOS = build("wrongos", "1", "sysext", hello("w"), append(keys, "--for", "9.9.9")...)
	// A truncated image and one whose verity partition is gone.
	f.truncated = filepath.Join(f.dir, "truncated_1.raw")
	b1, err := os.ReadFile(f.hello1)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(f.truncated, b1[:len(b1)/2], 0o644)
	f.noVerity = filepath.Join(f.dir, "noverity_1.raw")
	os.WriteFile(f.noVerity, b1, 0o644)
	ingottest.Run(t, "sgdisk", "--delete=2", f.noVerity)
	return f
}

// runExtensionScenario walks a signed machine through its extensions'
// lifecycle: add from a registry and from a file, the bad ones refused
// with nothing left behind, a flipped byte and a wrong OS version found at
// boot, an update that brings the 2.0.0 builds (refused first while one
// is missing), a rollback that brings 1.0.0's back, and remove.
func runExtensionScenario(t *testing.T, b extBase) {
	dir := t.TempDir()
	keyDir, otherDir := filepath.Join(dir, "keys"), filepath.Join(dir, "other")
	keys, err := trust.InitKeys(keyDir, trust.KeyOptions{Name: "ingot ext test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.InitKeys(otherDir, trust.KeyOptions{Name: "someone else"}); err != nil {
		t.Fatal(err)
	}
	signed := func(o *diskimage.Options) { o.Keys, o.KeyDir = keys, keyDir }
	v1, v2 := b.image(t, "1.0.0", signed), b.image(t, "2.0.0", signed)
	f := buildExtensions(t, b, keyDir, otherDir)
	if b.strace {
		// debug_<os version>.raw, where ingot update looks for the next build.
		for _, v := range []string{"1.0.0", "2.0.0"} {
			res := distrotest.Strace(t, keys, v, t.TempDir())
			if err := os.Rename(res.Path, filepath.Join(f.dir, ext.FileName("debug", v))); err != nil {
				t.Fatal(err)
			}
		}
	}

	registry, _ := ingottest.DockerRegistry(t)
	for _, p := range []struct{ file, tag string }{{f.hello1, "1.0.0"}, {f.hello2, "2.0.0"}} {
		if _, err := oci.PushExtension(context.Background(), p.file, "oci://"+registry+"/ingot-ext/hello:"+p.tag); err != nil {
			t.Fatal(err)
		}
	}
	const guestRegistry = "10.0.2.100:5000"
	// site_2.0.0.raw is held back under another name until the update
	// has been refused once for want of it.
	held := filepath.Join(f.dir, "held-site_2.0.0.raw")
	if err := os.Rename(f.site2, held); err != nil {
		t.Fatal(err)
	}
	payload := payloadDisk(t, f.dir, v2.UpdateDir)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	cfg := vm.Config{Image: v1.DiskPath, DiskSizeBytes: v1.DiskBytes + 2<<30, ExtraDisks: []string{payload},
		UserNet: &vm.UserNet{GuestForwards: []vm.GuestForward{{GuestAddr: "10.0.2.100", GuestPort: 5000, Target: registry}}}}
	if b.viaConfig {
		cfg.SMBIOSCredentials = map[string][]byte{layout.ConfigCredential: []byte(
			"version: 1\nextensions:\n  - source: oci://" + guestRegistry + "/ingot-ext/hello:1.0.0\n")}
	}
	m := startVM(ctx, t, cfg)
	expectMarker(t, booted(ctx, t, m), "1.0.0", "a")
	u := "/var/tmp/u/" + filepath.Base(f.dir) + "/"
	runFor(ctx, t, m, "mkdir -p /var/tmp/u && tar -xf /dev/vdb -C /var/tmp/u && echo local > /etc/site-local.conf", 10*time.Minute)
	if b.netSetup != "" {
		run(ctx, t, m, b.netSetup)
	}
	waitForAddress(ctx, t, m)

	if b.viaConfig {
		// The configuration's extension arrives once the network is up.
		out := runFor(ctx, t, m, "for i in $(seq 90); do hello-ext 2>/dev/null && break; sleep 2; done", 5*time.Minute)
		if out != "hello-1" {
			t.Fatalf("the configuration's extension did not arrive: %q\n%s", out, run(ctx, t, m, "systemctl status --no-pager ingot-config-extensions.service || true"))
		}
		if x := extList(ctx, t, m)["hello"]; !x.Merged || x.Source != "oci://"+guestRegistry+"/ingot-ext/hello:1.0.0" {
			t.Errorf("ext list after ext sync: %+v", x)
		}
		run(ctx, t, m, "ingot ext remove hello")
	}

	// Add from the registry, and time it to the tool running.
	start := time.Now()
	runFor(ctx, t, m, "ingot ext add oci://"+guestRegistry+"/ingot-ext/hello:1.0.0", 10*time.Minute)
	expectGuest(ctx, t, m, map[string]string{"hello-ext": "hello-1"})
	t.Logf("ext add (registry) to the tool running: %v", time.Since(start).Round(100*time.Millisecond))
	runFor(ctx, t, m, "ingot ext add "+u+"site_1.0.0.raw && ingot ext add "+u+"flip_1.raw", 10*time.Minute)
	if b.strace {
		runFor(ctx, t, m, "ingot ext add "+u+"debug_1.0.0.raw", 10*time.Minute)
		if out := run(ctx, t, m, "strace -V | head -1"); !strings.Contains(out, "strace -- version 6.1") {
			t.Errorf("strace -V: %q", out)
		}
		run(ctx, t, m, "strace -f -o /dev/null true")
	}
	expectGuest(ctx, t, m, map[string]string{
		"cat /etc/site.conf":           "site-1",
		"cat /etc/site-local.conf":     "local", // the machine's own change wins
		"head -1 /usr/share/flip/data": "flip me",
	})

	// Bad extensions: one clear error each, nothing installed or mounted.
	for name, want := range map[string]string{
		"unsigned_1.raw":  "not signed",
		"otherkey_1.raw":  "verity signature",
		"wrongos_1.raw":   "is for",
		"truncated_1.raw": "extension image",
		"noverity_1.raw":  "no root-verity partition",
	} {
		out, code, err := m.Run(ctx, "ingot ext add "+u+name, 5*time.Minute)
		if err != nil || code == 0 || !strings.Contains(out, want) || strings.Count(strings.TrimSpace(out), "\n") > 0 {
			t.Errorf("ext add %s: exit %d, %v, want one line with %q:\n%s", name, code, err, want, out)
		}
	}
	if out, code, err := m.Run(ctx, "ingot ext remove ../hello", time.Minute); err != nil || code == 0 || !strings.Contains(out, "invalid extension name") {
		t.Errorf("ext remove ../hello: exit %d, %v:\n%s", code, err, out)
	}
	want := map[string]string{
		"ls -A /var/lib/ingot/extensions/1.0.0 | tr '\\n' ' '": "flip.raw flip.source hello.raw hello.source site.raw site.source",
		"ls -A /run/extensions | tr '\\n' ' '":                 "flip hello",
		"ls /dev/mapper | grep -c ingot-ext-":                  "3",
	}
	if b.strace {
		want["ls -A /var/lib/ingot/extensions/1.0.0 | tr '\\n' ' '"] = "debug.raw debug.source flip.raw flip.source hello.raw hello.source site.raw site.source"
		want["ls -A /run/extensions | tr '\\n' ' '"] = "debug flip hello"
		want["ls /dev/mapper | grep -c ingot-ext-"] = "4"
	}
	expectGuest(ctx, t, m, want)

	// At boot: a flipped byte in flip's EROFS and an extension for another
	// version are refused, each with one console line, and the rest merge.
	im := openExtension(t, f.flip)
	flipAt := im.DataOffset() + im.DataReader().Size()/2
	run(ctx, t, m, fmt.Sprintf("cp %swrongos_1.raw /var/lib/ingot/extensions/1.0.0/wrongos.raw && printf X | dd of=/var/lib/ingot/extensions/1.0.0/flip.raw bs=1 seek=%d conv=notrunc 2>/dev/null && sync", u, flipAt))
	m.Send("systemctl reboot\n")
	expectMarker(t, booted(ctx, t, m), "1.0.0", "a")
	log := m.Log()
	for _, want := range []string{"extension flip refused: content does not match its verity root hash", "extension wrongos refused: extension is for"} {
		if !strings.Contains(log, want) {
			t.Errorf("no console line %q", want)
		}
	}
	expectGuest(ctx, t, m, map[string]string{"hello-ext": "hello-1", "cat /etc/site.conf": "site-1", "cat /etc/site-local.conf": "local"})
	list := extList(ctx, t, m)
	for _, name := range []string{"flip", "wrongos"} {
		if x := list[name]; x.Merged || x.Why == "" {
			t.Errorf("ext list: %s = %+v, want not merged with a reason", name, x)
		}
	}
	if !list["hello"].Merged || !list["site"].Merged || list["site"].Kind != "confext" {
		t.Errorf("ext list: %+v", list)
	}
	run(ctx, t, m, "ingot ext remove flip && ingot ext remove wrongos")

	// The update needs a 2.0.0 build of each extension: site's is missing.
	waitForAddress(ctx, t, m)
	upd := "ingot update /var/tmp/u/" + filepath.Base(v2.UpdateDir)
	out, code, err := m.Run(ctx, upd, 15*time.Minute)
	if err != nil || code == 0 || !strings.Contains(out, "extension site: no build for 2.0.0") || !strings.Contains(out, "--drop-extension site") {
		t.Errorf("update without site's 2.0.0 build: exit %d, %v:\n%s", code, err, out)
	}
	if st := status(ctx, t, m); st.OtherSlotVersion != "" {
		t.Errorf("the refused update touched the other slot: %+v", st)
	}
	run(ctx, t, m, "mv "+u+"held-site_2.0.0.raw "+u+"site_2.0.0.raw")
	runFor(ctx, t, m, upd, 15*time.Minute)
	m.Send("systemctl reboot\n")
	expectMarker(t, booted(ctx, t, m), "2.0.0", "b")
	expectGuest(ctx, t, m, map[string]string{"hello-ext": "hello-2", "cat /etc/site.conf": "site-2", "cat /etc/site-local.conf": "local"})
	if b.strace {
		expectGuest(ctx, t, m, map[string]string{"strace -V | head -1 | cut -d' ' -f1-3": "strace -- version"})
	}

	// A rollback boots 1.0.0 with its own set.
	run(ctx, t, m, "ingot rollback")
	m.Send("systemctl reboot\n")
	expectMarker(t, booted(ctx, t, m), "1.0.0", "a")
	expectGuest(ctx, t, m, map[string]string{"hello-ext": "hello-1", "cat /etc/site.conf": "site-1"})

	// remove leaves nothing merged; the machine's own file stays.
	run(ctx, t, m, "ingot ext remove hello && ingot ext remove site")
	if b.strace {
		run(ctx, t, m, "ingot ext remove debug")
	}
	// The other slot keeps 2.0.0's staged set (a fallback to it brings
	// that set back); list names it as such and nothing else.
	staged := "2"
	if b.strace {
		staged = "3"
	}
	expectGuest(ctx, t, m, map[string]string{
		"test -e /usr/bin/hello-ext || echo gone":                                          "gone",
		"cat /etc/site.conf 2>/dev/null || echo gone":                                      "gone",
		"cat /etc/site-local.conf":                                                         "local",
		"ls -A /run/extensions | wc -l":                                                    "0",
		"ingot ext list | grep -v 'not merged: staged for 2.0.0 (the other slot)' | wc -l": "0",
		"ingot ext list | grep -c 'staged for 2.0.0 (the other slot)'":                     staged,
	})
}

func openExtension(t *testing.T, path string) *ext.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, _ := f.Stat()
	im, err := ext.Open(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func extList(ctx context.Context, t *testing.T, m *vm.Machine) map[string]agent.Extension {
	t.Helper()
	var list []agent.Extension
	out := run(ctx, t, m, "ingot ext list --json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("ext list --json: %v\n%s", err, out)
	}
	byName := map[string]agent.Extension{}
	for _, x := range list {
		byName[x.Name] = x
	}
	return byName
}
