package machineconfig

import (
	"bytes"
	"encoding/base64"

	"gopkg.in/yaml.v3"
)

// CredentialFromSMBIOS finds the systemd credential name in a raw SMBIOS
// type 11 (OEM strings) structure, as the kernel shows it in
// /sys/firmware/dmi/entries/11-*/raw: a string
// "io.systemd.credential:NAME=VALUE" or
// "io.systemd.credential.binary:NAME=BASE64" (systemd's smbios-type-11).
func CredentialFromSMBIOS(raw []byte, name string) ([]byte, bool) {
	if len(raw) < 5 || raw[0] != 11 || int(raw[1]) > len(raw) {
		return nil, false
	}
	for _, s := range bytes.Split(raw[raw[1]:], []byte{0}) {
		if v, ok := bytes.CutPrefix(s, []byte("io.systemd.credential:"+name+"=")); ok {
			return v, true
		}
		if v, ok := bytes.CutPrefix(s, []byte("io.systemd.credential.binary:"+name+"=")); ok {
			b, err := base64.StdEncoding.DecodeString(string(v))
			return b, err == nil
		}
	}
	return nil, false
}

// CredentialFromDMITable finds the systemd credential name in the
// type 11 structures of a whole SMBIOS table, as the kernel shows it in
// /sys/firmware/dmi/tables/DMI whenever it has CONFIG_DMI. The
// per-structure /sys/firmware/dmi/entries need CONFIG_DMI_SYSFS, which
// ingot's kernel does not have.
func CredentialFromDMITable(table []byte, name string) ([]byte, bool) {
	for len(table) >= 4 && table[0] != 127 { // 127: end of table
		n := int(table[1])
		if n < 4 || n > len(table) {
			return nil, false
		}
		end := bytes.Index(table[n:], []byte{0, 0}) // the string set ends with two NULs
		if end < 0 {
			return nil, false
		}
		end += n + 2
		if table[0] == 11 {
			if v, ok := CredentialFromSMBIOS(table[:end], name); ok {
				return v, true
			}
		}
		table = table[end:]
	}
	return nil, false
}

// Redacted returns c as YAML with every secret (password hashes, the
// content of secret files) replaced by "(secret)".
func (c *Config) Redacted() string {
	r := *c
	r.Users = append([]User(nil), c.Users...)
	for i := range r.Users {
		if r.Users[i].PasswordHash != "" {
			r.Users[i].PasswordHash = "(secret)"
		}
	}
	r.Files = append([]File(nil), c.Files...)
	for i := range r.Files {
		if r.Files[i].Secret {
			r.Files[i].Content = "(secret)"
		}
	}
	b, err := yaml.Marshal(&r)
	if err != nil {
		return "" // plain strings, slices and maps always marshal
	}
	return string(b)
}
