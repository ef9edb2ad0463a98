package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/ingot-linux/ingot/layout"
)

// Status is the state of the machine's versions.
type Status struct {
	Version string `json:"version"`
	Slot    string `json:"slot"`
	UsrHash string `json:"usrhash"`
	// OtherSlotVersion is the version in the slot not booted ("" when empty).
	OtherSlotVersion string `json:"otherSlotVersion"`
	// Entries are the UKIs on the ESP, newest first.
	Entries []Entry `json:"entries"`
	// Pending is the entry the next boot starts when it is not the booted
	// one: the newest with tries left, or the one Default names.
	Pending string `json:"pending,omitempty"`
	// Default is the LoaderEntryDefault EFI variable, the glob over entry
	// IDs that systemd-boot boots instead of the newest entry (an allowed
	// downgrade sets it); "" when it is not set.
	Default string `json:"default,omitempty"`
	// RolledBack is set when a newer entry ran out of tries and this older
	// version booted instead.
	RolledBack *Rollback `json:"rolledBack,omitempty"`
	// Config is what ingot-init did with the machine configuration in
	// this boot; its error field says why nothing was applied.
	Config *layout.ConfigStatus `json:"config,omitempty"`
}

// Rollback describes an automatic fallback.
type Rollback struct {
	From   string `json:"from"`
	Reason string `json:"reason"`
}

// Running returns the booted version and usrhash only, without reading the
// disk or the ESP.
func (a *Agent) Running() (*Status, error) {
	info, err := a.bootInfo()
	if err != nil {
		return nil, err
	}
	return &Status{Slot: info.Slot, UsrHash: info.UsrHash, Version: osReleaseField(a.path("/usr/lib/os-release"), "IMAGE_VERSION")}, nil
}

// Status reads the booted version, both slots and the ESP.
func (a *Agent) Status() (*Status, error) {
	info, err := a.bootInfo()
	if err != nil {
		return nil, err
	}
	st := &Status{Slot: info.Slot, UsrHash: info.UsrHash, Version: osReleaseField(a.path("/usr/lib/os-release"), "IMAGE_VERSION")}
	d, err := a.openDisk(info, false)
	if err != nil {
		return nil, err
	}
	defer d.f.Close()
	if s, err := layout.ABSlots(d.table); err == nil {
		for _, sl := range s {
			if sl.Name != info.Slot {
				st.OtherSlotVersion = sl.Version()
			}
		}
	}
	err = a.withESP(d, func(esp string) error {
		st.Entries, err = listEntries(esp, info.UsrHash)
		return err
	})
	if err != nil {
		return nil, err
	}
	if st.Default, err = a.readLoaderVar(loaderEntryDefault); err != nil {
		return nil, err
	}
	st.nextBoot()
	if st.Config, err = a.Config(); err != nil {
		return nil, err
	}
	return st, nil
}

// nextBoot fills in Pending and RolledBack from the entries and Default.
func (st *Status) nextBoot() {
	if st.Default != "" {
		for _, e := range st.Entries {
			if ok, _ := path.Match(st.Default, strings.ToLower(e.File)); ok {
				if !e.Booted {
					st.Pending = e.Version
				}
				return
			}
		}
	}
	// systemd-boot's default: the newest entry with tries left, or the
	// newest of all when every one is out of tries.
	if len(st.Entries) > 0 {
		next := st.Entries[0]
		for _, e := range st.Entries {
			if !e.Bad() {
				next = e
				break
			}
		}
		if !next.Booted {
			st.Pending = next.Version
		}
	}
	// A newer entry out of tries is what the machine rolled back from.
	for _, e := range st.Entries {
		if e.Booted {
			break
		}
		switch {
		case e.Bad() && st.RolledBack == nil && e.TriesDone == 0:
			st.RolledBack = &Rollback{From: e.Version, Reason: "ingot rollback"}
		case e.Bad() && st.RolledBack == nil:
			st.RolledBack = &Rollback{From: e.Version, Reason: fmt.Sprintf("%s failed %d boots without reaching boot-complete.target", e.Version, e.TriesDone)}
		}
	}
}

