package layout

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Keys of the kernel command line that ingot defines or reads. The image
// writes them into the UKI, ingot-init acts on them, and the agent and the
// verifiers read usrhash= back.
const (
	// KeyUsrHash pins /usr: the hex dm-verity root hash (usrhash=).
	KeyUsrHash = "usrhash"
	// KeyEncrypt says how ingot-init makes the root partition on first
	// boot: EncryptNone, EncryptTPM or EncryptIfTPM.
	KeyEncrypt = "ingot.encrypt"
	// KeyRecoveryKey is "no" to leave the recovery key out of an
	// encrypted root.
	KeyRecoveryKey = "ingot.recovery_key"
	// KeyConfigSigned is "yes" to apply machine configuration from the
	// ESP, a credential or a NoCloud seed only with a valid signature by
	// ConfigCertPath's certificate.
	KeyConfigSigned = "ingot.config_signed"
	// KeyDebug is "shell" for a rescue shell instead of a reboot.
	KeyDebug = "ingot.debug"
	// KeyDeviceTimeout bounds the wait for the boot disk, in seconds.
	KeyDeviceTimeout = "ingot.device_timeout"
	// KeyRebootDelay is how long a failure stays on the console, in
	// seconds.
	KeyRebootDelay = "ingot.reboot_delay"
	// KeyInit is the program started after switch_root (the kernel's
	// init=).
	KeyInit = "init"
	// KeyPanic is the kernel's panic=; 0 means wait instead of reboot.
	KeyPanic = "panic"
)

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

// CheckEncrypt rejects a value ingot.encrypt= cannot have.
func CheckEncrypt(mode string) error {
	switch mode {
	case EncryptNone, EncryptTPM, EncryptIfTPM:
		return nil
	}
	return fmt.Errorf("%q: want %s, %s or %s", mode, EncryptTPM, EncryptIfTPM, EncryptNone)
}

// Param is one word of a kernel command line: key=value, or a bare key
// ("quiet") when HasValue is false.
type Param struct {
	Key      string
	Value    string
	HasValue bool
}

// KV is the parameter key=value.
func KV(key, value string) Param { return Param{Key: key, Value: value, HasValue: true} }

// String formats p as the kernel reads it back: a value with white space
// is put in double quotes, a key with white space makes the whole word
// quoted. The kernel has no escape for a double quote: a key or value
// with one is written as it is, and may read back otherwise.
func (p Param) String() string {
	switch {
	case !p.HasValue && (needsQuotes(p.Key) || p.Key == ""):
		return `"` + p.Key + `"`
	case !p.HasValue:
		return p.Key
	case needsQuotes(p.Key) && !strings.Contains(p.Value, `"`):
		return `"` + p.Key + "=" + p.Value + `"`
	case needsQuotes(p.Value):
		return p.Key + `="` + p.Value + `"`
	}
	return p.Key + "=" + p.Value
}

// needsQuotes reports whether s has white space and no double quote.
func needsQuotes(s string) bool {
	return strings.ContainsAny(s, " \t\n\v\f\r") && !strings.Contains(s, `"`)
}

// Cmdline is a kernel command line, its parameters in order.
type Cmdline []Param

// ParseCmdline splits a kernel command line as the kernel does
// (lib/cmdline.c next_arg): words are separated by white space outside
// double quotes, the first '=' separates key and value, and quotes
// around the whole word or the whole value are removed.
func ParseCmdline(s string) Cmdline {
	var c Cmdline
	for {
		s = strings.TrimLeft(s, " \t\n\v\f\r")
		if s == "" {
			return c
		}
		var p Param
		p, s = nextParam(s)
		c = append(c, p)
	}
}

