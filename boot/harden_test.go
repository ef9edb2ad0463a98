package boot

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/format/luks2"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/tpm"
)

// setEFIVar writes an efivarfs file under root: four attribute bytes,
// then data.
func setEFIVar(t *testing.T, root, name string, data []byte) {
	t.Helper()
	write(t, filepath.Join(root, layout.EFIVarsDir, name), append([]byte{7, 0, 0, 0}, data...))
}

func setSecureBoot(t *testing.T, root string, on bool) {
	t.Helper()
	v := byte(0)
	if on {
		v = 1
	}
	setEFIVar(t, root, layout.SecureBootVar, []byte{v})
}

// sealedRootState is a first boot of an encrypted root: a 64 MiB root
// partition file, the PCR key in the initrd, a swtpm.
func sealedRootState(t *testing.T, mode string) (*State, *cryptSys, *rsa.PrivateKey, *bytes.Buffer) {
	t.Helper()
	pcrKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := tpm.PCRPubKeyPEM(pcrKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	write(t, filepath.Join(root, PCRKeyPath), pem)
	part := "/dev/vda8"
	write(t, filepath.Join(root, part), nil)
	if err := os.Truncate(filepath.Join(root, part), 64<<20); err != nil {
		t.Fatal(err)
	}
	c := &cryptSys{sock: ingottest.Swtpm(t)}
	console := &bytes.Buffer{}
	s := &State{Config: Config{Sys: c, Root: root, Console: console}, Params: layout.DefaultBoot(), RootPart: part}
	s.Params.Encrypt = mode
	s.Params.RecoveryKey = false
	return s, c, pcrKey, console
}

// TestHarden01SealedRootNeedsSecureBoot: with Secure Boot off, systemd-
// stub takes the boot loader's command line (measured into PCR 12, not
// 11), so an entry added to the ESP could boot the signed UKI with
// init=/bin/sh and unseal the root. The root's key is therefore sealed
// only on a Secure Boot boot, bound to PCR 7 as well as to the signed
// PCR 11 policy, and released only to a Secure Boot boot.
func TestHarden01SealedRootNeedsSecureBoot(t *testing.T) {
	t.Run("tpm mode refuses to seal with Secure Boot off", func(t *testing.T) {
		s, c, _, _ := sealedRootState(t, layout.EncryptTPM)
		setSecureBoot(t, s.Root, false)
		_, err := encryptRoot(s, 64<<20, "6c1f6b1e-3d2a-4c55-9a37-0e6b7d1f2a90")
		if err == nil || !strings.Contains(err.Error(), "Secure Boot is off") || !strings.Contains(err.Error(), "enable Secure Boot") {
			t.Fatalf("sealing with Secure Boot off: %v", err)
		}
		if len(c.activated) != 0 || isLUKSFile(t, filepath.Join(s.Root, s.RootPart)) {
			t.Fatal("the root was encrypted anyway")
		}
	})
	t.Run("if-tpm mode makes a plain root with Secure Boot off", func(t *testing.T) {
		s, _, _, console := sealedRootState(t, layout.EncryptIfTPM)
		dev, err := encryptRoot(s, 64<<20, "6c1f6b1e-3d2a-4c55-9a37-0e6b7d1f2a90")
		if err != nil || dev != s.RootPart || !strings.Contains(console.String(), "Secure Boot is off") {
			t.Fatalf("if-tpm without Secure Boot (no efivar at all): %s, %v\n%s", dev, err, console)
		}
	})

	s, c, pcrKey, console := sealedRootState(t, layout.EncryptTPM)
	setSecureBoot(t, s.Root, true)
	if _, err := encryptRoot(s, 64<<20, "6c1f6b1e-3d2a-4c55-9a37-0e6b7d1f2a90"); err != nil {
		t.Fatal(err)
	}
	tok := tpmToken(t, filepath.Join(s.Root, s.RootPart))
	if !strings.Contains(string(tok), `"tpm2-pcrs":[7]`) {
		t.Fatalf("the root's key is not bound to PCR 7: %s", tok)
	}
	pcrSig(t, c, s.Root, pcrKey)
	if _, err := unlockRoot(context.Background(), s); err != nil {
		t.Fatalf("genuine Secure Boot boot: %v", err)
	}

	t.Run("Secure Boot off at a later boot", func(t *testing.T) {
		setSecureBoot(t, s.Root, false)
		defer setSecureBoot(t, s.Root, true)
		console.Reset()
		s.Input = strings.NewReader("")
		_, err := unlockRoot(context.Background(), s)
		if err == nil || !strings.Contains(console.String(), "Secure Boot off") {
			t.Fatalf("unlock with Secure Boot off: %v\n%s", err, console)
		}
	})
	t.Run("Secure Boot claimed but PCR 7 differs", func(t *testing.T) {
		dev, err := c.OpenTPM()
		if err != nil {
			t.Fatal(err)
		}
		_, err = tpm.ExtendPCR(dev, 7, []byte("other Secure Boot state"))
		dev.Close()
		if err != nil {
			t.Fatal(err)
		}
		console.Reset()
		s.Input = strings.NewReader("")
		_, err = unlockRoot(context.Background(), s)
		if err == nil || !strings.Contains(console.String(), "not the values the secret is bound to") {
			t.Fatalf("unlock with PCR 7 changed: %v\n%s", err, console)
		}
	})
	if n := len(c.activated); n != 2 {
		t.Fatalf("%d activations, want 2 (first boot, genuine unlock)", n)
	}
}

// TestHarden01TokenWithoutPCR7 refuses a volume whose token is sealed
// to the PCR key alone: anyone with the public PCR key can make one,
// and ingot-init never does.
func TestHarden01TokenWithoutPCR7(t *testing.T) {
	s, c, pcrKey, console := sealedRootState(t, layout.EncryptTPM)
	setSecureBoot(t, s.Root, true)
	volumeKey, secret := make([]byte, 64), make([]byte, 32)
	rand.Read(volumeKey)
	rand.Read(secret)
	dev, err := c.OpenTPM()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := tpm.Seal(dev, secret, pcrKey.Public(), tpm.PCRKernelBoot)
	dev.Close()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(s.Root, s.RootPart), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := luks2.Format(f, 64<<20, volumeKey, luks2.Options{PBKDF: fastKDF}); err != nil {
		t.Fatal(err)
	}
	if err := addTPMKeyslot(f, volumeKey, secret, sealed); err != nil {
		t.Fatal(err)
	}
	pcrSig(t, c, s.Root, pcrKey)
	s.Input = strings.NewReader("")
	if _, err := unlockRoot(context.Background(), s); err == nil || !strings.Contains(console.String(), "not bound to the Secure Boot state") {
		t.Fatalf("a token without PCR 7: %v\n%s", err, console)
	}
	if len(c.activated) != 0 {
		t.Fatal("a volume was activated")
	}
}

func tpmToken(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := luks2.ReadHeader(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range h.Tokens {
		if tok.Type == tpm.TokenType {
			b, _ := json.Marshal(tok.JSON)
			return append(b, tok.JSON...)
		}
	}
	t.Fatal("no systemd-tpm2 token")
	return nil
}

func isLUKSFile(t *testing.T, path string) bool {
	t.Helper()
	ok, err := isLUKS(path)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestHarden03PlainRootRefused: a plain ext4 root swapped in for the
// LUKS2 one would boot the attacker's /etc. Where the image encrypts the
// root, only a LUKS2 volume is accepted.
func TestHarden03PlainRootRefused(t *testing.T) {
	tests := []struct {
		mode       string
		tpm, sb    bool
		wantRefuse bool
	}{
		{layout.EncryptTPM, true, true, true},
		{layout.EncryptTPM, false, false, true},
		{layout.EncryptIfTPM, true, true, true},
		{layout.EncryptIfTPM, true, false, false}, // if-tpm made it plain: no Secure Boot
		{layout.EncryptIfTPM, false, true, false}, // if-tpm made it plain: no TPM
		{layout.EncryptNone, true, true, false},
	}
	for _, tc := range tests {
		name := tc.mode
		if tc.tpm {
			name += "+tpm"
		}
		if tc.sb {
			name += "+secureboot"
		}
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			c := &cryptSys{}
			if tc.tpm {
				c.sock = ingottest.Swtpm(t)
			}
			setSecureBoot(t, root, tc.sb)
			write(t, filepath.Join(root, "dev/vda8"), make([]byte, 4096)) // not LUKS: a plain filesystem
			s := &State{Config: Config{Sys: c, Root: root, Console: &bytes.Buffer{}}, Params: layout.DefaultBoot(), RootPart: "/dev/vda8"}
			s.Params.Encrypt = tc.mode
			err := openRoot(context.Background(), s)
			if tc.wantRefuse {
				if err == nil || !strings.Contains(err.Error(), "is not a LUKS2 volume") {
					t.Fatalf("plain root accepted: %v", err)
				}
				return
			}
			if err != nil || s.RootDevice != "/dev/vda8" {
				t.Fatalf("plain root refused: %v", err)
			}
		})
	}
}

// hardenDisk writes an ingot-like disk for usrhash h with its ESP's
// PARTUUID esp as /dev/name under root, with its /sys entries.
func hardenDisk(t *testing.T, root, name string, h []byte, esp gpt.GUID) {
	t.Helper()
	const size = 64 << 20
	path := filepath.Join(root, "dev", name)
	os.MkdirAll(filepath.Dir(path), 0o755)
	tab := fakeDisk(t, path, size, h)
	tab.Partitions[0].UUID = esp
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tab.Write(f, size); err != nil {
		t.Fatal(err)
	}
	fakeSysDisk(t, root, name, size, 1, 2, 3, 5)
}

func utf16LE(s string) []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune(s + "\x00")) {
		b = append(b, byte(c), byte(c>>8))
	}
	return b
}

