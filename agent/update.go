package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
	// Removed are the UKIs pruned from the ESP.
	Removed []string `json:"removed,omitempty"`
}

// ErrSameVersion says the update is the version already running.
var ErrSameVersion = errors.New("that version is already running")

// ErrBusy says another update holds the lock.
var ErrBusy = errors.New("another ingot update is running")

// Update installs the verified artifact in dir into the slot the booted UKI
// does not use. The next boot starts it (three tries; then systemd-boot falls
// back to the running version).
func (a *Agent) Update(ctx context.Context, dir string) (*UpdateResult, error) {
	unlock, err := a.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	info, err := a.bootInfo()
	if err != nil {
		return nil, err
	}
	art, err := artifact.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := art.Verify(ctx, artifact.WithArch(artifact.ArchX86_64)); err != nil {
		return nil, err
	}
	a.step("verified %s", art.Manifest.Version)
	m := art.Manifest
	if m.UsrHash == info.UsrHash {
		return nil, fmt.Errorf("update to %s: %w", m.Version, ErrSameVersion)
	}
	d, err := a.openDisk(info, true)
	if err != nil {
		return nil, err
	}
	defer d.f.Close()
	s, err := slots(d.table)
	if err != nil {
		return nil, err
	}
	bootedUsr, _ := layout.UsrPartUUIDs(mustHex(info.UsrHash))
	cur, target := s[0], s[1]
	if s[1].Usr.UUID == bootedUsr {
		cur, target = s[1], s[0]
	} else if s[0].Usr.UUID != bootedUsr {
		return nil, fmt.Errorf("neither slot holds the booted /usr (usrhash %s)", info.UsrHash)
	}
	usrFile, _ := m.File(artifact.RoleUsr)
	verFile, _ := m.File(artifact.RoleVerity)
	if usrFile.Size > target.Usr.Size(512) || verFile.Size > target.Verity.Size(512) {
		return nil, fmt.Errorf("version %s does not fit slot %s: /usr is %d MiB, the slot %d MiB", m.Version, target.Name, usrFile.Size>>20, target.Usr.Size(512)>>20)
	}
	ukiData, err := os.ReadFile(art.Path(artifact.RoleUKI))
	if err != nil {
		return nil, err
	}
	if err := a.checkSignature(ukiData); err != nil {
		return nil, err
	}
	sig, err := a.checkVeritySig(art)
	if err != nil {
		return nil, err
	}
	if target.hasVSig && int64(len(sig)) > target.VSig.Size(512) {
		return nil, fmt.Errorf("the verity signature of %s (%d bytes) does not fit slot %s's usr-verity-sig partition", m.Version, len(sig), target.Name)
	}
	res := &UpdateResult{FromVersion: slotVersion(cur.Usr), Version: m.Version, Slot: target.Name, UsrHash: m.UsrHash, UKI: layout.UKIName(m.Version, 3)}
	err = a.withESP(d, func(esp string) error {
		return a.install(ctx, d, esp, info.UsrHash, target, art, ukiData, sig, res)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// install does the ordered writes: retire what points at the target slot,
// invalidate it, write data, label it, install the UKI, prune.
func (a *Agent) install(ctx context.Context, d *disk, esp, booted string, target slot, art *artifact.Artifact, ukiData, sig []byte, res *UpdateResult) error {
	entries, err := listEntries(esp, booted)
	if err != nil {
		return err
	}
	oldUsr := target.Usr.UUID
	if err := checkESPRoom(esp, entries, oldUsr, art.Manifest.UsrHash, int64(len(ukiData))); err != nil {
		return err
	}
	for _, e := range entries {
		if e.Booted || e.UsrHash == "" {
			continue
		}
		if u, _ := layout.UsrPartUUIDs(mustHex(e.UsrHash)); u == oldUsr || e.UsrHash == art.Manifest.UsrHash {
			// This UKI boots the slot about to be overwritten (or is a stale
			// copy of the new version): remove it first.
			if err := removeEntry(esp, e.File); err != nil {
				return fmt.Errorf("remove %s: %w", e.File, err)
			}
			res.Removed = append(res.Removed, e.File)
		}
	}
	a.step("retired old entries")
	if err := a.labelSlot(d, target, nil, "", false); err != nil {
		return fmt.Errorf("invalidate slot %s: %w", target.Name, err)
	}
	a.step("invalidated slot %s", target.Name)
	progress := func(done, total int64) { a.step("writing usr %d/%d MiB", done>>20, total>>20) }
	if err := copyToDisk(ctx, d.f, target.Usr.Offset(512), art.Path(artifact.RoleUsr), progress); err != nil {
		return fmt.Errorf("write usr of slot %s: %w", target.Name, err)
	}
	a.step("writing verity")
	if err := copyToDisk(ctx, d.f, target.Verity.Offset(512), art.Path(artifact.RoleVerity), nil); err != nil {
		return fmt.Errorf("write verity of slot %s: %w", target.Name, err)
	}
	if target.hasVSig {
		// The whole partition: a shorter signature must not leave the
		// tail of an older one behind.
		buf := make([]byte, target.VSig.Size(512))
		copy(buf, sig)
		if _, err := d.f.WriteAt(buf, target.VSig.Offset(512)); err != nil {
			return fmt.Errorf("write verity signature of slot %s: %w", target.Name, err)
		}
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", d.path, err)
	}
	a.step("synced slot %s", target.Name)
	if err := a.labelSlot(d, target, mustHex(art.Manifest.UsrHash), art.Manifest.Version, sig != nil); err != nil {
		return fmt.Errorf("label slot %s: %w", target.Name, err)
	}
	a.step("labelled slot %s", target.Name)
	if err := installUKI(esp, res.UKI, ukiData, func() { a.step("wrote UKI") }); err != nil {
		return err
	}
	a.step("installed UKI %s", res.UKI)
	if err := a.prune(esp, booted, art.Manifest.UsrHash, res); err != nil {
		return err
	}
	a.step("done")
	return nil
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

// checkVeritySig returns the artifact's verity signature after checking
// it against the verity certificate the running image trusts
// (/usr/lib/ingot/keys/verity.crt) and the artifact's usrhash. A machine
// that trusts a verity key refuses an artifact without a signature; an
// unsigned machine keeps a signature it cannot check, so the slot still
// carries it.
func (a *Agent) checkVeritySig(art *artifact.Artifact) ([]byte, error) {
	var sig []byte
	if _, ok := art.Manifest.File(artifact.RoleVeritySig); ok {
		b, err := os.ReadFile(art.Path(artifact.RoleVeritySig))
		if err != nil {
			return nil, err
		}
		sig = b
	}
	p := a.path("/usr/" + layout.TrustDir + "/verity.crt")
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return sig, nil
	}
	if sig == nil {
		return nil, fmt.Errorf("version %s has no verity signature, and this machine requires /usr signed by its verity key (%s)", art.Manifest.Version, p)
	}
	roots, err := trust.LoadCertificates(p)
	if err != nil {
		return nil, err
	}
	h, err := trust.VerifyRootHashSig(sig, roots)
	if err != nil {
		return nil, fmt.Errorf("the /usr of version %s is not signed by this machine's verity key: %w", art.Manifest.Version, err)
	}
	if hex.EncodeToString(h) != art.Manifest.UsrHash {
		return nil, fmt.Errorf("the verity signature of version %s is for root hash %x, not its usrhash %s", art.Manifest.Version, h, art.Manifest.UsrHash)
	}
	return sig, nil
}

// ErrESPFull says the new UKI does not fit on the ESP.
var ErrESPFull = errors.New("the ESP is too full for the new UKI")

// checkESPRoom makes sure the UKI fits once the entries that boot the
// target slot are gone, before anything is changed.
func checkESPRoom(esp string, entries []Entry, oldUsr gpt.GUID, newHash string, need int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(esp, &st); err != nil {
		return fmt.Errorf("statfs ESP: %w", err)
	}
	free := int64(st.Bavail) * st.Bsize
	for _, e := range entries {
		if e.Booted || e.UsrHash == "" {
			continue
		}
		if u, _ := layout.UsrPartUUIDs(mustHex(e.UsrHash)); u == oldUsr || e.UsrHash == newHash {
			if fi, err := os.Stat(filepath.Join(esp, layout.UKIDir, e.File)); err == nil {
				free += fi.Size()
			}
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
func (a *Agent) labelSlot(d *disk, s slot, rootHash []byte, version string, signed bool) error {
	usrUUID, verUUID := layout.UsrPartUUIDs(rootHash)
	usrName, verName := layout.UsrLabel(version), layout.VerityLabel(version)
	if rootHash == nil {
		usrUUID, verUUID = derived(d.table.DiskGUID, "empty-usr-"+s.Name), derived(d.table.DiskGUID, "empty-verity-"+s.Name)
		usrName, verName = layout.EmptyLabel, layout.EmptyLabel
	}
	for i := range d.table.Partitions {
		p := &d.table.Partitions[i]
		switch p.Index {
		case s.Usr.Index:
			p.UUID, p.Name = usrUUID, usrName
		case s.Verity.Index:
			p.UUID, p.Name = verUUID, verName
		case s.VSig.Index:
			if s.hasVSig {
				p.Name = layout.EmptyLabel
				if signed && rootHash != nil {
					p.Name = layout.VeritySigLabel(version)
				}
			}
		}
	}
	if err := d.table.Write(d.f, d.size); err != nil {
		return err
	}
	return d.f.Sync()
}

func derived(disk gpt.GUID, purpose string) gpt.GUID {
	sum := sha256.Sum256(append(disk[:], purpose...))
	var b [16]byte
	copy(b[:], sum[:16])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return gpt.GUIDFromBytes(b)
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

// copyToDisk copies the file at path to w at off, telling progress every
// 64 MiB.
func copyToDisk(ctx context.Context, w io.WriterAt, off int64, path string, progress func(done, total int64)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	buf := make([]byte, 4<<20)
	for pos := off; ; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := f.Read(buf)
		if n > 0 {
			if _, err := w.WriteAt(buf[:n], pos); err != nil {
				return err
			}
			pos += int64(n)
			if done := pos - off; progress != nil && done%(64<<20) == 0 {
				progress(done, fi.Size())
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}

// lock takes /run/ingot/update.lock so two updates never interleave.
func (a *Agent) lock() (func(), error) {
	p := a.path("/run/ingot/update.lock")
	if err := os.MkdirAll(a.path("/run/ingot"), 0o755); err != nil {
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
