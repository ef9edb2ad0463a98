// Package image turns a root filesystem into ingot's bootable disk image:
// /usr as EROFS with a dm-verity tree, a UKI that pins that /usr by its root
// hash, systemd-boot on an ESP, and a GPT with two A/B slots. It needs no root
// privileges and no host tools, and the same inputs give the same bytes.
//
//	res, err := image.Build(ctx, image.Options{
//		RootFS: "rootfs.tar.zst", Version: "1.0.0", OutputDir: "out",
//		Epoch: 1700000000, InitPath: "bin/ingot-init", AgentPath: "bin/ingot",
//	})
package image

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/image/rootfs"
	"github.com/ingot-linux/ingot/internal/fileutil"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/tpm"
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
	// TempDir holds intermediate files; "" means a directory inside
	// OutputDir, removed at the end.
	TempDir string
	// SBOM, if set, is an SPDX document describing the root filesystem;
	// it is written next to the disk image as ingot_<version>.spdx.json.
	SBOM []byte
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

func newestMtime(t *rootfs.Tree) int64 {
	var newest int64
	_ = t.Walk(".", func(e *rootfs.Entry) error {
		newest = max(newest, e.MtimeUnix)
		return nil
	})
	return newest
}

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

func (o *Options) progress(stage string) {
	if o.Progress != nil {
		o.Progress(stage)
	}
	o.Logger.Debug("image stage", "step", stage)
}

