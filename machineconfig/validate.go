package machineconfig

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// fieldError is a rule broken at a path of the document.
type fieldError struct{ path, msg string }

// Validate checks the rules of the format that the YAML's shape cannot
// (Parse checks both); the errors name the key's path ("files[2].mode").
func (c *Config) Validate() error {
	var errs []error
	for _, fe := range c.check() {
		errs = append(errs, fmt.Errorf("%s: %s", fe.path, fe.msg))
	}
	return errors.Join(errs...)
}

// refusedPrefixes are paths a file may not be written to: ingot's own
// configuration and state (the update key writes update.conf).
var refusedPrefixes = []string{"/etc/ingot/", "/var/lib/ingot/"}

func (c *Config) check() []fieldError {
	var errs []fieldError
	add := func(path, format string, args ...any) {
		errs = append(errs, fieldError{path, fmt.Sprintf(format, args...)})
	}
	if c.Version != Version {
		add("version", "want %d (this ingot reads version %d)", Version, Version)
	}
	c.checkUsers(add)
	c.checkFiles(add)
	c.checkUnits(add)
	c.checkNetwork(add)
	for k, v := range c.Sysctl {
		if !sysctlKey.MatchString(k) || strings.ContainsAny(v, "\n\x00") {
			add(fmt.Sprintf("sysctl[%q]", k), "want a key like net.ipv4.ip_forward and a one-line value")
		}
	}
	unique(c.Extensions, func(i int) string { return c.Extensions[i].Source }, "extensions", add)
	checkTags(reflect.ValueOf(c).Elem(), "", "", add)
	return errs
}

// checkTags checks every string against its field's pattern and enum
// tags, as Parse does while it decodes: documents that do not come
// through Parse (an imported #cloud-config, NoCloud meta-data and
// network-config, a Config built in Go) meet the same rules, so no host
// or user name can carry a newline or a colon into the files rendered
// from it.
func checkTags(v reflect.Value, path string, tag reflect.StructTag, add addFunc) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			checkTags(v.Elem(), path, tag, add)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			p := join(path, yamlName(f))
			if hasOpt(f.Tag.Get("schema"), "required") && f.Type.Kind() == reflect.String && v.Field(i).String() == "" {
				add(p, "is required")
			}
			checkTags(v.Field(i), p, f.Tag, add)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			checkTags(v.Index(i), fmt.Sprintf("%s[%d]", path, i), tag, add)
		}
	case reflect.String:
		s := v.String()
		if p := tag.Get("pattern"); p != "" && s != "" && !regexp.MustCompile(p).MatchString(s) {
			add(path, "does not match %s", p)
		}
		if e := tag.Get("enum"); e != "" && s != "" && !slices.Contains(strings.Split(e, "|"), s) {
			add(path, "want one of %s", strings.ReplaceAll(e, "|", ", "))
		}
	}
}

var sysctlKey = regexp.MustCompile(`^[a-z0-9_][a-z0-9_./*-]*$`)

type addFunc func(path, format string, args ...any)

// unique reports the second and later entries with the same key.
func unique[T any](list []T, key func(int) string, path string, add addFunc) {
	seen := map[string]bool{}
	for i := range list {
		k := key(i)
		if seen[k] {
			add(fmt.Sprintf("%s[%d]", path, i), "%q is given twice", k)
		}
		seen[k] = true
	}
}

func (c *Config) checkUsers(add addFunc) {
	unique(c.Users, func(i int) string { return c.Users[i].Name }, "users", add)
	for i, u := range c.Users {
		p := fmt.Sprintf("users[%d]", i)
		if u.UID != nil && (*u.UID < 0 || *u.UID > 65533 || *u.UID == 0 && u.Name != "root") {
			add(p+".uid", "want 1–65533 (0 only for root)")
		}
		if strings.ContainsAny(u.PasswordHash, ":\n\x00") {
			add(p+".password_hash", "a crypt(3) hash has no ':' or newline")
		}
		for j, k := range u.SSHAuthorizedKeys {
			if strings.TrimSpace(k) == "" || strings.ContainsAny(k, "\n\r\x00") {
				add(fmt.Sprintf("%s.ssh_authorized_keys[%d]", p, j), "want one non-empty line")
			}
		}
	}
}

