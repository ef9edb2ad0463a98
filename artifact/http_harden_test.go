package artifact_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/artifact/artifacttest"
)

// serveArtifact serves the artifact directory src, counting the requests
// for payload files; manifest, if set, is served instead of src's.
func serveArtifact(src string, manifest []byte, payloadGets *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := filepath.Base(r.URL.Path)
		if name == artifact.ManifestFile && manifest != nil {
			w.Write(manifest)
			return
		}
		if name != artifact.ManifestFile {
			payloadGets.Add(1)
		}
		http.ServeFile(w, r, filepath.Join(src, name))
	})
}

// TestHarden13DownloadRefusesRedirectToHTTP: an https:// source that
// redirects to plain http:// is refused, and nothing is left.
func TestHarden13DownloadRefusesRedirectToHTTP(t *testing.T) {
	src := artifacttest.Write(t, filepath.Join(t.TempDir(), "src"), "2.0.0", "redirect")
	var gets atomic.Int32
	plain := httptest.NewServer(serveArtifact(src.Dir, nil, &gets))
	defer plain.Close()
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusFound)
	}))
	defer tls.Close()
	loop := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Path+"x", http.StatusFound)
	}))
	defer loop.Close()

	for _, tc := range []struct {
		name string
		srv  *httptest.Server
		want string
	}{
		{"to http", tls, "leaves https://"},
		{"endless", loop, "redirects"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			_, err := artifact.Download(context.Background(), tc.srv.Client(), tc.srv.URL+"/u/", filepath.Join(parent, "a"), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Download: %v, want an error saying %q", err, tc.want)
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Errorf("leftovers: %v", left)
			}
		})
	}
	if gets.Load() != 0 {
		t.Errorf("%d payload files fetched over plain HTTP", gets.Load())
	}
}

// TestHarden08DownloadChecksSizesFirst: a manifest declaring more than
// the limits, or than the free space, is refused before a payload byte
// is fetched, naming the file, its size and the limit.
func TestHarden08DownloadChecksSizesFirst(t *testing.T) {
	src := artifacttest.Write(t, filepath.Join(t.TempDir(), "src"), "2.0.0", "sizes")
	huge := *src.Manifest
	huge.Files = append([]artifact.File(nil), src.Manifest.Files...)
	for i := range huge.Files {
		if huge.Files[i].Role == artifact.RoleUsr {
			huge.Files[i].Size = 1 << 40
		}
	}
	hugeJSON, err := huge.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		manifest []byte
		opts     []artifact.Option
		want     string
	}{
		{"1 TiB declared", hugeJSON, nil, "usr.erofs"},
		{"more than the slot", nil, []artifact.Option{artifact.WithLimits(artifact.Limits{
			artifact.RoleUsr: {Bytes: 4096, What: "slot b's usr partition"},
		})}, "bytes, more than the 4096 bytes of slot b's usr partition"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gets atomic.Int32
			srv := httptest.NewTLSServer(serveArtifact(src.Dir, tt.manifest, &gets))
			defer srv.Close()
			parent := t.TempDir()
			_, err := artifact.Download(context.Background(), srv.Client(), srv.URL+"/u/", filepath.Join(parent, "a"), nil, tt.opts...)
			var se *artifact.SizeError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Download: %v, want a *SizeError saying %q", err, tt.want)
			}
			if gets.Load() != 0 {
				t.Errorf("%d payload files fetched before the sizes were checked", gets.Load())
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Errorf("leftovers: %v", left)
			}
		})
	}
}

// TestHarden08CopyDeclaredNeverWritesMore: a source that sends more than
// declared gets an error, and the destination holds the declared bytes.
func TestHarden08CopyDeclaredNeverWritesMore(t *testing.T) {
	var w bytes.Buffer
	_, err := artifact.CopyDeclared(&w, strings.NewReader("0123456789"), "usr.erofs", 4)
	var mm *artifact.MismatchError
	if !errors.As(err, &mm) || w.Len() != 4 {
		t.Errorf("CopyDeclared of 10 bytes declared as 4: %v, wrote %d", err, w.Len())
	}
	w.Reset()
	if _, err := artifact.CopyDeclared(&w, strings.NewReader("01"), "usr.erofs", 4); err == nil {
		t.Error("a short source was accepted")
	}
}
