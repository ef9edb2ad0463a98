package boot

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/format/luks2"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/tpm"
	"github.com/ingot-linux/ingot/trust"
)

// Crypter is implemented by a Sys that can reach the TPM and dm-crypt
// (internal/sys.Linux). An encrypted root needs it.
type Crypter interface {
	// OpenTPM opens the TPM; without one the error wraps fs.ErrNotExist.
	OpenTPM() (transport.TPMCloser, error)
	// CryptActivate maps the LUKS2 volume at dev, decrypted with
	// volumeKey, to /dev/mapper/<name> and returns that path.
	CryptActivate(name, dev string, volumeKey []byte) (string, error)
}

// Where the keys of an encrypted root come from.
const (
	// PCRKeyPath is the PCR public key a signed image's initrd carries: the
	// key whose signed policies unseal the root's key.
	PCRKeyPath = "/usr/" + layout.TrustDir + "/pcr.pem"
	// pcrSigPath is where systemd-stub puts the UKI's .pcrsig for the
	// initrd (systemd ≥ 252).
	pcrSigPath = "/.extra/tpm2-pcr-signature.json"
	// rootMapper is the dm-crypt device of the root partition.
	rootMapper = "root"
	// recoveryTimeout is how long ingot-init waits for a recovery key.
	recoveryTimeout = 5 * time.Minute
	// pcrSecureBootPolicy is PCR 7, where the firmware measures the Secure
	// Boot state and the keys that verified each image. The root's key is
	// bound to its value at sealing time as well as to the signed PCR 11
	// policy: with Secure Boot off, a boot loader entry could hand the
	// signed UKI another command line (measured into PCR 12, not 11).
	pcrSecureBootPolicy = 7
)

// whySecureBoot says why a sealed root needs Secure Boot.
const whySecureBoot = "without it, anyone who can write the ESP can boot the signed UKI with their own command line and get the key"

// fastKDF derives keyslot keys from secrets that are already 256 random
// bits (the TPM-sealed secret and the recovery key), so stretching them
// adds nothing; systemd-cryptenroll does the same for both.
var fastKDF = luks2.PBKDF{Type: luks2.KDFPBKDF2, Iterations: 1000, Hash: "sha512"}

// encryptRoot makes the root partition a LUKS2 volume whose key the TPM
// seals to the image's PCR key, adds a recovery key unless the command
// line says not to, and opens it. It returns the device to put the
// filesystem on: the dm-crypt device, or the partition itself when the
// image allows a plain root on a machine without a TPM.
func encryptRoot(s *State, partBytes int64, uuid string) (string, error) {
	s.needCryptModules()
	c, ok := s.Sys.(Crypter)
	if !ok {
		return "", errors.New("this system cannot encrypt (no TPM or dm-crypt access)")
	}
	sb, err := secureBoot(s)
	if err != nil {
		return "", err
	}
	dev, err := c.OpenTPM()
	if errors.Is(err, fs.ErrNotExist) && s.Params.Encrypt == layout.EncryptIfTPM {
		s.logf("no TPM: the root partition is not encrypted (ingot.encrypt=%s)", layout.EncryptIfTPM)
		return s.RootPart, nil
	}
	if err != nil {
		return "", fmt.Errorf("the image encrypts the root partition with the TPM (ingot.encrypt=%s), and %w: enable the TPM 2.0 in the firmware, or make the image with ingot image --encrypt-root=%s", s.Params.Encrypt, err, layout.EncryptIfTPM)
	}
	defer dev.Close()
	if !sb {
		if s.Params.Encrypt == layout.EncryptIfTPM {
			s.logf("Secure Boot is off: the root partition is not encrypted (ingot.encrypt=%s; %s)", layout.EncryptIfTPM, whySecureBoot)
			return s.RootPart, nil
		}
		return "", fmt.Errorf("the image seals the root partition's key to the TPM (ingot.encrypt=%s), and Secure Boot is off: %s; enable Secure Boot in the firmware (systemd-boot enrolls the image's keys in setup mode), or make the image with ingot image --encrypt-root=%s", s.Params.Encrypt, whySecureBoot, layout.EncryptIfTPM)
	}
	pcrKey, err := readPCRKey(s.path(PCRKeyPath))
	if err != nil {
		return "", err
	}
	volumeKey, secret := make([]byte, 64), make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, volumeKey); err != nil {
		return "", err
	}
	if _, err := io.ReadFull(rand.Reader, secret); err != nil {
		return "", err
	}
	sealed, err := tpm.Seal(dev, secret, pcrKey, tpm.PCRKernelBoot, pcrSecureBootPolicy)
	if err != nil {
		return "", fmt.Errorf("seal the root key to the TPM: %w", err)
	}
	f, err := os.OpenFile(s.path(s.RootPart), os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := luks2.Format(f, partBytes, volumeKey, luks2.Options{UUID: uuid, Label: "root", PBKDF: fastKDF}); err != nil {
		return "", err
	}
	if err := addTPMKeyslot(f, volumeKey, secret, sealed); err != nil {
		return "", err
	}
	var recovery string
	if s.Params.RecoveryKey {
		if recovery, err = addRecoveryKeyslot(f, volumeKey); err != nil {
			return "", err
		}
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("sync %s: %w", s.RootPart, err)
	}
	if recovery != "" {
		showRecoveryKey(s.Console, recovery)
	}
	s.logf("root partition encrypted (LUKS2, key sealed to the TPM under the image's PCR key)")
	return c.CryptActivate(rootMapper, s.path(s.RootPart), volumeKey)
}

