package diskimage

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/ingot-linux/ingot/trust"
)

// Options configure Build. The zero value of every optional field means the
// default.
type Options struct {
	// RootFS is a directory or a tarball (.tar, .tar.gz, .tar.zst, .tar.xz)
	// of a merged-/usr root filesystem.
	RootFS string
	// Version names the image; it becomes IMAGE_VERSION and part of file
	// and partition names.
	Version string
	// OutputDir receives ingot_<version>.raw.
	OutputDir string
	// Epoch (SOURCE_DATE_EPOCH) caps every timestamp in the image.
	Epoch int64
	// InitPath is the static ingot-init binary that becomes the initrd's
	// /init.
	InitPath string
	// AgentPath is the static ingot binary installed as /usr/bin/ingot.
	AgentPath string
	// KernelVersion picks a kernel when the root filesystem has several.
	KernelVersion string
	// Compression is how /usr's files are compressed: "none" (the
	// default, written by go-erofs), "lz4hc" or "zstd", optionally with
	// ":LEVEL", or CompressionAuto for the best the image's kernel mounts
	// (zstd from Linux 6.10, else LZ4).
	Compression string
	// Cmdline is appended to the kernel command line.
	Cmdline []string
	// BootDeadline is how long a boot may take to reach
	// boot-complete.target before the machine reboots (a failed try);
	// 0 means DefaultBootDeadline.
	BootDeadline time.Duration
	// HealthChecks are systemd units of the image that must succeed before
	// boot-complete.target, besides ingot's own (ingot-health.service). A
	// check that fails reboots the machine, one that hangs runs into the
	// boot deadline: either way a failed try.
	HealthChecks []string
	// MachineConfig is the machine configuration the image carries as
	// its defaults (/usr/lib/ingot/config.yaml, mode 0600), applied by
	// ingot-init before the ESP's, the credential's and a NoCloud seed's;
	// it must validate (machineconfig.Parse). MachineConfigName names it
	// in errors.
	MachineConfig     []byte
	MachineConfigName string
	// Autologin gives a root shell on the serial console (development and
	// tests only).
	Autologin bool
	// UsrSlotBytes is the size of each usr partition; 0 sizes it from the
	// image with room to grow.
	UsrSlotBytes int64
	// ESPBytes is the size of the ESP; 0 means room for at least four UKIs
	// and no less than 256 MiB.
	ESPBytes int64
	// Keys, if set, sign the image: systemd-boot and the UKI with db
	// (Authenticode), the UKI's PCR 11 policy with the PCR key (.pcrsig,
	// .pcrpkey), the verity root hash with the verity key (usr-verity-sig),
	// and the ESP gets loader/keys/auto/{PK,KEK,db}.auth for enrollment.
	// Load them with trust.LoadKeys.
	Keys *trust.Keys
	// PCRPhases are the boot phases whose PCR 11 values .pcrsig signs;
	// nil means DefaultPCRPhases.
	PCRPhases []string
	// EncryptRoot says how ingot-init makes the root partition on first
	// boot: layout.EncryptNone (plain ext4, the default), layout.EncryptTPM
	// (LUKS2, its key sealed to the TPM under the PCR key, so any UKI signed
	// with that key unlocks it; no TPM, no root) or layout.EncryptIfTPM (encrypted when
	// the machine has a TPM, plain otherwise). Encryption needs Keys.
	EncryptRoot string
	// NoRecoveryKey leaves out the recovery key ingot-init otherwise adds
	// to an encrypted root and shows once on the console.
	NoRecoveryKey bool
	// RequireSignedConfig makes ingot-init apply machine configuration
	// from the ESP, an SMBIOS credential or a NoCloud seed only with a
	// detached signature by the verity key (ingot config sign): its
	// certificate goes to /usr/lib/ingot/keys/config.crt and
	// ingot.config_signed=yes onto the signed command line. Needs Keys.
	RequireSignedConfig bool
	// KeyDir is where Keys came from; its .auth files go on the ESP.
	KeyDir string
	// Modules are the kernel modules the initrd loads; nil means
	// DefaultModules.
	Modules []string
	// RootFSMaxBytes bounds the content of the root filesystem: the sizes
	// of its regular files, holes of sparse files included, as /usr
	// stores them in full. 0 means rootfs.ContentBound of what RootFS
	// stores (100 times, at least 1 GiB).
	RootFSMaxBytes int64
	// Extensions are extension images (ingot ext build) the image ships
	// as its factory set, in /usr/lib/ingot/extensions: each must fit the
	// image (ID and Version) and, on a signed image, be signed by its
	// verity key.
	Extensions []string
	// TempDir holds intermediate files; "" means a directory inside
	// OutputDir, removed at the end.
	TempDir string
	// SBOM, if set, is an SPDX document describing the root filesystem;
	// it is written next to the disk image as ingot_<version>.spdx.json.
	SBOM []byte
	// MakeSBOM, if set instead of SBOM, makes that document once the
	// image's epoch is known: created is SOURCE_DATE_EPOCH (Epoch) or,
	// with EpochFromContent, the newest timestamp in the root filesystem,
	// so the SBOM carries the image's date.
	MakeSBOM func(created time.Time) ([]byte, error)
	// Progress, if set, is told about each stage.
	Progress func(stage string)
	// Logger receives details; nil discards them.
	Logger *slog.Logger
}

