package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/ext/activate"
	"github.com/ingot-linux/ingot/internal/fileutil"
	"github.com/ingot-linux/ingot/internal/kernel"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

// MaxExtensionBytes bounds an extension image ext add accepts.
const MaxExtensionBytes = 4 << 30

// ExtSys is what activating an extension needs of the kernel and of
// systemd: loop devices, dm-verity, mounts and the merge.
type ExtSys interface {
	activate.Sys
	// Refresh re-merges the sysexts (systemd-sysext refresh).
	Refresh() error
}

// linuxExt is ExtSys on the running system.
type linuxExt struct{ kernel.Linux }

// Unmount detaches a tree a merged overlay still uses; the overlay lets
// go of it when it is rebuilt.
func (linuxExt) Unmount(target string) error {
	err := unix.Unmount(target, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	return err
}

func (linuxExt) Refresh() error {
	if out, err := exec.Command("systemd-sysext", "refresh").CombinedOutput(); err != nil {
		return fmt.Errorf("systemd-sysext refresh: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (a *Agent) extSys() ExtSys {
	if a.cfg.ExtSys != nil {
		return a.cfg.ExtSys
	}
	return linuxExt{}
}

// ExtOptions change what ExtAdd accepts.
type ExtOptions struct {
	// AllowUnsigned accepts an unsigned extension on an unsigned system
	// (never on a signed one).
	AllowUnsigned bool
	// Source is where the image came from (an oci:// reference or a
	// file), recorded so `ingot update` can look there for the build for
	// the next version.
	Source string
}

// Extension is one extension as ext list shows it.
type Extension struct {
	Name      string `json:"name"`
	Kind      string `json:"type,omitempty"`
	OSVersion string `json:"osVersion"`
	RootHash  string `json:"rootHash,omitempty"`
	Signed    bool   `json:"signed"`
	Factory   bool   `json:"factory,omitempty"`
	Source    string `json:"source,omitempty"`
	Merged    bool   `json:"merged"`
	// Why says why an extension is not merged.
	Why string `json:"why,omitempty"`
}

// extHost is what the running /usr says extensions must fit.
func (a *Agent) extHost(allowUnsigned bool) (activate.Host, error) {
	b, err := os.ReadFile(a.path("/usr/lib/os-release"))
	if err != nil {
		return activate.Host{}, fmt.Errorf("read os-release: %w", err)
	}
	id, version, err := ext.OSRelease(b)
	if err == nil {
		err = layout.CheckVersion(version)
	}
	if err != nil {
		return activate.Host{}, fmt.Errorf("os-release: %w", err)
	}
	h := activate.Host{ID: id, Version: version, Root: a.cfg.Root, AllowUnsigned: allowUnsigned}
	p := a.path("/usr/" + layout.TrustDir + "/verity.crt")
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return h, nil
	}
	h.Roots, err = trust.LoadCertificates(p)
	return h, err
}

// ExtAdd installs the extension image file for the running OS version and
// merges it: copy (bounded), verify the copy and check it fits (mounted
// read-only apart from the merge), rename into place, activate. On error
// nothing is installed and a previous version of it stays as it was.
func (a *Agent) ExtAdd(ctx context.Context, file string, o ExtOptions) (*Extension, error) {
	h, err := a.extHost(o.AllowUnsigned)
	if err != nil {
		return nil, err
	}
	name, tmp, err := a.stageExtension(h, file)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := a.installExtension(h.Version, name, tmp, o.Source); err != nil {
		return nil, err
	}
	a.step("installed extension %s", name)
	a.deactivate(name) // a previous version of it
	res, err := activate.Activate(a.extSys(), h, a.path(layout.ExtensionPath(h.Version, name)), name)
	if err == nil {
		err = a.merge(res.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("extension %s installed but not merged: %w", name, err)
	}
	e := a.describe(h, name, false)
	return &e, nil
}

// stageExtension copies file next to the extensions of h's version and
// checks the copy: signature, name, and a trial mount whose release file
// must fit h. It returns the name and the checked copy.
func (a *Agent) stageExtension(h activate.Host, file string) (name, tmp string, err error) {
	dir := a.path(filepath.Join(layout.ExtensionsDir, h.Version))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("create %s: %w", dir, err)
	}
	if tmp, err = copyBounded(file, dir); err != nil {
		return "", "", err
	}
	if name, err = a.checkExtension(h, tmp); err != nil {
		os.Remove(tmp)
		return "", "", fmt.Errorf("extension %s: %w", file, err)
	}
	return name, tmp, nil
}

// checkExtension verifies the image at path for h and mounts it once
// where nothing merges it, to check its release file.
func (a *Agent) checkExtension(h activate.Host, path string) (string, error) {
	im, _, err := activate.Verify(path, h)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(a.path(filepath.Join(layout.FactoryExtensionsDir, im.Name+".raw"))); err == nil {
		return "", fmt.Errorf("%s is one of the image's own extensions; it changes with the image (ingot update)", im.Name)
	}
	if err := activate.Check(a.extSys(), h, path, im.Name); err != nil {
		return "", err
	}
	return im.Name, nil
}

// installExtension renames the checked copy tmp into place as name for
// version, with the source it came from.
func (a *Agent) installExtension(version, name, tmp, source string) error {
	dst := a.path(layout.ExtensionPath(version, name))
	src := strings.TrimSuffix(dst, ".raw") + ".source"
	if source == "" {
		os.Remove(src)
	} else if err := fileutil.WriteAtomic(src, []byte(source+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("install extension %s: %w", name, err)
	}
	return fileutil.SyncDir(filepath.Dir(dst))
}

// merge makes the activated trees of kind visible: systemd-sysext
// re-merges /usr and /opt; /etc gets a new overlay with the confexts.
func (a *Agent) merge(kind ext.Kind) error {
	if kind == ext.Confext {
		return a.remountEtc()
	}
	return a.extSys().Refresh()
}

// remountEtc mounts a new /etc overlay over the current one, with the
// confexts mounted now between the machine's changes and the image's
// /etc. The covered overlay stays until the next boot for the files
// processes hold open; it gets a work directory of its own.
func (a *Agent) remountEtc() error {
	var dirs []string
	base := a.path(filepath.Join(layout.RunDir, "confexts"))
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		d := filepath.Join(base, e.Name())
		if _, _, err := activate.ReadRelease(d, e.Name()); err == nil {
			dirs = append(dirs, d)
		}
	}
	work, err := os.MkdirTemp(a.path(layout.StateDir), "etc.work.")
	if err != nil {
		return fmt.Errorf("make a work directory for /etc: %w", err)
	}
	opts := activate.EtcOverlay(a.cfg.Root, dirs, work)
	return a.extSys().Mount("overlay", a.path("/etc"), "overlay", 0, opts)
}

// deactivate unmerges extension name if it is active.
func (a *Agent) deactivate(name string) {
	sys := a.extSys()
	kind := activate.Deactivate(sys, a.cfg.Root, name)
	switch kind {
	case ext.Confext:
		if err := a.remountEtc(); err != nil {
			a.cfg.Logger.Warn("rebuild /etc without a confext", "name", name, "err", err)
		}
	case ext.Sysext:
		if err := sys.Refresh(); err != nil {
			a.cfg.Logger.Warn("systemd-sysext refresh", "err", err)
		}
	}
	sys.VerityRemove(activate.DMName(name)) // free now the merge let go
}

// ExtRemove unmerges and deletes extension name of the running version.
func (a *Agent) ExtRemove(name string) error {
	if err := ext.CheckName(name); err != nil {
		return err
	}
	h, err := a.extHost(false)
	if err != nil {
		return err
	}
	if _, err := os.Stat(a.path(filepath.Join(layout.FactoryExtensionsDir, name+".raw"))); err == nil {
		return fmt.Errorf("%s is one of the image's own extensions: it cannot be removed, only replaced by an image without it", name)
	}
	path := a.path(layout.ExtensionPath(h.Version, name))
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("extension %s is not installed for %s: %w", name, h.Version, err)
	}
	a.deactivate(name)
	os.Remove(strings.TrimSuffix(path, ".raw") + ".source")
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove extension %s: %w", name, err)
	}
	return fileutil.SyncDir(filepath.Dir(path))
}