func addTPMKeyslot(f *os.File, volumeKey, secret []byte, sealed *tpm.Sealed) error {
	slot, err := luks2.AddKeyslot(f, volumeKey, tpm.Passphrase(secret), luks2.KeyslotOptions{PBKDF: fastKDF})
	if err != nil {
		return err
	}
	tok, err := sealed.Token(slot)
	if err != nil {
		return err
	}
	_, err = luks2.AddToken(f, tok)
	return err
}

// addRecoveryKeyslot adds a keyslot for a new recovery key, with the
// systemd-recovery token systemd-cryptenroll adds for one, and returns the
// key.
func addRecoveryKeyslot(f *os.File, volumeKey []byte) (string, error) {
	key, err := newRecoveryKey()
	if err != nil {
		return "", err
	}
	slot, err := luks2.AddKeyslot(f, volumeKey, []byte(key), luks2.KeyslotOptions{PBKDF: fastKDF})
	if err != nil {
		return "", err
	}
	tok, _ := json.Marshal(map[string]any{"type": "systemd-recovery", "keyslots": []string{strconv.Itoa(slot)}})
	if _, err := luks2.AddToken(f, tok); err != nil {
		return "", err
	}
	return key, nil
}

// newRecoveryKey returns 256 random bits in systemd's recovery key form:
// 64 modhex characters in groups of 8, joined by dashes, which can be typed
// on any keyboard layout.
func newRecoveryKey() (string, error) {
	const modhex = "cbdefghijklnrtuv"
	raw := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, raw); err != nil {
		return "", err
	}
	var b strings.Builder
	for i, c := range raw {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(modhex[c>>4])
		b.WriteByte(modhex[c&0xf])
	}
	return b.String(), nil
}

// showRecoveryKey prints the recovery key on the console, the only place
// it ever appears.
func showRecoveryKey(console io.Writer, key string) {
	fmt.Fprintf(console, "\ningot-init: ================================================================\n"+
		"ingot-init: The root partition is encrypted. Its recovery key, shown only now:\n"+
		"ingot-init:\n"+
		"ingot-init:     %s\n"+
		"ingot-init:\n"+
		"ingot-init: Keep it safe. ingot-init asks for it when the TPM cannot unlock the root.\n"+
		"ingot-init: ================================================================\n\n", key)
}

// readPCRKey reads the PCR public key the initrd carries.
func readPCRKey(path string) (any, error) {
	pub, err := trust.LoadPublicKey(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("the initrd has no PCR public key (%s): an encrypted root needs an image signed with ingot image --keys", path)
	}
	return pub, err
}

// isLUKS reports whether the partition at path starts with a LUKS header.
func isLUKS(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	magic := make([]byte, 6)
	if _, err := io.ReadFull(f, magic); err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	return bytes.Equal(magic, []byte("LUKS\xba\xbe")), nil
}

// unlockRoot opens an encrypted root partition: with the key the TPM
// unseals under the UKI's signed PCR policy, or, when the TPM refuses (a
// UKI signed with another PCR key, a changed boot chain, another
// machine's TPM), with the recovery key typed on the console. It returns
// the dm-crypt device.
func unlockRoot(ctx context.Context, s *State) (string, error) {
	s.needCryptModules()
	c, ok := s.Sys.(Crypter)
	if !ok {
		return "", errors.New("the root partition is encrypted, and this system cannot reach dm-crypt")
	}
	f, err := os.Open(s.path(s.RootPart))
	if err != nil {
		return "", err
	}
	defer f.Close()
	h, err := luks2.ReadHeader(f)
	if err != nil {
		return "", err
	}
	volumeKey, tpmErr := unlockWithTPM(s, c, f, h)
	if tpmErr != nil {
		s.logf("the TPM did not release the root partition's key: %v", tpmErr)
		var err error
		if volumeKey, err = askRecoveryKey(ctx, s, f); err != nil {
			return "", fmt.Errorf("unlock the root partition: the TPM refused (%v), and %w", tpmErr, err)
		}
	}
	s.logf("root partition unlocked")
	return c.CryptActivate(rootMapper, s.path(s.RootPart), volumeKey)
}

