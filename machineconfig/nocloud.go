package machineconfig

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// NoCloud seeds carry, beside user-data, a meta-data document (the
// instance's identity) and optionally a network-config document. These
// read the parts ingot applies; like ImportCloudConfig they return what
// they leave out in ignored, as "file:line:column: KEY ignored".

// ParseMetaData reads a NoCloud meta-data document (YAML, or JSON, which
// is YAML): local-hostname (or hostname) becomes the host name.
// instance-id is read and not applied: ingot applies a configuration
// whenever one of its sources changes, so a new instance-id applies the
// seed again, as cloud-init's per-instance run does.
func ParseMetaData(file string, data []byte) (cfg *Config, ignored []string, err error) {
	m, err := mapping(file, data)
	if err != nil {
		return nil, nil, err
	}
	cfg = &Config{Version: Version}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		switch k.Value {
		case "instance-id":
		case "local-hostname", "hostname":
			if v.Kind != yaml.ScalarNode {
				return nil, ignored, &Error{File: file, Line: v.Line, Column: v.Column, Msg: k.Value + ": want a host name"}
			}
			cfg.Hostname = v.Value
		default:
			ignored = append(ignored, ignoredAt(file, k))
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, ignored, fmt.Errorf("%s: %w", file, err)
	}
	return cfg, ignored, nil
}

// ParseNetworkConfig reads a NoCloud network-config document, version 1
// (cloud-init's config list: physical interfaces with dhcp and static
// subnets, and nameserver entries) or version 2 (netplan's ethernets:
// match by name or macaddress, dhcp4/dhcp6, addresses, gateway4/6,
// routes, nameservers), with or without a top-level network: key. Each
// interface becomes a network entry. Bonds, bridges, VLANs and the like
// are refused with a clear error rather than applied in part: a machine
// whose network is half configured is worse off than one whose seed is
// refused (the boot goes on with what it had). "config: disabled" gives
// no network entries.
func ParseNetworkConfig(file string, data []byte) (cfg *Config, ignored []string, err error) {
	m, err := mapping(file, data)
	if err != nil {
		return nil, nil, err
	}
	if n := value(m, "network"); n != nil {
		if n.Kind != yaml.MappingNode {
			return nil, nil, &Error{File: file, Line: n.Line, Column: n.Column, Msg: "network: want a mapping"}
		}
		m = n
	}
	cfg = &Config{Version: Version}
	if c := value(m, "config"); c != nil && c.Kind == yaml.ScalarNode && c.Value == "disabled" {
		return cfg, nil, nil
	}
	p := netParser{file: file}
	switch v := value(m, "version"); {
	case v == nil:
		return nil, nil, &Error{File: file, Msg: "no version: want version: 1 or version: 2"}
	case v.Value == "1":
		cfg.Network = p.v1(m)
	case v.Value == "2":
		cfg.Network = p.v2(m)
	default:
		return nil, nil, &Error{File: file, Line: v.Line, Column: v.Column, Msg: fmt.Sprintf("version %q: want 1 or 2", v.Value)}
	}
	if p.err != nil {
		return nil, p.ignored, p.err
	}
	if err := cfg.Validate(); err != nil {
		return nil, p.ignored, fmt.Errorf("%s: %w", file, err)
	}
	return cfg, p.ignored, nil
}

// mapping parses data as one YAML mapping.
func mapping(file string, data []byte) (*yaml.Node, error) {
	if len(data) > MaxBytes {
		return nil, &Error{File: file, Msg: fmt.Sprintf("larger than %d bytes", MaxBytes)}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(file, data, err)
	}
	if len(root.Content) == 0 {
		return &yaml.Node{Kind: yaml.MappingNode}, nil // empty document
	}
	if root.Content[0].Kind != yaml.MappingNode {
		n := root.Content[0]
		return nil, &Error{File: file, Line: n.Line, Column: n.Column, Msg: "want a mapping"}
	}
	return root.Content[0], nil
}

