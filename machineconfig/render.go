package machineconfig

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ingot-linux/ingot/layout"
)

// Entry is one thing Apply puts in place on the booted system: a file, a
// symbolic link, a directory, or the removal of what is at Path.
type Entry struct {
	// Path is absolute on the booted system, under /etc, /var, /home or
	// /root.
	Path string
	// Mode is the permission bits, with fs.ModeSymlink or fs.ModeDir for
	// a link or a directory.
	Mode     fs.FileMode
	UID, GID int
	Data     []byte
	// Link is a symbolic link's target.
	Link string
	// Remove removes what is at Path (a disabled unit's link).
	Remove bool
	// Secret content is never shown.
	Secret bool
	// From says which key made the entry ("files[2]", "hostname").
	From string
}

// Render turns c into the entries that make it true on the system whose
// root is root: the users merged into root's /etc/passwd, /etc/group and
// /etc/shadow, units enabled by their [Install] sections as found in
// root's /etc or /usr. It reads root and changes nothing. A file with a
// url is refused: nothing fetches at boot (the initrd has no network).
func Render(root string, c *Config) ([]Entry, error) {
	r := &renderer{root: root}
	steps := []func(*Config) error{r.system, r.users, r.files, r.units, r.network, r.extensions}
	for _, step := range steps {
		if err := step(c); err != nil {
			return nil, err
		}
	}
	return r.entries, r.checkConflicts()
}

type renderer struct {
	root    string
	entries []Entry
	acct    *accounts
}

func (r *renderer) add(e Entry) { r.entries = append(r.entries, e) }

func (r *renderer) file(from, path string, mode fs.FileMode, data string) {
	r.add(Entry{From: from, Path: path, Mode: mode, Data: []byte(data)})
}

// checkConflicts refuses two keys writing one path.
func (r *renderer) checkConflicts() error {
	seen := map[string]string{}
	var errs []error
	for _, e := range r.entries {
		if prev, ok := seen[e.Path]; ok && prev != e.From {
			errs = append(errs, fmt.Errorf("%s and %s both write %s", prev, e.From, e.Path))
		}
		seen[e.Path] = e.From
	}
	return errors.Join(errs...)
}

func (r *renderer) system(c *Config) error {
	if c.Hostname != "" {
		r.file("hostname", "/etc/hostname", 0o644, c.Hostname+"\n")
	}
	if c.Timezone != "" {
		zone := "/usr/share/zoneinfo/" + c.Timezone
		if _, err := os.Stat(filepath.Join(r.root, zone)); err != nil {
			return fmt.Errorf("timezone %s: the image has no %s", c.Timezone, zone)
		}
		r.add(Entry{From: "timezone", Path: "/etc/localtime", Mode: fs.ModeSymlink | 0o777, Link: ".." + zone})
	}
	if len(c.Sysctl) > 0 {
		var b strings.Builder
		for _, k := range slices.Sorted(mapsKeys(c.Sysctl)) {
			fmt.Fprintf(&b, "%s = %s\n", k, c.Sysctl[k])
		}
		r.file("sysctl", "/etc/sysctl.d/50-ingot-config.conf", 0o644, b.String())
	}
	if u := c.Update; u != nil && (u.Channel != "" || u.Window != "") {
		var b strings.Builder
		if u.Channel != "" {
			fmt.Fprintf(&b, "CHANNEL=%s\n", u.Channel)
		}
		if u.Window != "" {
			fmt.Fprintf(&b, "WINDOW=%s\n", u.Window)
		}
		r.file("update", "/etc/ingot/update.conf", 0o644, b.String())
	}
	return nil
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (r *renderer) files(c *Config) error {
	for i, f := range c.Files {
		from := fmt.Sprintf("files[%d]", i)
		if f.URL != "" {
			return fmt.Errorf("%s: %s from %s: fetching is refused at boot (the initrd has no network); give the content inline", from, f.Path, f.URL)
		}
		data := []byte(f.Content)
		if f.Encoding == "base64" {
			var err error
			if data, err = base64.StdEncoding.DecodeString(f.Content); err != nil {
				return fmt.Errorf("%s: content of %s is not valid base64", from, f.Path)
			}
		}
		mode, err := f.mode()
		if err != nil {
			return fmt.Errorf("%s: %w", from, err)
		}
		uid, gid, err := r.acct.owner(f.Owner)
		if err != nil {
			return fmt.Errorf("%s: owner of %s: %w", from, f.Path, err)
		}
		r.add(Entry{From: from, Path: f.Path, Mode: fs.FileMode(mode & 0o777), UID: uid, GID: gid, Data: data, Secret: f.Secret})
	}
	return nil
}

// networkdUnit is the service that reads the .network files.
const networkdUnit = "systemd-networkd.service"

func (r *renderer) network(c *Config) error {
	if len(c.Network) > 0 && !slices.ContainsFunc(c.Units, func(u Unit) bool { return u.Name == networkdUnit }) {
		// The files do nothing without networkd, which some images
		// (Debian's) have but do not enable; a units: entry for it
		// decides instead.
		if err := r.enable("network", Unit{Name: networkdUnit}, true); err != nil {
			return err
		}
	}
	for i, n := range c.Network {
		var b strings.Builder
		fmt.Fprintf(&b, "[Match]\nName=%s\n", n.Name)
		if n.MAC != "" {
			fmt.Fprintf(&b, "MACAddress=%s\n", strings.ToLower(n.MAC))
		}
		b.WriteString("\n[Network]\n")
		if n.DHCP {
			b.WriteString("DHCP=yes\n")
		}
		for _, a := range n.Addresses {
			fmt.Fprintf(&b, "Address=%s\n", a)
		}
		if n.Gateway != "" {
			fmt.Fprintf(&b, "Gateway=%s\n", n.Gateway)
		}
		for _, d := range n.DNS {
			fmt.Fprintf(&b, "DNS=%s\n", d)
		}
		if len(n.Domains) > 0 {
			fmt.Fprintf(&b, "Domains=%s\n", strings.Join(n.Domains, " "))
		}
		for _, rt := range n.Routes {
			fmt.Fprintf(&b, "\n[Route]\nDestination=%s\nGateway=%s\n", rt.To, rt.Via)
		}
		// 10-: before the image's own catch-all files, so the first match wins.
		r.file(fmt.Sprintf("network[%d]", i), fmt.Sprintf("/etc/systemd/network/10-ingot-config-%02d.network", i), 0o644, b.String())
	}
	return nil
}

// ExtensionsPath is where the applied configuration leaves its
// extensions (layout.ConfigExtensionsPath).
const ExtensionsPath = layout.ConfigExtensionsPath

func (r *renderer) extensions(c *Config) error {
	if len(c.Extensions) == 0 {
		r.add(Entry{From: "extensions", Path: ExtensionsPath, Remove: true})
		return nil
	}
	b, err := json.MarshalIndent(c.Extensions, "", "  ")
	if err != nil {
		return fmt.Errorf("extensions: %w", err)
	}
	r.add(Entry{From: "extensions", Path: ExtensionsPath, Mode: 0o644, Data: append(b, '\n')})
	return nil
}
