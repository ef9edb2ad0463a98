package machineconfig

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseMetaData(t *testing.T) {
	for _, tc := range []struct {
		name, doc, host, err string
		ignored              []string
	}{
		{"yaml", "instance-id: iid-01\nlocal-hostname: node-7\n", "node-7", "", nil},
		{"json", `{"instance-id": "i-1", "local-hostname": "edge.example.com"}`, "edge.example.com", "", nil},
		{"hostname key", "hostname: h1\n", "h1", "", nil},
		{"empty", "", "", "", nil},
		{"unknown keys", "instance-id: a\npublic-keys: [k]\n", "", "", []string{"meta-data:2:1: public-keys ignored"}},
		{"bad host name", "local-hostname: -bad-\n", "", "hostname", nil},
		{"host name not a scalar", "local-hostname: [a]\n", "", "meta-data:1:17: local-hostname: want a host name", nil},
		{"not a mapping", "- a\n", "", "meta-data:1:1: want a mapping", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, ignored, err := ParseMetaData("meta-data", []byte(tc.doc))
			if wantErr(t, err, tc.err) {
				return
			}
			if cfg.Hostname != tc.host {
				t.Errorf("hostname %q, want %q", cfg.Hostname, tc.host)
			}
			if !reflect.DeepEqual(ignored, tc.ignored) {
				t.Errorf("ignored %q, want %q", ignored, tc.ignored)
			}
		})
	}
}

func TestParseNetworkConfig(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []Network
		err       string
		ignored   []string
	}{
		{
			name: "v2 dhcp by name",
			doc:  "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n",
			want: []Network{{Name: "eth0", DHCP: true}},
		},
		{
			name: "v2 under network:, static, by mac",
			doc: `network:
  version: 2
  renderer: networkd
  ethernets:
    id0:
      match:
        macaddress: "52:54:00:12:34:56"
      set-name: lan0
      addresses: [192.0.2.10/24, "2001:db8::10/64"]
      gateway4: 192.0.2.1
      gateway6: "2001:db8::1"
      routes:
        - to: 198.51.100.0/24
          via: 192.0.2.254
          metric: 100
      nameservers:
        addresses: [192.0.2.53]
        search: [example.com]
`,
			want: []Network{{
				Name: "*", MAC: "52:54:00:12:34:56",
				Addresses: []string{"192.0.2.10/24", "2001:db8::10/64"},
				Gateway:   "192.0.2.1",
				Routes:    []Route{{To: "198.51.100.0/24", Via: "192.0.2.254"}, {To: "::/0", Via: "2001:db8::1"}},
				DNS:       []string{"192.0.2.53"}, Domains: []string{"example.com"},
			}},
			ignored: []string{"network-config:8:7: set-name ignored", "network-config:15:11: metric ignored"},
		},
		{
			name: "v2 default route, glob",
			doc:  "version: 2\nethernets:\n  all:\n    match: {name: \"en*\"}\n    addresses: [10.0.0.5/8]\n    routes: [{to: default, via: 10.0.0.1}]\n",
			want: []Network{{Name: "en*", Addresses: []string{"10.0.0.5/8"}, Routes: []Route{{To: "0.0.0.0/0", Via: "10.0.0.1"}}}},
		},
		{
			name: "v1 static with netmask, dhcp6, global nameserver",
			doc: `version: 1
config:
  - type: physical
    name: eth0
    mac_address: "52:54:00:aa:bb:cc"
    mtu: 1500
    subnets:
      - type: static
        address: 192.0.2.20
        netmask: 255.255.255.0
        gateway: 192.0.2.1
        dns_nameservers: [192.0.2.53]
        routes:
          - network: 203.0.113.0
            netmask: 255.255.255.0
            gateway: 192.0.2.254
      - type: dhcp6
  - type: nameserver
    address: [9.9.9.9]
    search: [corp.example]
`,
			want: []Network{{
				Name: "eth0", MAC: "52:54:00:aa:bb:cc", DHCP: true,
				Addresses: []string{"192.0.2.20/24"}, Gateway: "192.0.2.1",
				Routes: []Route{{To: "203.0.113.0/24", Via: "192.0.2.254"}},
				DNS:    []string{"192.0.2.53", "9.9.9.9"}, Domains: []string{"corp.example"},
			}},
			ignored: []string{"network-config:6:5: mtu ignored"},
		},
		{name: "disabled", doc: "network: {config: disabled}\n", want: nil},
		{name: "v2 bond", doc: "version: 2\nbonds:\n  bond0: {}\n", err: "network-config:2:1: bonds are not supported"},
		{name: "v1 bridge", doc: "version: 1\nconfig:\n  - type: bridge\n    name: br0\n", err: "network-config:3:11: bridge entries are not supported"},
		{name: "no version", doc: "ethernets: {}\n", err: "no version"},
		{name: "version 3", doc: "version: 3\n", err: `version "3": want 1 or 2`},
		{name: "bad address", doc: "version: 2\nethernets:\n  eth0:\n    addresses: [192.0.2.300/24]\n", err: "network[0].addresses[0]"},
		{name: "non-contiguous netmask", doc: "version: 1\nconfig:\n  - type: physical\n    name: eth0\n    subnets: [{type: static, address: 192.0.2.2, netmask: 255.0.255.0}]\n", err: "network[0].addresses[0]"},
		{name: "match by driver", doc: "version: 2\nethernets:\n  e:\n    match: {driver: virtio_net}\n", err: "match: driver is not supported"},
		{name: "dhcp not a bool", doc: "version: 2\nethernets:\n  eth0: {dhcp4: maybe}\n", err: "dhcp4: want true or false"},
		{name: "physical without name", doc: "version: 1\nconfig:\n  - type: physical\n", err: "physical: no name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, ignored, err := ParseNetworkConfig("network-config", []byte(tc.doc))
			if wantErr(t, err, tc.err) {
				return
			}
			if !reflect.DeepEqual(cfg.Network, tc.want) {
				t.Errorf("network\n got %+v\nwant %+v", cfg.Network, tc.want)
			}
			if !reflect.DeepEqual(ignored, tc.ignored) {
				t.Errorf("ignored %q, want %q", ignored, tc.ignored)
			}
		})
	}
}

