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
	"runtime"
	"slices"
	"sort"
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
	// boot is true for a module every boot loads, crypt for one an
	// encrypted root needs. A module with none of boot, crypt and aliases
	// loads only when another needs it.
	boot, crypt bool
}

// maxModuleLine bounds a line of the module list (a driver with many
// aliases makes a long one).
const maxModuleLine = 1 << 20

// parseModules reads the initrd's module list: per line a path under
// /usr/lib/modules, then the words "boot", "crypt", "dep:NAME" and
// "alias:PATTERN".
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
			switch w {
			case "boot":
				m.boot = true
				continue
			case "crypt":
				m.crypt = true
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

// moduleLoader loads the initrd's modules that this machine needs, in the
// background while the boot goes on: the modules every boot needs, in the
// list's order on all CPUs but one, each after the modules it needs; and
// the drivers whose alias
// matches a device's modalias (as udev would, but only for the few drivers
// the initrd carries), one at a time in the image's order, until the boot
// disk is found (stopDrivers). Each driver that loads makes it look at the
// devices again (a controller's disks), as does a uevent. Drivers of the
// other controllers are left to udev after switch root: a driver's load
// waits for every asynchronous probe in the kernel (AHCI's port resets
// among them), so loading one the boot does not need delays the rest. A
// step that needs a module waits for that module only (need).
type moduleLoader struct {
	s      *State
	mods   []initrdModule
	byName map[string]*initrdModule
	order  map[string]int // a module's line in the list

	mu     sync.Mutex
	loaded map[string]*moduleLoad
	// pending are drivers matched to a device and not started, in the
	// list's order; driving is true while one loads; stopped once the
	// boot disk is found.
	pending          []string
	driving, stopped bool
	// diskFound tells whether the boot disk is there (nil until the
	// step that looks for it runs): asked before each driver after the
	// first, so that no driver starts once the disk is there.
	diskFound func() bool
	drivers   int // drivers started

	// busy counts the loads under way and the pending match.
	busy sync.WaitGroup
	// match asks the matcher to look at the devices again.
	match chan struct{}
}

// moduleLoad is one module's load: done is closed when it has finished.
type moduleLoad struct {
	done chan struct{}
}

func newModuleLoader(s *State, mods []initrdModule) *moduleLoader {
	l := &moduleLoader{s: s, mods: mods, byName: map[string]*initrdModule{}, order: map[string]int{},
		loaded: map[string]*moduleLoad{}, match: make(chan struct{}, 1)}
	for i := range mods {
		l.byName[mods[i].name] = &mods[i]
		l.order[mods[i].name] = i
	}
	return l
}

// start begins loading what this machine needs and returns. The modules
// every boot needs load in the list's order on all CPUs but one, which is
// left to the drivers: loads running side by side share the CPUs, and the
// disk's driver, which the next steps wait for, must not wait for ext4.
func (l *moduleLoader) start() {
	var boot []string
	for _, m := range l.mods {
		if m.boot {
			boot = append(boot, m.name)
		}
	}
	queue := make(chan string, len(boot))
	for _, n := range boot {
		queue <- n
	}
	close(queue)
	for range max(1, runtime.NumCPU()-1) {
		l.busy.Add(1)
		go func() {
			defer l.busy.Done()
			for n := range queue {
				l.loadOne(n)
			}
		}()
	}
	go l.matcher()
	l.kick()
}

// kick asks for the devices to be matched again; one pending request
// covers any number of kicks.
func (l *moduleLoader) kick() {
	l.busy.Add(1)
	select {
	case l.match <- struct{}{}:
	default:
		l.busy.Done()
	}
}

// stopDrivers starts no more drivers: the boot disk is there.
func (l *moduleLoader) stopDrivers() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped, l.pending = true, nil
}

// watchDisk sets the check that tells whether the boot disk is there.
func (l *moduleLoader) watchDisk(found func() bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.diskFound = found
}