// ExtList lists the image's extensions and the ones installed for the
// running version, whether each is merged, and if not, why; then the set
// staged for the other slot's version (what it activates when it boots),
// each checked against that version.
func (a *Agent) ExtList() ([]Extension, error) {
	h, err := a.extHost(false)
	if err != nil {
		return nil, err
	}
	list := []Extension{}
	for _, factory := range []bool{true, false} {
		dir := filepath.Join(layout.ExtensionsDir, h.Version)
		if factory {
			dir = layout.FactoryExtensionsDir
		}
		for _, name := range a.extNames(dir) {
			list = append(list, a.describe(h, name, factory))
		}
	}
	other, err := a.otherSlotVersion()
	if err != nil || other == "" || other == h.Version {
		return list, nil // no other slot, or it cannot be read: the running set is the answer
	}
	o := h
	o.Version = other
	for _, name := range a.extNames(filepath.Join(layout.ExtensionsDir, other)) {
		list = append(list, a.describeStaged(o, name))
	}
	return list, nil
}

// extNames lists the extension images in dir, by name.
func (a *Agent) extNames(dir string) []string {
	ents, _ := os.ReadDir(a.path(dir))
	var names []string
	for _, d := range ents {
		if name, ok := strings.CutSuffix(d.Name(), ".raw"); ok && !strings.HasPrefix(name, ".") {
			names = append(names, name)
		}
	}
	return names
}

