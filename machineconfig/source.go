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