func (o *Options) check() error {
	var errs []error
	if o.RootFS == "" {
		errs = append(errs, errors.New("no root filesystem given (--rootfs)"))
	}
	if err := layout.CheckVersion(o.Version); err != nil {
		errs = append(errs, err)
	}
	if o.OutputDir == "" {
		errs = append(errs, errors.New("no output directory given (--output)"))
	}
	if o.Epoch < 0 && o.Epoch != EpochFromContent {
		errs = append(errs, fmt.Errorf("SOURCE_DATE_EPOCH %d is negative", o.Epoch))
	}
	switch o.EncryptRoot {
	case "", layout.EncryptNone:
		o.EncryptRoot = layout.EncryptNone
	case layout.EncryptTPM, layout.EncryptIfTPM:
		if o.Keys == nil {
			errs = append(errs, fmt.Errorf("an encrypted root (%s) is sealed to the image's PCR key: sign the image with --keys", o.EncryptRoot))
		}
	default:
		errs = append(errs, fmt.Errorf("root encryption %w", layout.CheckEncrypt(o.EncryptRoot)))
	}
	extra := layout.ParseCmdline(strings.Join(o.Cmdline, " "))
	if len(extra.Values(layout.KeyUsrHash)) > 0 {
		errs = append(errs, errors.New("the kernel command line's usrhash= is the image's own: leave it out"))
	}
	if o.EncryptRoot != layout.EncryptNone && slices.Contains(extra.Values(layout.KeyDebug), "shell") {
		errs = append(errs, fmt.Errorf("ingot.debug=shell with an encrypted root (%s): the rescue shell would run with the root unlocked and the TPM still in the initrd phase; leave out one of them", o.EncryptRoot))
	}
	if o.UsrSlotBytes < 0 || o.ESPBytes < 0 || o.RootFSMaxBytes < 0 {
		errs = append(errs, errors.New("sizes must not be negative"))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Modules == nil {
		o.Modules = DefaultModules
	}
	return errors.Join(errs...)
}

// Build makes the disk image. On any error nothing is left in OutputDir,
// and the directories Build made for it are removed.
func Build(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	undoDirs, err := fileutil.MkdirAllUndo(o.OutputDir, 0o755)
	if err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			undoDirs() // runs last: after the temporary files are gone
		}
	}()
	final := filepath.Join(o.OutputDir, layout.Name+"_"+o.Version+".raw")
	out, err := os.CreateTemp(o.OutputDir, "."+filepath.Base(final)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("output directory %s is not writable: %w", o.OutputDir, err)
	}
	defer func() {
		if !committed {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	work := o.TempDir
	if work == "" {
		work, err = os.MkdirTemp(o.OutputDir, ".ingot-work-*")
		if err != nil {
			return nil, fmt.Errorf("create work directory: %w", err)
		}
		defer os.RemoveAll(work)
	}
	init, err := readStatic(o.InitPath, "ingot-init", "--init")
	if err != nil {
		return nil, err
	}
	agent, err := readStatic(o.AgentPath, "ingot", "--agent")
	if err != nil {
		return nil, err
	}

	o.progress("read root filesystem")
	t, err := rootfs.Load(o.RootFS, rootfs.Options{TempDir: work, MaxContentBytes: o.RootFSMaxBytes})
	if errors.Is(err, rootfs.ErrTooLarge) {
		return nil, fmt.Errorf("%w; if it is meant to be this large, raise the bound (--rootfs-max-bytes)", err)
	}
	if err != nil {
		return nil, err
	}
	defer t.Close()
	if o.Epoch == EpochFromContent {
		o.Epoch = newestMtime(t)
	}
	in, err := inspect(t, o.KernelVersion)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kernel, err1 := t.ReadFile(in.KernelPath)
	stub, err2 := t.ReadFile(in.Stub)
	loader, err3 := t.ReadFile(in.BootLoader)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	if err := prepare(t, &o, in, agent); err != nil {
		return nil, fmt.Errorf("prepare /usr: %w", err)
	}
	t.ClampMtimes(o.Epoch)

	o.progress("write /usr (EROFS) and its dm-verity tree")
	usr, err := buildUsr(t, work, o.Epoch)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	o.progress("build initrd and UKI")
	osr, err := t.ReadFile("usr/lib/os-release")
	if err != nil {
		return nil, err
	}
	var pcrKey []byte
	if o.Keys != nil {
		if pcrKey, err = tpm.PCRPubKeyPEM(o.Keys.PCR.Public()); err != nil {
			return nil, err
		}
	}
	initrd, mods, err := initramfs(t, in.KernelVersion, init, o.Modules, osr, pcrKey)
	if err != nil {
		return nil, err
	}
	cmdline := kernelCmdline(usr.RootHash, &o).String()
	sections := []uki.Section{
		{Name: uki.SectionOSRel, Data: osr},
		{Name: uki.SectionCmdline, Data: []byte(cmdline)},
		{Name: uki.SectionUname, Data: []byte(in.KernelVersion)},
		{Name: uki.SectionInitrd, Data: initrd},
		{Name: uki.SectionLinux, Data: kernel},
	}
	signed, err := sign(&o, stub, sections, loader, usr.RootHash)
	if err != nil {
		return nil, err
	}
	var ukiBuf bytes.Buffer
	if err := uki.Build(&ukiBuf, stub, signed.sections); err != nil {
		return nil, fmt.Errorf("build UKI: %w", err)
	}
	ukiBytes := ukiBuf.Bytes()
	if ukiBytes, err = signed.pe(ukiBytes); err != nil {
		return nil, fmt.Errorf("sign UKI: %w", err)
	}
	loader = signed.loader

	o.progress("write disk image")
	d, err := writeDisk(out, &o, usr, loader, ukiBytes, signed)
	if err != nil {
		return nil, err
	}
	if err := out.Sync(); err != nil {
		return nil, fmt.Errorf("sync %s: %w", out.Name(), err)
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	if err := os.Chmod(out.Name(), 0o644); err != nil {
		return nil, err
	}
	updateDir := filepath.Join(o.OutputDir, artifact.DirName(o.Version))
	o.progress("write update artifact")
	if _, err := artifact.Write(updateDir, artifact.Inputs{
		Version: o.Version, UsrHash: usr.RootHash, UsrPath: usr.DataPath, VerityPath: usr.HashPath, UKI: ukiBytes,
		VeritySig: signed.veritySig,
	}); err != nil {
		return nil, fmt.Errorf("write update artifact: %w", err)
	}
	sbomPath := ""
	if len(o.SBOM) > 0 {
		sbomPath = filepath.Join(o.OutputDir, layout.Name+"_"+o.Version+".spdx.json")
		if err := fileutil.WriteAtomic(sbomPath, o.SBOM, 0o644); err != nil {
			os.RemoveAll(updateDir)
			return nil, fmt.Errorf("write SBOM: %w", err)
		}
	}
	if err := os.Rename(out.Name(), final); err != nil {
		os.RemoveAll(updateDir)
		if sbomPath != "" {
			os.Remove(sbomPath)
		}
		return nil, fmt.Errorf("rename disk image into place: %w", err)
	}
	committed = true
	fileutil.SyncDir(o.OutputDir) // best effort: the image is in place
	return &Result{
		Version:        o.Version,
		DiskPath:       final,
		UpdateDir:      updateDir,
		SBOMPath:       sbomPath,
		DiskBytes:      d.diskBytes,
		UsrHash:        hex.EncodeToString(usr.RootHash),
		UsrBytes:       usr.DataBytes,
		UsrSlotBytes:   d.usrSlotBytes,
		UKIBytes:       int64(len(ukiBytes)),
		KernelVersion:  in.KernelVersion,
		Cmdline:        cmdline,
		MissingModules: mods.Missing,
	}, nil
}

// platformCmdline sends the console to both the screen and the first
// serial port (the last console= is /dev/console). systemd.verity=no
// keeps systemd-veritysetup-generator, which also reads usrhash=, from
// setting up /usr a second time on the booted system: ingot-init has done
// it. panic=10 turns a dead PID 1 into a reboot, which boot counting
// needs.
var platformCmdline = layout.ParseCmdline("console=tty0 console=ttyS0,115200 systemd.firstboot=off systemd.verity=no panic=10")

// kernelCmdline pins /usr by its root hash, then the platform's settings,
// ingot-init's settings for the root partition and the caller's extra
// parameters.
func kernelCmdline(rootHash []byte, o *Options) layout.Cmdline {
	boot := layout.DefaultBoot()
	if o.EncryptRoot != layout.EncryptNone {
		boot.Encrypt, boot.RecoveryKey = o.EncryptRoot, !o.NoRecoveryKey
	}
	c := layout.Cmdline{layout.KV(layout.KeyUsrHash, hex.EncodeToString(rootHash))}
	c = append(c, platformCmdline...)
	c = append(c, boot.Params()...)
	return append(c, layout.ParseCmdline(strings.Join(o.Cmdline, " "))...)
}

// readStatic reads a binary that must run without a dynamic loader: the
// initrd has none, and /usr/bin/ingot must not depend on the image's libc.
func readStatic(path, what, flag string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("no %s binary given (%s)", what, flag)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s binary: %w (build it with make, or pass %s)", what, err, flag)
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s binary %s is not an ELF executable: %w", what, path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("%s binary %s is for %v, not x86-64", what, path, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%s binary %s is dynamically linked: build it with CGO_ENABLED=0", what, path)
		}
	}
	return b, nil
}