// nextParam reads the word at the start of s and returns it with the rest.
func nextParam(s string) (Param, string) {
	quoted := s[0] == '"'
	if quoted {
		s = s[1:]
	}
	inQuote, equals, i := quoted, -1, 0
	for ; i < len(s); i++ {
		c := s[i]
		if isSpace(c) && !inQuote {
			break
		}
		if equals < 0 && c == '=' {
			equals = i
		}
		if c == '"' {
			inQuote = !inQuote
		}
	}
	word, rest := s[:i], s[i:]
	if equals < 0 {
		if quoted {
			word = strings.TrimSuffix(word, `"`)
		}
		return Param{Key: word}, rest
	}
	key, val := word[:equals], word[equals+1:]
	if strings.HasPrefix(val, `"`) {
		val = strings.TrimSuffix(val[1:], `"`)
	} else if quoted {
		val = strings.TrimSuffix(val, `"`)
	}
	return KV(key, val), rest
}

func isSpace(c byte) bool { return strings.IndexByte(" \t\n\v\f\r", c) >= 0 }

// String formats the command line: its parameters separated by spaces.
func (c Cmdline) String() string {
	words := make([]string, len(c))
	for i, p := range c {
		words[i] = p.String()
	}
	return strings.Join(words, " ")
}

// Values returns the value of every key= on the command line, in order,
// up to a "--" (after which the words are init's, not the kernel's).
func (c Cmdline) Values(key string) []string {
	var out []string
	for _, p := range c {
		if p.Key == "--" && !p.HasValue {
			break
		}
		if p.Key == key && p.HasValue {
			out = append(out, p.Value)
		}
	}
	return out
}

// Boot is what ingot's keys on the kernel command line say, with the
// defaults of an empty command line (DefaultBoot) where a key is absent.
type Boot struct {
	// UsrHash is the dm-verity root hash of the /usr to boot (usrhash=).
	UsrHash []byte
	// Debug is "shell" to get a rescue shell instead of a reboot on
	// failure (ingot.debug=shell).
	Debug string
	// Init is the program to execute after switch_root (init=).
	Init string
	// DeviceTimeout bounds the wait for the disk (ingot.device_timeout=).
	DeviceTimeout time.Duration
	// RebootDelay is how long a failure stays on the console before the
	// reboot (ingot.reboot_delay=).
	RebootDelay time.Duration
	// Encrypt says how the root partition is made on first boot
	// (ingot.encrypt=): EncryptNone, EncryptTPM or EncryptIfTPM.
	Encrypt string
	// RecoveryKey adds a recovery key to an encrypted root and shows it
	// once on the console (ingot.recovery_key=no turns it off).
	RecoveryKey bool
	// RequireSignedConfig applies only signed machine configuration
	// sources besides the image's own (ingot.config_signed=yes).
	RequireSignedConfig bool
	// Panic mirrors panic=: a negative value waits forever instead of
	// rebooting (panic=0 in the kernel's sense of "never reboot").
	Panic int
}

// DefaultBoot are the settings of a command line without ingot's keys.
func DefaultBoot() Boot {
	return Boot{Init: "/usr/lib/systemd/systemd", DeviceTimeout: 60 * time.Second, RebootDelay: 10 * time.Second, Panic: 1,
		Encrypt: EncryptNone, RecoveryKey: true}
}

// ErrNoUsrHash says a command line has no usrhash=.
var ErrNoUsrHash = errors.New("no usrhash= on the kernel command line: boot a UKI made by ingot image")

// ParseBoot reads ingot's keys from a kernel command line. Unknown words
// are ignored; a malformed value of a known key, a missing usrhash= and
// two usrhash= that disagree are errors.
func ParseBoot(cmdline string) (Boot, error) {
	return ParseCmdline(cmdline).Boot()
}

// Boot reads ingot's keys from c, as ParseBoot does.
func (c Cmdline) Boot() (Boot, error) {
	b := DefaultBoot()
	for _, p := range c {
		if p.Key == "--" && !p.HasValue {
			break
		}
		if err := b.set(p); err != nil {
			return b, err
		}
	}
	if b.UsrHash == nil {
		return b, ErrNoUsrHash
	}
	return b, nil
}

