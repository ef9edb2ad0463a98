package oci

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// optionsFor applies opts and parses ref with them: what every verb
// starts with.
func optionsFor(ref string, opts []Option) (*options, name.Reference, string, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, nil, "", err
	}
	r, scheme, err := parseRef(ref, o.insecure)
	if err != nil {
		return nil, nil, "", err
	}
	return o, r, scheme, nil
}

// parseRef parses an artifact reference, with or without "oci://", and
// returns it with the URL scheme to use for its registry.
func parseRef(ref string, insecure bool) (name.Reference, string, error) {
	s := strings.TrimPrefix(ref, "oci://")
	if strings.Contains(s, "://") {
		return nil, "", fmt.Errorf("reference %q: only the oci:// scheme is supported", ref)
	}
	r, err := name.ParseReference(s, name.StrictValidation)
	if err != nil {
		return nil, "", fmt.Errorf("reference %q: %w (want host[:port]/repository:tag or …@sha256:…)", ref, err)
	}
	scheme := schemeFor(r.Context().RegistryStr(), insecure)
	if scheme == "http" {
		// Tell go-containerregistry too, so its ping accepts plain HTTP.
		opts := []name.Option{name.StrictValidation, name.Insecure}
		if r, err = name.ParseReference(s, opts...); err != nil {
			return nil, "", fmt.Errorf("reference %q: %w", ref, err)
		}
	}
	return r, scheme, nil
}

// schemeFor returns "http" for a registry on a loopback or private address,
// or any registry when insecure, and "https" otherwise. registry is
// host[:port] as written in the reference; names other than localhost are
// not resolved.
func schemeFor(registry string, insecure bool) string {
	if insecure || isLocal(registry) {
		return "http"
	}
	return "https"
}

func isLocal(registry string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate()
}

// schemeTransport makes every request to the registry host use the chosen
// scheme. go-containerregistry pings "http" registries over HTTPS and HTTP
// in parallel; this keeps both pings, and everything after, on the one
// scheme chosen, and never lets plain HTTP reach a registry that was
// chosen to be HTTPS.
type schemeTransport struct {
	host, scheme string
	inner        http.RoundTripper
}

func (t *schemeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == t.host && r.URL.Scheme != t.scheme {
		r = r.Clone(r.Context())
		r.URL.Scheme = t.scheme
	}
	return t.inner.RoundTrip(r)
}
