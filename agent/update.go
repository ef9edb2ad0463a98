package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

// UpdateResult says what Update did.
type UpdateResult struct {
	FromVersion string `json:"fromVersion"`
	Version     string `json:"version"`
	Slot        string `json:"slot"`
	UsrHash     string `json:"usrhash"`
	UKI         string `json:"uki"`
	// Downgrade is set when Version is older than the running version.
	Downgrade bool `json:"downgrade,omitempty"`
	// NextBoot says how systemd-boot comes to start Version next: as the
	// newest entry, or because LoaderEntryDefault names it.
	NextBoot string `json:"nextBoot"`
	// Removed are the UKIs pruned from the ESP.
	Removed []string `json:"removed,omitempty"`
}

// ErrSameVersion says the update is the version already running.
var ErrSameVersion = errors.New("that version is already running")

// ErrBusy says another update holds the lock.
var ErrBusy = errors.New("another ingot update is running")

// ErrDowngrade says the update is older than the running version and
// downgrades were not allowed.
var ErrDowngrade = errors.New("the update is older than the running version (allow it with ingot update --allow-downgrade)")

// UpdateOption configures Update.
type UpdateOption func(*updateOptions)

type updateOptions struct {
	allowDowngrade bool
}

// WithAllowDowngrade lets Update install a version older than the running
// one, and make it systemd-boot's default entry (LoaderEntryDefault), as
// systemd-boot would otherwise keep starting the newest version.
func WithAllowDowngrade(allow bool) UpdateOption {
	return func(o *updateOptions) { o.allowDowngrade = allow }
}

