// Package initrd is ingot-init's boot plan: from the kernel command line to a
// verified /usr, a persistent root, an /etc overlay and switch_root into
// systemd.
//
// The plan is data: Plan returns named steps, and Run executes them against a
// Sys, so the sequence can be tested without root and every failure names its
// step.
//
//	err := initrd.Run(ctx, initrd.Config{Sys: sys.Linux{}, Console: console})
package initrd

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Params are the kernel command-line settings ingot-init acts on.
type Params struct {
	// UsrHash is the dm-verity root hash of the /usr to boot (usrhash=).
	UsrHash []byte
	// Debug is "shell" to get a rescue shell instead of a reboot on failure
	// (ingot.debug=shell).
	Debug string
	// Init is the program to execute after switch_root (init=); default
	// /usr/lib/systemd/systemd.
	Init string
	// DeviceTimeout bounds the wait for the disk (ingot.device_timeout=
	// seconds; default 60).
	DeviceTimeout time.Duration
	// RebootDelay is how long a failure stays on the console before the
	// reboot (ingot.reboot_delay= seconds; default 10).
	RebootDelay time.Duration
	// Encrypt says how the root partition is made on first boot
	// (ingot.encrypt=): EncryptNone, EncryptTPM or EncryptIfTPM.
	Encrypt string
	// RecoveryKey adds a recovery key to an encrypted root and shows it
	// once on the console (ingot.recovery_key=no turns it off).
	RecoveryKey bool
	// Panic mirrors panic=: a negative value waits forever instead of
	// rebooting (panic=0 in the kernel's sense of "never reboot").
	Panic int
}

// Values of ingot.encrypt=.
const (
	// EncryptNone makes a plain ext4 root.
	EncryptNone = "none"
	// EncryptTPM makes a LUKS2 root whose key the TPM seals to the UKI's
	// PCR key, and refuses to make the root without a TPM.
	EncryptTPM = "tpm"
	// EncryptIfTPM is EncryptTPM on a machine with a TPM and EncryptNone
	// on one without.
	EncryptIfTPM = "if-tpm"
)

// DefaultParams are the settings of an empty command line.
func DefaultParams() Params {
	return Params{Init: "/usr/lib/systemd/systemd", DeviceTimeout: 60 * time.Second, RebootDelay: 10 * time.Second, Panic: 1,
		Encrypt: EncryptNone, RecoveryKey: true}
}

// ParseCmdline reads the kernel command line. Unknown words are ignored; a
// malformed value of a known key is an error.
func ParseCmdline(cmdline string) (Params, error) {
	p := DefaultParams()
	for _, word := range splitCmdline(cmdline) {
		key, val, _ := strings.Cut(word, "=")
		switch key {
		case "usrhash":
			h, err := hex.DecodeString(val)
			if err != nil || len(h) < 32 {
				return p, fmt.Errorf("usrhash=%q: want a hex root hash of at least 32 bytes", val)
			}
			p.UsrHash = h
		case "ingot.debug":
			p.Debug = val
		case "init":
			if !strings.HasPrefix(val, "/") {
				return p, fmt.Errorf("init=%q: want an absolute path", val)
			}
			p.Init = val
		case "ingot.device_timeout", "ingot.reboot_delay":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return p, fmt.Errorf("%s=%q: want seconds", key, val)
			}
			if key == "ingot.device_timeout" {
				p.DeviceTimeout = time.Duration(n) * time.Second
			} else {
				p.RebootDelay = time.Duration(n) * time.Second
			}
		case "ingot.encrypt":
			if val != EncryptNone && val != EncryptTPM && val != EncryptIfTPM {
				return p, fmt.Errorf("ingot.encrypt=%q: want %s, %s or %s", val, EncryptTPM, EncryptIfTPM, EncryptNone)
			}
			p.Encrypt = val
		case "ingot.recovery_key":
			b, err := strconv.ParseBool(strings.NewReplacer("yes", "true", "no", "false").Replace(val))
			if err != nil {
				return p, fmt.Errorf("ingot.recovery_key=%q: want yes or no", val)
			}
			p.RecoveryKey = b
		case "panic":
			n, err := strconv.Atoi(val)
			if err == nil && n == 0 {
				p.Panic = -1
			}
		}
	}
	if p.UsrHash == nil {
		return p, fmt.Errorf("no usrhash= on the kernel command line: boot a UKI made by ingot image")
	}
	return p, nil
}

// splitCmdline splits on spaces, keeping double-quoted values together.
func splitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r == '"':
			quoted = !quoted
		case (r == ' ' || r == '\n' || r == '\t') && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}
