//go:build vm

package vm_test

import (
	"context"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
	"github.com/ingot-linux/ingot/vm"
)

// sealedMachine is one disk of ingot's musl base with a sealed root, booted
// in several machines: with Secure Boot (enrolled on the first boot, NVRAM
// kept) or without, always with the same TPM.
type sealedMachine struct {
	t        *testing.T
	disk     string // the machine's disk, written in place
	pristine string // the image as released, never booted
	dir      string
	vars     string // NVRAM with the image's keys enrolled
	tpm      string // the TPM's state
	usrHash  string
	m        *vm.Machine
	boot     int
}

// start boots the disk: with Secure Boot (the enrolled NVRAM) or with
// firmware that has none, and extra QEMU arguments.
func (s *sealedMachine) start(ctx context.Context, secureBoot bool, extra ...string) *vm.Machine {
	t := s.t
	t.Helper()
	if s.m != nil {
		s.m.Close()
	}
	s.boot++
	cfg := vm.Config{
		Image: s.disk, Persist: true, TPM: true, TPMState: s.tpm,
		LogFile:    filepath.Join(os.TempDir(), "ingot-vm-"+t.Name()+"-"+strconv.Itoa(s.boot)+".log"),
		ExtraDisks: []string{payloadDisk(t, filepath.Join(s.dir, "ukis"))},
		ExtraArgs:  extra,
	}
	if secureBoot {
		cfg.SecureBoot, cfg.PersistentVars = true, s.vars
	} else {
		cfg.Firmware = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	}
	m, err := vm.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.m = m
	logPath := cfg.LogFile
	t.Cleanup(func() {
		if t.Failed() && s.m == m {
			t.Logf("console of boot %d (full log in %s):\n%s", s.boot, logPath, m.Tail(6000))
		}
	})
	return m
}

// stop powers the machine off.
func (s *sealedMachine) stop() {
	if s.m != nil {
		s.m.Close()
		s.m = nil
	}
}