// DefaultPCRPhases are the boot phases a signed UKI's .pcrsig covers: only
// the initrd before it hands over ("enter-initrd"). What the PCR key seals
// (the root partition's key) unseals there and nowhere else: once
// ingot-init has measured leave-initrd, no signed policy matches PCR 11,
// so not even root on the booted system can ask the TPM for the key.
// systemd-measure signs every phase unless told otherwise; pass
// trust.DefaultPhases() to get that.
var DefaultPCRPhases = []string{"enter-initrd"}

// DefaultBootDeadline bounds a boot from the start of systemd to
// boot-complete.target.
const DefaultBootDeadline = 10 * time.Minute

// EpochFromContent as Options.Epoch caps timestamps at the newest one in the
// root filesystem: reproducible without SOURCE_DATE_EPOCH.
const EpochFromContent = -1

// FieldError says which field of Options is wrong and why. Field is the
// Go name in Options ("EncryptRoot"); a command line maps it to its own
// flag with Describe. Match it with errors.As.
type FieldError struct {
	Field   string
	Value   any    // the field's value, if showing it helps
	Problem string // what is wrong, lowercase
	Err     error  // the cause, if any
}

func (e *FieldError) Error() string { return e.Describe(e.Field) }

// Describe is the error with name in place of the field's name, e.g. a
// flag: "--encrypt-root tpm: ….".
func (e *FieldError) Describe(name string) string {
	s := name
	if v := fmt.Sprint(e.Value); e.Value != nil && v != "" {
		s += " " + v
	}
	s += ": " + e.Problem
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FieldError) Unwrap() error { return e.Err }

// Result describes a built image.
type Result struct {
	Version  string `json:"version"`
	DiskPath string `json:"disk"`
	// UpdateDir is the update artifact of this version (see package
	// artifact): what `ingot push` uploads and `ingot update` applies.
	UpdateDir string `json:"update"`
	// SBOMPath is the SPDX document written next to the disk ("" if
	// Options.SBOM was empty).
	SBOMPath      string `json:"sbom,omitempty"`
	DiskBytes     int64  `json:"diskBytes"`
	UsrHash       string `json:"usrhash"`
	UsrBytes      int64  `json:"usrBytes"`
	UsrSlotBytes  int64  `json:"usrSlotBytes"`
	UKIBytes      int64  `json:"ukiBytes"`
	KernelVersion string `json:"kernelVersion"`
	Cmdline       string `json:"cmdline"`
	// MissingModules are requested initrd modules the kernel has neither
	// built in nor as modules.
	MissingModules []string `json:"missingModules,omitempty"`
}