// Bless marks the booted entry good: its boot counter is dropped from the
// name, so systemd-boot keeps starting it. It is what systemd-bless-boot
// does; ingot does it itself so it works whatever mounts the ESP.
// An image whose systemd has systemd-bless-boot.service blesses the entry
// twice; whichever comes second finds it done.
func (a *Agent) Bless() (string, error) {
	name, err := a.renameBooted(func(e Entry) string {
		if e.TriesLeft < 0 {
			return ""
		}
		return layout.UKIName(e.Version, 0)
	})
	if errors.Is(err, fs.ErrNotExist) && name != "" {
		if a.entryExists(name) {
			return name, nil // systemd-bless-boot renamed it meanwhile
		}
	}
	return name, err
}

// entryExists reports whether the ESP has the UKI name.
func (a *Agent) entryExists(name string) bool {
	found := false
	a.withEntries(func(esp string, _ []Entry) error {
		_, err := os.Stat(filepath.Join(esp, layout.UKIDir, name))
		found = err == nil
		return nil
	})
	return found
}

// Rollback makes the previous version the next boot, by marking the booted
// entry as out of tries (systemd-boot then sorts it last). A
// LoaderEntryDefault that an allowed downgrade set is removed first: it
// would keep naming its entry whatever the tries.
func (a *Agent) Rollback() (string, error) {
	var to string
	err := a.withEntries(func(esp string, entries []Entry) error {
		var booted *Entry
		for i := range entries {
			e := &entries[i]
			if e.Booted {
				booted = e
			} else if !e.Bad() && to == "" {
				to = e.Version
			}
		}
		if booted == nil {
			return fmt.Errorf("the booted UKI is not on the ESP")
		}
		if to == "" {
			return fmt.Errorf("no other version on the ESP to roll back to")
		}
		if err := a.removeLoaderVar(loaderEntryDefault); err != nil {
			return err
		}
		// +0-0: no tries left, none used — systemd-boot sorts it last, and
		// Status can tell a manual rollback from three failed boots.
		return renameEntry(esp, booted.File, fmt.Sprintf("%s_%s+0-0.efi", layout.Name, booted.Version))
	})
	return to, err
}

func (a *Agent) renameBooted(newName func(Entry) string) (string, error) {
	var done string
	err := a.withEntries(func(esp string, entries []Entry) error {
		for _, e := range entries {
			if !e.Booted {
				continue
			}
			if n := newName(e); n != "" && n != e.File {
				done = n
				return renameEntry(esp, e.File, n)
			}
			return nil
		}
		return nil
	})
	return done, err
}

// withEntries mounts the boot disk's ESP and hands fn its UKI entries.
func (a *Agent) withEntries(fn func(esp string, entries []Entry) error) error {
	info, err := a.bootInfo()
	if err != nil {
		return err
	}
	d, err := a.openDisk(info, false)
	if err != nil {
		return err
	}
	defer d.f.Close()
	return a.withESP(d, func(esp string) error {
		entries, err := listEntries(esp, info.UsrHash)
		if err != nil {
			return err
		}
		return fn(esp, entries)
	})
}

// Reset removes the root partition from the partition table: the next boot
// makes a fresh one (factory /etc and /var, new machine-id). Slots and ESP
// stay.
func (a *Agent) Reset() error {
	info, err := a.bootInfo()
	if err != nil {
		return err
	}
	d, err := a.openDisk(info, true)
	if err != nil {
		return err
	}
	defer d.f.Close()
	kept := d.table.Partitions[:0]
	found := false
	for _, p := range d.table.Partitions {
		if p.Type == layout.TypeRoot {
			found = true
			continue
		}
		kept = append(kept, p)
	}
	if !found {
		return fmt.Errorf("no root partition on %s", d.path)
	}
	d.table.Partitions = kept
	if err := d.table.Write(d.f, d.size); err != nil {
		return fmt.Errorf("write partition table: %w", err)
	}
	return d.f.Sync()
}

func osReleaseField(path, key string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}
