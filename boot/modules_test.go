package boot

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/layout"
)

func TestParseModules(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // name:deps:aliases:boot:crypt per module
		err      string
	}{
		{"empty", "", nil, ""},
		{"order and words", "k/a.ko\nk/dm-verity.ko boot dep:a alias:pci:v*d*\nk/dm-crypt.ko crypt dep:a\n\n",
			[]string{"a:::false:false", "dm_verity:a:pci:v*d*:true:false", "dm_crypt:a::false:true"}, ""},
		{"dep not listed before", "k/b.ko dep:a\nk/a.ko\n", nil, `needs "a", which no line before it lists`},
		{"escaping path", "../../etc/x.ko\n", nil, "not inside /usr/lib/modules"},
		{"absolute path", "/x.ko\n", nil, "not inside /usr/lib/modules"},
		{"bad pattern", "k/a.ko alias:pci:[\n", nil, "alias"},
		{"unknown word", "k/a.ko soft:b\n", nil, `unknown word "soft:b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mods, err := parseModules([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range mods {
				got = append(got, fmt.Sprintf("%s:%s:%s:%v:%v", m.name, strings.Join(m.deps, ","), strings.Join(m.aliases, ","), m.boot, m.crypt))
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParseModules(f *testing.F) {
	f.Add([]byte("k/a.ko\nk/b.ko dep:a alias:virtio:d00000002v*\n"))
	f.Add([]byte("k/b.ko dep:a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		mods, err := parseModules(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, m := range mods {
			if !filepath.IsLocal(m.rel) {
				t.Fatalf("path %q escapes", m.rel)
			}
			for _, d := range m.deps {
				if !seen[d] {
					t.Fatalf("%s needs %s, not listed before it", m.name, d)
				}
			}
			seen[m.name] = true
		}
	})
}

// moduleSys records module loads, from any goroutine, and refuses the
// modules named in fail with the given error.
type moduleSys struct {
	Sys
	mu     sync.Mutex
	loads  []string
	active map[string]bool
	fail   map[string]error
	early  []string // a module loaded while one it needs was still loading
}

func (m *moduleSys) LoadModule(content []byte, _ string) error {
	name := string(content)
	m.mu.Lock()
	m.active[name] = true
	m.mu.Unlock()
	time.Sleep(5 * time.Millisecond) // let parallel loads overlap
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.active, name)
	m.loads = append(m.loads, name)
	return m.fail[name]
}

// TestLoadModules checks which modules a boot loads and in what order: the
// modules without aliases always, drivers only for present devices (and
// for devices announced later), every module after the ones it needs.
func TestLoadModules(t *testing.T) {
	list := strings.Join([]string{
		"k/virtio_ring.ko",
		"k/virtio_blk.ko dep:virtio_ring alias:virtio:d00000002v*",
		"k/scsi_mod.ko",
		"k/nvme.ko dep:scsi_mod alias:pci:v*d*sv*sd*bc01sc08i02*",
		"k/dm-mod.ko boot",
		"k/dm-verity.ko boot dep:dm_mod",
		"k/sd_mod.ko dep:scsi_mod alias:scsi:t-0x00*",
		"k/dm-crypt.ko crypt dep:dm_mod",
	}, "\n")
	tests := []struct {
		name    string
		devices []string // modaliases in /sys/bus
		later   []string // modaliases that appear after loadModules
		want    string   // sorted loads
		fail    map[string]error
		logged  string
		crypt   bool // the root is encrypted
		stop    bool // the boot disk is found before the later devices come
	}{
		{"virtio only", []string{"virtio:d00000002v00001AF4", "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"}, nil,
			"dm_mod dm_verity virtio_blk virtio_ring", nil, "", false, false},
		{"nvme", []string{"pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02"}, nil,
			"dm_mod dm_verity nvme scsi_mod", nil, "", false, false},
		{"a disk announced later", nil, []string{"scsi:t-0x00"},
			"dm_mod dm_verity scsi_mod sd_mod", nil, "", false, false},
		{"refusals", nil, nil, "dm_mod dm_verity",
			map[string]error{"dm_mod": unix.EEXIST, "dm_verity": unix.EINVAL}, "module dm_verity: invalid argument", false, false},
		{"encrypted root", nil, nil, "dm_crypt dm_mod dm_verity", nil, "", true, false},
		{"boot disk found", []string{"virtio:d00000002v00001AF4"}, []string{"scsi:t-0x00"},
			"dm_mod dm_verity virtio_blk virtio_ring", nil, "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			write := func(p, content string) {
				t.Helper()
				if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("usr/lib/modules/"+layout.InitrdModulesFile, list)
			for _, l := range strings.Split(list, "\n") {
				rel := strings.Fields(l)[0]
				write("usr/lib/modules/"+rel, moduleName(rel))
			}
			for i, d := range tt.devices {
				write("sys/bus/b/devices/d"+string(rune('0'+i))+"/modalias", d+"\n")
			}
			sys := &moduleSys{active: map[string]bool{}, fail: tt.fail}
			deps := map[string][]string{"virtio_blk": {"virtio_ring"}, "nvme": {"scsi_mod"}, "dm_verity": {"dm_mod"}, "sd_mod": {"scsi_mod"}, "dm_crypt": {"dm_mod"}}
			var console bytes.Buffer
			s := &State{Config: Config{Sys: &orderCheck{moduleSys: sys, deps: deps}, Root: root, Console: &console}}
			if err := loadModules(t.Context(), s); err != nil {
				t.Fatal(err)
			}
			s.settleModules()
			if tt.crypt {
				s.needCryptModules()
			}
			if tt.stop {
				s.modules.stopDrivers()
			}
			for i, d := range tt.later { // announced: a uevent kicks the matcher
				write("sys/bus/b/devices/later"+string(rune('0'+i))+"/modalias", d+"\n")
				s.modules.kick()
				s.settleModules()
			}
			got := append([]string(nil), sys.loads...)
			sort.Strings(got)
			if strings.Join(got, " ") != tt.want {
				t.Errorf("loaded %v, want %s", got, tt.want)
			}
			if len(sys.early) > 0 {
				t.Errorf("loaded before what they need: %v", sys.early)
			}
			if !strings.Contains(console.String(), tt.logged) || (tt.logged == "" && console.Len() > 0) {
				t.Errorf("console %q, want %q", console.String(), tt.logged)
			}
		})
	}
}

// orderCheck notes a module loaded while a module it needs was not yet
// loaded.
type orderCheck struct {
	*moduleSys
	deps map[string][]string
}

func (o *orderCheck) LoadModule(content []byte, params string) error {
	o.mu.Lock()
	done := map[string]bool{}
	for _, l := range o.loads {
		done[l] = true
	}
	for _, d := range o.deps[string(content)] {
		if !done[d] {
			o.early = append(o.early, string(content))
		}
	}
	o.mu.Unlock()
	return o.moduleSys.LoadModule(content, params)
}

func TestTimingLine(t *testing.T) {
	s := &State{started: 420 * time.Millisecond, Timings: []StepTime{
		{"mount API filesystems", 3 * time.Millisecond}, {"load kernel modules", 1500 * time.Millisecond},
	}}
	want := "timing: started 420ms after the kernel; 1.50s in 2 steps (mount API filesystems 3ms, load kernel modules 1.50s); switch root 2.01s after the kernel"
	if got := s.timingLine(2010 * time.Millisecond); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestMatchesAny(t *testing.T) {
	tests := []struct {
		aliases, modaliases []string
		want                bool
	}{
		{[]string{"pci:v00001AF4d*sv*sd*bc*sc*i*"}, []string{"pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"}, true},
		{[]string{"pci:v00001AF4d*sv*sd*bc*sc*i*"}, []string{"pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"}, false},
		{[]string{"acpi*:MSFT0101:*"}, []string{"acpi:MSFT0101:"}, true},
		{[]string{"acpi*:MSFT0101:*"}, []string{"acpi:PNP0A03:"}, false},
		{[]string{"scsi:t-0x00*", "scsi:t-0x07*"}, []string{"scsi:t-0x07"}, true},
		{[]string{"usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*"}, nil, false},
		{nil, []string{"pci:v1"}, false},
		{[]string{"pci:[", "pci:v1"}, []string{"pci:v1"}, true}, // a bad pattern matches nothing, the next one still counts
	}
	for _, tt := range tests {
		if got := matchesAny(tt.aliases, tt.modaliases); got != tt.want {
			t.Errorf("matchesAny(%q, %q) = %v, want %v", tt.aliases, tt.modaliases, got, tt.want)
		}
	}
}

// TestLoadModulesStopsAtDisk checks that no driver starts once the boot
// disk is there: the first driver loads, the second does not.
func TestLoadModulesStopsAtDisk(t *testing.T) {
	for _, found := range []bool{false, true} {
		root := t.TempDir()
		for p, c := range map[string]string{
			"sys/bus/pci/devices/a/modalias":  "pci:v00001AF4d00001001\n",
			"sys/bus/pci/devices/b/modalias":  "pci:v0000144Dd0000A808\n",
			"usr/lib/modules/k/virtio_blk.ko": "virtio_blk", "usr/lib/modules/k/nvme.ko": "nvme",
		} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		mods, err := parseModules([]byte("k/virtio_blk.ko alias:pci:v00001AF4*\nk/nvme.ko alias:pci:v0000144D*\n"))
		if err != nil {
			t.Fatal(err)
		}
		sys := &moduleSys{active: map[string]bool{}}
		s := &State{Config: Config{Sys: sys, Root: root, Console: &bytes.Buffer{}}}
		s.modules = newModuleLoader(s, mods)
		s.modules.watchDisk(func() bool { return found })
		s.modules.start()
		s.settleModules()
		want := "virtio_blk nvme"
		if found {
			want = "virtio_blk"
		}
		if got := strings.Join(sys.loads, " "); got != want {
			t.Errorf("disk found %v: loaded %q, want %q", found, got, want)
		}
	}
}