// set applies one parameter.
func (b *Boot) set(p Param) error {
	key, val := p.Key, p.Value
	switch key {
	case KeyUsrHash:
		h, err := ParseUsrHash(val)
		if err != nil {
			return err
		}
		if b.UsrHash != nil && !bytes.Equal(b.UsrHash, h) {
			return fmt.Errorf("two usrhash= on the kernel command line disagree (%x and %x)", b.UsrHash, h)
		}
		b.UsrHash = h
	case KeyDebug:
		b.Debug = val
	case KeyInit:
		if !strings.HasPrefix(val, "/") {
			return fmt.Errorf("init=%q: want an absolute path", val)
		}
		b.Init = val
	case KeyDeviceTimeout, KeyRebootDelay:
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 {
			return fmt.Errorf("%s=%q: want seconds", key, val)
		}
		if key == KeyDeviceTimeout {
			b.DeviceTimeout = time.Duration(n) * time.Second
		} else {
			b.RebootDelay = time.Duration(n) * time.Second
		}
	case KeyEncrypt:
		if err := CheckEncrypt(val); err != nil {
			return fmt.Errorf("%s=%w", KeyEncrypt, err)
		}
		b.Encrypt = val
	case KeyRecoveryKey, KeyConfigSigned:
		v, err := parseYesNo(key, val)
		if err != nil {
			return err
		}
		if key == KeyRecoveryKey {
			b.RecoveryKey = v
		} else {
			b.RequireSignedConfig = v
		}
	case KeyPanic:
		if n, err := strconv.Atoi(val); err == nil && n == 0 {
			b.Panic = -1
		}
	}
	return nil
}

// parseYesNo reads the value of a yes/no key.
func parseYesNo(key, val string) (bool, error) {
	v, err := strconv.ParseBool(strings.NewReplacer("yes", "true", "no", "false").Replace(val))
	if err != nil {
		return false, fmt.Errorf("%s=%q: want yes or no", key, val)
	}
	return v, nil
}

// ParseUsrHash reads the value of usrhash=: a hex root hash of at least
// 32 bytes.
func ParseUsrHash(val string) ([]byte, error) {
	h, err := hex.DecodeString(val)
	if err != nil || len(h) < 32 {
		return nil, fmt.Errorf("usrhash=%q: want a hex root hash of at least 32 bytes", val)
	}
	return h, nil
}

// Params are the parameters that give b's settings on a command line
// that has none of ingot's keys: usrhash= (when set) first, then each
// setting that differs from DefaultBoot, in a fixed order.
func (b Boot) Params() Cmdline {
	d := DefaultBoot()
	var c Cmdline
	if b.UsrHash != nil {
		c = append(c, KV(KeyUsrHash, hex.EncodeToString(b.UsrHash)))
	}
	if b.Encrypt != d.Encrypt && b.Encrypt != "" {
		c = append(c, KV(KeyEncrypt, b.Encrypt))
	}
	if !b.RecoveryKey {
		c = append(c, KV(KeyRecoveryKey, "no"))
	}
	if b.RequireSignedConfig {
		c = append(c, KV(KeyConfigSigned, "yes"))
	}
	if b.Debug != "" {
		c = append(c, KV(KeyDebug, b.Debug))
	}
	if b.DeviceTimeout != d.DeviceTimeout {
		c = append(c, KV(KeyDeviceTimeout, strconv.Itoa(int(b.DeviceTimeout/time.Second))))
	}
	if b.RebootDelay != d.RebootDelay {
		c = append(c, KV(KeyRebootDelay, strconv.Itoa(int(b.RebootDelay/time.Second))))
	}
	if b.Init != d.Init && b.Init != "" {
		c = append(c, KV(KeyInit, b.Init))
	}
	if b.Panic < 0 {
		c = append(c, KV(KeyPanic, "0"))
	}
	return c
}
