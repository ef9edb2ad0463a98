//go:build vm

package vm_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/image"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/trust"
	"github.com/ingot-linux/ingot/vm"
)

// TestTrustSealedRoot boots a signed image that encrypts its root with a
// key sealed to the TPM under the image's PCR key (--encrypt-root tpm), in
// one machine with a TPM (no Secure Boot: sealing depends on what systemd-
// stub measures, which it does either way; TestTrustSecureBootMeasuredBoot
// covers the firmware side):
//
//  1. first boot: ingot-init makes the LUKS2 root, shows the recovery key
//     once, and / is the dm-crypt device;
//  2. the next boot unlocks it through the TPM, data intact;
//  3. a different UKI signed with the same PCR key (what an update brings)
//     unlocks it too;
//  4. a UKI whose policy is signed with another PCR key does not: ingot-
//     init asks for the recovery key, refuses a wrong one, and boots with
//     the right one.
func TestTrustSealedRoot(t *testing.T) {
	debianImage(t)
	ingottest.LookTool(t, "swtpm", "swtpm")
	dir := t.TempDir()
	keyDir := filepath.Join(dir, "keys")
	keys, err := trust.InitKeys(keyDir, trust.KeyOptions{Name: "ingot test"})
	if err != nil {
		t.Fatal(err)
	}
	// The same keys but another PCR key: a UKI made by someone holding the
	// db key but not the PCR key.
	otherDir := filepath.Join(dir, "other-keys")
	if _, err := trust.InitKeys(otherDir, trust.KeyOptions{Name: "ingot other"}); err != nil {
		t.Fatal(err)
	}
	mixedDir := filepath.Join(dir, "mixed-keys")
	copyDir(t, keyDir, mixedDir)
	for _, f := range []string{"pcr.key", "pcr.pem"} {
		copyFile(t, filepath.Join(otherDir, f), filepath.Join(mixedDir, f))
	}
	mixed, err := trust.LoadKeys(mixedDir)
	if err != nil {
		t.Fatal(err)
	}
	build := func(name string, k *trust.Keys, kd string, cmdline ...string) *image.Result {
		return buildVersionWith(t, "1.0.0", func(o *image.Options) {
			o.Keys, o.KeyDir, o.EncryptRoot, o.Cmdline = k, kd, image.EncryptTPM, cmdline
			o.OutputDir = filepath.Join(dir, name)
		})
	}
	res := build("sealed", keys, keyDir)
	same := build("same-key", keys, keyDir, "ingot.test=another-uki")
	other := build("other-key", mixed, mixedDir)
	payload := filepath.Join(dir, "ukis")
	if err := os.MkdirAll(payload, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*image.Result{"same.efi": same, "other.efi": other} {
		_, b := ukiOf(t, r.DiskPath)
		if err := os.WriteFile(filepath.Join(payload, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	logPath := filepath.Join(os.TempDir(), "ingot-vm-TestTrustSealedRoot.log")
	m, err := vm.Start(ctx, vm.Config{
		Image: res.DiskPath, DiskSizeBytes: res.DiskBytes + 2<<30, LogFile: logPath,
		TPM: true, ExtraDisks: []string{payloadDisk(t, payload)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console (full log in %s):\n%s", logPath, m.Tail(8000))
		}
	})

	// 1. First boot.
	recoveryRE := regexp.MustCompile(`ingot-init:     (([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8})`)
	rk, err := m.WaitForRegexp(ctx, recoveryRE, 8*time.Minute)
	if err != nil {
		t.Fatalf("no recovery key on the first boot: %v", err)
	}
	recovery := rk[1]
	booted(ctx, t, m)
	if n := strings.Count(m.Log(), recovery); n != 1 {
		t.Errorf("the recovery key appears %d times on the console, want once", n)
	}
	checkSealedRoot(ctx, t, m)
	run(ctx, t, m, "echo sealed-data > /root/proof && sync")
	if got := run(ctx, t, m, "sed -n 1p /proc/cmdline | grep -o 'ingot.encrypt=[a-z-]*'"); got != "ingot.encrypt=tpm" {
		t.Errorf("command line says %q", got)
	}

	reboot := func(step string) {
		t.Helper()
		if err := m.Send("systemctl reboot\n"); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: rebooting", step)
	}
	replaceUKI := func(from string) {
		t.Helper()
		run(ctx, t, m, "mkdir -p /run/p /run/esp && tar -xf /dev/vdb -C /run/p && mount /dev/vda1 /run/esp && f=$(ls /run/esp/EFI/Linux/*.efi | head -n 1) && "+
			"cp /run/p/ukis/"+from+" \"$f\" && sync && umount /run/esp")
	}

	// 2. The same UKI again: the TPM unlocks the root.
	reboot("same UKI")
	unlocked(ctx, t, m)

	// 3. Another UKI signed with the same PCR key: still unlocks.
	replaceUKI("same.efi")
	reboot("another UKI, same PCR key")
	unlocked(ctx, t, m)
	if got := run(ctx, t, m, "grep -o 'ingot.test=[a-z-]*' /proc/cmdline"); got != "ingot.test=another-uki" {
		t.Errorf("booted command line has %q, want the replacement UKI's", got)
	}

	// 4. A UKI whose policy another PCR key signed: the TPM refuses.
	replaceUKI("other.efi")
	reboot("UKI with another PCR key")
	if _, err := m.WaitFor(ctx, "ingot-init: the TPM did not release the root partition's key", 8*time.Minute); err != nil {
		t.Fatalf("the TPM was not refused: %v", err)
	}
	if _, err := m.WaitFor(ctx, "type the root partition's recovery key", time.Minute); err != nil {
		t.Fatalf("no recovery key prompt: %v", err)
	}
	if strings.Contains(m.Log()[strings.LastIndex(m.Log(), "Linux version "):], "ingot-init: root partition unlocked") {
		t.Fatal("the root unlocked under another PCR key")
	}
	if err := m.Send("cccccccc-cccccccc-cccccccc-cccccccc-cccccccc-cccccccc-cccccccc-cccccccc\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitFor(ctx, "that is not the recovery key", 2*time.Minute); err != nil {
		t.Fatalf("a wrong recovery key was not refused: %v", err)
	}
	if err := m.Send(recovery + "\n"); err != nil {
		t.Fatal(err)
	}
	unlocked(ctx, t, m)
	if n := strings.Count(m.Log(), recovery); n != 1 {
		t.Errorf("the recovery key appears %d times on the console, want once (typing it must not echo it)", n)
	}
}

// unlocked waits for a boot that unlocked the encrypted root and checks
// the data written on the first boot is there.
func unlocked(ctx context.Context, t *testing.T, m *vm.Machine) {
	t.Helper()
	if _, err := m.WaitFor(ctx, "ingot-init: root partition unlocked", 8*time.Minute); err != nil {
		t.Fatalf("the root partition was not unlocked: %v", err)
	}
	booted(ctx, t, m)
	checkSealedRoot(ctx, t, m)
	if got := run(ctx, t, m, "cat /root/proof"); got != "sealed-data" {
		t.Errorf("/root/proof = %q after unlocking", got)
	}
}

// checkSealedRoot checks / is ext4 on the dm-crypt device over a LUKS2
// partition.
func checkSealedRoot(ctx context.Context, t *testing.T, m *vm.Machine) {
	t.Helper()
	if got := run(ctx, t, m, "findmnt -no SOURCE,FSTYPE /"); got != "/dev/mapper/root ext4" {
		t.Errorf("/ is %q, want /dev/mapper/root ext4", got)
	}
	part := run(ctx, t, m, "sed -n 's/.*\"rootPartition\": \"\\(.*\\)\".*/\\1/p' /run/ingot/boot.json")
	if got := run(ctx, t, m, "head -c 6 "+part+" | od -An -c | tr -s ' '"); !strings.Contains(got, "L U K S") {
		t.Errorf("%s starts with %q, not a LUKS header", part, got)
	}
}

// ukiOf returns the name and content of the only UKI on a disk image's
// ESP.
func ukiOf(t *testing.T, disk string) (string, []byte) {
	t.Helper()
	d, f, err := image.InspectFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(d.UKIs) != 1 {
		t.Fatalf("%s has UKIs %v, want one", disk, d.UKIs)
	}
	b, err := fs.ReadFile(d.ESP, "EFI/Linux/"+d.UKIs[0])
	if err != nil {
		t.Fatal(err)
	}
	return d.UKIs[0], b
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