// inspect fills in e's source, root hash and signature from the image at
// path and returns why h refuses it, if it does.
func (a *Agent) inspect(e *Extension, h activate.Host, path string) error {
	if b, err := os.ReadFile(strings.TrimSuffix(path, ".raw") + ".source"); err == nil {
		e.Source = strings.TrimSpace(string(b))
	}
	h.AllowUnsigned = h.Roots == nil
	im, hash, err := activate.Verify(path, h)
	if im != nil {
		e.RootHash, e.Signed = fmt.Sprintf("%x", hash), im.Sig != nil
	}
	return err
}

// describeStaged reports an extension of another version's set.
func (a *Agent) describeStaged(h activate.Host, name string) Extension {
	e := Extension{Name: name, OSVersion: h.Version}
	if err := a.inspect(&e, h, a.path(layout.ExtensionPath(h.Version, name))); err == nil {
		// ExtStage checked its release file against that version.
		e.Why = fmt.Sprintf("staged for %s (the other slot): activated when it boots", h.Version)
	} else {
		e.Why = fmt.Sprintf("staged for %s (the other slot), and refused: %v", h.Version, err)
	}
	return e
}

// otherSlotVersion is the version in the A/B slot not booted, or "".
func (a *Agent) otherSlotVersion() (string, error) {
	info, err := a.bootInfo()
	if err != nil {
		return "", err
	}
	d, err := a.openDisk(info, false)
	if err != nil {
		return "", err
	}
	defer d.f.Close()
	slots, err := layout.ABSlots(d.table)
	if err != nil {
		return "", err
	}
	for _, sl := range slots {
		if sl.Name != info.Slot {
			return sl.Version(), nil
		}
	}
	return "", nil
}

