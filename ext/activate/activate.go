// Package activate turns an installed extension image into a verified,
// read-only tree where the system merges it: the image is opened and its
// signature checked against the verity certificate /usr trusts, its
// partitions are mapped through dm-verity pinned to that root hash, the
// whole device is read once through dm-verity (so a flipped byte anywhere
// refuses the extension now, not at some later read), the EROFS is
// mounted read-only, and its release file — read from the verified tree —
// must fit the running OS.
//
// ingot-init activates every installed extension before systemd starts,
// and the agent activates one when `ingot ext add` installs it; both call
// Activate, so the rules are the same at boot and at run time.
//
//	res, err := activate.Activate(sys, host, "/var/lib/ingot/extensions/1.2.0/debug.raw", "debug")
//
// A sysext is mounted at /run/extensions/NAME, where systemd-sysext merges
// it into /usr and /opt. A confext is mounted at /run/ingot/confexts/NAME,
// where systemd-confext does not look: ingot layers confexts into its own
// /etc overlay, below the machine's changes (see EtcOverlay).
package activate

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/layout"
)

// Sys is what activation needs of the kernel: mounts, read-only loop
// devices and dm-verity.
type Sys interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string) error
	LoopAttach(path string, offsetBytes, sizeBytes int64) (string, io.Closer, error)
	VerityCreate(name string, sectors uint64, params string) (string, error)
	VerityRemove(name string) error
}

// Host is the system an extension must fit.
type Host struct {
	// ID and Version are the running image's os-release ID and
	// IMAGE_VERSION.
	ID, Version string
	// Roots is the verity certificate /usr trusts; nil on an unsigned
	// system.
	Roots []*x509.Certificate
	// AllowUnsigned accepts an unsigned image on an unsigned system (it
	// never does on a signed one).
	AllowUnsigned bool
	// Root is prefixed to the mount directories: "" on a running
	// system, a temporary directory in tests.
	Root string
}

// Result is an activated extension.
type Result struct {
	Name     string
	Kind     ext.Kind
	RootHash []byte
	Signed   bool
	// Dir is where its verified tree is mounted.
	Dir string
}

// ConfextDir is where confext name's verified tree is mounted; its etc/
// is a lower layer of the /etc overlay.
func ConfextDir(name string) string { return filepath.Join(layout.RunDir, "confexts", name) }

// SysextDir is where sysext name's verified tree is mounted, in
// systemd-sysext's search path.
func SysextDir(name string) string { return filepath.Join(layout.SysextMountDir, name) }

// stagingDir is where a tree is mounted while its release file is checked.
func stagingDir(name string) string { return filepath.Join(layout.RunDir, "ext-staging", name) }

// DMName is the device-mapper name of extension name's verity device.
func DMName(name string) string { return "ingot-ext-" + name }

// Verify opens the image at path and checks its signature for h. It
// returns the image and the root hash to pin. An unsigned image is
// refused (ErrUnsigned) unless h is unsigned and allows it.
func Verify(path string, h Host) (*ext.Image, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file: %w", path, ext.ErrMalformed)
	}
	im, err := ext.Open(f, fi.Size())
	if err != nil {
		return nil, nil, err
	}
	if h.Roots != nil {
		hash, err := im.Verify(h.Roots)
		return im, hash, err
	}
	if im.Sig == nil && !h.AllowUnsigned {
		return im, nil, fmt.Errorf("%s: %w (on this unsigned system, --allow-unsigned accepts it)", im.Name, ext.ErrUnsigned)
	}
	return im, im.RootHash, nil // nothing to check a signature against
}

// Activate verifies the image at path, installed as name, and mounts its
// verified tree where it is merged. On failure nothing is left mapped or
// mounted.
func Activate(sys Sys, h Host, path, name string) (*Result, error) {
	if err := ext.CheckName(name); err != nil {
		return nil, err
	}
	im, rootHash, err := Verify(path, h)
	if err != nil {
		return nil, err
	}
	if im.Name != name {
		return nil, fmt.Errorf("image is named %s, installed as %s: %w", im.Name, name, ext.ErrMalformed)
	}
	dev, err := mapVerity(sys, path, im, rootHash, DMName(name))
	if err != nil {
		return nil, err
	}
	res := &Result{Name: name, RootHash: rootHash, Signed: im.Sig != nil}
	if err := readThrough(dev, im); err != nil {
		sys.VerityRemove(DMName(name))
		return nil, err
	}
	if res.Kind, res.Dir, err = mountTree(sys, h, name, dev); err != nil {
		sys.VerityRemove(DMName(name))
		return nil, err
	}
	return res, nil
}

// mapVerity sets up the verity device dmName of the image at path.
func mapVerity(sys Sys, path string, im *ext.Image, rootHash []byte, dmName string) (string, error) {
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
	sys.VerityRemove(dmName) // a stale device of the same name
	dev, err := sys.VerityCreate(dmName, sectors, params)
	if err != nil {
		return "", fmt.Errorf("dm-verity: %w", err)
	}
	return dev, nil
}

