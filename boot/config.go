package boot

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ingot-linux/ingot/format/fat"
	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/format/iso9660"
	"github.com/ingot-linux/ingot/internal/fileutil"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/machineconfig"
	"github.com/ingot-linux/ingot/trust"
)

// dmiTablePath is the kernel's copy of the SMBIOS table.
const dmiTablePath = "/sys/firmware/dmi/tables/DMI"

// configSource is one machine configuration source as read.
type configSource struct {
	name string // "image", "esp", "credential", "nocloud-meta-data", "nocloud-network-config", "nocloud" (user-data)
	data []byte
	bad  bool // could not be read or verified: a problem says why
}

// applyConfig reads the machine configuration's sources in their fixed
// order, and when any changed since the last boot, merges them and
// applies the result into /etc (the overlay) and /var. Each source that
// cannot be read or does not validate is one console line naming it and
// the reason; then nothing is applied and the boot goes on with what the
// machine had. It never fails the boot. The status it leaves for ingot
// status also says how long the step took (tookMs).
func applyConfig(_ context.Context, s *State) error {
	start := time.Now()
	st, problems := configStep(s)
	for _, p := range problems {
		s.logf("config: %s; nothing applied", p)
	}
	if len(problems) == 0 && len(st.Changed) > 0 {
		s.logf("config: applied %d changes from %s", len(st.Changed), sourceNames(st.Sources))
	}
	rec := struct {
		*layout.ConfigStatus
		TookMS int64 `json:"tookMs"`
	}{st, time.Since(start).Milliseconds()}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err == nil {
		p := s.path(layout.ConfigStatusPath)
		if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
			err = os.WriteFile(p, append(b, '\n'), 0o600)
		}
	}
	if err != nil {
		s.logf("config: record status: %v", err)
	}
	return nil
}

func sourceNames(srcs []layout.ConfigSource) string {
	var names []string
	for _, src := range srcs {
		names = append(names, src.Name)
	}
	return strings.Join(names, ", ")
}

// configStep does the work of applyConfig and says how it went, with
// each problem on its own (st.Error joins them).
func configStep(s *State) (st *layout.ConfigStatus, problems []string) {
	st = &layout.ConfigStatus{}
	defer func() { st.Error = strings.Join(problems, "; ") }()
	srcs, problems := readConfigSources(s)
	for _, src := range srcs {
		sum := sha256.Sum256(src.data)
		st.Sources = append(st.Sources, layout.ConfigSource{Name: src.name, SHA256: hex.EncodeToString(sum[:])})
	}
	var cfgs []*machineconfig.Config
	for _, src := range srcs {
		if src.bad {
			continue
		}
		c, ignored, err := parseSource(src.name, src.data)
		st.Ignored = append(st.Ignored, ignored...)
		if err != nil {
			problems = append(problems, strings.ReplaceAll(err.Error(), "\n", "; "))
			continue
		}
		cfgs = append(cfgs, c)
	}
	if len(problems) > 0 {
		return st, problems
	}
	merged := machineconfig.Merge(cfgs...)
	st.Merged = merged.Redacted()
	statePath := s.path(sysroot + "/" + layout.ConfigStatePath)
	if old, err := os.ReadFile(statePath); err == nil && sameSources(old, st.Sources) {
		return st, nil // unchanged: nothing is rendered, nothing rewritten
	}
	root := s.path(sysroot)
	entries, err := machineconfig.Render(root, merged)
	if err == nil {
		st.Changed, err = machineconfig.Apply(root, entries)
	}
	if err != nil {
		return st, []string{fmt.Sprintf("apply %s: %s", sourceNames(st.Sources), strings.ReplaceAll(err.Error(), "\n", "; "))}
	}
	if err := writeConfigState(statePath, st.Sources); err != nil {
		return st, []string{fmt.Sprintf("record applied sources: %v", err)}
	}
	return st, nil
}

func sameSources(old []byte, srcs []layout.ConfigSource) bool {
	var prev []layout.ConfigSource
	return json.Unmarshal(old, &prev) == nil && slices.Equal(prev, srcs)
}