// ExtPrune removes the extension sets of versions in neither slot: after
// a good boot, the running version and the other slot's (the fallback,
// or a staged update) are all a machine can boot. It returns the versions
// removed. While an update holds its lock it removes nothing (the update
// may be staging a set for a slot it has not labelled yet).
func (a *Agent) ExtPrune() ([]string, error) {
	unlock, err := a.lock()
	if errors.Is(err, ErrBusy) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer unlock()
	h, err := a.extHost(false)
	if err != nil {
		return nil, err
	}
	other, err := a.otherSlotVersion()
	if err != nil {
		return nil, fmt.Errorf("other slot: %w", err)
	}
	ents, err := os.ReadDir(a.path(layout.ExtensionsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, d := range ents {
		v := d.Name()
		if !d.IsDir() || v == h.Version || v == other || layout.CheckVersion(v) != nil {
			continue // not a version's set (ingot's own files), or a set still bootable
		}
		if err := os.RemoveAll(a.path(filepath.Join(layout.ExtensionsDir, v))); err != nil {
			return removed, fmt.Errorf("remove the extensions of %s: %w", v, err)
		}
		removed = append(removed, v)
	}
	if len(removed) > 0 {
		err = fileutil.SyncDir(a.path(layout.ExtensionsDir))
	}
	return removed, err
}

// describe reports one extension without changing anything.
func (a *Agent) describe(h activate.Host, name string, factory bool) Extension {
	e := Extension{Name: name, OSVersion: h.Version, Factory: factory}
	path := a.path(layout.ExtensionPath(h.Version, name))
	if factory {
		path = a.path(filepath.Join(layout.FactoryExtensionsDir, name+".raw"))
	}
	err := a.inspect(&e, h, path)
	for _, k := range []ext.Kind{ext.Sysext, ext.Confext} {
		dir := activate.SysextDir(name)
		if k == ext.Confext {
			dir = activate.ConfextDir(name)
		}
		if kind, _, rerr := activate.ReadRelease(a.path(dir), name); rerr == nil && kind == k {
			e.Kind, e.Merged = string(k), true
		}
	}
	switch {
	case e.Merged:
	case err != nil:
		e.Why = err.Error()
	default:
		e.Why = a.bootWhy(name)
	}
	return e
}

// bootWhy is the reason ingot-init gave for not activating name.
func (a *Agent) bootWhy(name string) string {
	b, err := os.ReadFile(a.path(layout.ExtensionStatusPath))
	var status []layout.ExtensionStatus
	if err == nil && json.Unmarshal(b, &status) == nil {
		for _, s := range status {
			if s.Name == name && s.Why != "" {
				return s.Why
			}
		}
	}
	return "not active: installed after this boot's activation failed, or removed from the merge; see the journal"
}

// copyBounded copies src into a new temporary file in dir, synced.
func copyBounded(src, dir string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("open extension: %w", err)
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("extension %s: not a regular file", src)
	}
	out, err := os.CreateTemp(dir, ".add-*.raw")
	if err != nil {
		return "", err
	}
	n, err := io.Copy(out, io.LimitReader(in, MaxExtensionBytes+1))
	if err == nil && n > MaxExtensionBytes {
		err = fmt.Errorf("extension %s exceeds %d bytes", src, int64(MaxExtensionBytes))
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return "", fmt.Errorf("copy extension %s: %w", src, err)
	}
	return out.Name(), nil
}

// ExtStage checks the extension image file for OS version version (this
// system's ID and trust, that version's level) and installs it into that
// version's set, recording source. It is how `ingot update` brings the
// extensions along before it switches. It returns the extension's name.
func (a *Agent) ExtStage(version, file, source string) (string, error) {
	if err := layout.CheckVersion(version); err != nil {
		return "", err
	}
	h, err := a.extHost(false)
	if err != nil {
		return "", err
	}
	h.Version, h.AllowUnsigned = version, h.Roots == nil
	name, tmp, err := a.stageExtension(h, file)
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	if err := a.installExtension(version, name, tmp, source); err != nil {
		return "", err
	}
	return name, nil
}

// ExtUnstage removes what ExtStage installed for version, after an update
// that did not happen. The running version's set is never touched.
func (a *Agent) ExtUnstage(version string) error {
	h, err := a.extHost(false)
	if err != nil {
		return err
	}
	if layout.CheckVersion(version) != nil || version == h.Version {
		return nil
	}
	return os.RemoveAll(a.path(filepath.Join(layout.ExtensionsDir, version)))
}