// Update installs the verified artifact in dir into the slot the booted UKI
// does not use. The next boot starts it (three tries; then systemd-boot falls
// back to the running version).
func (a *Agent) Update(ctx context.Context, dir string, opts ...UpdateOption) (*UpdateResult, error) {
	var o updateOptions
	for _, opt := range opts {
		opt(&o)
	}
	unlock, err := a.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	art, err := artifact.Open(dir)
	if err != nil {
		return nil, err
	}
	t, err := a.openTarget(true)
	if err != nil {
		return nil, err
	}
	defer t.d.f.Close()
	p, err := art.OpenPayload(ctx, artifact.WithArch(artifact.ArchX86_64), artifact.WithLimits(t.limits))
	if err != nil {
		return nil, err
	}
	defer p.Close()
	a.step("verified %s", p.Manifest.Version)
	res, err := a.checkUpdate(t.info, p, o)
	if err != nil {
		return nil, err
	}
	res.FromVersion, res.Slot = t.cur.Version(), t.target.Name
	err = a.withESP(t.d, func(esp string) error {
		return a.install(ctx, t.d, esp, t.info.UsrHash, t.target, p, res)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// updateTarget is the boot disk with the booted slot, the one an update
// writes, and the limits that puts on the update's files.
type updateTarget struct {
	info        *layout.BootInfo
	d           *disk
	cur, target layout.Slot
	limits      artifact.Limits
}

// openTarget opens the boot disk (for writing if write) and finds the
// slots. The caller closes t.d.f.
func (a *Agent) openTarget(write bool) (*updateTarget, error) {
	info, err := a.bootInfo()
	if err != nil {
		return nil, err
	}
	d, err := a.openDisk(info, write)
	if err != nil {
		return nil, err
	}
	t := &updateTarget{info: info, d: d}
	if t.cur, t.target, err = pickSlots(d, info); err == nil {
		t.limits, err = a.slotLimits(d, t.target)
	}
	if err != nil {
		d.f.Close()
		return nil, err
	}
	return t, nil
}

// pickSlots returns the booted slot and the other one, the target.
func pickSlots(d *disk, info *layout.BootInfo) (cur, target layout.Slot, err error) {
	s, err := layout.ABSlots(d.table)
	if err != nil {
		return cur, target, err
	}
	bootedUsr, _ := layout.UsrPartUUIDs(mustHex(info.UsrHash))
	switch bootedUsr {
	case s[0].Usr.UUID:
		return s[0], s[1], nil
	case s[1].Usr.UUID:
		return s[1], s[0], nil
	}
	return cur, target, fmt.Errorf("neither slot holds the booted /usr (usrhash %s)", info.UsrHash)
}

// slotLimits bounds an artifact's files by the target slot's partitions
// and the ESP, so nothing larger is read, let alone written.
func (a *Agent) slotLimits(d *disk, target layout.Slot) (artifact.Limits, error) {
	esps := d.table.ByType(layout.TypeESP)
	if len(esps) != 1 {
		return nil, fmt.Errorf("want one ESP on %s, found %d", d.path, len(esps))
	}
	l := artifact.Limits{
		artifact.RoleUsr:    {Bytes: target.Usr.Size(d.sectorSize), What: "slot " + target.Name + "'s usr partition"},
		artifact.RoleVerity: {Bytes: target.Verity.Size(d.sectorSize), What: "slot " + target.Name + "'s usr-verity partition"},
		artifact.RoleUKI:    {Bytes: esps[0].Size(d.sectorSize), What: "the ESP"},
	}
	if target.VeritySig != nil {
		l[artifact.RoleVeritySig] = artifact.Limit{Bytes: target.VeritySig.Size(d.sectorSize), What: "slot " + target.Name + "'s usr-verity-sig partition"}
	}
	return l, nil
}

// checkUpdate checks what needs no disk writes: a new /usr, a version
// not older than the running one (unless allowed), the UKI's signature,
// the verity signature and the sealed root.
func (a *Agent) checkUpdate(info *layout.BootInfo, p *artifact.Payload, o updateOptions) (*UpdateResult, error) {
	m := p.Manifest
	if m.UsrHash == info.UsrHash {
		return nil, fmt.Errorf("update to %s: %w", m.Version, ErrSameVersion)
	}
	down, err := a.checkVersion(m.Version, o.allowDowngrade)
	if err != nil {
		return nil, err
	}
	if err := a.checkSignature(p.UKI); err != nil {
		return nil, err
	}
	if err := a.checkVeritySig(p); err != nil {
		return nil, err
	}
	if err := a.checkSealedRoot(info, m.Version, p.UKI); err != nil {
		return nil, err
	}
	return &UpdateResult{Version: m.Version, UsrHash: m.UsrHash, UKI: layout.UKIName(m.Version, 3), Downgrade: down}, nil
}

// checkVersion compares version with the running one as systemd-boot
// orders entries, and reports whether it is a downgrade.
func (a *Agent) checkVersion(version string, allowDowngrade bool) (bool, error) {
	running := osReleaseField(a.path("/usr/lib/os-release"), "IMAGE_VERSION")
	if running == "" {
		return false, errors.New("the running version is unknown: /usr/lib/os-release has no IMAGE_VERSION")
	}
	switch c := layout.CompareVersions(version, running); {
	case c == 0:
		return false, fmt.Errorf("version %s is the running version, with another /usr: give the new build another version", version)
	case c > 0:
		return false, nil
	case !allowDowngrade:
		return false, fmt.Errorf("version %s, running %s: %w", version, running, ErrDowngrade)
	}
	return true, nil
}

// install does the ordered writes: retire what points at the target slot,
// invalidate it, write data, label it, install the UKI, make it the
// default, prune.
func (a *Agent) install(ctx context.Context, d *disk, esp, booted string, target layout.Slot, p *artifact.Payload, res *UpdateResult) error {
	m := p.Manifest
	entries, err := listEntries(esp, booted)
	if err != nil {
		return err
	}
	retire := retired(entries, target.Usr.UUID, m.UsrHash)
	if err := checkESP(esp, retire, res, int64(len(p.UKI))); err != nil {
		return err
	}
	for _, e := range retire {
		if err := removeEntry(esp, e.File); err != nil {
			return fmt.Errorf("remove %s: %w", e.File, err)
		}
		res.Removed = append(res.Removed, e.File)
	}
	a.step("retired old entries")
	if err := a.labelSlot(d, target, nil, "", false); err != nil {
		return fmt.Errorf("invalidate slot %s: %w", target.Name, err)
	}
	a.step("invalidated slot %s", target.Name)
	if err := a.writeSlot(ctx, d, target, p); err != nil {
		return err
	}
	if err := a.labelSlot(d, target, mustHex(m.UsrHash), m.Version, p.VeritySig != nil); err != nil {
		return fmt.Errorf("label slot %s: %w", target.Name, err)
	}
	a.step("labelled slot %s", target.Name)
	if err := installUKI(esp, res.UKI, p.UKI, func() { a.step("wrote UKI") }); err != nil {
		return err
	}
	a.step("installed UKI %s", res.UKI)
	if err := a.setDefault(esp, booted, res); err != nil {
		return err
	}
	if err := a.prune(esp, booted, m.UsrHash, res); err != nil {
		return err
	}
	a.step("done")
	return nil
}

// retired are the entries that boot the slot about to be overwritten, or
// are stale copies of the new version: they go first.
func retired(entries []Entry, oldUsr gpt.GUID, newHash string) []Entry {
	var out []Entry
	for _, e := range entries {
		if e.Booted || e.UsrHash == "" {
			continue
		}
		if u, _ := layout.UsrPartUUIDs(mustHex(e.UsrHash)); u == oldUsr || e.UsrHash == newHash {
			out = append(out, e)
		}
	}
	return out
}

// writeSlot copies /usr, its hash tree and the verity signature into the
// invalidated slot, each bounded by its partition and checked against
// the manifest as it is written, and syncs the disk.
func (a *Agent) writeSlot(ctx context.Context, d *disk, target layout.Slot, p *artifact.Payload) error {
	progress := func(done, total int64) { a.step("writing usr %d/%d MiB", done>>20, total>>20) }
	if err := p.CopyTo(ctx, artifact.RoleUsr, d.f, target.Usr.Offset(d.sectorSize), target.Usr.Size(d.sectorSize), progress); err != nil {
		return fmt.Errorf("write usr of slot %s (left empty): %w", target.Name, err)
	}
	a.step("writing verity")
	if err := p.CopyTo(ctx, artifact.RoleVerity, d.f, target.Verity.Offset(d.sectorSize), target.Verity.Size(d.sectorSize), nil); err != nil {
		return fmt.Errorf("write verity of slot %s (left empty): %w", target.Name, err)
	}
	if target.VeritySig != nil {
		// The whole partition: a shorter signature must not leave the
		// tail of an older one behind.
		buf := make([]byte, target.VeritySig.Size(d.sectorSize))
		copy(buf, p.VeritySig)
		if _, err := d.f.WriteAt(buf, target.VeritySig.Offset(d.sectorSize)); err != nil {
			return fmt.Errorf("write verity signature of slot %s: %w", target.Name, err)
		}
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", d.path, err)
	}
	a.step("synced slot %s", target.Name)
	return nil
}

// setDefault makes the new version the next boot. systemd-boot boots the
// newest entry with tries left, so an upgrade needs nothing. A downgrade
// marks the booted entry as a manual rollback does (+0-0, no tries left):
// the older version is then the newest entry with tries left, and should
// it fail its three tries, systemd-boot falls back to the booted one,
// which is still on the ESP. A LoaderEntryDefault EFI variable (bootctl
// set-default) would pin another entry, so it is removed, and the result
// says so.
func (a *Agent) setDefault(esp, booted string, res *UpdateResult) error {
	res.NextBoot = "the newest entry with tries left (systemd-boot's default)"
	if old, err := a.readLoaderVar(loaderEntryDefault); err != nil {
		return err
	} else if old != "" {
		if err := a.removeLoaderVar(loaderEntryDefault); err != nil {
			return fmt.Errorf("installed %s, but the EFI variable LoaderEntryDefault=%s still pins another entry: %w", res.UKI, old, err)
		}
		res.NextBoot += "; LoaderEntryDefault=" + old + " removed"
	}
	if !res.Downgrade {
		return nil
	}
	entries, err := listEntries(esp, booted)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Booted {
			continue
		}
		bad := fmt.Sprintf("%s_%s+0-0.efi", layout.Name, e.Version)
		if err := renameEntry(esp, e.File, bad); err != nil {
			return fmt.Errorf("installed %s, but could not mark %s as rolled back from (the next boot starts it again): %w", res.UKI, e.File, err)
		}
		a.step("marked %s as rolled back from", e.File)
		res.NextBoot = strings.Replace(res.NextBoot, "the newest entry with tries left (systemd-boot's default)",
			fmt.Sprintf("%s, the newest entry with tries left: the running %s is marked as a rollback marks it (%s) and boots again if %s fails its three tries", res.UKI, e.Version, bad, res.Version), 1)
		return nil
	}
	return errors.New("the booted UKI is not on the ESP")
}

// checkSignature requires a UKI signed by a certificate the running image
// trusts (/usr/lib/ingot/keys/db.crt), when the running image is signed.
func (a *Agent) checkSignature(ukiData []byte) error {
	p := a.path("/usr/" + layout.TrustDir + "/db.crt")
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil // an unsigned image accepts unsigned updates
	}
	roots, err := trust.LoadCertificates(p)
	if err != nil {
		return err
	}
	if err := trust.VerifyPE(ukiData, roots); err != nil {
		return fmt.Errorf("the new UKI is not signed by this machine's db key: %w", err)
	}
	return nil
}

// checkVeritySig checks the artifact's verity signature against the
// verity certificate the running image trusts
// (/usr/lib/ingot/keys/verity.crt) and the artifact's usrhash. A machine
// that trusts a verity key refuses an artifact without a signature; an
// unsigned machine keeps a signature it cannot check, so the slot still
// carries it.
func (a *Agent) checkVeritySig(p *artifact.Payload) error {
	m := p.Manifest
	certPath := a.path("/usr/" + layout.TrustDir + "/verity.crt")
	if _, err := os.Stat(certPath); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if p.VeritySig == nil {
		return fmt.Errorf("version %s has no verity signature, and this machine requires /usr signed by its verity key (%s)", m.Version, certPath)
	}
	roots, err := trust.LoadCertificates(certPath)
	if err != nil {
		return err
	}
	h, err := trust.VerifyRootHashSig(p.VeritySig, roots)
	if err != nil {
		return fmt.Errorf("the /usr of version %s is not signed by this machine's verity key: %w", m.Version, err)
	}
	if hex.EncodeToString(h) != m.UsrHash {
		return fmt.Errorf("the verity signature of version %s is for root hash %x, not its usrhash %s", m.Version, h, m.UsrHash)
	}
	return nil
}

// ErrESPFull says the new UKI does not fit on the ESP.
var ErrESPFull = errors.New("the ESP is too full for the new UKI")

// checkESP makes sure, before anything is changed, that the new UKI's
// name is free once the retired entries are gone and that the UKI fits.
func checkESP(esp string, retire []Entry, res *UpdateResult, need int64) error {
	gone := map[string]bool{}
	for _, e := range retire {
		gone[e.File] = true
	}
	if _, err := os.Lstat(filepath.Join(esp, layout.UKIDir, res.UKI)); err == nil && !gone[res.UKI] {
		return fmt.Errorf("%s is already on the ESP; refusing to overwrite it", res.UKI)
	}
	return checkESPRoom(esp, retire, need)
}

// checkESPRoom makes sure the UKI fits once the retired entries are gone.
func checkESPRoom(esp string, retire []Entry, need int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(esp, &st); err != nil {
		return fmt.Errorf("statfs ESP: %w", err)
	}
	free := int64(st.Bavail) * st.Bsize
	for _, e := range retire {
		if fi, err := os.Stat(filepath.Join(esp, layout.UKIDir, e.File)); err == nil {
			free += fi.Size()
		}
	}
	if need+(1<<20) > free {
		return fmt.Errorf("%w: %d MiB free, the UKI needs %d MiB (remove entries with ingot rollback/reset, or make a larger ESP with ingot image --esp-size)", ErrESPFull, free>>20, need>>20+1)
	}
	return nil
}

// labelSlot sets the slot's partition names and PARTUUIDs: from rootHash
// and version, or, with rootHash nil, to _empty with throwaway PARTUUIDs so no
// UKI can find a half-written slot. The usr-verity-sig partition is named
// for the version when signed, else _empty.
func (a *Agent) labelSlot(d *disk, s layout.Slot, rootHash []byte, version string, signed bool) error {
	usrUUID, verUUID := layout.UsrPartUUIDs(rootHash)
	usrName, verName := layout.UsrLabel(version), layout.VerityLabel(version)
	if rootHash == nil {
		disk := d.table.DiskGUID[:]
		usrUUID, verUUID = layout.DeriveGUID(disk, layout.PurposeEmptyUsr(s.Name)), layout.DeriveGUID(disk, layout.PurposeEmptyVerity(s.Name))
		usrName, verName = layout.EmptyLabel, layout.EmptyLabel
	}
	sigName := layout.EmptyLabel
	if signed && rootHash != nil {
		sigName = layout.VeritySigLabel(version)
	}
	for i := range d.table.Partitions {
		p := &d.table.Partitions[i]
		switch {
		case p.Index == s.Usr.Index:
			p.UUID, p.Name = usrUUID, usrName
		case p.Index == s.Verity.Index:
			p.UUID, p.Name = verUUID, verName
		case s.VeritySig != nil && p.Index == s.VeritySig.Index:
			p.Name = sigName
		}
	}
	if err := d.table.Write(d.f, d.size); err != nil {
		return err
	}
	return d.f.Sync()
}

// prune keeps at most Keep UKIs: the booted one, the new one, then the newest.
func (a *Agent) prune(esp, booted, newHash string, res *UpdateResult) error {
	entries, err := listEntries(esp, booted)
	if err != nil {
		return err
	}
	kept := 0
	for _, e := range entries {
		if e.Booted || e.UsrHash == newHash {
			kept++
		}
	}
	for _, e := range entries {
		if e.Booted || e.UsrHash == newHash {
			continue
		}
		if kept < a.cfg.Keep {
			kept++
			continue
		}
		if err := removeEntry(esp, e.File); err != nil {
			return fmt.Errorf("remove %s: %w", e.File, err)
		}
		res.Removed = append(res.Removed, e.File)
	}
	return nil
}

func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}

// lock takes /run/ingot/update.lock so two updates never interleave.
func (a *Agent) lock() (func(), error) {
	p := a.path(layout.RunDir + "/update.lock")
	if err := os.MkdirAll(a.path(layout.RunDir), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrBusy
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}

// UpdateLimits returns the most each file of an update may have on this
// machine: the partitions of the slot an update would write and the ESP.
// Downloads check a manifest against them before fetching anything.
func (a *Agent) UpdateLimits() (artifact.Limits, error) {
	t, err := a.openTarget(false)
	if err != nil {
		return nil, err
	}
	t.d.f.Close()
	return t.limits, nil
}
