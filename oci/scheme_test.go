package oci

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ingot-linux/ingot/artifact/artifacttest"
)

func TestSchemeFor(t *testing.T) {
	tests := []struct {
		registry string
		insecure bool
		want     string
	}{
		{"localhost", false, "http"},
		{"localhost:5000", false, "http"},
		{"LOCALHOST:5000", false, "http"},
		{"registry.localhost:5000", false, "http"},
		{"127.0.0.1:5000", false, "http"},
		{"127.4.5.6", false, "http"},
		{"[::1]:5000", false, "http"},
		{"[::ffff:127.0.0.1]:5000", false, "http"},
		{"10.1.2.3:5000", false, "http"},
		{"172.16.0.1", false, "http"},
		{"172.31.255.255:443", false, "http"},
		{"192.168.1.10:5000", false, "http"},
		{"[fd00::1]:5000", false, "http"},
		{"172.32.0.1:5000", false, "https"},
		{"11.0.0.1:5000", false, "https"},
		{"8.8.8.8", false, "https"},
		{"registry.example.com", false, "https"},
		{"registry.example.com:5000", false, "https"},
		{"localhost.example.com", false, "https"},
		{"10.example.com", false, "https"},
		{"[2001:db8::1]:5000", false, "https"},
		{"registry.example.com:5000", true, "http"},
		{"8.8.8.8", true, "http"},
	}
	for _, tt := range tests {
		if got := schemeFor(tt.registry, tt.insecure); got != tt.want {
			t.Errorf("schemeFor(%q, insecure=%v) = %s, want %s", tt.registry, tt.insecure, got, tt.want)
		}
	}
}

// recorder is a transport that records requests and answers none, so
// nothing leaves the machine.
type recorder struct {
	mu   sync.Mutex
	urls []string
}

var errOffline = errors.New("offline test transport")

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.urls = append(r.urls, req.URL.Scheme+"://"+req.URL.Host+req.URL.Path)
	return nil, errOffline
}

// TestSchemeOnTheWire checks which scheme Push, Pull and Inspect use for
// registries that are not local, through a transport that sends nothing.
func TestSchemeOnTheWire(t *testing.T) {
	a := artifacttest.Write(t, t.TempDir()+"/a", "1.0", "scheme")
	ops := map[string]func(ref string, opts ...Option) error{
		"push": func(ref string, opts ...Option) error {
			_, err := Push(context.Background(), a.Dir, ref, opts...)
			return err
		},
		"pull": func(ref string, opts ...Option) error {
			_, err := Pull(context.Background(), ref, t.TempDir()+"/u", opts...)
			return err
		},
		"inspect": func(ref string, opts ...Option) error {
			_, err := Inspect(context.Background(), ref, opts...)
			return err
		},
	}
	tests := []struct {
		ref      string
		insecure bool
		want     string
	}{
		{"oci://registry.example.com/ingot/update:1.0", false, "https://registry.example.com/v2/"},
		{"registry.example.com:5000/ingot/update:1.0", false, "https://registry.example.com:5000/v2/"},
		{"registry.example.com/ingot/update:1.0", true, "http://registry.example.com/v2/"},
		{"192.168.7.7:5000/ingot/update:1.0", false, "http://192.168.7.7:5000/v2/"},
	}
	for op, run := range ops {
		for _, tt := range tests {
			rec := &recorder{}
			err := run(tt.ref, WithTransport(rec), WithInsecure(tt.insecure))
			if !errors.Is(err, errOffline) && (err == nil || !strings.Contains(err.Error(), errOffline.Error())) {
				t.Errorf("%s %s: %v, want the offline transport's error", op, tt.ref, err)
			}
			if len(rec.urls) == 0 {
				t.Errorf("%s %s: no request", op, tt.ref)
			}
			for _, u := range rec.urls {
				if u != tt.want {
					t.Errorf("%s %s (insecure=%v) sent %s, want only %s", op, tt.ref, tt.insecure, u, tt.want)
				}
			}
		}
	}
}

func TestParseRef(t *testing.T) {
	tests := []struct {
		ref, want, scheme string
	}{
		{"oci://localhost:5000/ingot/update:1.0", "localhost:5000/ingot/update:1.0", "http"},
		{"registry.example.com/ingot/update@sha256:" + strings.Repeat("a", 64), "registry.example.com/ingot/update@sha256:" + strings.Repeat("a", 64), "https"},
		{"[::1]:5000/ingot:1", "[::1]:5000/ingot:1", "http"},
	}
	for _, tt := range tests {
		r, scheme, err := parseRef(tt.ref, false)
		if err != nil {
			t.Errorf("parseRef(%q): %v", tt.ref, err)
			continue
		}
		if r.String() != tt.want || scheme != tt.scheme || (scheme == "http") != (r.Context().Scheme() == "http") {
			t.Errorf("parseRef(%q) = %s over %s (ggcr: %s), want %s over %s", tt.ref, r, scheme, r.Context().Scheme(), tt.want, tt.scheme)
		}
	}
	for _, bad := range []string{"", "ingot:1", "localhost:5000/ingot", "http://localhost:5000/ingot:1", "oci://"} {
		if _, _, err := parseRef(bad, false); err == nil {
			t.Errorf("parseRef(%q) succeeded", bad)
		}
	}
}

func TestSchemeTransport(t *testing.T) {
	rec := &recorder{}
	st := &schemeTransport{host: "registry.example.com", scheme: "https", inner: rec}
	for _, u := range []string{"http://registry.example.com/v2/", "https://registry.example.com/v2/x", "http://auth.example.com/token"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		st.RoundTrip(req)
		if req.URL.String() != u {
			t.Errorf("RoundTrip changed the caller's request to %s", req.URL)
		}
	}
	want := "https://registry.example.com/v2/ https://registry.example.com/v2/x http://auth.example.com/token"
	if got := strings.Join(rec.urls, " "); got != want {
		t.Errorf("sent %s, want %s", got, want)
	}
}

func TestPullUnreachable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	_, err := Pull(context.Background(), "oci://127.0.0.1:1/ingot:2.0.0", dir)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("unreachable registry: %v", err)
	}
	if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
		t.Error("a failed pull left its directory")
	}
	t.Logf("error: %v", err)
}
