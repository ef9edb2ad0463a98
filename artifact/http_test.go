package artifact_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/artifact/artifacttest"
)

func TestDownload(t *testing.T) {
	src := artifacttest.Write(t, t.TempDir(), "2.0.0", "download")
	tamper := ""
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := filepath.Base(r.URL.Path)
		b, err := os.ReadFile(filepath.Join(src.Dir, name))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if name == tamper {
			b[len(b)/2] ^= 1
		}
		w.Write(b)
	}))
	defer srv.Close()

	parent := t.TempDir()
	var last int64
	a, err := artifact.Download(context.Background(), srv.Client(), srv.URL+"/fleet/ingot_2.0.0.update/", filepath.Join(parent, "a"), func(done, total int64) { last = done })
	if err != nil {
		t.Fatal(err)
	}
	if a.Manifest.Version != "2.0.0" || last == 0 {
		t.Errorf("downloaded %+v, progress %d", a.Manifest, last)
	}

	tamper = artifact.FileUsr
	_, err = artifact.Download(context.Background(), srv.Client(), srv.URL+"/x/", filepath.Join(parent, "b"), nil)
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("tampered download: %v", err)
	}
	if _, err := os.Stat(filepath.Join(parent, "b")); !os.IsNotExist(err) {
		t.Error("a failed download left its directory")
	}
	if left, _ := os.ReadDir(parent); len(left) != 1 {
		t.Errorf("leftovers: %v", left)
	}
	if _, err := artifact.Download(context.Background(), nil, "http://127.0.0.1:1/x", filepath.Join(parent, "c"), nil); err == nil || !strings.Contains(err.Error(), "https://") {
		t.Errorf("plain http: %v", err)
	}
}