// readThrough reads the whole verity device: the kernel checks every
// block against the pinned root hash, and a mismatch is an I/O error.
func readThrough(dev string, im *ext.Image) error {
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	want := im.DataReader().Size()
	n, err := io.Copy(io.Discard, io.LimitReader(f, want))
	if err == nil && n != want {
		err = fmt.Errorf("read %d of %d bytes", n, want)
	}
	if err != nil {
		return fmt.Errorf("content does not match its verity root hash (corrupted or tampered): %w", err)
	}
	return nil
}

// mountTree mounts the verified device, checks its release file fits h
// and moves the mount where its kind is merged.
func mountTree(sys Sys, h Host, name, dev string) (ext.Kind, string, error) {
	stage := filepath.Join(h.Root, stagingDir(name))
	sys.Unmount(stage) // a leftover from an interrupted activation
	if err := sys.Mount(dev, stage, "erofs", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return "", "", err
	}
	kind, err := checkRelease(stage, name, h)
	dir := SysextDir(name)
	if kind == ext.Confext {
		dir = ConfextDir(name)
	}
	sys.Unmount(stage)
	os.Remove(stage)
	if err != nil {
		return "", "", err
	}
	// Mounted again where it is merged (the same verity device, so the
	// same checked tree): moving the mount is refused under /run's
	// shared propagation on a running system.
	final := filepath.Join(h.Root, dir)
	sys.Unmount(final)
	if err := sys.Mount(dev, final, "erofs", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return "", "", err
	}
	return kind, dir, nil
}

// checkRelease reads the mounted tree's release file and checks it fits h
// and the tree holds none of ext.Reserved.
func checkRelease(dir, name string, h Host) (ext.Kind, error) {
	kind, rel, err := ReadRelease(dir, name)
	if err != nil {
		return "", err
	}
	for _, r := range ext.Reserved {
		if _, err := os.Lstat(filepath.Join(dir, r)); err == nil {
			return "", fmt.Errorf("holds /%s, which only the image may: %w", r, ext.ErrMalformed)
		}
	}
	return kind, rel.Fits(h.ID, h.Version)
}

// ReadRelease finds and parses the release file of a mounted extension:
// a sysext's or else a confext's.
func ReadRelease(dir, name string) (ext.Kind, ext.Release, error) {
	for _, k := range []ext.Kind{ext.Sysext, ext.Confext} {
		f, err := os.Open(filepath.Join(dir, k.ReleasePath(name)))
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return "", ext.Release{}, err
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

// Deactivate unmounts extension name's tree, wherever it is, and removes
// its verity device; what is not there is not an error. It reports the
// kind it found mounted ("" if none).
func Deactivate(sys Sys, root, name string) ext.Kind {
	var found ext.Kind
	for _, k := range []ext.Kind{ext.Sysext, ext.Confext} {
		dir := SysextDir(name)
		if k == ext.Confext {
			dir = ConfextDir(name)
		}
		p := filepath.Join(root, dir)
		if err := sys.Unmount(p); err == nil {
			os.Remove(p)
			found = k
		}
	}
	sys.VerityRemove(DMName(name))
	return found
}

// EtcOverlay is the mount data of the /etc overlay of the root filesystem
// at root: the machine's changes (upper) over the confexts' etc/ trees
// (the one last in name order on top) over the image's factory /etc.
// confextDirs are the confexts' mount directories; work is the overlay's
// work directory, on the root partition like upper.
func EtcOverlay(root string, confextDirs []string, work string) string {
	lower := ""
	for i := len(confextDirs) - 1; i >= 0; i-- {
		lower += confextDirs[i] + "/etc:"
	}
	lower += filepath.Join(root, layout.FactoryEtc)
	upper := filepath.Join(root, layout.StateDir, "etc.upper")
	return fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,index=off", lower, upper, work)
}

// Check verifies the image at path for h as Activate does, and mounts
// it once where nothing merges it to check its release file, then
// undoes all of it. It is for an image not yet installed, or installed
// for a version that is not running.
func Check(sys Sys, h Host, path, name string) error {
	im, rootHash, err := Verify(path, h)
	if err != nil {
		return err
	}
	if im.Name != name {
		return fmt.Errorf("image is named %s, not %s: %w", im.Name, name, ext.ErrMalformed)
	}
	dmName := "ingot-ext-check-" + name
	dev, err := mapVerity(sys, path, im, rootHash, dmName)
	if err != nil {
		return err
	}
	defer sys.VerityRemove(dmName)
	if err := readThrough(dev, im); err != nil {
		return err
	}
	stage := filepath.Join(h.Root, layout.RunDir, "ext-check", name)
	if err := sys.Mount(dev, stage, "erofs", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return err
	}
	defer os.Remove(stage)
	defer sys.Unmount(stage)
	_, err = checkRelease(stage, name, h)
	return err
}