func writeConfigState(p string, srcs []layout.ConfigSource) error {
	if srcs == nil {
		srcs = []layout.ConfigSource{}
	}
	b, err := json.MarshalIndent(srcs, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return fileutil.WriteAtomic(p, append(b, '\n'), 0o600)
}

// readConfigSources reads the sources in order: the image's defaults,
// the ESP's file, the SMBIOS credential, the NoCloud seed. Absent ones
// are skipped; each one that is there and cannot be read is a problem
// naming it, and is marked bad. When the image requires signed
// configuration, every source but the image's own must carry a valid
// signature, or it is such a problem.
func readConfigSources(s *State) (srcs []configSource, problems []string) {
	roots, err := configRoots(s)
	if err != nil {
		return nil, []string{err.Error()}
	}
	files := []sourceFile{
		single("image", s, readImageConfig),
		single("esp", s, readESPConfig),
		single("credential", s, readCredentialConfig),
	}
	files = append(files, readNoCloud(s)...)
	for _, f := range files {
		err := f.err
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err == nil && len(f.data) > machineconfig.MaxBytes:
			err = fmt.Errorf("larger than %d bytes", machineconfig.MaxBytes)
		case err == nil && roots != nil && f.name != "image":
			err = verifyConfigSig(f.data, f.sig, roots)
		}
		src := configSource{name: f.name, data: f.data}
		if err != nil {
			src.bad = true
			problems = append(problems, fmt.Sprintf("%s: %v", f.name, err))
		}
		srcs = append(srcs, src)
	}
	return srcs, problems
}

// sourceFile is one configuration document as a source gave it.
type sourceFile struct {
	name      string
	data, sig []byte
	err       error // fs.ErrNotExist: the source is not there
}

// single reads a source that gives one document.
func single(name string, s *State, read func(*State) (data, sig []byte, err error)) sourceFile {
	data, sig, err := read(s)
	return sourceFile{name: name, data: data, sig: sig, err: err}
}

// configRoots loads the certificate signed sources must chain to, when
// the command line requires signed configuration; nil when it does not.
// It comes from the verity-protected /usr, as the image's defaults do.
func configRoots(s *State) ([]*x509.Certificate, error) {
	if !s.Params.RequireSignedConfig {
		return nil, nil
	}
	roots, err := trust.LoadCertificates(s.path(sysroot + "/usr/" + layout.ConfigCertPath))
	if err != nil {
		return nil, fmt.Errorf("%s=yes, and the configuration certificate: %w", layout.KeyConfigSigned, err)
	}
	return roots, nil
}

// verifyConfigSig checks a source's detached signature (nil: none).
func verifyConfigSig(data, sig []byte, roots []*x509.Certificate) error {
	if sig == nil {
		return fmt.Errorf("not signed, and this image applies only signed configuration (%s=yes; ingot config sign)", layout.KeyConfigSigned)
	}
	if _, err := trust.VerifyDetached(data, sig, roots); err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	return nil
}

func readImageConfig(s *State) ([]byte, []byte, error) {
	data, err := os.ReadFile(s.path(sysroot + "/usr/" + layout.ConfigDefaultsPath))
	return data, nil, err // trusted as part of /usr
}

// readESPConfig reads ingot/config.yaml and its signature from the boot
// disk's ESP with the FAT reader: nothing is mounted.
func readESPConfig(s *State) ([]byte, []byte, error) {
	if s.Disk == "" {
		return nil, nil, fs.ErrNotExist // no boot disk found: no ESP
	}
	disk, err := s.openDisk()
	if err != nil {
		return nil, nil, err
	}
	defer disk.f.Close()
	t, err := gpt.Read(disk.f, disk.size, disk.sectorSize)
	if err != nil {
		return nil, nil, fmt.Errorf("read partition table of %s: %w", s.Disk, err)
	}
	p, ok := t.Find(func(p gpt.Partition) bool { return p.Type == layout.TypeESP })
	if !ok {
		return nil, nil, fs.ErrNotExist
	}
	return readFATPair(io.NewSectionReader(disk.f, p.Offset(t.SectorSize), p.Size(t.SectorSize)), layout.ConfigESPPath)
}

// readFATPair reads name and, if there, its signature (name.sig) from a
// FAT volume.
func readFATPair(r io.ReaderAt, name string) (data, sig []byte, err error) {
	fsys, err := fat.Open(r)
	if err != nil {
		return nil, nil, fmt.Errorf("read FAT volume: %w", err)
	}
	return readPair(fsys, name)
}

// readPair reads name and, if there, its signature (name.sig).
func readPair(fsys fs.FS, name string) (data, sig []byte, err error) {
	if data, err = readLimited(fsys, name); err != nil {
		return nil, nil, err
	}
	sig, err = readLimited(fsys, name+layout.ConfigSigSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return data, nil, nil
	}
	return data, sig, err
}

// readLimited reads a file of at most machineconfig.MaxBytes (one byte
// more, so that a larger one is seen).
func readLimited(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, machineconfig.MaxBytes+1))
}

// readCredentialConfig finds the ingot.config credential and its
// signature (ingot.config.sig) in the SMBIOS type 11 strings the
// hypervisor passed, in the whole SMBIOS table.
func readCredentialConfig(s *State) ([]byte, []byte, error) {
	table, err := os.ReadFile(s.path(dmiTablePath))
	if err != nil {
		return nil, nil, fs.ErrNotExist // no SMBIOS: no credential
	}
	data, ok := machineconfig.CredentialFromDMITable(table, layout.ConfigCredential)
	if !ok {
		return nil, nil, fs.ErrNotExist
	}
	sig, _ := machineconfig.CredentialFromDMITable(table, layout.ConfigCredential+layout.ConfigSigSuffix)
	return data, sig, nil
}