func unlockWithTPM(s *State, c Crypter, f *os.File, h *luks2.Header) ([]byte, error) {
	var tok *luks2.Token
	for i := range h.Tokens {
		if h.Tokens[i].Type == tpm.TokenType {
			tok = &h.Tokens[i]
			break
		}
	}
	if tok == nil || len(tok.Keyslots) == 0 {
		return nil, fmt.Errorf("the LUKS2 header has no %s token", tpm.TokenType)
	}
	sealed, err := tpm.ParseToken(tok.JSON)
	if err != nil {
		return nil, err
	}
	sb, err := secureBoot(s)
	if err != nil {
		return nil, err
	}
	if !sb {
		return nil, fmt.Errorf("the firmware booted with Secure Boot off, and the key is released only to a Secure Boot boot (%s)", whySecureBoot)
	}
	if !slices.Contains(sealed.PCRs, pcrSecureBootPolicy) {
		return nil, fmt.Errorf("the root's key is not bound to the Secure Boot state (PCR %d) as ingot seals it: refusing a volume ingot-init did not make", pcrSecureBootPolicy)
	}
	pcrsig, err := os.ReadFile(s.path(pcrSigPath))
	if err != nil {
		return nil, fmt.Errorf("no signed PCR policy from systemd-stub (%s): boot a signed UKI with systemd-stub: %w", pcrSigPath, err)
	}
	dev, err := c.OpenTPM()
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	secret, err := tpm.Unseal(dev, sealed, pcrsig)
	if err != nil {
		return nil, err
	}
	return luks2.OpenKeyslot(f, tok.Keyslots[0], tpm.Passphrase(secret))
}

// askRecoveryKey asks for the recovery key on the console until one opens
// the volume, the input ends, or recoveryTimeout passes.
func askRecoveryKey(ctx context.Context, s *State, f *os.File) ([]byte, error) {
	if s.Input == nil {
		return nil, errors.New("there is no console to type a recovery key on")
	}
	ctx, cancel := context.WithTimeout(ctx, recoveryTimeout)
	defer cancel()
	if f, ok := s.Input.(*os.File); ok {
		defer noEcho(f)()
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(s.Input)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		close(lines)
	}()
	for {
		fmt.Fprintf(s.Console, "ingot-init: type the root partition's recovery key (%v to go): ", recoveryTimeout)
		select {
		case <-ctx.Done():
			return nil, errors.New("no recovery key was typed")
		case line, ok := <-lines:
			if !ok {
				return nil, errors.New("the console closed before a recovery key was typed")
			}
			fmt.Fprintln(s.Console)
			key := strings.TrimSpace(line)
			volumeKey, _, err := luks2.Open(f, []byte(key))
			if err == nil {
				return volumeKey, nil
			}
			s.logf("that is not the recovery key of this root partition")
		}
	}
}

// noEcho turns off the terminal's echo on f, so a typed recovery key does
// not appear on the console, and returns what turns it back on. On
// anything but a terminal it does nothing.
func noEcho(f *os.File) func() {
	old, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		return func() {}
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, &quiet); err != nil {
		return func() {}
	}
	return func() { unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, old) }
}

// checkPlainRoot refuses a root partition that is not encrypted where
// the image says it must be: under ingot.encrypt=tpm always, and under
// if-tpm on a machine that could have sealed it (a TPM and Secure Boot).
// A swapped-in plain root would otherwise boot the attacker's /etc.
func checkPlainRoot(s *State) error {
	if s.Params.Encrypt == layout.EncryptNone {
		return nil
	}
	refuse := fmt.Errorf("the image encrypts the root partition (ingot.encrypt=%s), and %s is not a LUKS2 volume: refusing to boot a root that may have been swapped in; "+
		"if this disk is yours, recover its data and run a factory reset", s.Params.Encrypt, s.RootPart)
	if s.Params.Encrypt == layout.EncryptTPM {
		return refuse
	}
	sb, err := secureBoot(s)
	if err != nil || !sb {
		return err // if-tpm does not seal without Secure Boot
	}
	c, ok := s.Sys.(Crypter)
	if !ok {
		return nil
	}
	dev, err := c.OpenTPM()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	dev.Close()
	return refuse
}
