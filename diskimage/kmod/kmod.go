// Package kmod resolves Linux kernel modules and their dependencies from a
// root filesystem's modules.dep, and decompresses them for an initrd.
//
//	set, err := kmod.Resolve(tree, "6.1.0-31-amd64", []string{"virtio_blk", "dm_verity"})
//	for _, m := range set.Modules { ... m.Path, m.Content ... }
package kmod

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// FS is what Resolve reads from: the content of a file by path relative to the
// root filesystem.
type FS interface {
	ReadFile(name string) ([]byte, error)
}

// Module is one kernel module to load.
type Module struct {
	// Name is the module's name with dashes turned to underscores.
	Name string
	// Path is relative to /usr/lib/modules/<kver>, without a compression
	// suffix (e.g. "kernel/drivers/block/virtio_blk.ko").
	Path string
	// Content is the uncompressed module.
	Content []byte
	// Deps are the names of the modules it needs loaded first (modules.dep
	// and softdep pre:), all in the same Set before it.
	Deps []string
	// DeviceAliases are its modules.alias patterns that match hardware
	// (e.g. "pci:v00001AF4d00001001sv*sd*bc*sc*i*"): a driver with any is
	// needed only when a device's modalias matches one. Empty for modules
	// every boot needs (file systems, device mapper, crypto).
	DeviceAliases []string
	// Requested is true for a module Resolve was asked for, false for one
	// that is there only because another needs it.
	Requested bool
}

// deviceBuses are the modalias prefixes of the buses whose drivers ingot-init
// loads only for devices it finds: storage controllers and what they sit
// on. Other aliases (fs-, crypto-, cpu:, platform:, devname:) do not make
// a module optional.
var deviceBuses = []string{"pci:", "virtio:", "usb:", "scsi:", "vmbus:", "xen:", "mmc:", "sdio:", "acpi*:", "acpi:"}

// deviceAliases reads modules.alias into module name → its device
// patterns.
func deviceAliases(aliases []byte) map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(string(aliases), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "alias" {
			continue
		}
		for _, bus := range deviceBuses {
			if strings.HasPrefix(f[1], bus) {
				name := NormalizeName(f[2])
				out[name] = append(out[name], f[1])
				break
			}
		}
	}
	return out
}

// Set is the result of Resolve.
type Set struct {
	// Modules are in load order: every module comes after its dependencies.
	Modules []Module
	// Builtin lists requested names that are built into the kernel.
	Builtin []string
	// Missing lists requested names the kernel has neither as a module nor
	// built in.
	Missing []string
}

// NormalizeName turns "dm-verity" or "dm_verity.ko.xz" into "dm_verity".
func NormalizeName(name string) string {
	name = path.Base(name)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		name = strings.TrimSuffix(name, ext)
	}
	name = strings.TrimSuffix(name, ".ko")
	return strings.ReplaceAll(name, "-", "_")
}

