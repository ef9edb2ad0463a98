// Package layout is ingot's on-disk contract: partition types, indexes,
// names and UUIDs, ESP paths and UKI file names. The image stage writes it,
// ingot-init and the agent read it; keeping it in one place keeps them in
// step.
//
//	usr, verity := layout.UsrPartUUIDs(rootHash)
//	name := layout.UKIName("1.2.0", 3) // "ingot_1.2.0+3-0.efi"
package layout

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/ingot-linux/ingot/format/gpt"
)

// Discoverable Partitions Specification type GUIDs for x86-64, the
// architecture ingot builds for.
var (
	TypeESP          = gpt.TypeESP
	TypeRoot         = gpt.TypeRootAMD64
	TypeUsr          = gpt.TypeUsrAMD64
	TypeUsrVerity    = gpt.TypeUsrVerityAMD64
	TypeUsrVeritySig = gpt.TypeUsrVeritySigAMD64
)

// Partition indexes (1-based) of the contract.
const (
	ESPIndex          = 1
	UsrAIndex         = 2
	UsrVerityAIndex   = 3
	UsrVeritySigIndex = 4
	UsrBIndex         = 5
	UsrVerityBIndex   = 6
	UsrVeritySigB     = 7
	RootIndex         = 8
)

// EmptyLabel marks a slot that holds no version yet.
const EmptyLabel = "_empty"

// Names of the root partition: RootSetupLabel while ingot-init makes its
// filesystem on first boot, RootLabel once that is complete.
const (
	RootLabel      = "root"
	RootSetupLabel = "_root-setup"
)

// Name is the image name used in labels, UKI file names and IMAGE_ID.
const Name = "ingot"

// UsrLabel is the partition name of a usr partition holding version.
func UsrLabel(version string) string { return Name + "_" + version }

// VerityLabel is the partition name of a usr-verity partition.
func VerityLabel(version string) string { return Name + "_" + version + "_verity" }

// VeritySigLabel is the partition name of a usr-verity-sig partition.
func VeritySigLabel(version string) string { return Name + "_" + version + "_verity_sig" }

// UsrPartUUIDs returns the PARTUUIDs the Discoverable Partitions
// Specification gives the usr and usr-verity partitions of a root hash: its
// first and last 128 bits.
func UsrPartUUIDs(rootHash []byte) (usr, verity gpt.GUID) {
	var a, b [16]byte
	copy(a[:], rootHash)
	if len(rootHash) >= 16 {
		copy(b[:], rootHash[len(rootHash)-16:])
	}
	return gpt.GUIDFromBytes(a), gpt.GUIDFromBytes(b)
}

// SlotName returns "a" for the first usr partition on the disk and "b" for
// the second.
func SlotName(ordinal int) string {
	if ordinal == 2 {
		return "b"
	}
	return "a"
}

// ESP paths.
const (
	BootLoaderPath = "EFI/BOOT/BOOTX64.EFI"
	LoaderConfPath = "loader/loader.conf"
	UKIDir         = "EFI/Linux"
)

// UKIName is the file name of a version's UKI with tries boot attempts left,
// per the Boot Loader Specification's boot counting ("+3-0").
func UKIName(version string, tries int) string {
	if tries <= 0 {
		return fmt.Sprintf("%s_%s.efi", Name, version)
	}
	return fmt.Sprintf("%s_%s+%d-0.efi", Name, version, tries)
}

