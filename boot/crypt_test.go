package boot

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/ingot-linux/ingot/format/luks2"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/tpm"
)

// cryptSys reaches a real swtpm; dm-crypt is recorded, not done (the
// data path is luks2's and the VM tests' business).
type cryptSys struct {
	Sys
	sock      string // swtpm's Unix socket; "" means no TPM
	activated [][]byte
}

func (c *cryptSys) OpenTPM() (transport.TPMCloser, error) {
	if c.sock == "" {
		return nil, fmt.Errorf("no TPM: %w", fs.ErrNotExist)
	}
	conn, err := net.Dial("unix", c.sock)
	if err != nil {
		return nil, err
	}
	return transport.FromReadWriteCloser(conn), nil
}

func (c *cryptSys) CryptActivate(name, dev string, volumeKey []byte) (string, error) {
	c.activated = append(c.activated, bytes.Clone(volumeKey))
	return "/dev/mapper/" + name, nil
}

// pcrSig writes /.extra/tpm2-pcr-signature.json under root: key's
// signature of the TPM's current PCR 11, as systemd-stub hands it over.
func pcrSig(t *testing.T, c *cryptSys, root string, key crypto.Signer) {
	t.Helper()
	dev, err := c.OpenTPM()
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	v, err := tpm.ReadPCR(dev, "sha256", tpm.PCRKernelBoot)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := tpm.SignPCRValues([]tpm.PhaseValue{{Phase: "enter-initrd", PCR11: v}}, key)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, pcrSigPath), doc)
}

func TestEncryptedRoot(t *testing.T) {
	s, c, pcrKey, console := sealedRootState(t, layout.EncryptTPM)
	s.Params.RecoveryKey = true
	root, part := s.Root, s.RootPart
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	setSecureBoot(t, root, true)

	// First boot: format, seal, show the recovery key once.
	dev, err := encryptRoot(s, 64<<20, "6c1f6b1e-3d2a-4c55-9a37-0e6b7d1f2a90")
	if err != nil {
		t.Fatal(err)
	}
	if dev != "/dev/mapper/root" || len(c.activated) != 1 {
		t.Fatalf("encryptRoot gave %s, activated %d times", dev, len(c.activated))
	}
	volumeKey := c.activated[0]
	recovery := regexp.MustCompile(`([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}`).FindString(console.String())
	if recovery == "" || strings.Count(console.String(), recovery) != 1 {
		t.Fatalf("the recovery key is not shown exactly once:\n%s", console.String())
	}
	f, err := os.Open(filepath.Join(root, part))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := luks2.ReadHeader(f)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, tok := range h.Tokens {
		types = append(types, tok.Type)
	}
	if strings.Join(types, ",") != "systemd-tpm2,systemd-recovery" || h.Label != "root" {
		t.Errorf("tokens %v, label %q", types, h.Label)
	}
	if out, err := exec.Command("cryptsetup", "luksDump", f.Name()).CombinedOutput(); err != nil {
		t.Errorf("cryptsetup luksDump: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "systemd-tpm2") {
		t.Errorf("cryptsetup does not see the TPM token:\n%s", out)
	}

	// Later boot, the genuine chain: the TPM releases the key.
	pcrSig(t, c, root, pcrKey)
	if _, err := unlockRoot(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.activated[1], volumeKey) {
		t.Fatal("the TPM unlocked another key")
	}

	// A UKI whose policy is signed by another PCR key: the TPM refuses,
	// ingot-init asks for the recovery key; a wrong one is refused, the
	// right one opens the volume.
	pcrSig(t, c, root, otherKey)
	console.Reset()
	s.Input = strings.NewReader("cccccccc-not-the-key\n" + recovery + "\n")
	if _, err := unlockRoot(context.Background(), s); err != nil {
		t.Fatalf("with the recovery key: %v\n%s", err, console.String())
	}
	if !bytes.Equal(c.activated[2], volumeKey) {
		t.Fatal("the recovery key unlocked another key")
	}
	for _, want := range []string{"TPM did not release", "not the recovery key"} {
		if !strings.Contains(console.String(), want) {
			t.Errorf("console lacks %q:\n%s", want, console.String())
		}
	}

	// No recovery key at hand: a clear failure, nothing activated.
	s.Input = strings.NewReader("")
	_, err = unlockRoot(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "TPM refused") {
		t.Fatalf("unlock without TPM or recovery key: %v", err)
	}
	if len(c.activated) != 3 {
		t.Error("a volume was activated without a key")
	}
}

func TestEncryptedRootWithoutTPM(t *testing.T) {
	for _, mode := range []string{layout.EncryptTPM, layout.EncryptIfTPM} {
		t.Run(mode, func(t *testing.T) {
			c := &cryptSys{}
			s := &State{Config: Config{Sys: c, Root: t.TempDir(), Console: &bytes.Buffer{}}, Params: layout.DefaultBoot(), RootPart: "/dev/vda8"}
			s.Params.Encrypt = mode
			dev, err := encryptRoot(s, 64<<20, "6c1f6b1e-3d2a-4c55-9a37-0e6b7d1f2a90")
			if mode == layout.EncryptIfTPM {
				if err != nil || dev != "/dev/vda8" {
					t.Fatalf("if-tpm without a TPM: %s, %v; want the plain partition", dev, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "enable the TPM") {
				t.Fatalf("tpm without a TPM: %v", err)
			}
		})
	}
}

func TestRecoveryKeyForm(t *testing.T) {
	seen := map[string]bool{}
	for range 10 {
		k, err := newRecoveryKey()
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}$`).MatchString(k) || seen[k] {
			t.Fatalf("recovery key %q", k)
		}
		seen[k] = true
	}
}
