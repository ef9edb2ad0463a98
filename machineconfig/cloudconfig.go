package machineconfig

import (
	"bytes"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// CloudConfigHeader starts a cloud-init #cloud-config document.
const CloudConfigHeader = "#cloud-config"

// ParseAny reads a document in ingot's format, or a #cloud-config one
// (see ImportCloudConfig). ignored names, with their positions, the
// cloud-config keys ingot does not apply.
func ParseAny(file string, data []byte) (cfg *Config, ignored []string, err error) {
	if IsCloudConfig(data) {
		return ImportCloudConfig(file, data)
	}
	cfg, err = Parse(file, data)
	return cfg, nil, err
}

// IsCloudConfig reports whether data is a #cloud-config document.
func IsCloudConfig(data []byte) bool {
	first, _, _ := bytes.Cut(data, []byte("\n"))
	return string(bytes.TrimRight(first, " \r")) == CloudConfigHeader
}

// cloudUser is the part of a cloud-config user ingot applies.
type cloudUser struct {
	Name              string   `yaml:"name"`
	Groups            any      `yaml:"groups"` // "a, b" or [a, b]
	Shell             string   `yaml:"shell"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys"`
	Passwd            string   `yaml:"passwd"`
	LockPasswd        *bool    `yaml:"lock_passwd"`
	UID               any      `yaml:"uid"`
}

type cloudFile struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Encoding    string `yaml:"encoding"`
	Permissions string `yaml:"permissions"`
	Owner       string `yaml:"owner"`
}

// cloudKeys are the #cloud-config keys ingot applies, and the keys of
// their entries; everything else is named as ignored.
var cloudKeys = map[string][]string{
	"hostname":            nil,
	"timezone":            nil,
	"ssh_authorized_keys": nil,
	"users":               {"name", "groups", "shell", "ssh_authorized_keys", "passwd", "lock_passwd", "uid"},
	"write_files":         {"path", "content", "encoding", "permissions", "owner"},
}

// ImportCloudConfig converts the common subset of a cloud-init
// #cloud-config document: hostname, timezone, users (name, groups, shell,
// ssh_authorized_keys, passwd as a hash, lock_passwd, uid),
// ssh_authorized_keys (root's: ingot has no default user) and write_files
// (path, content, encoding b64/base64, permissions, owner). Every other
// key is returned in ignored as "file:line:column: KEY ignored". The
// result is checked as Parse checks a document.
func ImportCloudConfig(file string, data []byte) (cfg *Config, ignored []string, err error) {
	if len(data) > MaxBytes {
		return nil, nil, &Error{File: file, Msg: fmt.Sprintf("larger than %d bytes", MaxBytes)}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, yamlError(file, data, err)
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, nil, &Error{File: file, Msg: "#cloud-config: want a mapping"}
	}
	cfg = &Config{Version: Version}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		sub, known := cloudKeys[k.Value]
		if !known {
			ignored = append(ignored, fmt.Sprintf("%s:%d:%d: %s ignored", file, k.Line, k.Column, k.Value))
			continue
		}
		ignored = append(ignored, ignoredSubKeys(file, k.Value, v, sub)...)
		if err := importCloudKey(cfg, k.Value, v); err != nil {
			return nil, ignored, &Error{File: file, Line: v.Line, Column: v.Column, Msg: k.Value + ": " + err.Error()}
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, ignored, fmt.Errorf("%s: %w", file, err)
	}
	return cfg, ignored, nil
}

// ignoredSubKeys names the keys of a list's entries ingot does not apply.
func ignoredSubKeys(file, key string, v *yaml.Node, known []string) []string {
	var out []string
	if v.Kind != yaml.SequenceNode {
		return nil
	}
	for _, e := range v.Content {
		if e.Kind == yaml.ScalarNode && key == "users" && e.Value == "default" {
			out = append(out, fmt.Sprintf("%s:%d:%d: users: default ignored (ingot has no default user)", file, e.Line, e.Column))
		}
		if e.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(e.Content); i += 2 {
			if k := e.Content[i]; !contains(known, k.Value) {
				out = append(out, fmt.Sprintf("%s:%d:%d: %s: %s ignored", file, k.Line, k.Column, key, k.Value))
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func importCloudKey(cfg *Config, key string, v *yaml.Node) error {
	switch key {
	case "hostname":
		return v.Decode(&cfg.Hostname)
	case "timezone":
		return v.Decode(&cfg.Timezone)
	case "ssh_authorized_keys":
		var keys []string
		if err := v.Decode(&keys); err != nil {
			return err
		}
		cfg.Users = mergeUsers(cfg.Users, []User{{Name: "root", SSHAuthorizedKeys: keys}})
	case "users":
		return importCloudUsers(cfg, v)
	case "write_files":
		var files []cloudFile
		if err := v.Decode(&files); err != nil {
			return err
		}
		for i, f := range files {
			switch f.Encoding {
			case "", "text/plain", "b64", "base64":
			default:
				return fmt.Errorf("[%d]: encoding %s is not supported (b64, base64 or text/plain)", i, f.Encoding)
			}
			cfg.Files = append(cfg.Files, f.file())
		}
	}
	return nil
}

func importCloudUsers(cfg *Config, v *yaml.Node) error {
	for _, e := range v.Content {
		if e.Kind == yaml.ScalarNode {
			continue // "default": named as ignored
		}
		var cu cloudUser
		if err := e.Decode(&cu); err != nil {
			return err
		}
		u := User{Name: cu.Name, Shell: cu.Shell, SSHAuthorizedKeys: cu.SSHAuthorizedKeys, PasswordHash: cu.Passwd}
		if cu.LockPasswd == nil || *cu.LockPasswd {
			// cloud-init's default: no password login, keys still log in
			// (a locked account in ingot's sense is refused by sshd too).
			u.PasswordHash = ""
		}
		switch g := cu.Groups.(type) {
		case string:
			for _, s := range strings.Split(g, ",") {
				u.Groups = append(u.Groups, strings.TrimSpace(s))
			}
		case []any:
			for _, s := range g {
				u.Groups = append(u.Groups, fmt.Sprint(s))
			}
		}
		if n, ok := cu.UID.(int); ok {
			u.UID = &n
		}
		cfg.Users = mergeUsers(cfg.Users, []User{u})
	}
	return nil
}

func (f cloudFile) file() File {
	out := File{Path: f.Path, Content: f.Content, Mode: strings.TrimPrefix(f.Permissions, "0o"), Owner: f.Owner}
	if f.Encoding == "b64" || f.Encoding == "base64" {
		out.Encoding = "base64"
	}
	return out
}
