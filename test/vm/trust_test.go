//go:build vm

package vm_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/tpm"
	"github.com/ingot-linux/ingot/trust"
	"github.com/ingot-linux/ingot/vm"
)

// TestTrustSecureBootMeasuredBoot boots a signed variant of the Debian image
// on Secure Boot firmware in setup mode with a TPM, all in one machine:
//
//  1. systemd-boot enrolls the image's keys (loader/keys/auto) and resets;
//  2. the machine boots with Secure Boot on, and PCR 11 holds what the trust
//     package predicts for the UKI after the boot phases that ran, a value
//     the UKI's signed PCR policy (.pcrsig) covers;
//  3. with one byte of the UKI flipped, the firmware refuses it and nothing
//     boots.
func TestTrustSecureBootMeasuredBoot(t *testing.T) {
	t.Parallel()
	debianImage(t)
	ingottest.LookTool(t, "mcopy", "mtools")
	ingottest.LookTool(t, "swtpm", "swtpm")
	keyDir := filepath.Join(t.TempDir(), "keys")
	keys, err := trust.InitKeys(keyDir, trust.KeyOptions{Name: "ingot test"})
	if err != nil {
		t.Fatal(err)
	}
	res := buildVersionWith(t, "1.0.0-signed", func(o *diskimage.Options) { o.Keys, o.KeyDir = keys, keyDir })
	ukiBytes, stubVersion := enrollOnFirstBoot(t, res.DiskPath)

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	logPath := filepath.Join(os.TempDir(), "ingot-vm-TestTrustSecureBootMeasuredBoot.log")
	m, err := vm.Start(ctx, vm.Config{
		Image: res.DiskPath, DiskSizeBytes: res.DiskBytes + 2<<30, LogFile: logPath,
		SecureBoot: true, TPM: true,
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

	// 1. Enrollment: systemd-boot finds the firmware in setup mode.
	start := time.Now()
	if _, err := m.WaitFor(ctx, "Enrolling secure boot keys", 8*time.Minute); err != nil {
		t.Fatalf("systemd-boot did not enroll the keys: %v", err)
	}
	t.Logf("systemd-boot enrolls the keys after %v", time.Since(start).Round(time.Second))

	// 2. The boot after the reset runs with Secure Boot on.
	marker := booted(ctx, t, m)
	if marker[1] != "1.0.0-signed" {
		t.Errorf("marker %q, want version 1.0.0-signed", marker[0])
	}
	if b := efiVarLastByte(ctx, t, m, "SecureBoot"); b != "01" {
		t.Errorf("SecureBoot efivar ends in %s, want 01", b)
	}
	if b := efiVarLastByte(ctx, t, m, "SetupMode"); b != "00" {
		t.Errorf("SetupMode efivar ends in %s, want 00 (keys enrolled)", b)
	}
	t.Logf("kernel: %s", run(ctx, t, m, "dmesg | grep -i 'secure boot' | head -3"))

	log := m.Log()
	for _, ph := range []string{"enter-initrd", "leave-initrd"} {
		if !regexp.MustCompile(`ingot-init: measured ` + ph + ` into PCR 11 \([a-z0-9, ]*sha256`).MatchString(log) {
			t.Errorf("ingot-init did not report measuring %s", ph)
		}
	}
	// The booted system measures sysinit and ready (ingot-pcrphase*.service,
	// systemd's own units are masked).
	phase := "enter-initrd:leave-initrd:sysinit:ready"
	for _, u := range []string{"ingot-pcrphase-sysinit.service", "ingot-pcrphase.service"} {
		if state := run(ctx, t, m, "systemctl show -P ActiveState "+u); state != "active" {
			t.Errorf("%s is %s:\n%s", u, state, run(ctx, t, m, "journalctl -b -o cat --no-pager -u "+u+" | tail -n 3"))
		}
	}
	for _, u := range []string{"systemd-pcrphase.service", "systemd-pcrphase-sysinit.service"} {
		if state := run(ctx, t, m, "systemctl show -P LoadState "+u); state != "masked" {
			t.Errorf("%s is %s, want masked (ingot measures the phases)", u, state)
		}
	}
	pcr, err := hex.DecodeString(strings.ToLower(run(ctx, t, m, "cat /sys/class/tpm/tpm0/pcr-sha256/11")))
	if err != nil {
		t.Fatal(err)
	}
	want, err := trust.PredictPCR11UKI(bytes.NewReader(ukiBytes), trust.PCROptions{Phases: []string{phase}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pcr, want[0].PCR11) {
		all, _ := trust.PredictPCR11UKI(bytes.NewReader(ukiBytes), trust.PCROptions{Phases: append([]string{""}, trust.DefaultPhases()...)})
		for _, v := range all {
			t.Logf("predicted %x for %q", v.PCR11, v.Phase)
		}
		t.Fatalf("PCR 11 (sha256) = %x, predicted %x for phase %q (systemd-stub %d)", pcr, want[0].PCR11, phase, stubVersion)
	}
	t.Logf("PCR 11 (sha256) = %x, as predicted for %q", pcr, phase)
	pol, err := tpm.PolicyPCRDigest(pcr)
	if err != nil {
		t.Fatal(err)
	}
	// .pcrsig signs the initrd's phase only (diskimage.DefaultPCRPhases): the
	// value the booted system holds is not among its policies, so what
	// the PCR key seals cannot be unsealed after leave-initrd.
	pols := signedPolicies(t, ukiBytes)
	if slices.Contains(pols, hex.EncodeToString(pol)) {
		t.Errorf("the UKI's .pcrsig signs the policy %x of the booted system's PCR 11; only the initrd's phase should be", pol)
	}
	initrdValue, err := trust.PredictPCR11UKI(bytes.NewReader(ukiBytes), trust.PCROptions{Phases: diskimage.DefaultPCRPhases})
	if err != nil {
		t.Fatal(err)
	}
	initrdPol, err := tpm.PolicyPCRDigest(initrdValue[0].PCR11)
	if err != nil {
		t.Fatal(err)
	}
	if len(pols) != 1 || pols[0] != hex.EncodeToString(initrdPol) {
		t.Errorf("the UKI's .pcrsig signs %v, want only the enter-initrd policy %x", pols, initrdPol)
	}

	// 3. One flipped byte in the UKI: the firmware refuses it.
	flipped := run(ctx, t, m, `mkdir -p /run/esp && mount /dev/vda1 /run/esp && f=$(ls /run/esp/EFI/Linux/*.efi | head -n 1) && `+
		`sz=$(stat -c %s "$f") && off=$((sz / 2)) && b=$(od -An -tu1 -j $off -N 1 "$f" | tr -d ' ') && `+
		`printf "\\$(printf %03o $((b ^ 255)))" | dd of="$f" bs=1 seek=$off count=1 conv=notrunc status=none && `+
		`sync && umount /run/esp && echo "$f byte $off was $b"`)
	t.Logf("tampered: %s", flipped)
	if err := m.Send("systemctl reboot\n"); err != nil {
		t.Fatal(err)
	}
	// systemd-boot asks the firmware to load the UKI; OVMF refuses it
	// (EFI_ACCESS_DENIED), tries its other boot options (the built-in
	// UEFI shell is not signed by db either) and gives up.
	refusal, err := m.WaitForRegexp(ctx, regexp.MustCompile(`Error loading \\EFI\\Linux\\[^\n]*: (Access Denied|Security Violation)`), 8*time.Minute)
	if err != nil {
		t.Fatalf("no refusal of the tampered UKI: %v", err)
	}
	t.Logf("console: %s", refusal[0])
	from := m.Cursor()
	if _, err := m.WaitFor(ctx, "No bootable option or device was found", 3*time.Minute); err != nil {
		t.Fatalf("the firmware did not stop after the refusal: %v", err)
	}
	if after := m.Log()[from:]; regexp.MustCompile(`Linux version|ingot-init:|` + markerRE.String()).MatchString(after) {
		t.Fatalf("a kernel started after the refusal:\n%s", after)
	}
	t.Logf("console after the refusal:\n%s", m.Tail(700))
}

// enrollOnFirstBoot reads the UKI of the disk image at path and makes the
// image's systemd-boot enroll its keys without asking: the image writes
// "secure-boot-enroll if-safe", which systemd-boot 253 added; older ones
// reject the value (and so enroll only from the menu), so for them the
// test writes "force", which enrolls at once in a virtual machine.
func enrollOnFirstBoot(t *testing.T, path string) ([]byte, int) {
	t.Helper()
	d, f, err := diskimage.InspectFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(d.UKIs) != 1 {
		t.Fatalf("ESP has UKIs %v, want one", d.UKIs)
	}
	ukiBytes, err := fs.ReadFile(d.ESP, "EFI/Linux/"+d.UKIs[0])
	if err != nil {
		t.Fatal(err)
	}
	img, err := uki.Open(bytes.NewReader(ukiBytes))
	if err != nil {
		t.Fatal(err)
	}
	stubVersion, err := trust.StubVersion(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"PK", "KEK", "db"} {
		if _, err := fs.Stat(d.ESP, "loader/keys/auto/"+name+".auth"); err != nil {
			t.Fatalf("no %s.auth on the ESP for enrollment: %v", name, err)
		}
	}
	conf, err := fs.ReadFile(d.ESP, "loader/loader.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(conf, []byte("secure-boot-enroll if-safe")) {
		t.Fatalf("loader.conf does not ask for enrollment:\n%s", conf)
	}
	if stubVersion >= 253 {
		return ukiBytes, stubVersion
	}
	conf = bytes.ReplaceAll(conf, []byte("secure-boot-enroll if-safe"), []byte("secure-boot-enroll force"))
	local := filepath.Join(t.TempDir(), "loader.conf")
	if err := os.WriteFile(local, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	esp := d.Table.Partitions[0]
	cmd := exec.Command("mcopy", "-o", "-i", path+"@@"+strconv.FormatInt(esp.Offset(512), 10), local, "::/loader/loader.conf")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, out)
	}
	t.Logf("systemd-boot %d: loader.conf now says secure-boot-enroll force", stubVersion)
	return ukiBytes, stubVersion
}

// efiVarLastByte returns the last byte (hex) of an EFI global variable.
func efiVarLastByte(ctx context.Context, t *testing.T, m *vm.Machine, name string) string {
	t.Helper()
	f := strings.Fields(run(ctx, t, m, "od -An -tx1 /sys/firmware/efi/efivars/"+name+"-8be4df61-93ca-11d2-aa0d-00e098032b8c"))
	if len(f) == 0 {
		t.Fatalf("efivar %s is empty", name)
	}
	return f[len(f)-1]
}

// signedPolicies returns the PolicyPCR digests (hex) that a UKI's .pcrsig
// signs for the SHA-256 bank.
func signedPolicies(t *testing.T, ukiBytes []byte) []string {
	t.Helper()
	img, err := uki.Open(bytes.NewReader(ukiBytes))
	if err != nil {
		t.Fatal(err)
	}
	b, err := img.Section(uki.SectionPCRSig)
	if err != nil {
		t.Fatal(err)
	}
	var sig map[string][]struct {
		Pol string `json:"pol"`
	}
	if err := json.Unmarshal(bytes.TrimRight(b, "\x00"), &sig); err != nil {
		t.Fatalf(".pcrsig: %v", err)
	}
	var pols []string
	for _, e := range sig["sha256"] {
		pols = append(pols, e.Pol)
	}
	return pols
}
