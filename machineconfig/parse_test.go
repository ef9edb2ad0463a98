package machineconfig

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const full = `version: 1
hostname: web-1
timezone: Europe/Berlin
users:
  - name: alice
    groups: [wheel]
    shell: /bin/sh
    ssh_authorized_keys: ["ssh-ed25519 AAAA alice@laptop"]
    password_hash: "$6$salt$hash"
files:
  - path: /etc/motd
    mode: 0644
    content: hello
  - path: /var/lib/app/token
    secret: true
    content: c2VjcmV0
    encoding: base64
units:
  - name: hello.service
    content: "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
    enabled: true
    dropins: [{name: 10-env.conf, content: "[Service]\n"}]
network:
  - name: eth0
    addresses: [192.0.2.10/24]
    gateway: 192.0.2.1
    dns: [192.0.2.53]
    routes: [{to: 198.51.100.0/24, via: 192.0.2.254}]
sysctl:
  net.ipv4.ip_forward: 1
update:
  channel: oci://registry.example.com/fleet/ingot:stable
  window: "02:00-04:00"
extensions:
  - source: oci://registry.example.com/ext/debug-tools:1.0
  - {source: /var/lib/ext/net.raw, sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef}
`

func TestParseFull(t *testing.T) {
	c, err := Parse("m.yaml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "web-1" || c.Files[0].Mode != "0644" || c.Sysctl["net.ipv4.ip_forward"] != "1" || !*c.Units[0].Enabled {
		t.Errorf("parsed %+v", c)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string // each a line of the joined error
	}{
		{"empty", ``, []string{"m.yaml: empty: want a mapping with version: 1"}},
		{"syntax", "version: 1\nhostname: [a\n", []string{"m.yaml:2:11: YAML: sequence end token ']' not found"}},
		{"no version", "hostname: a\n", []string{"m.yaml:1:1: the document: version is required"}},
		{"wrong version", "version: 2\n", []string{"m.yaml:1:10: version: want 1 (this ingot reads version 1)"}},
		{"unknown key", "version: 1\nhostnme: a\n", []string{`m.yaml:2:1: the document: unknown key "hostnme" (known: version, hostname, timezone, users, files, units, network, sysctl, update, extensions)`}},
		{"nested unknown key", "version: 1\nusers:\n  - name: bob\n    shel: /bin/sh\n", []string{`m.yaml:4:5: users[0]: unknown key "shel"`}},
		{"type", "version: 1\nusers: bob\n", []string{"m.yaml:2:8: users: want a list"}},
		{"bool", "version: 1\nusers: [{name: bob, locked: yes}]\n", []string{"m.yaml:2:29: users[0].locked: want true or false"}},
		{"pattern", "version: 1\nhostname: -bad\n", []string{"m.yaml:2:11: hostname: does not match"}},
		{"path outside", "version: 1\nfiles:\n  - path: /usr/bin/x\n    content: x\n", []string{"m.yaml:3:11: files[0].path: want a clean absolute path under /etc or /var"}},
		{"traversal", "version: 1\nfiles:\n  - path: /etc/../root/x\n", []string{"m.yaml:3:11: files[0].path: want a clean absolute path"}},
		{"own state", "version: 1\nfiles:\n  - path: /etc/ingot/update.conf\n", []string{"m.yaml:3:11: files[0].path: /etc/ingot/ is ingot's own"}},
		{"secret mode", "version: 1\nfiles:\n  - {path: /etc/k, secret: true, mode: 0644, content: s3cr3t}\n", []string{"m.yaml:3:40: files[0].mode: a secret file must not be readable"}},
		{"url without sha", "version: 1\nfiles:\n  - path: /etc/k\n    url: https://example.com/k\n", []string{"m.yaml:3:5: files[0].sha256: required with url"}},
		{"twice", "version: 1\nusers: [{name: a}, {name: a}]\n", []string{`m.yaml:2:20: users[1]: "a" is given twice`}},
		{"duplicate key", "version: 1\nversion: 1\n", []string{`m.yaml:2:1: the document: key "version" given twice`}},
		{"address", "version: 1\nnetwork: [{name: eth0, addresses: [10.0.0.1]}]\n", []string{"m.yaml:2:36: network[0].addresses[0]: want an address with its prefix length"}},
		{"alias", "version: 1\nhostname: &h a\ntimezone: *h\n", []string{"m.yaml:2:11: hostname: YAML anchors and aliases are not allowed", "m.yaml:3:11: timezone: YAML anchors"}},
		{"two errors", "version: 1\nhostname: [1]\ntimezone: {}\n", []string{"m.yaml:2:11: hostname: want a string", "m.yaml:3:11: timezone: want a string"}},
		{"two rules", "version: 1\nusers: [{name: a, uid: 0}]\nextensions: [{source: /a.raw}, {source: /a.raw}]\n", []string{"m.yaml:2:24: users[0].uid: want 1–65533", `m.yaml:3:32: extensions[1]: "/a.raw" is given twice`}},
		{"extension source", "version: 1\nextensions: [{source: registry/x:1}]\n", []string{"m.yaml:2:23: extensions[0].source: does not match"}},
		{"second document", "version: 1\n---\nversion: 1\n", []string{"m.yaml:2:1: a second YAML document"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("m.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("error %d:\n got %s\nwant %s…", i, lines[i], w)
				}
			}
		})
	}
}