// VersionPattern is what a version may look like: it becomes part of file
// and partition names.
var VersionPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._~-]{0,31}$`)

// CheckVersion rejects versions that cannot be part of the names above.
func CheckVersion(v string) error {
	if !VersionPattern.MatchString(v) {
		return fmt.Errorf("version %q: use 1–32 letters, digits, '.', '_', '~' or '-', starting with a letter or digit", v)
	}
	return nil
}

// Files ingot adds to /usr.
const (
	// RootLayoutPath (under /usr) records the root filesystem's top-level
	// links and directories for ingot-init.
	RootLayoutPath = "lib/ingot/root.json"
	// FactoryDir (under /usr) holds the image's /etc and /var.
	FactoryDir = "share/ingot/factory"
	// FactoryEtc and FactoryVar are the image's /etc and /var, as paths
	// relative to the root of the booted system.
	FactoryEtc = "usr/" + FactoryDir + "/etc"
	FactoryVar = "usr/" + FactoryDir + "/var"
	// TrustDir (under /usr) holds the certificates a signed image trusts:
	// db.crt for UKIs, verity.crt for usr-verity-sig.
	TrustDir = "lib/ingot/keys"
)

// RootLayout is the top level of the root filesystem an image came from,
// recorded in /usr/lib/ingot/root.json so ingot-init can recreate it on the
// root partition: links such as bin → usr/bin, and directories with their
// modes as octal strings ("1777" for /tmp).
type RootLayout struct {
	Links map[string]string `json:"links"`
	Dirs  map[string]string `json:"dirs"`
}

// EFI variables of the boot contract, as efivarfs names them
// (NAME-VENDORGUID). The firmware sets the global ones; systemd-boot and
// systemd-stub set the loader ones (Boot Loader Interface).
const (
	// EFIVarsDir is where efivarfs is mounted.
	EFIVarsDir = "/sys/firmware/efi/efivars"
	// GlobalVendor is the UEFI global variable vendor GUID.
	GlobalVendor = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
	// LoaderVendor is the Boot Loader Interface's vendor GUID.
	LoaderVendor = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
	// SecureBootVar is 1 when the firmware booted with Secure Boot on.
	SecureBootVar = "SecureBoot-" + GlobalVendor
	// LoaderDevicePartUUIDVar is the PARTUUID of the ESP the boot loader
	// (or the stub) was loaded from, a UTF-16 string.
	LoaderDevicePartUUIDVar = "LoaderDevicePartUUID-" + LoaderVendor
)

// CompareVersions compares two versions the way systemd-boot orders boot
// entries (the UAPI Version Format Specification, systemd's
// strverscmp_improved): it returns -1 when a is older than b, 0 when
// they are equal and 1 when a is newer. Runs of digits compare as
// numbers; '~' sorts before everything, even the end ("2.0~rc1" is older
// than "2.0"); a string with more segments is newer ("2.0.1" after
// "2.0"); '-', '^' and '.' separate segments, in that order of
// precedence; other characters outside [A-Za-z0-9~^.-] are ignored.
func CompareVersions(a, b string) int {
	for {
		a, b = trimInvalidVersionChars(a), trimInvalidVersionChars(b)
		if r, done := compareSeparator(&a, &b, '~'); done {
			return r
		}
		if a == "" || b == "" {
			return cmpInt(len(a), len(b))
		}
		for _, sep := range []byte{'-', '^', '.'} {
			if r, done := compareSeparator(&a, &b, sep); done {
				return r
			}
		}
		var r int
		if r, a, b = compareSegment(a, b); r != 0 {
			return r
		}
	}
}

// compareSeparator handles a leading sep in a or b: the one that has it
// is older. With both having it, both lose it.
func compareSeparator(a, b *string, sep byte) (int, bool) {
	ha, hb := strings.HasPrefix(*a, string(sep)), strings.HasPrefix(*b, string(sep))
	switch {
	case ha && hb:
		*a, *b = (*a)[1:], (*b)[1:]
	case ha:
		return -1, true
	case hb:
		return 1, true
	}
	return 0, false
}

// compareSegment compares the leading numeric (or alphabetic) segments
// of a and b and returns the rest of each.
func compareSegment(a, b string) (int, string, string) {
	if isDigit(a[0]) || isDigit(b[0]) {
		na, ra := leading(a, isDigit)
		nb, rb := leading(b, isDigit)
		if r := cmpBool(na != "", nb != ""); r != 0 {
			return r, ra, rb // a number is newer than letters
		}
		na, nb = strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
		if r := cmpInt(len(na), len(nb)); r != 0 {
			return r, ra, rb
		}
		return strings.Compare(na, nb), ra, rb
	}
	la, ra := leading(a, isAlpha)
	lb, rb := leading(b, isAlpha)
	n := min(len(la), len(lb))
	if r := strings.Compare(la[:n], lb[:n]); r != 0 {
		return r, ra, rb
	}
	return cmpInt(len(la), len(lb)), ra, rb
}

func trimInvalidVersionChars(s string) string {
	for s != "" && !isDigit(s[0]) && !isAlpha(s[0]) && !strings.ContainsRune("~^.-", rune(s[0])) {
		s = s[1:]
	}
	return s
}

func leading(s string, class func(byte) bool) (string, string) {
	i := 0
	for i < len(s) && class(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