// TestHarden04SecondDiskRefused: PARTUUIDs derive from the public root
// hash, so a USB stick cloned from a release has the same ones. The boot
// disk is the one holding the ESP systemd-boot was loaded from
// (LoaderDevicePartUUID), and a choice that is still ambiguous stops the
// boot with one line.
func TestHarden04SecondDiskRefused(t *testing.T) {
	h := append(bytes.Repeat([]byte{0xab}, 16), bytes.Repeat([]byte{0xcd}, 16)...)
	genuineESP := gpt.MustParseGUID("00000000-0000-4000-8000-000000000001")
	otherESP := gpt.MustParseGUID("99999999-0000-4000-8000-000000000001")
	tests := []struct {
		name     string
		attacker gpt.GUID // the clone's ESP
		loader   bool     // LoaderDevicePartUUID set
		wantDisk string
		wantErr  string
	}{
		{"clone with another ESP, loader names the genuine one", otherESP, true, "/dev/vda", ""},
		{"exact clone", genuineESP, true, "", "boot disk is ambiguous"},
		{"no loader variable, two disks with the usr partition", otherESP, false, "", "boot disk is ambiguous"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			hardenDisk(t, root, "vda", h, genuineESP)
			hardenDisk(t, root, "sda", h, tc.attacker) // sorts first
			if tc.loader {
				setEFIVar(t, root, layout.LoaderDevicePartUUIDVar, utf16LE(strings.ToUpper(genuineESP.String())))
			}
			s := &State{Config: Config{Root: root, Console: &bytes.Buffer{}}, Params: layout.DefaultBoot()}
			s.Params.UsrHash = h
			s.Params.DeviceTimeout = time.Second
			err := findUsr(context.Background(), s)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "/dev/sda") || !strings.Contains(err.Error(), "/dev/vda") {
					t.Fatalf("findUsr: %v (disk %s), want %q naming both disks", err, s.Disk, tc.wantErr)
				}
				return
			}
			if err != nil || s.Disk != tc.wantDisk || s.UsrPart != "/dev/vda2" {
				t.Fatalf("findUsr: %v, disk %s usr %s; want %s", err, s.Disk, s.UsrPart, tc.wantDisk)
			}
		})
	}
	t.Run("the booted ESP's disk lacks the usr partition", func(t *testing.T) {
		root := t.TempDir()
		hardenDisk(t, root, "vda", h, genuineESP)
		setEFIVar(t, root, layout.LoaderDevicePartUUIDVar, utf16LE(otherESP.String()))
		s := &State{Config: Config{Root: root, Console: &bytes.Buffer{}}, Params: layout.DefaultBoot()}
		s.Params.UsrHash = h
		s.Params.DeviceTimeout = 300 * time.Millisecond
		err := findUsr(context.Background(), s)
		if err == nil || !strings.Contains(err.Error(), "ESP the boot loader was loaded from") {
			t.Fatalf("findUsr: %v", err)
		}
	})
}

// TestHarden10NoShellOnEncryptedRoot: ingot.debug=shell would open a
// shell with the root unlocked and PCR 11 still at enter-initrd.
func TestHarden10NoShellOnEncryptedRoot(t *testing.T) {
	for _, mode := range []string{layout.EncryptTPM, layout.EncryptIfTPM} {
		s := &State{Config: Config{Root: t.TempDir(), Console: &bytes.Buffer{}}, Params: layout.DefaultBoot()}
		s.Params.Debug, s.Params.Encrypt = "shell", mode
		err := RescueShell(s)
		if err == nil || !strings.Contains(err.Error(), "ingot.debug=shell is refused") {
			t.Fatalf("%s: rescue shell: %v", mode, err)
		}
	}
}