// TestErrorPositions pins the line:column of each kind of problem that
// ingot config validate and the console report: syntax errors (the
// scanner's and the parser's), unknown keys and wrong types, on the first
// line, in the middle and at the end of a document.
func TestErrorPositions(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      string // file:line:column
	}{
		{"unclosed flow sequence, first line", "hostname: [a\n", "m.yaml:1:11"},
		{"unclosed flow sequence", "version: 1\nhostname: [broken\n", "m.yaml:2:11"},
		{"unclosed flow mapping", "version: 1\nx: {a: 1\ny: 2\n", "m.yaml:3:1"},
		{"unclosed double quote", "version: 1\nhostname: \"abc\n", "m.yaml:2:11"},
		{"unclosed single quote", "version: 1\nhostname: 'abc\n", "m.yaml:2:11"},
		{"bad indentation", "version: 1\nusers:\n  - name: a\n   shell: x\n", "m.yaml:4:4"},
		{"mapping in a plain scalar", "version: 1\nfoo: bar: baz\n", "m.yaml:2:6"},
		{"tab", "version: 1\n\tx: 1\n", "m.yaml:2:1"},
		{"sequence after a mapping", "version: 1\n- a\n", "m.yaml:2:1"},
		{"reserved character", "version: 1\n@x: 1\n", "m.yaml:2:1"},
		{"unknown key, first line", "hostnme: a\nversion: 1\n", "m.yaml:1:1"},
		{"unknown key, nested", "version: 1\nfiles:\n  - path: /etc/a\n    mod: 0644\n", "m.yaml:4:5"},
		{"unknown key, last line", "version: 1\nhostname: a\nupdate: {chanel: x}\n", "m.yaml:3:10"},
		{"wrong type, list for string", "version: 1\nhostname: [a]\n", "m.yaml:2:11"},
		{"wrong type, string for list", "version: 1\nusers:\n  - name: a\n    groups: wheel\n", "m.yaml:4:13"},
		{"wrong type, string for int", "version: one\n", "m.yaml:1:10"},
		{"wrong type, mapping for bool", "version: 1\nunits: [{name: a.service, mask: {}}]\n", "m.yaml:2:33"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("m.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatal("no error")
			}
			if got := err.Error(); !strings.HasPrefix(got, tc.want+": ") {
				t.Errorf("got %q, want it at %s", got, tc.want)
			}
		})
	}
}

// TestYAMLLineFallback checks the line taken from yaml.v3's own message
// when the second parser finds nothing: its parser counts lines from 0
// and omits the first, its scanner counts from 1.
func TestYAMLLineFallback(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{"yaml: line 1: did not find expected key", "m.yaml:2: YAML: did not find expected key"},
		{"yaml: did not find expected node content", "m.yaml:1: YAML: did not find expected node content"},
		{"yaml: line 3: mapping values are not allowed in this context", "m.yaml:3: YAML: mapping values are not allowed in this context"},
		{"yaml: control characters are not allowed", "m.yaml:1: YAML: control characters are not allowed"},
	} {
		if got := yamlError("m.yaml", []byte("version: 1\n"), errors.New(tc.msg)).Error(); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.msg, got, tc.want)
		}
	}
}

func TestErrorsNeverQuoteSecrets(t *testing.T) {
	doc := "version: 1\nusers: [{name: a, password_hash: [\"$6$topsecret\"]}]\nfiles:\n  - {path: /etc/k, secret: true, mode: 0644, encoding: base64, content: \"topsecret!\"}\n"
	_, err := Parse("m.yaml", []byte(doc))
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error %v", err)
	}
}

func TestSchema(t *testing.T) {
	var s struct {
		Properties map[string]struct {
			Items struct {
				Required             []string `json:"required"`
				AdditionalProperties bool     `json:"additionalProperties"`
			} `json:"items"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	if err := json.Unmarshal(Schema(), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Properties) != 10 || s.Required[0] != "version" || s.Properties["users"].Items.Required[0] != "name" {
		t.Errorf("schema %+v", s)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte("version: 1\nusers: [{name: a}]\n"))
	f.Add([]byte("version: 1\nhostname: &h a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err == nil && c.Validate() != nil {
			t.Errorf("Parse accepted what Validate refuses: %v", c.Validate())
		}
	})
}