// TestTrustSealedRoot boots ingot's musl base, signed, with
// --encrypt-root tpm, with Secure Boot (systemd-boot enrolls the image's
// keys in setup mode) and a TPM, then attacks it as someone holding the
// disk would:
//
//  1. first boot: ingot-init makes the LUKS2 root with its key sealed to
//     the signed PCR 11 policy and to PCR 7, shows the recovery key once;
//  2. TestHarden01: a loader entry added to the ESP with its own command
//     line (init=/usr/bin/sh, ingot.debug=shell), booted with Secure Boot
//     off: the key is not released, no shell; booted with Secure Boot on,
//     systemd-stub ignores the entry's command line;
//  3. TestHarden03: a plain ext4 swapped in for the LUKS2 root: refused;
//  4. TestHarden04: a copy of the released disk attached as the first
//     disk (sda): refused as ambiguous; with its ESP's PARTUUID changed,
//     the machine boots its own disk;
//  5. a different UKI signed with the same PCR key (what an update
//     brings) unlocks the root; one whose policy another PCR key signed
//     does not: ingot-init asks for the recovery key, refuses a wrong one,
//     boots with the right one.
func TestTrustSealedRoot(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("VM tests boot real machines; not in -short")
	}
	ingottest.LookTool(t, "swtpm", "swtpm")
	ingottest.LookTool(t, "mcopy", "mtools")
	ingottest.LookTool(t, "mkfs.ext4", "e2fsprogs")
	dir := t.TempDir()
	keyDir := filepath.Join(dir, "keys")
	if _, err := trust.InitKeys(keyDir, trust.KeyOptions{Name: "ingot test"}); err != nil {
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
	// One base, one epoch: the three images share their /usr byte for byte
	// (what an update signed with the same keys brings), only the UKIs
	// differ.
	build := func(name, keys string, cmdline ...string) baseResult {
		k, err := trust.LoadKeys(keys)
		if err != nil {
			t.Fatal(err)
		}
		r := baseVersionWith(t, "1.0.0", func(o *diskimage.Options) {
			o.Keys, o.KeyDir, o.EncryptRoot, o.Cmdline = k, keys, layout.EncryptTPM, cmdline
			o.OutputDir = filepath.Join(dir, name)
		})
		return baseResult{Disk: r.DiskPath, DiskBytes: r.DiskBytes}
	}
	res := build("sealed", keyDir)
	same := build("same-key", keyDir, "ingot.test=another-uki")
	other := build("other-key", mixedDir)
	if err := os.MkdirAll(filepath.Join(dir, "ukis"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]baseResult{"same.efi": same, "other.efi": other} {
		_, b := ukiOf(t, r.Disk)
		if err := os.WriteFile(filepath.Join(dir, "ukis", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := &sealedMachine{t: t, dir: dir, pristine: res.Disk, disk: filepath.Join(dir, "disk.raw"),
		vars: filepath.Join(dir, "OVMF_VARS.fd"), tpm: filepath.Join(dir, "tpm")}
	ingottest.Run(t, "cp", "--sparse=always", res.Disk, s.disk)
	if err := os.Truncate(s.disk, res.DiskBytes+1<<30); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(s.tpm, 0o700); err != nil {
		t.Fatal(err)
	}
	uki, _ := ukiOf(t, res.Disk)
	s.usrHash = usrHashOfUKI(t, res.Disk)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	defer s.stop()

	// 1. First boot: enrollment, then the sealed root.
	m := s.start(ctx, true)
	recoveryRE := regexp.MustCompile(`ingot-init:     (([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8})`)
	rk, err := m.WaitForRegexp(ctx, recoveryRE, 10*time.Minute)
	if err != nil {
		t.Fatalf("no recovery key on the first boot: %v", err)
	}
	recovery := rk[1]
	booted(ctx, t, m)
	if got := efiVarLastByte(ctx, t, m, "SecureBoot"); got != "01" {
		t.Fatalf("SecureBoot = %s after enrollment", got)
	}
	checkSealedRoot(ctx, t, m)
	run(ctx, t, m, "echo sealed-data > /root/proof && sync")
	if n := strings.Count(m.Log(), recovery); n != 1 {
		t.Errorf("the recovery key appears %d times on the console, want once", n)
	}
	run(ctx, t, m, "systemctl poweroff || true")
	waitOff(ctx, t, m)
	checkCryptDataPath(t, s.disk, recovery)
	checkTokenBindsPCR7(t, s.disk)

	// 2. An entry with the attacker's command line, made the default.
	evil := "title evil\nefi /" + layout.UKIDir + "/" + strings.Replace(uki, "+3-0", "", 1) + "\n" +
		"options usrhash=" + s.usrHash + " ingot.encrypt=tpm ingot.debug=shell init=/usr/bin/sh console=ttyS0\n"
	espWrite(t, s.disk, "loader/entries/evil.conf", evil)
	// An attacker also turns off the enrollment of the image's keys, or
	// systemd-boot (whose default is if-safe in a VM) would enroll them on
	// this firmware in setup mode and turn Secure Boot on again.
	espWrite(t, s.disk, "loader/loader.conf", "timeout 0\ndefault evil.conf\nsecure-boot-enroll off\n")
	m = s.start(ctx, false)
	if _, err := m.WaitFor(ctx, "Secure Boot off", 8*time.Minute); err != nil {
		t.Fatalf("TestHarden01: no refusal with Secure Boot off: %v", err)
	}
	if _, err := m.WaitFor(ctx, "type the root partition's recovery key", time.Minute); err != nil {
		t.Fatalf("TestHarden01: no recovery key prompt: %v", err)
	}
	if strings.Contains(m.Log(), "Secure boot enabled") || !strings.Contains(m.Log(), "init=/usr/bin/sh") {
		t.Fatal("TestHarden01: the attacker's boot did not run with Secure Boot off and the entry's command line")
	}
	if strings.Contains(m.Log(), "root partition unlocked") || strings.Contains(m.Log(), "rescue shell") {
		t.Fatal("TestHarden01: the root was unlocked, or a shell opened, on a boot with Secure Boot off")
	}
	// With Secure Boot on, the same entry boots the UKI's own command line.
	m = s.start(ctx, true)
	unlocked(ctx, t, m)
	if got := run(ctx, t, m, "grep -c 'init=/usr/bin/sh' /proc/cmdline || true"); got != "0" {
		t.Errorf("TestHarden01: systemd-stub took the entry's command line under Secure Boot: %s", run(ctx, t, m, "cat /proc/cmdline"))
	}
	run(ctx, t, m, "systemctl poweroff || true")
	waitOff(ctx, t, m)
	espWrite(t, s.disk, "loader/loader.conf", "timeout 0\n")
	espRemove(t, s.disk, "loader/entries/evil.conf")

	// 3. A plain ext4 in place of the LUKS2 root.
	rootOff := partitionOffset(t, s.disk, layout.TypeRoot)
	saved := readAt(t, s.disk, rootOff, 64<<20)
	plain := filepath.Join(dir, "plain.ext4")
	ingottest.Run(t, "mkfs.ext4", "-q", "-F", "-L", "root", plain, "64M")
	writeAt(t, s.disk, rootOff, readAt(t, plain, 0, 64<<20))
	m = s.start(ctx, true)
	if _, err := m.WaitFor(ctx, "is not a LUKS2 volume: refusing", 8*time.Minute); err != nil {
		t.Fatalf("TestHarden03: a plain root was not refused: %v", err)
	}
	s.stop()
	writeAt(t, s.disk, rootOff, saved)

	// 4. A copy of the released disk attached first (sda sorts before vda).
	clone := filepath.Join(dir, "clone.raw")
	ingottest.Run(t, "cp", "--sparse=always", s.pristine, clone)
	ahci := []string{"-device", "ahci,id=ahci0", "-drive", "if=none,id=clone,format=raw,file=" + clone, "-device", "ide-hd,drive=clone,bus=ahci0.0"}
	m = s.start(ctx, true, ahci...)
	if _, err := m.WaitFor(ctx, "the boot disk is ambiguous", 8*time.Minute); err != nil {
		t.Fatalf("TestHarden04: an exact copy of the disk was not refused: %v", err)
	}
	s.stop()
	setESPUUID(t, clone, gpt.MustParseGUID("0badc0de-0000-4000-8000-000000000001"))
	before := ingottest.FileSHA256(t, clone)
	m = s.start(ctx, true, ahci...)
	unlocked(ctx, t, m)
	if got := run(ctx, t, m, "sed -n 's/.*\"disk\": \"\\(.*\\)\".*/\\1/p' /run/ingot/boot.json"); got != "/dev/vda" {
		t.Errorf("TestHarden04: booted from %s, want /dev/vda", got)
	}
	run(ctx, t, m, "systemctl poweroff || true")
	waitOff(ctx, t, m)
	if ingottest.FileSHA256(t, clone) != before {
		t.Error("TestHarden04: the attached copy was written to")
	}

	// 5. Other UKIs: the same PCR key unlocks, another does not.
	m = s.start(ctx, true)
	unlocked(ctx, t, m)
	replaceUKI(ctx, t, m, "same.efi")
	reboot(t, m)
	unlocked(ctx, t, m)
	if got := run(ctx, t, m, "grep -o 'ingot.test=[a-z-]*' /proc/cmdline"); got != "ingot.test=another-uki" {
		t.Errorf("booted command line has %q, want the replacement UKI's", got)
	}
	replaceUKI(ctx, t, m, "other.efi")
	reboot(t, m)
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
	if n := strings.Count(m.Log(), recovery); n != 0 {
		t.Errorf("the recovery key appears %d times on this boot's console, want none (typing it must not echo it)", n)
	}
}

func reboot(t *testing.T, m *vm.Machine) {
	t.Helper()
	if err := m.Send("systemctl reboot\n"); err != nil {
		t.Fatal(err)
	}
}

// replaceUKI puts the UKI from the payload disk in place of the one on
// the ESP.
func replaceUKI(ctx context.Context, t *testing.T, m *vm.Machine, from string) {
	t.Helper()
	run(ctx, t, m, "mkdir -p /run/p /run/esp && tar -xf /dev/vdb -C /run/p && mount /dev/vda1 /run/esp && f=$(ls /run/esp/EFI/Linux/*.efi | head -n 1) && "+
		"cp /run/p/ukis/"+from+" \"$f\" && sync && umount /run/esp")
}

// waitOff waits for QEMU to exit after a poweroff.
func waitOff(ctx context.Context, t *testing.T, m *vm.Machine) {
	t.Helper()
	select {
	case <-m.Done():
	case <-time.After(3 * time.Minute):
		t.Fatal("the machine did not power off")
	case <-ctx.Done():
		t.Fatal(ctx.Err())
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

func rootPartition(ctx context.Context, t *testing.T, m *vm.Machine) string {
	t.Helper()
	return run(ctx, t, m, "sed -n 's/.*\"rootPartition\": \"\\(.*\\)\".*/\\1/p' /run/ingot/boot.json")
}

// checkSealedRoot checks / is ext4 on the dm-crypt device over a LUKS2
// partition.
func checkSealedRoot(ctx context.Context, t *testing.T, m *vm.Machine) {
	t.Helper()
	if got := run(ctx, t, m, "awk '$2 == \"/\" {print $1, $3}' /proc/mounts | tail -n 1"); got != "/dev/mapper/root ext4" {
		t.Errorf("/ is %q, want /dev/mapper/root ext4", got)
	}
	part := rootPartition(ctx, t, m)
	if got := run(ctx, t, m, "head -c 6 "+part+" | od -An -c | tr -s ' '"); !strings.Contains(got, "L U K S") {
		t.Errorf("%s starts with %q, not a LUKS header", part, got)
	}
}

// ukiOf returns the name and content of the only UKI on a disk image's
// ESP.
func ukiOf(t *testing.T, disk string) (string, []byte) {
	t.Helper()
	d, f, err := diskimage.InspectFile(disk)
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

// usrHashOfUKI returns the usrhash the only UKI of a disk image pins.
func usrHashOfUKI(t *testing.T, disk string) string {
	t.Helper()
	d, f, err := diskimage.InspectFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return hex.EncodeToString(d.UsrHash)
}

// espWrite writes a file onto the ESP of a disk image, as anyone holding
// the disk can.
func espWrite(t *testing.T, disk, name, content string) {
	t.Helper()
	local := filepath.Join(t.TempDir(), filepath.Base(name))
	if err := os.WriteFile(local, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	off := partitionOffset(t, disk, layout.TypeESP)
	img := disk + "@@" + strconv.FormatInt(off, 10)
	env := append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if dir := filepath.Dir(name); dir != "." {
		mkdir := exec.Command("mmd", "-D", "s", "-i", img, "::/"+dir)
		mkdir.Env = env
		mkdir.Run() // exists already: fine
	}
	cmd := exec.Command("mcopy", "-o", "-i", img, local, "::/"+name)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy %s: %v\n%s", name, err, out)
	}
}

// espRemove deletes a file from the ESP of a disk image.
func espRemove(t *testing.T, disk, name string) {
	t.Helper()
	off := partitionOffset(t, disk, layout.TypeESP)
	cmd := exec.Command("mdel", "-i", disk+"@@"+strconv.FormatInt(off, 10), "::/"+name)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mdel %s: %v\n%s", name, err, out)
	}
}

// readTable reads a disk image's GPT.
func readTable(t *testing.T, disk string) (*os.File, *gpt.Table, int64) {
	t.Helper()
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	tab, err := gpt.Read(f, fi.Size(), 512)
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	return f, tab, fi.Size()
}

// partitionOffset returns the byte offset of the first partition of type
// typ.
func partitionOffset(t *testing.T, disk string, typ gpt.GUID) int64 {
	t.Helper()
	f, tab, _ := readTable(t, disk)
	defer f.Close()
	ps := tab.ByType(typ)
	if len(ps) == 0 {
		t.Fatalf("%s has no partition of type %s", disk, typ)
	}
	return ps[0].Offset(512)
}

// setESPUUID gives a disk image's ESP another PARTUUID.
func setESPUUID(t *testing.T, disk string, u gpt.GUID) {
	t.Helper()
	f, tab, size := readTable(t, disk)
	defer f.Close()
	for i := range tab.Partitions {
		if tab.Partitions[i].Type == layout.TypeESP {
			tab.Partitions[i].UUID = u
		}
	}
	if err := tab.Write(f, size); err != nil {
		t.Fatal(err)
	}
}

func readAt(t *testing.T, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
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
