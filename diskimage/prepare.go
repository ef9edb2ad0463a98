package diskimage

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/ingot-linux/ingot/diskimage/rootfs"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

// Input is what ingot needs from a root filesystem, found by inspect.
type Input struct {
	KernelVersion string
	KernelPath    string
	BootLoader    string // systemd-bootx64.efi
	Stub          string // linuxx64.efi.stub
	OSRelease     map[string]string
}

// errorList collects every problem with the input so the user sees them all
// at once.
type errorList []string

func (e errorList) err() error {
	if len(e) == 0 {
		return nil
	}
	return &InputError{Problems: e}
}

// InputError says what is wrong with a root filesystem.
type InputError struct{ Problems []string }

func (e *InputError) Error() string {
	return "root filesystem is not usable: " + strings.Join(e.Problems, "; ")
}

var stubDirs = []string{"usr/lib/systemd/boot/efi"}

// inspect checks that t is a merged-/usr root filesystem with a kernel,
// systemd and systemd-boot, and finds them.
func inspect(t *rootfs.Tree, kernelVersion string) (*Input, error) {
	var problems errorList
	in := &Input{}
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		if e := t.Lookup(d); e != nil && e.Mode&fs.ModeSymlink == 0 {
			problems = append(problems, fmt.Sprintf("/%s is a real directory, not a link into /usr: ingot needs a merged-/usr root filesystem (Debian ≥ 12, Fedora, Arch, or usrmerge)", d))
			break
		}
	}
	if e := t.Lookup("usr"); e == nil || !e.IsDir() {
		problems = append(problems, "no /usr directory")
	}
	if t.Resolve("usr/lib/systemd/systemd") == nil {
		problems = append(problems, "no systemd (/usr/lib/systemd/systemd): install systemd in the root filesystem")
	}
	kver, kpath, kernelErr := findKernel(t, kernelVersion)
	var fe *FieldError
	if kernelErr != nil && !errors.As(kernelErr, &fe) {
		problems = append(problems, kernelErr.Error())
		kernelErr = nil
	}
	in.KernelVersion, in.KernelPath = kver, kpath
	for _, d := range stubDirs {
		if e := t.Resolve(d + "/systemd-bootx64.efi"); e != nil && e.Mode.IsRegular() {
			in.BootLoader = d + "/systemd-bootx64.efi"
		}
		if e := t.Resolve(d + "/linuxx64.efi.stub"); e != nil && e.Mode.IsRegular() {
			in.Stub = d + "/linuxx64.efi.stub"
		}
	}
	if in.BootLoader == "" || in.Stub == "" {
		problems = append(problems, "no systemd-boot EFI binaries (/usr/lib/systemd/boot/efi/systemd-bootx64.efi and linuxx64.efi.stub): install systemd-boot-efi (Debian) or systemd-boot")
	}
	if t.Resolve("usr/sbin/mkfs.ext4") == nil {
		problems = append(problems, "no /usr/sbin/mkfs.ext4 to make the root partition on first boot: install e2fsprogs")
	}
	osr, err := t.ReadFile("usr/lib/os-release")
	if err != nil {
		problems = append(problems, "no /usr/lib/os-release")
	}
	in.OSRelease = parseOSRelease(osr)
	return in, errors.Join(problems.err(), kernelErr)
}

// findKernel looks for /usr/lib/modules/<kver>/vmlinuz, then
// /boot/vmlinuz-<kver>, and picks the given version or the only one.
func findKernel(t *rootfs.Tree, want string) (kver, kpath string, err error) {
	found := map[string]string{}
	_ = t.Walk("usr/lib/modules", func(e *rootfs.Entry) error {
		if path.Base(e.Path) == "vmlinuz" && strings.Count(e.Path, "/") == 4 {
			found[path.Base(path.Dir(e.Path))] = e.Path
		}
		return nil
	})
	_ = t.Walk("boot", func(e *rootfs.Entry) error {
		if v, ok := strings.CutPrefix(path.Base(e.Path), "vmlinuz-"); ok && path.Dir(e.Path) == "boot" {
			if _, dup := found[v]; !dup && t.Resolve(e.Path) != nil {
				found[v] = e.Path
			}
		}
		return nil
	})
	var versions []string
	for v := range found {
		if t.Lookup("usr/lib/modules/"+v) != nil {
			versions = append(versions, v)
		}
	}
	sort.Strings(versions)
	switch {
	case want != "":
		if p := found[want]; p != "" {
			return want, p, nil
		}
		return "", "", &FieldError{Field: "KernelVersion", Value: want, Problem: fmt.Sprintf("no such kernel (found: %s)", strings.Join(versions, ", "))}
	case len(versions) == 1:
		return versions[0], found[versions[0]], nil
	case len(versions) == 0:
		return "", "", errors.New("no kernel: expected /usr/lib/modules/<version>/vmlinuz or /boot/vmlinuz-<version> with /usr/lib/modules/<version>")
	}
	return "", "", &FieldError{Field: "KernelVersion", Problem: fmt.Sprintf("several kernels (%s): choose one", strings.Join(versions, ", "))}
}