// TestRenderNetworkMAC checks the .network file of an entry matched by
// hardware address, with search domains.
func TestRenderNetworkMAC(t *testing.T) {
	cfg := &Config{Version: Version, Network: []Network{{Name: "*", MAC: "52:54:00:AA:BB:CC", DHCP: true, Domains: []string{"a.example", "b.example"}}}}
	entries, err := Render(fakeRoot(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Path, ".network") {
			want := "[Match]\nName=*\nMACAddress=52:54:00:aa:bb:cc\n\n[Network]\nDHCP=yes\nDomains=a.example b.example\n"
			if string(e.Data) != want {
				t.Errorf("%s:\n%s\nwant\n%s", e.Path, e.Data, want)
			}
			return
		}
	}
	t.Fatal("no .network file rendered")
}

func FuzzParseNetworkConfig(f *testing.F) {
	f.Add([]byte("version: 2\nethernets:\n  eth0: {dhcp4: true, match: {macaddress: '52:54:00:12:34:56'}}\n"))
	f.Add([]byte("version: 1\nconfig:\n  - {type: physical, name: eth0, subnets: [{type: static, address: 10.0.0.2, netmask: 255.0.0.0}]}\n"))
	f.Add([]byte("instance-id: x\nlocal-hostname: y\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if cfg, _, err := ParseNetworkConfig("network-config", data); err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("accepted a configuration that does not validate: %v", verr)
			}
		}
		if cfg, _, err := ParseMetaData("meta-data", data); err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("accepted meta-data that does not validate: %v", verr)
			}
		}
	})
}

// wantErr fails the test unless err contains want (want "": err is
// nil) and says whether an error was wanted (the case ends there).
func wantErr(t *testing.T, err error, want string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want it to contain %q", err, want)
	}
	return true
}