// matcher starts the loads the devices present ask for, each time it is
// kicked. It runs until the process ends (switch root).
func (l *moduleLoader) matcher() {
	seen := map[string]bool{}
	for range l.match {
		// Only devices not matched before can want a driver not loaded.
		var fresh []string
		for _, ma := range l.s.modaliases() {
			if !seen[ma] {
				seen[ma] = true
				fresh = append(fresh, ma)
			}
		}
		driver := l.next(fresh)
		if driver != "" && l.needDriver() {
			l.spawn(driver)
		} else if driver != "" {
			l.mu.Lock()
			l.driving = false
			l.mu.Unlock()
		}
		l.busy.Done()
	}
}

// spawn loads a driver in the background; its end lets the next driver
// start and has the devices matched again.
func (l *moduleLoader) spawn(name string) {
	l.busy.Add(1)
	go func() {
		defer l.busy.Done()
		l.loadOne(name)
		l.mu.Lock()
		l.driving = false
		l.mu.Unlock()
		l.kick()
	}()
}

// needDriver is false once the boot disk is there (then no more drivers
// start); the first driver always loads.
func (l *moduleLoader) needDriver() bool {
	l.mu.Lock()
	found, first := l.diskFound, l.drivers == 0
	l.drivers++
	l.mu.Unlock()
	if first || found == nil || !found() {
		return true
	}
	l.stopDrivers()
	return false
}

// next returns the driver to load now (none while one loads, or once
// stopped), queueing the drivers that the fresh modaliases match.
func (l *moduleLoader) next(fresh []string) (driver string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.mods {
		switch {
		case l.loaded[m.name] != nil, m.boot:
		case !l.stopped && !slices.Contains(l.pending, m.name) && matchesAny(m.aliases, fresh):
			l.pending = append(l.pending, m.name)
		}
	}
	sort.Slice(l.pending, func(i, j int) bool { return l.order[l.pending[i]] < l.order[l.pending[j]] })
	for !l.driving && !l.stopped && len(l.pending) > 0 {
		driver, l.pending = l.pending[0], l.pending[1:]
		if l.loaded[driver] == nil {
			l.driving = true
			return driver
		}
	}
	return ""
}

// need loads the named modules if they have not been, and waits until
// they and those loading have finished. A name the initrd does not carry
// (built in, or absent) is no wait.
func (l *moduleLoader) need(names ...string) { l.load(names) }

// settle waits until no load is under way and no match is pending.
func (l *moduleLoader) settle() { l.busy.Wait() }

// matchesAny is true when one of a module's aliases matches one of the
// modaliases (fnmatch patterns, as modprobe matches them). The literal
// start of a pattern is compared first: a driver has hundreds of aliases,
// a machine a hundred modaliases, and under emulation every cycle shows.
func matchesAny(aliases, modaliases []string) bool {
	for _, a := range aliases {
		lit := a
		if i := strings.IndexAny(a, "*?[\\"); i >= 0 {
			lit = a[:i]
		}
		for _, ma := range modaliases {
			if !strings.HasPrefix(ma, lit) {
				continue
			}
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

// loadModules starts loading the modules every boot needs and the drivers
// of the devices present; later steps wait for the modules they use
// (needModules), and switch root for all of them.
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
	s.modules.start()
	return nil
}

// needModules waits for the named modules (loading them if nothing asked
// for them yet).
func (s *State) needModules(names ...string) {
	if s.modules != nil {
		s.modules.need(names...)
	}
}

// needCryptModules loads the modules of an encrypted root, and waits for
// every load under way (the TPM's driver among them).
func (s *State) needCryptModules() {
	if s.modules == nil {
		return
	}
	var names []string
	for _, m := range s.modules.mods {
		if m.crypt {
			names = append(names, m.name)
		}
	}
	s.modules.need(names...)
	s.modules.settle()
}

// settleModules waits until every module load started has finished.
func (s *State) settleModules() {
	if s.modules != nil {
		s.modules.settle()
	}
}