// Resolve finds the wanted modules of kernel kver under
// usr/lib/modules/<kver> and returns them with their dependencies in load
// order. Wanted names that are built in or absent are reported, not errors:
// a kernel may well build a driver in.
func Resolve(fsys FS, kver string, wanted []string) (*Set, error) {
	dir := "usr/lib/modules/" + kver
	depData, err := fsys.ReadFile(dir + "/modules.dep")
	if errors.Is(err, fs.ErrNotExist) && !hasModuleFiles(fsys, dir) {
		// A kernel built without loadable modules (CONFIG_MODULES=n, as
		// ingot's own): everything it has is built in, the initrd loads
		// nothing.
		return &Set{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read modules.dep of kernel %s: %w (run depmod %s when building the root filesystem)", kver, err, kver)
	}
	deps, files, err := parseDep(depData)
	if err != nil {
		return nil, fmt.Errorf("parse modules.dep of kernel %s: %w", kver, err)
	}
	aliases, _ := fsys.ReadFile(dir + "/modules.alias")
	if soft, err := fsys.ReadFile(dir + "/modules.softdep"); err == nil {
		addSoftPre(deps, files, soft, aliases)
	}
	devAliases := deviceAliases(aliases)
	builtin := map[string]bool{}
	if b, err := fsys.ReadFile(dir + "/modules.builtin"); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[NormalizeName(l)] = true
		}
	}
	set := &Set{}
	seen, requested := map[string]bool{}, map[string]bool{}
	var visit func(name string, stack []string) error
	visit = func(name string, stack []string) error {
		if seen[name] {
			return nil
		}
		for _, s := range stack {
			if s == name {
				return fmt.Errorf("dependency cycle: %s", strings.Join(append(stack, name), " → "))
			}
		}
		for _, d := range deps[name] {
			if err := visit(d, append(stack, name)); err != nil {
				return err
			}
		}
		seen[name] = true
		raw, err := fsys.ReadFile(dir + "/" + files[name])
		if err != nil {
			return fmt.Errorf("read module %s: %w", name, err)
		}
		content, err := Decompress(files[name], raw)
		if err != nil {
			return fmt.Errorf("decompress module %s: %w", name, err)
		}
		set.Modules = append(set.Modules, Module{Name: name, Path: stripCompression(files[name]), Content: content,
			Deps: deps[name], DeviceAliases: devAliases[name]})
		return nil
	}
	for _, w := range wanted {
		name := NormalizeName(w)
		switch {
		case files[name] != "":
			if err := visit(name, nil); err != nil {
				return nil, err
			}
			requested[name] = true
		case builtin[name]:
			set.Builtin = append(set.Builtin, name)
		default:
			set.Missing = append(set.Missing, name)
		}
	}
	for i := range set.Modules {
		set.Modules[i].Requested = requested[set.Modules[i].Name]
	}
	sort.Strings(set.Builtin)
	sort.Strings(set.Missing)
	return set, nil
}

// addSoftPre adds "softdep X pre: Y" dependencies, resolving Y through exact
// matches in modules.alias (e.g. crypto-crc32c → crc32c_generic) when Y is not
// a module name itself.
func addSoftPre(deps map[string][]string, files map[string]string, soft, aliases []byte) {
	alias := map[string][]string{}
	for _, line := range strings.Split(string(aliases), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "alias" && !strings.ContainsAny(f[1], "*?[") {
			alias[f[1]] = append(alias[f[1]], NormalizeName(f[2]))
		}
	}
	for _, line := range strings.Split(string(soft), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "softdep" {
			continue
		}
		mod := NormalizeName(f[1])
		if files[mod] == "" {
			continue
		}
		inPre := false
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				inPre = true
				continue
			case "post:":
				inPre = false
				continue
			}
			if !inPre {
				continue
			}
			if name := NormalizeName(w); files[name] != "" {
				deps[mod] = append([]string{name}, deps[mod]...)
				continue
			}
			for _, target := range alias[w] {
				if files[target] != "" && target != mod {
					deps[mod] = append([]string{target}, deps[mod]...)
				}
			}
		}
	}
}

// hasModuleFiles reports whether the kernel's directory lists modules
// (modules.order, written by modules_install): modules without a
// modules.dep are a broken tree, not a modules-free kernel.
func hasModuleFiles(fsys FS, dir string) bool {
	_, err := fsys.ReadFile(dir + "/modules.order")
	return err == nil
}

// parseDep reads modules.dep: "path: dep-path dep-path ...". Every path
// must be relative and stay inside the modules directory: a module is read
// from there into the initrd.
func parseDep(data []byte) (deps map[string][]string, files map[string]string, err error) {
	deps, files = map[string][]string{}, map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		file, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, nil, fmt.Errorf("line %d: no colon", n)
		}
		if !filepath.IsLocal(file) || strings.ContainsRune(file, 0) {
			return nil, nil, fmt.Errorf("line %d: module path %q is not a file name inside the modules directory (run depmod again)", n, file)
		}
		name := NormalizeName(file)
		files[name] = file
		for _, d := range strings.Fields(rest) {
			deps[name] = append(deps[name], NormalizeName(d))
		}
	}
	return deps, files, sc.Err()
}

func stripCompression(p string) string {
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		p = strings.TrimSuffix(p, ext)
	}
	return p
}

// Decompress returns the plain module for a file named with .ko, .ko.xz,
// .ko.zst or .ko.gz.
func Decompress(name string, data []byte) ([]byte, error) {
	var r io.Reader
	switch {
	case strings.HasSuffix(name, ".xz"):
		xr, err := xz.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		r = xr
	case strings.HasSuffix(name, ".zst"):
		zr, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(name, ".gz"):
		gr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		r = gr
	default:
		return data, nil
	}
	return io.ReadAll(r)
}
