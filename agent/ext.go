package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ingot-linux/ingot/ext"
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
	Mounter
	LoopAttach(path string, offsetBytes, sizeBytes int64) (string, io.Closer, error)
	VerityCreate(name string, sectors uint64, params string) (string, error)
	VerityRemove(name string) error
	// Refresh runs systemd-sysext refresh (or systemd-confext refresh).
	Refresh(kind ext.Kind) error
}

// linuxExt is ExtSys on the running system.
type linuxExt struct{ kernel.Linux }

func (linuxExt) Refresh(kind ext.Kind) error {
	tool := "systemd-" + string(kind)
	if out, err := exec.Command(tool, "refresh").CombinedOutput(); err != nil {
		return fmt.Errorf("%s refresh: %w: %s", tool, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ExtOptions change what ExtAdd accepts.
type ExtOptions struct {
	// AllowUnsigned accepts an unsigned extension on an unsigned system
	// (never on a signed one).
	AllowUnsigned bool
}

// Extension is one installed extension as ext list shows it.
type Extension struct {
	Name      string `json:"name"`
	Kind      string `json:"type,omitempty"`
	OSVersion string `json:"osVersion"`
	RootHash  string `json:"rootHash,omitempty"`
	Signed    bool   `json:"signed"`
	Merged    bool   `json:"merged"`
	// Why says why an installed extension is not merged.
	Why string `json:"why,omitempty"`
}

func (a *Agent) extSys() ExtSys {
	if a.cfg.ExtSys != nil {
		return a.cfg.ExtSys
	}
	return linuxExt{}
}

// osVersion is the running image's ID and IMAGE_VERSION.
func (a *Agent) osVersion() (id, version string, err error) {
	b, err := os.ReadFile(a.path("/usr/lib/os-release"))
	if err != nil {
		return "", "", fmt.Errorf("read os-release: %w", err)
	}
	if id, version, err = ext.OSRelease(b); err == nil && layout.CheckVersion(version) != nil {
		err = fmt.Errorf("os-release: IMAGE_VERSION %q is not an ingot version", version)
	}
	return id, version, err
}

// verityRoots is the certificate /usr trusts for verity signatures; nil
// on an unsigned system.
func (a *Agent) verityRoots() ([]*x509.Certificate, error) {
	p := a.path("/usr/" + layout.TrustDir + "/verity.crt")
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return trust.LoadCertificates(p)
}

// ExtAdd installs the extension image at src for the running OS version
// and merges it: copy (bounded), verify the copy (signature against the
// verity certificate /usr carries), rename into place, activate.
func (a *Agent) ExtAdd(ctx context.Context, src string, o ExtOptions) (*Extension, error) {
	_, version, err := a.osVersion()
	if err != nil {
		return nil, err
	}
	dir := a.path(filepath.Join(layout.ExtensionsDir, version))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := copyBounded(src, dir)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	im, err := a.checkExtension(tmp, o)
	if err != nil {
		return nil, fmt.Errorf("extension %s: %w", src, err)
	}
	a.step("verified extension %s", im.Name)
	dst := filepath.Join(dir, im.Name+".raw")
	if err := os.Rename(tmp, dst); err != nil {
		return nil, fmt.Errorf("install extension %s: %w", im.Name, err)
	}
	if err := fileutil.SyncDir(dir); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.ExtDeactivate(im.Name) // a previous version of it
	e := a.ExtActivate(version, im.Name)
	if e.Why != "" {
		return e, fmt.Errorf("extension %s installed but not merged: %s", im.Name, e.Why)
	}
	return e, nil
}

// copyBounded copies src into a new temporary file in dir, synced.
func copyBounded(src, dir string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("open extension: %w", err)
	}
	defer in.Close()
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

// checkExtension opens the image at path and checks its signature: on a
// signed system it must chain to the verity certificate; an unsigned
// image is accepted only on an unsigned system with AllowUnsigned.
func (a *Agent) checkExtension(path string, o ExtOptions) (*ext.Image, error) {
	im, _, err := a.openVerified(path)
	if errors.Is(err, ext.ErrUnsigned) && o.AllowUnsigned {
		roots, rerr := a.verityRoots()
		if rerr == nil && roots == nil {
			return im, nil
		}
		return nil, fmt.Errorf("%w (this system is signed: --allow-unsigned does not apply)", err)
	}
	return im, err
}

// openVerified opens the image at path and returns it with the root hash
// to pin: checked against the verity certificate on a signed system. On
// an unsigned system every image is ErrUnsigned-checked by the caller.
func (a *Agent) openVerified(path string) (*ext.Image, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	im, err := ext.Open(f, fi.Size())
	if err != nil {
		return nil, nil, err
	}
	roots, err := a.verityRoots()
	if err != nil {
		return nil, nil, err
	}
	if roots == nil {
		if im.Sig != nil {
			return im, im.RootHash, nil // nothing to check it against
		}
		return im, im.RootHash, fmt.Errorf("%s: %w", im.Name, ext.ErrUnsigned)
	}
	h, err := im.Verify(roots)
	return im, h, err
}
