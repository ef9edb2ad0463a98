package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/layout"
)

// dmName is the device-mapper name of extension name's verity device.
func dmName(name string) string { return "ingot-ext-" + name }

// ExtActivate verifies the installed extension name of OS version
// version, maps it through dm-verity, mounts it read-only where
// systemd-sysext (or -confext) finds it and merges it. It never fails:
// an extension that cannot be merged says why in Why.
func (a *Agent) ExtActivate(version, name string) *Extension {
	e := &Extension{Name: name, OSVersion: version}
	if err := a.activate(e); err != nil {
		e.Why = err.Error()
		a.cfg.Logger.Warn("extension refused", "name", name, "err", err)
	}
	return e
}

func (a *Agent) activate(e *Extension) error {
	if err := ext.CheckName(e.Name); err != nil {
		return err
	}
	path := a.path(layout.ExtensionPath(e.OSVersion, e.Name))
	im, rootHash, err := a.openVerified(path)
	if errors.Is(err, ext.ErrUnsigned) {
		if roots, rerr := a.verityRoots(); rerr == nil && roots == nil {
			err = nil // installed with --allow-unsigned on an unsigned system
		}
	}
	if err != nil {
		return err
	}
	if im.Name != e.Name {
		return fmt.Errorf("image is named %s, installed as %s", im.Name, e.Name)
	}
	e.RootHash, e.Signed = fmt.Sprintf("%x", rootHash), im.Sig != nil
	dev, err := a.mapVerity(path, im, rootHash)
	if err != nil {
		return err
	}
	kind, err := a.mountExtension(e.Name, dev)
	if err != nil {
		a.extSys().VerityRemove(dmName(e.Name))
		return err
	}
	e.Kind, e.Merged = string(kind), true
	return a.extSys().Refresh(kind)
}

// mapVerity sets up the verity device of the image at path.
func (a *Agent) mapVerity(path string, im *ext.Image, rootHash []byte) (string, error) {
	sys := a.extSys()
	data, dc, err := sys.LoopAttach(path, im.DataOffset(), im.DataReader().Size())
	if err != nil {
		return "", err
	}
	defer dc.Close()
	hash, hc, err := sys.LoopAttach(path, im.HashOffset(), im.HashReader().Size())
	if err != nil {
		return "", err
	}
	defer hc.Close()
	params, sectors := im.VerityTable(data, hash, rootHash)
	return sys.VerityCreate(dmName(im.Name), sectors, params)
}

// mountExtension mounts the verified device at /run/extensions/NAME,
// or at /run/confexts/NAME when its release file says it is a confext,
// after checking the release file (read from the verified tree) fits the
// running OS.
func (a *Agent) mountExtension(name, dev string) (ext.Kind, error) {
	id, version, err := a.osVersion()
	if err != nil {
		return "", err
	}
	sys := a.extSys()
	dir := a.path(filepath.Join(layout.SysextMountDir, name))
	if err := a.mountAt(dev, dir); err != nil {
		return "", err
	}
	kind, rel, err := readMountedRelease(dir, name)
	if err == nil {
		err = rel.Fits(id, version)
	}
	if err == nil && kind == ext.Confext {
		sys.Unmount(dir)
		os.Remove(dir)
		dir = a.path(filepath.Join(layout.ConfextMountDir, name))
		err = a.mountAt(dev, dir)
	}
	if err != nil {
		sys.Unmount(dir)
		os.Remove(dir)
		return "", err
	}
	return kind, nil
}

func (a *Agent) mountAt(dev, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return a.extSys().Mount(dev, dir, "erofs", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, "")
}

// readMountedRelease finds and parses the release file of a mounted
// extension: a sysext's or else a confext's.
func readMountedRelease(dir, name string) (ext.Kind, ext.Release, error) {
	for _, k := range []ext.Kind{ext.Sysext, ext.Confext} {
		f, err := os.Open(filepath.Join(dir, k.ReleasePath(name)))
		if err != nil {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(f, 64<<10))
		f.Close()
		if err != nil {
			return "", ext.Release{}, err
		}
		r, err := ext.ParseRelease(k, b)
		return k, r, err
	}
	return "", ext.Release{}, fmt.Errorf("no release file extension-release.%s: %w", name, ext.ErrMalformed)
}

// ExtDeactivate unmounts extension name, removes its verity device and
// refreshes the merge; what is not there is not an error.
func (a *Agent) ExtDeactivate(name string) {
	sys := a.extSys()
	for _, k := range []ext.Kind{ext.Sysext, ext.Confext} {
		base := layout.SysextMountDir
		if k == ext.Confext {
			base = layout.ConfextMountDir
		}
		dir := a.path(filepath.Join(base, name))
		if err := sys.Unmount(dir); err == nil {
			os.Remove(dir)
			sys.Refresh(k)
		}
	}
	sys.VerityRemove(dmName(name))
}

// ExtRemove unmerges and deletes extension name of the running version.
func (a *Agent) ExtRemove(name string) error {
	if err := ext.CheckName(name); err != nil {
		return err
	}
	_, version, err := a.osVersion()
	if err != nil {
		return err
	}
	path := a.path(layout.ExtensionPath(version, name))
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("extension %s: %w", name, err)
	}
	a.ExtDeactivate(name)
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove extension %s: %w", name, err)
	}
	return nil
}

// ExtList lists the extensions installed for the running version, and
// whether each is merged (mounted where systemd-sysext reads it).
func (a *Agent) ExtList() ([]Extension, error) {
	_, version, err := a.osVersion()
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(a.path(filepath.Join(layout.ExtensionsDir, version)))
	if errors.Is(err, os.ErrNotExist) {
		return []Extension{}, nil
	}
	if err != nil {
		return nil, err
	}
	list := []Extension{}
	for _, d := range ents {
		name, ok := strings.CutSuffix(d.Name(), ".raw")
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		list = append(list, a.describe(version, name))
	}
	return list, nil // in name order: os.ReadDir sorts
}

// describe reports one installed extension without changing anything.
func (a *Agent) describe(version, name string) Extension {
	e := Extension{Name: name, OSVersion: version}
	im, h, err := a.openVerified(a.path(layout.ExtensionPath(version, name)))
	if im != nil {
		e.RootHash, e.Signed = fmt.Sprintf("%x", h), im.Sig != nil
	}
	for _, k := range []ext.Kind{ext.Sysext, ext.Confext} {
		dir := layout.SysextMountDir
		if k == ext.Confext {
			dir = layout.ConfextMountDir
		}
		if kind, _, rerr := readMountedRelease(a.path(filepath.Join(dir, name)), name); rerr == nil && kind == k {
			e.Kind, e.Merged = string(k), true
		}
	}
	switch {
	case e.Merged:
	case err != nil:
		e.Why = err.Error()
	default:
		e.Why = "not mounted (refused at activation: wrong OS version or release file; see the journal)"
	}
	return e
}
