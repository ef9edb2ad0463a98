package boot

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/layout"
)

// initrdModule is one kernel module the initrd carries (a line of
// layout.InitrdModulesFile).
type initrdModule struct {
	name, rel string
	deps      []string
	// aliases are the device patterns it drives: loaded when a device
	// matches one.
	aliases []string
	// boot is true for a module every boot loads. A module with neither
	// boot nor aliases loads only when another needs it.
	boot bool
}

// maxModuleLine bounds a line of the module list (a driver with many
// aliases makes a long one).
const maxModuleLine = 1 << 20

// parseModules reads the initrd's module list: per line a path under
// /usr/lib/modules, then the words "boot", "dep:NAME" and "alias:PATTERN".
func parseModules(data []byte) ([]initrdModule, error) {
	var mods []initrdModule
	known := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxModuleLine)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if !filepath.IsLocal(f[0]) {
			return nil, fmt.Errorf("line %d: module path %q is not inside /usr/lib/modules", n, f[0])
		}
		m := initrdModule{name: moduleName(f[0]), rel: f[0]}
		for _, w := range f[1:] {
			if w == "boot" {
				m.boot = true
				continue
			}
			switch k, v, _ := strings.Cut(w, ":"); k {
			case "dep":
				if !known[v] {
					return nil, fmt.Errorf("line %d: %s needs %q, which no line before it lists", n, m.name, v)
				}
				m.deps = append(m.deps, v)
			case "alias":
				if _, err := path.Match(v, ""); err != nil {
					return nil, fmt.Errorf("line %d: alias %q of %s: %w", n, v, m.name, err)
				}
				m.aliases = append(m.aliases, v)
			default:
				return nil, fmt.Errorf("line %d: unknown word %q", n, w)
			}
		}
		known[m.name] = true
		mods = append(mods, m)
	}
	return mods, sc.Err()
}

// moduleName is the module name of a path: "…/dm-verity.ko" → "dm_verity".
func moduleName(rel string) string {
	return strings.ReplaceAll(strings.TrimSuffix(path.Base(rel), ".ko"), "-", "_")
}

// moduleLoader loads the initrd's modules that this machine needs: those
// without device aliases, and drivers whose alias matches a device's
// modalias (as udev would, but only for the few drivers the initrd
// carries). Independent modules load in parallel; a module loads after
// the modules it needs. Devices found later (a disk behind a controller
// whose driver just loaded) are matched again by more.
type moduleLoader struct {
	s      *State
	mods   []initrdModule
	byName map[string]*initrdModule

	mu     sync.Mutex
	loaded map[string]*moduleLoad
}

// moduleLoad is one module's load: done is closed when it has finished.
type moduleLoad struct {
	done chan struct{}
}

func newModuleLoader(s *State, mods []initrdModule) *moduleLoader {
	l := &moduleLoader{s: s, mods: mods, byName: map[string]*initrdModule{}, loaded: map[string]*moduleLoad{}}
	for i := range mods {
		l.byName[mods[i].name] = &mods[i]
	}
	return l
}

// wanted returns the modules not yet loaded that this boot needs for
// modaliases.
func (l *moduleLoader) wanted(modaliases []string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.mods {
		if l.loaded[m.name] != nil || !(m.boot || matchesAny(m.aliases, modaliases)) {
			continue
		}
		out = append(out, m.name)
	}
	return out
}

// matchesAny is true when one of a module's aliases matches one of the
// modaliases (fnmatch patterns, as modprobe matches them).
func matchesAny(aliases, modaliases []string) bool {
	for _, a := range aliases {
		for _, ma := range modaliases {
			if ok, _ := path.Match(a, ma); ok {
				return true
			}
		}
	}
	return false
}

// load loads names and what they need, in parallel, and returns when all
// have finished. A module the kernel refuses is logged, not an error:
// missing storage shows up when the usr partition is not found.
func (l *moduleLoader) load(names []string) {
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.loadOne(n)
		}()
	}
	wg.Wait()
}

// loadOne loads a module after its dependencies; a module already loading
// is waited for, not loaded twice.
func (l *moduleLoader) loadOne(name string) {
	l.mu.Lock()
	if ld := l.loaded[name]; ld != nil {
		l.mu.Unlock()
		<-ld.done
		return
	}
	ld := &moduleLoad{done: make(chan struct{})}
	l.loaded[name] = ld
	l.mu.Unlock()
	defer close(ld.done)
	m := l.byName[name]
	if m == nil {
		return // built in or absent: nothing to load
	}
	l.load(m.deps)
	content, err := os.ReadFile(l.s.path("/usr/lib/modules/" + m.rel))
	if err == nil {
		err = l.s.Sys.LoadModule(content, "")
	}
	// A driver without hardware refuses to load (ENODEV), a module
	// already there is EEXIST; neither is a boot failure.
	if err != nil && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EEXIST) {
		l.s.logf("module %s: %v", name, err)
	}
}

// loadFor loads the modules this machine needs for the devices it has now
// and returns how many it started.
func (l *moduleLoader) loadFor(modaliases []string) int {
	names := l.wanted(modaliases)
	l.load(names)
	return len(names)
}

// modaliases returns the modalias of every device on the buses whose
// drivers the initrd may carry.
func (s *State) modaliases() []string {
	var out []string
	buses, _ := os.ReadDir(s.path("/sys/bus"))
	for _, b := range buses {
		devs, _ := os.ReadDir(s.path("/sys/bus/" + b.Name() + "/devices"))
		for _, d := range devs {
			ma, err := os.ReadFile(s.path("/sys/bus/" + b.Name() + "/devices/" + d.Name() + "/modalias"))
			if err == nil {
				if v := strings.TrimSpace(string(ma)); v != "" {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// loadModules loads the modules every boot needs and the drivers of the
// devices present, repeating while loading a driver brings new devices (a
// controller's disks). Drivers of devices that come later are loaded by
// waitDevices.
func loadModules(_ context.Context, s *State) error {
	list, err := os.ReadFile(s.path("/usr/lib/modules/" + layout.InitrdModulesFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil // a kernel with everything built in
	}
	if err != nil {
		return err
	}
	mods, err := parseModules(list)
	if err != nil {
		return fmt.Errorf("%s: %w", layout.InitrdModulesFile, err)
	}
	s.modules = newModuleLoader(s, mods)
	s.loadDrivers()
	return nil
}

// loadDrivers loads the modules the boot needs and the drivers of the
// devices present now, again while a driver that loaded brings more
// devices (a controller's disks).
func (s *State) loadDrivers() {
	if s.modules == nil {
		return
	}
	for s.modules.loadFor(s.modaliases()) > 0 {
	}
}