func parseOSRelease(b []byte) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		m[k] = strings.Trim(v, `"'`)
	}
	return m
}

// osRelease returns the image's os-release with ingot's image fields set.
func osRelease(orig []byte, version string) []byte {
	var out bytes.Buffer
	for _, line := range strings.Split(strings.TrimRight(string(orig), "\n"), "\n") {
		k, _, _ := strings.Cut(line, "=")
		if k == "IMAGE_ID" || k == "IMAGE_VERSION" || k == "SYSEXT_LEVEL" || k == "CONFEXT_LEVEL" {
			continue
		}
		out.WriteString(line + "\n")
	}
	// The extension levels are the image version: systemd-sysext then
	// merges only extensions built for this version (it compares them
	// with the extension's SYSEXT_LEVEL before VERSION_ID), as ingot's
	// own check does.
	fmt.Fprintf(&out, "IMAGE_ID=%s\nIMAGE_VERSION=%s\nSYSEXT_LEVEL=%s\nCONFEXT_LEVEL=%s\n", layout.Name, version, version, version)
	return out.Bytes()
}

// prepare turns the loaded root filesystem into the tree of /usr that goes
// into the image: the factory /etc and /var move under /usr, ingot's own
// files are added.
// version names the image, epoch dates what prepare adds, agent becomes
// /usr/bin/ingot, keys (if any) put their certificates in /usr, units are
// ingot's systemd units.
func prepare(t *rootfs.Tree, version string, epoch int64, agent []byte, keys *trust.Keys, units unitSet) error {
	rootLayout := layout.RootLayout{Links: map[string]string{}, Dirs: map[string]string{"efi": "0755"}}
	for _, p := range t.Paths() {
		if p == "." || strings.Contains(p, "/") || p == "usr" || p == "etc" {
			continue
		}
		e := t.Lookup(p)
		switch {
		case e.Mode&fs.ModeSymlink != 0 && strings.HasPrefix(path.Clean(e.LinkTarget), "usr/"):
			rootLayout.Links[p] = e.LinkTarget
		case e.IsDir():
			rootLayout.Dirs[p] = octalMode(e.Mode)
		}
	}
	lj, err := json.MarshalIndent(rootLayout, "", "  ")
	if err != nil {
		return err
	}
	factory := "usr/" + layout.FactoryDir
	t.Remove(factory)
	if t.Lookup("etc") != nil {
		if err := t.Move("etc", factory+"/etc"); err != nil {
			return err
		}
	} else {
		t.Mkdir(factory+"/etc", 0o755, epoch)
	}
	if e := t.Lookup("var"); e != nil && e.IsDir() {
		if err := t.Move("var", factory+"/var"); err != nil {
			return err
		}
	}
	// A fresh machine makes its own identity on first boot.
	t.PutFile(factory+"/etc/machine-id", nil, 0o444, epoch)

	osr, err := t.ReadFile("usr/lib/os-release")
	if err != nil {
		return err
	}
	t.PutFile("usr/lib/os-release", osRelease(osr, version), 0o644, epoch)
	t.PutFile("usr/"+layout.RootLayoutPath, append(lj, '\n'), 0o644, epoch)
	t.PutFile("usr/bin/ingot", agent, 0o755, epoch)
	if keys != nil {
		// The agent accepts only UKIs that chain to these.
		t.PutFile("usr/"+layout.TrustDir+"/db.crt", pemCert(keys.DB.Cert.Raw), 0o644, epoch)
		t.PutFile("usr/"+layout.TrustDir+"/verity.crt", pemCert(keys.Verity.Cert.Raw), 0o644, epoch)
	}
	return units.put(t, epoch)
}

// checkHealthChecks makes sure each health check names a unit the root
// filesystem has.
func checkHealthChecks(t *rootfs.Tree, units []string) error {
	for _, u := range units {
		if !validUnitName(u) {
			return &FieldError{Field: "HealthChecks", Value: fmt.Sprintf("%q", u), Problem: "not a systemd unit name (e.g. my-check.service)"}
		}
		if !unitExists(t, u) {
			return &FieldError{Field: "HealthChecks", Value: u, Problem: "no such unit in /usr/lib/systemd/system or /etc/systemd/system of the root filesystem"}
		}
	}
	return nil
}

// validUnitName accepts NAME.TYPE with systemd's unit name characters.
func validUnitName(u string) bool {
	name, typ, ok := strings.Cut(u, ".")
	if !ok || name == "" || len(u) > 255 {
		return false
	}
	switch typ {
	case "service", "target", "mount", "path", "socket", "timer":
	default:
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(":-_.\\@", c)) {
			return false
		}
	}
	return true
}

// unitExists reports whether the root filesystem has the unit (before
// /etc moves to the factory directory, or after).
func unitExists(t *rootfs.Tree, u string) bool {
	for _, d := range []string{"usr/lib/systemd/system/", "etc/systemd/system/", "usr/" + layout.FactoryDir + "/etc/systemd/system/"} {
		if t.Resolve(d+u) != nil {
			return true
		}
	}
	return false
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// octalMode writes permission, setuid, setgid and sticky bits as chmod does.
func octalMode(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("%04o", v)
}
