package diskimage

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/diskimage/rootfs"
	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/internal/fileutil"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/tpm"
)

// Build makes the disk image: NewPlan, then Plan.Build. On any error
// nothing is left in OutputDir, and the directories Build made for it are
// removed.
func Build(ctx context.Context, o Options) (*Result, error) {
	p, err := NewPlan(o)
	if err != nil {
		return nil, err
	}
	return p.Build(ctx)
}

// Build makes the image in a work directory and a temporary file in the
// output directory, then commits it: the update artifact, the SBOM and,
// last, the disk image under its name. On any error nothing is left in
// the output directory, and the directories Build made for it are
// removed.
func (p *Plan) Build(ctx context.Context) (*Result, error) {
	undoDirs, err := fileutil.MkdirAllUndo(p.outputDir, 0o755)
	if err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			undoDirs() // runs last: after the temporary files are gone
		}
	}()
	disk, err := os.CreateTemp(p.outputDir, "."+p.diskName()+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("output directory %s is not writable: %w", p.outputDir, err)
	}
	defer func() {
		if !committed {
			disk.Close()
			os.Remove(disk.Name())
		}
	}()
	work := p.tempDir
	if work == "" {
		if work, err = os.MkdirTemp(p.outputDir, ".ingot-work-*"); err != nil {
			return nil, fmt.Errorf("create work directory: %w", err)
		}
		defer os.RemoveAll(work)
	}
	m, err := p.make(ctx, disk, work)
	if err != nil {
		return nil, err
	}
	res, err := p.commit(m, disk)
	if err != nil {
		return nil, err
	}
	committed = true
	return res, nil
}

func (p *Plan) diskName() string { return layout.Name + "_" + p.version + ".raw" }

// diskFile is where make writes the disk image: it is sized first, then
// written at offsets, so slot B stays sparse.
type diskFile interface {
	io.WriterAt
	Truncate(size int64) error
}

// made is an image made and not yet committed: the disk written, what the
// update artifact is made of (the files of /usr in the work directory)
// and the SBOM.
type made struct {
	usr       *usrImage
	uki       []byte
	veritySig []byte
	sbom      []byte
	res       Result
}

// make reads the root filesystem, writes /usr, the UKI and the disk image
// to disk, and makes the SBOM, all dated with the epoch it resolves.
func (p *Plan) make(ctx context.Context, disk diskFile, work string) (*made, error) {
	init, err := readStatic(p.initPath, "ingot-init", "InitPath")
	if err != nil {
		return nil, err
	}
	agent, err := readStatic(p.agentPath, "ingot", "AgentPath")
	if err != nil {
		return nil, err
	}
	p.report("read root filesystem")
	t, err := rootfs.Load(p.rootFS, rootfs.Options{TempDir: work, MaxContentBytes: p.rootFSMaxBytes})
	if errors.Is(err, rootfs.ErrTooLarge) {
		return nil, &FieldError{Field: "RootFSMaxBytes", Problem: "the root filesystem is beyond the bound (raise it if it is meant to be this large)", Err: err}
	}
	if err != nil {
		return nil, err
	}
	defer t.Close()
	epoch := p.epoch
	if epoch == EpochFromContent {
		epoch = newestMtime(t)
	}
	in, err := inspect(t, p.kernelVersion)
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
	if err := checkHealthChecks(t, p.healthChecks); err != nil {
		return nil, err
	}
	if err := prepare(t, p.version, epoch, agent, p.signer.keys, p.units); err != nil {
		return nil, fmt.Errorf("prepare /usr: %w", err)
	}
	if err := putExtensions(t, p.extensions, p.version, p.signer.keys, epoch); err != nil {
		return nil, err
	}
	if p.machineConfig != nil {
		t.PutFile("usr/"+layout.ConfigDefaultsPath, p.machineConfig, 0o600, epoch) // may hold secrets
	}
	if p.signedConfig {
		t.PutFile("usr/"+layout.ConfigCertPath, pemCert(p.signer.keys.Verity.Cert.Raw), 0o644, epoch)
	}
	t.ClampMtimes(epoch)

	comp, err := usrCompression(p.compression, t, in.KernelVersion)
	if err != nil {
		return nil, err
	}
	p.report("write /usr (EROFS, compression " + comp.String() + ") and its dm-verity tree")
	usr, err := buildUsr(t, work, epoch, comp)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	p.report("build initrd and UKI")
	boot, err := p.makeBoot(t, in, bootInputs{init: init, kernel: kernel, stub: stub, loader: loader}, usr.RootHash)
	if err != nil {
		return nil, err
	}

	p.report("write disk image")
	c := &diskContents{version: p.version, epoch: epoch, usr: usr, loader: boot.signed.loader, uki: boot.uki, signed: boot.signed}
	l, err := layoutDisk(c, p.sizes)
	if err != nil {
		return nil, err
	}
	if err := disk.Truncate(l.diskBytes); err != nil {
		return nil, fmt.Errorf("size disk image: %w", err)
	}
	if err := l.write(disk, c); err != nil {
		return nil, err
	}
	sbom, err := p.sbomAt(epoch)
	if err != nil {
		return nil, err
	}
	return &made{usr: usr, uki: boot.uki, veritySig: boot.signed.veritySig, sbom: sbom, res: Result{
		Version:        p.version,
		DiskBytes:      l.diskBytes,
		UsrHash:        hex.EncodeToString(usr.RootHash),
		UsrBytes:       usr.DataBytes,
		UsrSlotBytes:   l.usrSlotBytes,
		UKIBytes:       int64(len(boot.uki)),
		KernelVersion:  in.KernelVersion,
		Cmdline:        boot.cmdline,
		MissingModules: boot.missingModules,
	}}, nil
}