// value returns the value of key in mapping m, or nil.
func value(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func ignoredAt(file string, k *yaml.Node) string {
	return fmt.Sprintf("%s:%d:%d: %s ignored", file, k.Line, k.Column, k.Value)
}

// netParser collects the first error and the ignored keys of a
// network-config document.
type netParser struct {
	file    string
	ignored []string
	err     error
}

func (p *netParser) fail(n *yaml.Node, format string, args ...any) {
	if p.err == nil {
		p.err = &Error{File: p.file, Line: n.Line, Column: n.Column, Msg: fmt.Sprintf(format, args...)}
	}
}

func (p *netParser) ignore(k *yaml.Node) { p.ignored = append(p.ignored, ignoredAt(p.file, k)) }

// each calls fn for every key of mapping m, or fails naming what.
func (p *netParser) each(m *yaml.Node, what string, fn func(k, v *yaml.Node)) {
	if m.Kind != yaml.MappingNode {
		p.fail(m, "%s: want a mapping", what)
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		fn(m.Content[i], m.Content[i+1])
	}
}

// strings reads a scalar or a sequence of scalars.
func (p *netParser) strings(v *yaml.Node, what string) []string {
	switch v.Kind {
	case yaml.ScalarNode:
		return []string{v.Value}
	case yaml.SequenceNode:
		var out []string
		for _, e := range v.Content {
			if e.Kind != yaml.ScalarNode {
				p.fail(e, "%s: want a string", what)
				return nil
			}
			out = append(out, e.Value)
		}
		return out
	}
	p.fail(v, "%s: want a string or a list of strings", what)
	return nil
}

func (p *netParser) bool(v *yaml.Node, what string) bool {
	b, err := strconv.ParseBool(strings.ToLower(v.Value))
	if v.Kind != yaml.ScalarNode || err != nil {
		p.fail(v, "%s: want true or false", what)
	}
	return b
}

// unsupported names the netplan and cloud-init device kinds ingot does
// not render.
func unsupported(kind string) string {
	return fmt.Sprintf("%s are not supported in network-config; write systemd-networkd .netdev and .network files with files: instead", kind)
}

// v2 reads netplan-style ethernets.
func (p *netParser) v2(m *yaml.Node) []Network {
	var nets []Network
	p.each(m, "network", func(k, v *yaml.Node) {
		switch k.Value {
		case "version", "renderer":
		case "ethernets":
			p.each(v, "ethernets", func(id, e *yaml.Node) { nets = append(nets, p.ethernet(id, e)) })
		case "bonds", "bridges", "vlans", "wifis", "tunnels", "vrfs", "modems", "dummy-devices", "virtual-ethernets":
			p.fail(k, "%s", unsupported(k.Value))
		default:
			p.ignore(k)
		}
	})
	return nets
}

// ethernet reads one netplan ethernets entry.
func (p *netParser) ethernet(id, e *yaml.Node) Network {
	n := Network{Name: id.Value}
	var gw6 string
	p.each(e, "ethernets: "+id.Value, func(k, v *yaml.Node) {
		switch k.Value {
		case "match":
			p.each(v, "match", func(mk, mv *yaml.Node) {
				switch mk.Value {
				case "name":
					n.Name = mv.Value
				case "macaddress":
					n.MAC = mv.Value
				default:
					p.fail(mk, "match: %s is not supported (name and macaddress are)", mk.Value)
				}
			})
			if value(v, "name") == nil && value(v, "macaddress") != nil {
				n.Name = "*"
			}
		case "dhcp4", "dhcp6":
			n.DHCP = p.bool(v, k.Value) || n.DHCP
		case "addresses":
			n.Addresses = append(n.Addresses, p.strings(v, "addresses")...)
		case "gateway4":
			n.Gateway = v.Value
		case "gateway6":
			gw6 = v.Value
		case "routes":
			n.Routes = append(n.Routes, p.v2Routes(v)...)
		case "nameservers":
			p.each(v, "nameservers", func(nk, nv *yaml.Node) {
				switch nk.Value {
				case "addresses":
					n.DNS = append(n.DNS, p.strings(nv, "nameservers: addresses")...)
				case "search":
					n.Domains = append(n.Domains, p.strings(nv, "nameservers: search")...)
				default:
					p.ignore(nk)
				}
			})
		default:
			p.ignore(k) // set-name, mtu, optional, wakeonlan, …
		}
	})
	addGateway6(&n, gw6)
	return n
}

// addGateway6 makes an IPv6 gateway the default route, or the entry's
// gateway when it has none.
func addGateway6(n *Network, gw string) {
	switch {
	case gw == "":
	case n.Gateway == "":
		n.Gateway = gw
	default:
		n.Routes = append(n.Routes, Route{To: "::/0", Via: gw})
	}
}

func (p *netParser) v2Routes(v *yaml.Node) []Route {
	if v.Kind != yaml.SequenceNode {
		p.fail(v, "routes: want a list")
		return nil
	}
	var out []Route
	for _, e := range v.Content {
		var r Route
		p.each(e, "routes", func(k, rv *yaml.Node) {
			switch k.Value {
			case "to":
				r.To = rv.Value
			case "via":
				r.Via = rv.Value
			default:
				p.ignore(k) // metric, table, on-link, …
			}
		})
		out = append(out, defaultRoute(r))
	}
	return out
}

// defaultRoute spells netplan's "default" as a prefix.
func defaultRoute(r Route) Route {
	if r.To == "default" {
		r.To = "0.0.0.0/0"
		if strings.Contains(r.Via, ":") {
			r.To = "::/0"
		}
	}
	return r
}

// v1 reads cloud-init's version 1 config list.
func (p *netParser) v1(m *yaml.Node) []Network {
	var nets []Network
	var dns, search []string
	p.each(m, "network", func(k, v *yaml.Node) {
		switch k.Value {
		case "version":
		case "config":
			if v.Kind != yaml.SequenceNode {
				p.fail(v, "config: want a list")
				return
			}
			for _, e := range v.Content {
				switch t := value(e, "type"); {
				case t == nil:
					p.fail(e, "config: an entry without a type")
				case t.Value == "physical":
					nets = append(nets, p.physical(e))
				case t.Value == "nameserver":
					p.each(e, "nameserver", func(nk, nv *yaml.Node) {
						switch nk.Value {
						case "type":
						case "address":
							dns = append(dns, p.strings(nv, "address")...)
						case "search":
							search = append(search, p.strings(nv, "search")...)
						default:
							p.ignore(nk)
						}
					})
				default:
					p.fail(t, "%s", unsupported(t.Value+" entries"))
				}
			}
		default:
			p.ignore(k)
		}
	})
	// A nameserver entry is global in cloud-init: every interface gets it.
	for i := range nets {
		nets[i].DNS = append(nets[i].DNS, dns...)
		nets[i].Domains = append(nets[i].Domains, search...)
	}
	return nets
}

// physical reads one v1 physical interface and its subnets.
func (p *netParser) physical(e *yaml.Node) Network {
	var n Network
	p.each(e, "physical", func(k, v *yaml.Node) {
		switch k.Value {
		case "type":
		case "name":
			n.Name = v.Value
		case "mac_address":
			n.MAC = v.Value
		case "subnets":
			if v.Kind != yaml.SequenceNode {
				p.fail(v, "subnets: want a list")
				return
			}
			for _, s := range v.Content {
				p.subnet(&n, s)
			}
		default:
			p.ignore(k) // mtu, …
		}
	})
	if n.Name == "" {
		p.fail(e, "physical: no name")
	}
	return n
}

// subnet adds one v1 subnet to n.
func (p *netParser) subnet(n *Network, s *yaml.Node) {
	var addr, mask string
	var gw6 string
	p.each(s, "subnets", func(k, v *yaml.Node) {
		switch k.Value {
		case "type":
			switch v.Value {
			case "dhcp", "dhcp4", "dhcp6", "ipv6_dhcpv6-stateful", "ipv6_dhcpv6-stateless", "ipv6_slaac":
				n.DHCP = true
			case "static", "static6":
			default:
				p.fail(v, "subnets: type %s is not supported (dhcp, dhcp4, dhcp6, static and static6 are)", v.Value)
			}
		case "address":
			addr = v.Value
		case "netmask":
			mask = v.Value
		case "gateway":
			if strings.Contains(v.Value, ":") {
				gw6 = v.Value
			} else {
				n.Gateway = v.Value
			}
		case "dns_nameservers":
			n.DNS = append(n.DNS, p.strings(v, "dns_nameservers")...)
		case "dns_search":
			n.Domains = append(n.Domains, p.strings(v, "dns_search")...)
		case "routes":
			n.Routes = append(n.Routes, p.v1Routes(v)...)
		default:
			p.ignore(k)
		}
	})
	if addr != "" {
		n.Addresses = append(n.Addresses, withPrefix(addr, mask))
	}
	addGateway6(n, gw6)
}

func (p *netParser) v1Routes(v *yaml.Node) []Route {
	if v.Kind != yaml.SequenceNode {
		p.fail(v, "routes: want a list")
		return nil
	}
	var out []Route
	for _, e := range v.Content {
		var network, mask, prefix string
		var r Route
		p.each(e, "routes", func(k, rv *yaml.Node) {
			switch k.Value {
			case "network", "destination":
				network = rv.Value
			case "netmask":
				mask = rv.Value
			case "prefix":
				prefix = rv.Value
			case "gateway":
				r.Via = rv.Value
			default:
				p.ignore(k)
			}
		})
		if prefix != "" && !strings.Contains(network, "/") {
			network += "/" + prefix
		}
		r.To = withPrefix(network, mask)
		out = append(out, defaultRoute(r))
	}
	return out
}

// withPrefix joins an address and a dotted netmask into address/prefix;
// an address that has a prefix, or no netmask, is returned as it is (and
// Validate names it if it is not an address with a prefix).
func withPrefix(addr, mask string) string {
	if mask == "" || strings.Contains(addr, "/") {
		return addr
	}
	m, err := netip.ParseAddr(mask)
	if err != nil || !m.Is4() {
		return addr + "/" + mask
	}
	b := m.As4()
	v := binary.BigEndian.Uint32(b[:])
	ones := bits.LeadingZeros32(^v)
	if ones < 32 && v<<ones != 0 {
		return addr + "/" + mask // not a netmask: Validate says so
	}
	return addr + "/" + strconv.Itoa(ones)
}
