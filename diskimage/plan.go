package diskimage

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/machineconfig"
	"github.com/ingot-linux/ingot/trust"
)

// Plan is Options checked and resolved once: defaults filled in, the
// kernel command line's fixed part made, slices copied. Nothing changes it
// after NewPlan; Build makes and commits an image from it. The one value
// not known until the root filesystem is read, the epoch under
// EpochFromContent, is resolved by Build and handed to the stages that
// need it.
type Plan struct {
	rootFS, version, outputDir, tempDir string
	epoch                               int64 // or EpochFromContent
	initPath, agentPath                 string
	kernelVersion                       string
	compression                         string
	// cmdline follows usrhash=: the platform's, ingot-init's and the
	// caller's parameters.
	cmdline        layout.Cmdline
	units          unitSet
	healthChecks   []string
	machineConfig  []byte
	signedConfig   bool // config.crt into /usr
	sizes          diskSizes
	rootFSMaxBytes int64
	signer         signer
	modules        []string
	extensions     []string
	sbom           []byte
	makeSBOM       func(time.Time) ([]byte, error)
	progress       func(string)
	logger         *slog.Logger
}

// NewPlan checks o and resolves its defaults. Every problem is reported,
// each as a *FieldError, joined.
func NewPlan(o Options) (*Plan, error) {
	if err := check(&o); err != nil {
		return nil, err
	}
	p := &Plan{
		rootFS: o.RootFS, version: o.Version, outputDir: o.OutputDir, tempDir: o.TempDir,
		epoch:    o.Epoch,
		initPath: o.InitPath, agentPath: o.AgentPath, kernelVersion: o.KernelVersion,
		compression:    o.Compression,
		cmdline:        bootCmdline(o),
		healthChecks:   slices.Clone(o.HealthChecks),
		machineConfig:  slices.Clone(o.MachineConfig),
		signedConfig:   o.RequireSignedConfig,
		sizes:          diskSizes{usrSlotBytes: o.UsrSlotBytes, espBytes: o.ESPBytes},
		rootFSMaxBytes: o.RootFSMaxBytes,
		signer:         signer{keys: o.Keys, keyDir: o.KeyDir, phases: slices.Clone(o.PCRPhases)},
		modules:        slices.Clone(o.Modules),
		extensions:     slices.Clone(o.Extensions),
		sbom:           slices.Clone(o.SBOM),
		makeSBOM:       o.MakeSBOM,
		progress:       o.Progress,
		logger:         o.Logger,
	}
	deadline := o.BootDeadline
	if deadline == 0 {
		deadline = DefaultBootDeadline
	}
	p.units = ingotUnits(deadline, p.healthChecks, o.Autologin)
	if len(p.signer.phases) == 0 {
		p.signer.phases = DefaultPCRPhases
	}
	if p.modules == nil {
		p.modules = DefaultModules
	}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// check reports every problem with o as a *FieldError; it fills in the
// one default the other checks read (EncryptRoot).
func check(o *Options) error {
	var errs []error
	bad := func(field string, value any, problem string, err error) {
		errs = append(errs, &FieldError{Field: field, Value: value, Problem: problem, Err: err})
	}
	if o.RootFS == "" {
		bad("RootFS", nil, "no root filesystem given", nil)
	}
	if err := layout.CheckVersion(o.Version); err != nil {
		bad("Version", o.Version, "not usable as a version", err)
	}
	if o.OutputDir == "" {
		bad("OutputDir", nil, "no output directory given", nil)
	}
	if o.Epoch < 0 && o.Epoch != EpochFromContent {
		bad("Epoch", o.Epoch, "negative", nil)
	}
	if o.EncryptRoot == "" {
		o.EncryptRoot = layout.EncryptNone
	}
	if err := compressionProblem(o.Compression); err != nil {
		bad("Compression", o.Compression, "not a compression", err)
	}
	switch o.EncryptRoot {
	case layout.EncryptNone:
	case layout.EncryptTPM, layout.EncryptIfTPM:
		if o.Keys == nil {
			bad("EncryptRoot", o.EncryptRoot, "an encrypted root is sealed to the image's PCR key: the image must be signed", nil)
		}
	default:
		bad("EncryptRoot", o.EncryptRoot, "unknown root encryption", layout.CheckEncrypt(o.EncryptRoot))
	}
	if o.RequireSignedConfig && o.Keys == nil {
		bad("RequireSignedConfig", true, "signed configuration is checked against the image's verity certificate: the image must be signed", nil)
	}
	extra := layout.ParseCmdline(strings.Join(o.Cmdline, " "))
	if len(extra.Values(layout.KeyConfigSigned)) > 0 {
		bad("Cmdline", nil, "ingot.config_signed= is set by RequireSignedConfig (--require-signed-config): leave it out", nil)
	}
	if len(extra.Values(layout.KeyUsrHash)) > 0 {
		bad("Cmdline", nil, "the kernel command line's usrhash= is the image's own: leave it out", nil)
	}
	if o.EncryptRoot != layout.EncryptNone && slices.Contains(extra.Values(layout.KeyDebug), "shell") {
		bad("Cmdline", nil, fmt.Sprintf("ingot.debug=shell with an encrypted root (%s): the rescue shell would run with the root unlocked and the TPM still in the initrd phase; leave out one of them", o.EncryptRoot), nil)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"UsrSlotBytes", o.UsrSlotBytes}, {"ESPBytes", o.ESPBytes}, {"RootFSMaxBytes", o.RootFSMaxBytes}} {
		if f.v < 0 {
			bad(f.name, f.v, "a size must not be negative", nil)
		}
	}
	if o.MachineConfig != nil {
		if _, err := machineconfig.Parse(o.MachineConfigName, o.MachineConfig); err != nil {
			bad("MachineConfig", o.MachineConfigName, "invalid machine configuration", err)
		}
	}
	if o.SBOM != nil && o.MakeSBOM != nil {
		bad("MakeSBOM", nil, "set with SBOM: give one of them", nil)
	}
	return errors.Join(errs...)
}

// bootCmdline is the kernel command line after usrhash=: the platform's
// settings, ingot-init's for the root partition and the caller's extra
// parameters.
func bootCmdline(o Options) layout.Cmdline {
	boot := layout.DefaultBoot()
	if o.EncryptRoot != layout.EncryptNone {
		boot.Encrypt, boot.RecoveryKey = o.EncryptRoot, !o.NoRecoveryKey
	}
	boot.RequireSignedConfig = o.RequireSignedConfig
	c := append(layout.Cmdline{}, platformCmdline...)
	c = append(c, boot.Params()...)
	return append(c, layout.ParseCmdline(strings.Join(o.Cmdline, " "))...)
}

// signer is what signs an image: Options.Keys, the directory their .auth
// files are in, and the phases .pcrsig covers. keys nil signs nothing.
type signer struct {
	keys   *trust.Keys
	keyDir string
	phases []string
}

func (p *Plan) report(stage string) {
	if p.progress != nil {
		p.progress(stage)
	}
	p.logger.Debug("image stage", "step", stage)
}