// sbomAt is the SBOM the plan was given, or the one it makes, dated epoch.
func (p *Plan) sbomAt(epoch int64) ([]byte, error) {
	if p.makeSBOM == nil {
		return p.sbom, nil
	}
	b, err := p.makeSBOM(time.Unix(epoch, 0))
	if err != nil {
		return nil, fmt.Errorf("make SBOM: %w", err)
	}
	return b, nil
}

// bootInputs are the binaries the boot is made of.
type bootInputs struct{ init, kernel, stub, loader []byte }

// boot is the UKI that pins /usr, signed if the plan signs, with what it
// was made of.
type boot struct {
	uki            []byte
	signed         *signing
	cmdline        string
	missingModules []string
}

// makeBoot builds the initrd and the UKI that pins rootHash, and signs
// them and systemd-boot when the plan signs.
func (p *Plan) makeBoot(t *rootfs.Tree, in *Input, b bootInputs, rootHash []byte) (*boot, error) {
	osr, err := t.ReadFile("usr/lib/os-release")
	if err != nil {
		return nil, err
	}
	var pcrKey []byte
	if k := p.signer.keys; k != nil {
		if pcrKey, err = tpm.PCRPubKeyPEM(k.PCR.Public()); err != nil {
			return nil, err
		}
	}
	initrd, mods, err := initramfs(t, in.KernelVersion, b.init, p.modules, osr, pcrKey)
	if err != nil {
		return nil, err
	}
	cmdline := kernelCmdline(rootHash, p.cmdline).String()
	sections := []uki.Section{
		{Name: uki.SectionOSRel, Data: osr},
		{Name: uki.SectionCmdline, Data: []byte(cmdline)},
		{Name: uki.SectionUname, Data: []byte(in.KernelVersion)},
		{Name: uki.SectionInitrd, Data: initrd},
		{Name: uki.SectionLinux, Data: b.kernel},
	}
	signed, err := p.signer.sign(b.stub, sections, b.loader, rootHash)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := uki.Build(&buf, b.stub, signed.sections); err != nil {
		return nil, fmt.Errorf("build UKI: %w", err)
	}
	img, err := signed.pe(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("sign UKI: %w", err)
	}
	return &boot{uki: img, signed: signed, cmdline: cmdline, missingModules: mods.Missing}, nil
}

// commit puts a made image into the output directory: the update
// artifact, the SBOM, and last the disk image (written to disk, a
// temporary file there) under its name.
func (p *Plan) commit(m *made, disk *os.File) (*Result, error) {
	if err := disk.Sync(); err != nil {
		return nil, fmt.Errorf("sync %s: %w", disk.Name(), err)
	}
	if err := disk.Close(); err != nil {
		return nil, err
	}
	if err := os.Chmod(disk.Name(), 0o644); err != nil {
		return nil, err
	}
	res := m.res
	res.UpdateDir = filepath.Join(p.outputDir, artifact.DirName(p.version))
	p.report("write update artifact")
	if _, err := artifact.Write(res.UpdateDir, artifact.Inputs{
		Version: p.version, UsrHash: m.usr.RootHash, UsrPath: m.usr.DataPath, VerityPath: m.usr.HashPath, UKI: m.uki,
		VeritySig: m.veritySig,
	}); err != nil {
		return nil, fmt.Errorf("write update artifact: %w", err)
	}
	if len(m.sbom) > 0 {
		res.SBOMPath = filepath.Join(p.outputDir, layout.Name+"_"+p.version+".spdx.json")
		if err := fileutil.WriteAtomic(res.SBOMPath, m.sbom, 0o644); err != nil {
			os.RemoveAll(res.UpdateDir)
			return nil, fmt.Errorf("write SBOM: %w", err)
		}
	}
	res.DiskPath = filepath.Join(p.outputDir, p.diskName())
	if err := os.Rename(disk.Name(), res.DiskPath); err != nil {
		os.RemoveAll(res.UpdateDir)
		if res.SBOMPath != "" {
			os.Remove(res.SBOMPath)
		}
		return nil, fmt.Errorf("rename disk image into place: %w", err)
	}
	fileutil.SyncDir(p.outputDir) // best effort: the image is in place
	return &res, nil
}