// NoCloud seed documents, in the order they are merged: user-data
// last, so that its host name wins over meta-data's (as in cloud-init).
var noCloudFiles = []struct{ file, source string }{
	{"meta-data", "nocloud-meta-data"},
	{"network-config", "nocloud-network-config"},
	{"user-data", "nocloud"},
}

// readNoCloud reads a NoCloud seed: a FAT12, FAT16 or FAT32 volume or an
// ISO 9660 image labelled CIDATA (in any case), on a disk or partition
// other than the boot disk's. The first one found, in the kernel's order
// of block devices, is the seed. It must hold user-data; meta-data and
// network-config are read when there.
func readNoCloud(s *State) []sourceFile {
	names, err := os.ReadDir(s.path("/sys/class/block"))
	if err != nil {
		return nil
	}
	boot := strings.TrimPrefix(s.Disk, "/dev/")
	for _, n := range names {
		name := n.Name()
		if boot != "" && strings.HasPrefix(name, boot) || strings.HasPrefix(name, "dm-") || strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") {
			continue
		}
		if files, ok := readSeed(s.path("/dev/" + name)); ok {
			return files
		}
	}
	return nil
}

// readSeed reads the documents of dev if it is a NoCloud seed.
func readSeed(dev string) (files []sourceFile, ok bool) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, false
	}
	fsys, kind, err := openSeed(io.NewSectionReader(f, 0, size))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		return []sourceFile{{name: "nocloud", err: err}}, true
	}
	for _, d := range noCloudFiles {
		data, sig, err := readPair(fsys, d.file)
		switch {
		case errors.Is(err, fs.ErrNotExist) && d.file == "user-data":
			err = fmt.Errorf("%s (%s) is labelled %s but has no user-data", dev, kind, layout.ConfigNoCloudLabel)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			err = fmt.Errorf("%s (%s): %s: %w", dev, kind, d.file, err)
		}
		files = append(files, sourceFile{name: d.source, data: data, sig: sig, err: err})
	}
	return files, true
}

// parseSource reads one source's document in the format its source
// gives.
func parseSource(name string, data []byte) (*machineconfig.Config, []string, error) {
	switch name {
	case "nocloud-meta-data":
		return machineconfig.ParseMetaData(name, data)
	case "nocloud-network-config":
		return machineconfig.ParseNetworkConfig(name, data)
	}
	return machineconfig.ParseAny(name, data)
}

// openSeed opens r's filesystem when it is a NoCloud seed, and says which
// kind it is; fs.ErrNotExist when it is not a seed.
func openSeed(r *io.SectionReader) (fs.FS, string, error) {
	var bs [512]byte
	if _, err := r.ReadAt(bs[:], 0); err != nil {
		return nil, "", fs.ErrNotExist
	}
	if kind, ok := fatSeed(bs[:]); ok {
		fsys, err := fat.Open(r)
		if err != nil {
			return nil, "", fmt.Errorf("the %s seed: %w", kind, err)
		}
		return fsys, kind, nil
	}
	var pvd [iso9660.SectorSize]byte
	if _, err := r.ReadAt(pvd[:], 16*iso9660.SectorSize); err != nil || !iso9660.IsISO9660(pvd[:]) {
		return nil, "", fs.ErrNotExist
	}
	v, err := iso9660.Open(r)
	if err != nil {
		if strings.EqualFold(strings.TrimRight(string(pvd[40:72]), " "), layout.ConfigNoCloudLabel) {
			return nil, "", fmt.Errorf("the ISO 9660 seed: %w", err)
		}
		return nil, "", fs.ErrNotExist // some other damaged image
	}
	if !strings.EqualFold(v.Label(), layout.ConfigNoCloudLabel) {
		return nil, "", fs.ErrNotExist
	}
	return v, "ISO 9660", nil
}

// fatSeed reports whether a boot sector is a FAT volume's with the
// NoCloud label, and which FAT: the label and type are at 0x47 and 0x52
// in a FAT32 boot sector, at 0x2B and 0x36 in a FAT12 or FAT16 one.
func fatSeed(bs []byte) (string, bool) {
	if bs[510] != 0x55 || bs[511] != 0xAA {
		return "", false
	}
	for _, off := range []struct{ label, kind int }{{0x47, 0x52}, {0x2B, 0x36}} {
		kind := strings.TrimRight(string(bs[off.kind:off.kind+8]), " ")
		if (kind == "FAT32" || kind == "FAT12" || kind == "FAT16") &&
			strings.EqualFold(strings.TrimRight(string(bs[off.label:off.label+11]), " "), layout.ConfigNoCloudLabel) {
			return kind, true
		}
	}
	return "", false
}
