package oci_test

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/artifact/artifacttest"
	"github.com/ingot-linux/ingot/ingottest"
)

// blobHook may change how the in-memory registry serves a blob GET.
// It returns false to let the registry serve the blob unchanged.
type blobHook func(w http.ResponseWriter, r *http.Request, digest string, serve http.Handler) bool

// memRegistry starts ggcr's in-memory registry on loopback and returns its
// host:port and a log of the blob requests it saw.
func memRegistry(t *testing.T, hook blobHook) (string, *requestLog) {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	rl := &requestLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rl.add(r)
		if i := strings.Index(r.URL.Path, "/blobs/sha256:"); i >= 0 && r.Method == http.MethodGet && hook != nil {
			if hook(w, r, r.URL.Path[i+len("/blobs/"):], reg) {
				return
			}
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), rl
}

// requestLog records the requests a registry saw.
type requestLog struct {
	mu   sync.Mutex
	reqs []string // "METHOD path range"
}

func (l *requestLog) add(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+r.Header.Get("Range")))
}

// matching returns the recorded requests containing all of parts.
func (l *requestLog) matching(parts ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
next:
	for _, r := range l.reqs {
		for _, p := range parts {
			if !strings.Contains(r, p) {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

// truncatingWriter passes the first limit bytes of a response and then
// aborts the connection, as a network failure would.
type truncatingWriter struct {
	http.ResponseWriter
	limit int
}

func (w *truncatingWriter) Write(b []byte) (int, error) {
	if len(b) > w.limit {
		w.ResponseWriter.Write(b[:w.limit])
		w.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	w.limit -= len(b)
	return w.ResponseWriter.Write(b)
}

// corruptingWriter flips the byte at offset off of a response body.
type corruptingWriter struct {
	http.ResponseWriter
	off int
}

func (w *corruptingWriter) Write(b []byte) (int, error) {
	if w.off >= 0 && w.off < len(b) {
		b = bytes.Clone(b)
		b[w.off] ^= 0xff
	}
	w.off -= len(b)
	return w.ResponseWriter.Write(b)
}

// dockerRegistry starts the real registry; see ingottest.DockerRegistry.
func dockerRegistry(t *testing.T) (host, root string) { return ingottest.DockerRegistry(t) }

// writeArtifact makes a small artifact directory.
func writeArtifact(t *testing.T, version, seed, arch string) *artifact.Artifact {
	t.Helper()
	in := artifacttest.Inputs(t, t.TempDir(), version, seed)
	in.Arch = arch
	dir := filepath.Join(t.TempDir(), artifact.DirName(version))
	m, err := artifact.Write(dir, in)
	if err != nil {
		t.Fatal(err)
	}
	return &artifact.Artifact{Dir: dir, Manifest: m}
}

// sameTree fails the test unless dirs a and b hold the same files with the
// same bytes.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	ea, err := os.ReadDir(a)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := os.ReadDir(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ea) != len(eb) {
		t.Fatalf("%s has %d entries, %s has %d", a, len(ea), b, len(eb))
	}
	for _, e := range ea {
		x, err1 := os.ReadFile(filepath.Join(a, e.Name()))
		y, err2 := os.ReadFile(filepath.Join(b, e.Name()))
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			t.Errorf("%s differs (%v, %v)", e.Name(), err1, err2)
		}
	}
}

// leftovers returns the entries of dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
