package tpm

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/ingottest"
)

// requireFile returns path if it exists, and otherwise skips naming the
// Debian package, or fails under INGOT_REQUIRE_TOOLS=1.
func requireFile(t *testing.T, pkg, path string) string {
	t.Helper()
	return ingottest.LookFile(t, pkg, path)
}

// luksImage makes a small LUKS2 image with passphrase file pw in key
// slot 0, with a fast KDF.
func luksImage(t *testing.T, dir string) (img, pw string) {
	t.Helper()
	ingottest.LookTool(t, "cryptsetup", "cryptsetup-bin")
	img, pw = filepath.Join(dir, "luks.img"), filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("not the secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(32 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ingottest.Run(t, "cryptsetup", "luksFormat", "--type", "luks2", "--batch-mode",
		"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file", pw, img)
	return img, pw
}

// TestSystemdCryptenrollToken unseals tokens systemd-cryptenroll
// --tpm2-public-key made, without and with PCR 7 bound (--tpm2-pcrs=7,
// what ingot-init seals a root to), unlocks the LUKS2 keyslot with each,
// and checks that Token writes that token byte for byte.
func TestSystemdCryptenrollToken(t *testing.T) {
	for _, bound := range []string{"", "7"} {
		t.Run("tpm2-pcrs="+bound, func(t *testing.T) { cryptenrollToken(t, bound) })
	}
}

