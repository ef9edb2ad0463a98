package machineconfig

import "strings"

// The struct tags are the one description of the format: yaml names the
// key, doc describes it (schema and docs/config.md), and schema adds
// "required", a pattern, an enum ("a|b") or "scalar" (a string field that
// also takes a YAML number or boolean, like 0644).

// Version is the only format version this package reads.
const Version = 1

// Config is one machine configuration document.
type Config struct {
	Version    int               `yaml:"version" doc:"format version; must be 1" schema:"required"`
	Hostname   string            `yaml:"hostname,omitempty" doc:"the machine's host name (/etc/hostname)" pattern:"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"`
	Timezone   string            `yaml:"timezone,omitempty" doc:"an IANA time zone such as Europe/Berlin (/etc/localtime)" pattern:"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$"`
	Users      []User            `yaml:"users,omitempty" doc:"users to create or update (/etc/passwd, /etc/shadow, /etc/group, home directories)"`
	Files      []File            `yaml:"files,omitempty" doc:"files to write under /etc or /var"`
	Units      []Unit            `yaml:"units,omitempty" doc:"systemd units to write, enable, disable or mask, and their drop-ins"`
	Network    []Network         `yaml:"network,omitempty" doc:"network interfaces, rendered as systemd-networkd .network files"`
	Sysctl     map[string]string `yaml:"sysctl,omitempty" doc:"kernel parameters (/etc/sysctl.d/50-ingot-config.conf), e.g. net.ipv4.ip_forward: 1" schema:"scalar"`
	Update     *Update           `yaml:"update,omitempty" doc:"the update channel and window (/etc/ingot/update.conf)"`
	Extensions []Extension       `yaml:"extensions,omitempty" doc:"system extensions to add: the list is written to /var/lib/ingot/config/extensions.json for the device's ingot ext add"`
}

// User is one account.
type User struct {
	Name              string   `yaml:"name" doc:"login name" schema:"required" pattern:"^[a-z_][a-z0-9_-]{0,31}$"`
	UID               *int     `yaml:"uid,omitempty" doc:"user id (default: kept for an existing user, else the next free one from 1000)"`
	Groups            []string `yaml:"groups,omitempty" doc:"supplementary groups; each must exist" pattern:"^[a-z_][a-z0-9_-]{0,31}$"`
	Shell             string   `yaml:"shell,omitempty" doc:"login shell (default: /bin/sh)" pattern:"^/[^:\\n]*$"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty" doc:"lines of ~/.ssh/authorized_keys"`
	PasswordHash      string   `yaml:"password_hash,omitempty" doc:"crypt(3) hash for /etc/shadow (secret: never logged; shadow is mode 0600); none means no password login"`
	Locked            bool     `yaml:"locked,omitempty" doc:"lock the account: no password login, and sshd refuses it"`
}

// File is one file under /etc or /var.
type File struct {
	Path     string `yaml:"path" doc:"absolute path under /etc or /var" schema:"required"`
	Mode     string `yaml:"mode,omitempty" doc:"octal permissions (default 0644; 0600 for secret files)" pattern:"^0?[0-7]{3,4}$" schema:"scalar"`
	Owner    string `yaml:"owner,omitempty" doc:"USER or USER:GROUP (default root:root)" pattern:"^[a-z_][a-z0-9_-]*(:[a-z_][a-z0-9_-]*)?$"`
	Content  string `yaml:"content,omitempty" doc:"the file's content (with encoding: base64, its base64)"`
	Encoding string `yaml:"encoding,omitempty" doc:"how content is encoded" enum:"base64"`
	URL      string `yaml:"url,omitempty" doc:"fetch the content from this https URL instead (needs sha256; refused in the initrd, which has no network)" pattern:"^https://"`
	SHA256   string `yaml:"sha256,omitempty" doc:"hex sha256 the fetched content must have" pattern:"^[0-9a-f]{64}$"`
	Secret   bool   `yaml:"secret,omitempty" doc:"the content is a secret: never logged or shown, mode 0600"`
}

// Unit is one systemd unit.
type Unit struct {
	Name    string   `yaml:"name" doc:"unit name, e.g. hello.service" schema:"required" pattern:"^[A-Za-z0-9:_.@-]+\\.(service|socket|timer|path|mount|automount|target|slice|scope|swap)$"`
	Content string   `yaml:"content,omitempty" doc:"the unit file, written to /etc/systemd/system/NAME"`
	Enabled *bool    `yaml:"enabled,omitempty" doc:"true links it into the targets its [Install] section names; false removes those links"`
	Mask    bool     `yaml:"mask,omitempty" doc:"link it to /dev/null so nothing starts it"`
	DropIns []DropIn `yaml:"dropins,omitempty" doc:"drop-ins in /etc/systemd/system/NAME.d/"`
}

// DropIn is one drop-in file of a unit.
type DropIn struct {
	Name    string `yaml:"name" doc:"file name, ending in .conf" schema:"required" pattern:"^[A-Za-z0-9_.-]+\\.conf$"`
	Content string `yaml:"content" doc:"the drop-in's content" schema:"required"`
}

// Network is one systemd-networkd .network file.
type Network struct {
	Name      string   `yaml:"name" doc:"interface name or glob to match, e.g. eth0 or en*" schema:"required" pattern:"^[A-Za-z0-9_.:*?-]{1,32}$"`
	MAC       string   `yaml:"mac,omitempty" doc:"match only the interface with this hardware address as well, e.g. 52:54:00:12:34:56" pattern:"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$"`
	DHCP      bool     `yaml:"dhcp,omitempty" doc:"take addresses, routes and DNS servers by DHCP (v4 and v6)"`
	Addresses []string `yaml:"addresses,omitempty" doc:"static addresses with prefix length, e.g. 192.0.2.10/24"`
	Gateway   string   `yaml:"gateway,omitempty" doc:"default gateway address"`
	Routes    []Route  `yaml:"routes,omitempty" doc:"static routes"`
	DNS       []string `yaml:"dns,omitempty" doc:"DNS server addresses"`
	Domains   []string `yaml:"domains,omitempty" doc:"DNS search domains" pattern:"^[A-Za-z0-9_.-]{1,253}$"`
}

// key identifies a network entry for merging and uniqueness: its name
// and hardware address.
func (n Network) key() string {
	if n.MAC == "" {
		return n.Name
	}
	return n.Name + " " + strings.ToLower(n.MAC)
}

// Route is one static route.
type Route struct {
	To  string `yaml:"to" doc:"destination prefix, e.g. 198.51.100.0/24" schema:"required"`
	Via string `yaml:"via" doc:"gateway address" schema:"required"`
}

// Extension is one system extension image to add on the device.
type Extension struct {
	Source string `json:"source" yaml:"source" doc:"what ingot ext add takes: oci://registry/repo:tag (or @sha256:…), or an absolute path on the device of an extension image or of a directory holding one" schema:"required" pattern:"^(oci://|/)\\S+$"`
	SHA256 string `json:"sha256,omitempty" yaml:"sha256,omitempty" doc:"hex sha256 the image must have" pattern:"^[0-9a-f]{64}$"`
}

// Update is the device's update configuration.
type Update struct {
	Channel string `yaml:"channel,omitempty" doc:"where updates come from, e.g. oci://registry.example.com/fleet/ingot:stable" pattern:"^(oci|https?)://\\S+$"`
	Window  string `yaml:"window,omitempty" doc:"HH:MM-HH:MM in UTC when updates may install; may wrap past midnight" pattern:"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"`
}