func (c *Config) checkFiles(add addFunc) {
	unique(c.Files, func(i int) string { return c.Files[i].Path }, "files", add)
	for i, f := range c.Files {
		p := fmt.Sprintf("files[%d]", i)
		if err := CheckPath(f.Path); err != nil {
			add(p+".path", "%v", err)
		}
		if f.URL != "" && (f.Content != "" || f.Encoding != "") {
			add(p, "give content or url, not both")
		}
		if f.URL != "" && f.SHA256 == "" {
			add(p+".sha256", "required with url")
		}
		if f.Encoding == "base64" {
			if _, err := base64.StdEncoding.DecodeString(f.Content); err != nil {
				add(p+".content", "not valid base64")
			}
		}
		if m, err := f.mode(); err != nil {
			add(p+".mode", "%v", err)
		} else if f.Secret && m&0o077 != 0 {
			add(p+".mode", "a secret file must not be readable by group or others (0600)")
		}
	}
}

// CheckPath refuses a file path outside /etc and /var, one that is not
// clean (.., //, a trailing /), and ingot's own files.
func CheckPath(p string) error {
	if path.Clean(p) != p || !strings.HasPrefix(p, "/etc/") && !strings.HasPrefix(p, "/var/") {
		return fmt.Errorf("want a clean absolute path under /etc or /var")
	}
	for _, r := range refusedPrefixes {
		if strings.HasPrefix(p, r) {
			return fmt.Errorf("%s is ingot's own state: use the update: and extensions: keys, not files", r)
		}
	}
	return nil
}

// mode is the file's permission bits: Mode, else 0600 for a secret and
// 0644 otherwise.
func (f *File) mode() (uint32, error) {
	if f.Mode == "" {
		if f.Secret {
			return 0o600, nil
		}
		return 0o644, nil
	}
	m, err := strconv.ParseUint(f.Mode, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("want octal permissions such as 0644")
	}
	return uint32(m), nil
}

func (c *Config) checkUnits(add addFunc) {
	unique(c.Units, func(i int) string { return c.Units[i].Name }, "units", add)
	for i, u := range c.Units {
		p := fmt.Sprintf("units[%d]", i)
		if u.Mask && (u.Content != "" || u.Enabled != nil && *u.Enabled) {
			add(p+".mask", "a masked unit is neither written nor enabled")
		}
		unique(u.DropIns, func(j int) string { return u.DropIns[j].Name }, p+".dropins", add)
	}
}

func (c *Config) checkNetwork(add addFunc) {
	unique(c.Network, func(i int) string { return c.Network[i].key() }, "network", add)
	for i, n := range c.Network {
		p := fmt.Sprintf("network[%d]", i)
		for j, a := range n.Addresses {
			if _, err := netip.ParsePrefix(a); err != nil {
				add(fmt.Sprintf("%s.addresses[%d]", p, j), "want an address with its prefix length, e.g. 192.0.2.10/24")
			}
		}
		checkAddr(n.Gateway, p+".gateway", add)
		for j, a := range n.DNS {
			checkAddr(a, fmt.Sprintf("%s.dns[%d]", p, j), add)
		}
		for j, r := range n.Routes {
			rp := fmt.Sprintf("%s.routes[%d]", p, j)
			if _, err := netip.ParsePrefix(r.To); err != nil {
				add(rp+".to", "want a prefix, e.g. 198.51.100.0/24")
			}
			checkAddr(r.Via, rp+".via", add)
		}
	}
}

func checkAddr(a, path string, add addFunc) {
	if a == "" {
		return
	}
	if _, err := netip.ParseAddr(a); err != nil {
		add(path, "want an IP address")
	}
}