func cryptenrollToken(t *testing.T, bound string) {
	enroll := ingottest.LookTool(t, "systemd-cryptenroll", "systemd")
	requireFile(t, "libtss2-tcti-swtpm0", "/usr/lib/x86_64-linux-gnu/libtss2-tcti-swtpm.so.0")
	dir := t.TempDir()
	img, _ := luksImage(t, dir)
	sim := startSwtpm(t, "", true)
	a, _ := testKeys(t)
	pemKey, err := PCRPubKeyPEM(a.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(dir, "pcr.pem")
	if err := os.WriteFile(pemFile, pemKey, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(enroll, "--tpm2-device="+sim.Device, "--tpm2-public-key="+pemFile,
		"--tpm2-public-key-pcrs=11", "--tpm2-pcrs="+bound, img)
	cmd.Env = append(os.Environ(), "PASSWORD=not the secret")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-cryptenroll: %v\n%s", err, out)
	}
	tok := bytes.TrimSpace([]byte(ingottest.Run(t, "cryptsetup", "token", "export", "--token-id", "0", img)))
	s, err := ParseToken(tok)
	if err != nil {
		t.Fatalf("ParseToken: %v\n%s", err, tok)
	}
	policy, _ := PolicyDigest(a.Public())
	if bound != "" {
		v7, err := ReadPCR(sim.TPM, PCRBankSHA256, 7)
		if err != nil {
			t.Fatal(err)
		}
		policy, _ = BoundPolicyDigest(a.Public(), []int{7}, [][]byte{v7})
	}
	if !bytes.Equal(s.PolicyHash, policy) || !bytes.Equal(s.PubKey, pemKey) {
		t.Errorf("systemd's policy hash %x, ours %x", s.PolicyHash, policy)
	}
	again, err := s.Token(1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, tok) {
		t.Errorf("Token differs from systemd-cryptenroll's token:\n got %s\nwant %s", again, tok)
	}

	v := extend(t, sim.TPM, make([]byte, 32), "enter-initrd")
	secret, err := Unseal(sim.TPM, s, pcrsig(t, a, v))
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, Passphrase(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	ingottest.Run(t, "cryptsetup", "open", "--test-passphrase", "--key-slot", "1", "--key-file", key, img)
}

// TestSystemdUnlocksToken has systemd's LUKS2 token plugin
// (libcryptsetup-token-systemd-tpm2, which systemd-cryptsetup and
// cryptsetup use) unlock a keyslot with a token Token made and a
// signature SignPCRValues made. The plugin (systemd 252) finds
// the TPM as the /dev node of the one entry of /sys/class/tpmrm and
// reads the signature from /run/systemd/tpm2-pcr-signature.json, so the
// test runs cryptsetup in a private mount namespace where those are a
// pseudo-terminal that relays to swtpm and a directory of the test's.
// It needs root.
func TestSystemdUnlocksToken(t *testing.T) {
	requireFile(t, "systemd-cryptsetup", "/usr/lib/x86_64-linux-gnu/cryptsetup/libcryptsetup-token-systemd-tpm2.so")
	requireFile(t, "libtss2-tcti-device0", "/usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0")
	unshare := ingottest.LookTool(t, "unshare", "util-linux")
	if os.Geteuid() != 0 {
		ingottest.Skip(t, "needs root for a private mount namespace")
	}
	if err := exec.Command(unshare, "--mount", "--propagation", "private", "true").Run(); err != nil {
		ingottest.Skip(t, "no private mount namespace: %v", err)
	}
	if _, err := os.Stat("/etc/systemd/tpm2-pcr-signature.json"); err == nil {
		ingottest.Skip(t, "/etc/systemd/tpm2-pcr-signature.json exists and would be used instead")
	}
	// The plugin opens /dev/<name> for /sys/class/tpmrm/<name>; any
	// existing node can be covered in the namespace.
	var node string
	for _, n := range []string{"tty63", "tty9", "tty1", "zero"} {
		if _, err := os.Stat("/dev/" + n); err == nil {
			node = n
			break
		}
	}
	if node == "" {
		ingottest.Skip(t, "no /dev node to cover")
	}

	dir := t.TempDir()
	img, pw := luksImage(t, dir)
	sim := startSwtpm(t, "", false)
	a, b := testKeys(t)
	secret := make([]byte, 32)
	rand.Read(secret)
	// Bound to PCR 7 as well, as ingot-init seals a root.
	s, err := Seal(sim.TPM, secret, a.Public(), PCRKernelBoot, 7)
	if err != nil {
		t.Fatal(err)
	}
	v := extend(t, sim.TPM, make([]byte, 32), "enter-initrd")

	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, Passphrase(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	ingottest.Run(t, "cryptsetup", "luksAddKey", "--batch-mode", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
		"--key-file", pw, "--new-key-slot", "1", img, key)
	tok, err := s.Token(1)
	if err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(dir, "token.json")
	if err := os.WriteFile(tokFile, tok, 0o644); err != nil {
		t.Fatal(err)
	}
	ingottest.Run(t, "cryptsetup", "token", "import", "--token-id", "0", "--json-file", tokFile, img)

	pts := ptyRelay(t, sim.TPM)
	unlock := func(sig []byte) (string, error) {
		t.Helper()
		sigDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(sigDir, "tpm2-pcr-signature.json"), sig, 0o644); err != nil {
			t.Fatal(err)
		}
		const script = `set -e
mount -t tmpfs none /sys/class
mkdir -p /sys/class/tpmrm/"$0"
mount --bind "$1" /dev/"$0"
mount --bind "$2" /run/systemd
exec cryptsetup open --test-passphrase --token-only --token-type systemd-tpm2 -v "$3"`
		out, err := exec.Command(unshare, "--mount", "--propagation", "private", "--",
			"sh", "-c", script, node, pts, sigDir, img).CombinedOutput()
		// Without a resource manager, what systemd leaves loaded stays.
		flushAll(t, sim.TPM)
		return string(out), err
	}
	out, err := unlock(pcrsig(t, a, v))
	if err != nil || !strings.Contains(out, "Key slot 1 unlocked") {
		t.Fatalf("systemd's token plugin did not unlock keyslot 1 with the token: %v\n%s", err, out)
	}
	for what, sig := range map[string][]byte{
		"another key":       pcrsig(t, b, v),
		"another PCR value": pcrsig(t, a, pcrValue(v, "x")),
	} {
		out, err := unlock(sig)
		if err == nil {
			t.Errorf("%s: systemd's token plugin unlocked:\n%s", what, out)
		}
		t.Logf("%s: %s", what, strings.TrimSpace(out))
	}
}

// ptyRelay returns the path of a pseudo-terminal in raw mode that
// serves TPM commands written to it from tpm, as a TPM character
// device does.
func ptyRelay(t *testing.T, tpm transport.TPM) string {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		ingottest.Skip(t, "no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	// Keep the terminal open, so its settings stay and the relay sees
	// no hangup between users.
	pts, err := os.OpenFile(name, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	tio, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	// cfmakeraw
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(int(pts.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			hdr := make([]byte, 10) // tag, size, command code
			if _, err := io.ReadFull(ptmx, hdr); err != nil {
				return
			}
			size := binary.BigEndian.Uint32(hdr[2:6])
			if size < 10 || size > 1<<16 {
				return
			}
			cmd := append(hdr, make([]byte, size-10)...)
			if _, err := io.ReadFull(ptmx, cmd[10:]); err != nil {
				return
			}
			rsp, err := tpm.Send(cmd)
			if err != nil {
				return
			}
			if _, err := ptmx.Write(rsp); err != nil {
				return
			}
		}
	}()
	return name
}

// flushAll flushes every transient object and session loaded in tpm.
func flushAll(t *testing.T, tpm transport.TPM) {
	t.Helper()
	for _, first := range []tpm2.TPMHandle{0x80000000, 0x02000000, 0x03000000} {
		rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(first), PropertyCount: 64}.Execute(tpm)
		if err != nil {
			t.Fatal(err)
		}
		h, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range h.Handle {
			if uint32(x)>>24 == uint32(first)>>24 {
				flush(tpm, x)
			}
		}
	}
}
