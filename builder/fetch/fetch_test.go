package fetch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/ingot-linux/ingot/cookbook"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func server(t *testing.T, files map[string][]byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestFetch(t *testing.T) {
	data := []byte("upstream source\n")
	srv := server(t, map[string][]byte{"/good.tar": data, "/bad.tar": []byte("tampered\n")})
	local := filepath.Join(t.TempDir(), "local.tar")
	os.WriteFile(local, data, 0o644)
	ctx := context.Background()

	t.Run("http", func(t *testing.T) {
		f := &Fetcher{Dir: t.TempDir()}
		p, err := f.Fetch(ctx, cookbook.Source{URL: srv.URL + "/good.tar", SHA256: sum(data)})
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); !bytes.Equal(b, data) || filepath.Base(p) != sum(data) {
			t.Errorf("got %s = %q", p, b)
		}
	})
	t.Run("mismatch", func(t *testing.T) {
		f := &Fetcher{Dir: t.TempDir()}
		_, err := f.Fetch(ctx, cookbook.Source{URL: srv.URL + "/bad.tar", SHA256: sum(data)})
		var hm *HashMismatchError
		if !errors.As(err, &hm) || hm.Want != sum(data) || hm.Got != sum([]byte("tampered\n")) {
			t.Fatalf("err = %v, want a hash mismatch", err)
		}
		for _, h := range []string{hm.Want, hm.Got} {
			if !strings.Contains(err.Error(), h) {
				t.Errorf("error does not show %s: %v", h, err)
			}
		}
		if names := dirNames(t, f.Dir); len(names) != 0 {
			t.Errorf("the bad download was kept: %v", names)
		}
	})
	t.Run("mirrors", func(t *testing.T) {
		f := &Fetcher{Dir: t.TempDir()}
		_, err := f.Fetch(ctx, cookbook.Source{URL: srv.URL + "/missing.tar", SHA256: sum(data),
			Mirrors: []string{srv.URL + "/bad.tar", "file://" + local}})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("all fail", func(t *testing.T) {
		f := &Fetcher{Dir: t.TempDir()}
		_, err := f.Fetch(ctx, cookbook.Source{URL: srv.URL + "/missing.tar", SHA256: sum(data),
			Mirrors: []string{"file:///nonexistent/x.tar"}})
		if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "/nonexistent/x.tar") {
			t.Fatalf("err = %v, want both failures", err)
		}
	})
	t.Run("debian", func(t *testing.T) {
		var asked string
		f := &Fetcher{Dir: t.TempDir(), Debian: func(_ context.Context, pkg, version, dir string) error {
			asked = pkg + "=" + version
			os.WriteFile(filepath.Join(dir, "hello_1.0.orig.tar.gz.asc"), []byte("sig"), 0o644)
			os.WriteFile(filepath.Join(dir, "hello_1.0-1.debian.tar.xz"), []byte("debian"), 0o644)
			return os.WriteFile(filepath.Join(dir, "hello_1.0.orig.tar.gz"), data, 0o644)
		}}
		_, err := f.Fetch(ctx, cookbook.Source{URL: srv.URL + "/missing.tar", SHA256: sum(data), Mirrors: []string{"debian:hello=1.0-1"}})
		if err != nil || asked != "hello=1.0-1" {
			t.Fatalf("err = %v, asked %q", err, asked)
		}
		if names := dirNames(t, f.Dir); len(names) != 1 || names[0] != sum(data) {
			t.Errorf("cache holds %v", names)
		}
	})
	t.Run("debian partial pool", func(t *testing.T) {
		f := &Fetcher{Dir: t.TempDir(), Debian: func(_ context.Context, pkg, version, dir string) error {
			os.WriteFile(filepath.Join(dir, "hello_1.0.orig.tar.gz"), data, 0o644)
			return errors.New("apt-get: 404 for the .dsc")
		}}
		if _, err := f.Fetch(ctx, cookbook.Source{URL: "file:///nonexistent", SHA256: sum(data), Mirrors: []string{"debian:hello=1.0-2"}}); err != nil {
			t.Fatalf("an orig tarball with the pinned hash was refused: %v", err)
		}
		f.Debian = func(context.Context, string, string, string) error { return errors.New("apt-get: 404 for everything") }
		os.Remove(f.Path(sum(data)))
		_, err := f.Fetch(ctx, cookbook.Source{URL: "file:///nonexistent", SHA256: sum(data), Mirrors: []string{"debian:hello=1.0-2"}})
		if err == nil || !strings.Contains(err.Error(), "404 for everything") {
			t.Fatalf("err = %v, want apt's error", err)
		}
	})
	t.Run("debian native", func(t *testing.T) {
		f := &Fetcher{Dir: t.TempDir(), Debian: func(_ context.Context, pkg, version, dir string) error {
			os.WriteFile(filepath.Join(dir, "certs_20230311+deb12u1.dsc"), []byte("dsc"), 0o644)
			return os.WriteFile(filepath.Join(dir, "certs_20230311+deb12u1.tar.xz"), data, 0o644)
		}}
		if _, err := f.Fetch(ctx, cookbook.Source{URL: "file:///nonexistent", SHA256: sum(data), Mirrors: []string{"debian:certs=20230311+deb12u1"}}); err != nil {
			t.Fatalf("a native package's tarball with the pinned hash was refused: %v", err)
		}
	})
	t.Run("corrupt cache", func(t *testing.T) {
		f := &Fetcher{Dir: t.TempDir()}
		os.WriteFile(f.Path(sum(data)), []byte("bit rot"), 0o644)
		p, err := f.Fetch(ctx, cookbook.Source{URL: "file://" + local, SHA256: sum(data)})
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); !bytes.Equal(b, data) {
			t.Errorf("corrupt cache entry was used: %q", b)
		}
	})
}

type entry struct {
	name, body, link string
	typ              byte
}

func makeTar(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, Size: int64(len(e.body)),
			ModTime: time.Unix(1000000000, 0)}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

// toV7 rewrites a USTAR archive as a pre-POSIX one, as automake's tar-v7
// makes: no magic, version, owner names or prefix, checksums made anew.
func toV7(t testing.TB, ustar []byte) []byte {
	t.Helper()
	out := append([]byte{}, ustar...)
	for off := 0; off+512 <= len(out); {
		h := out[off : off+512]
		if h[0] == 0 {
			break
		}
		size, err := strconv.ParseInt(strings.Trim(string(h[124:136]), " \x00"), 8, 64)
		if err != nil {
			t.Fatal(err)
		}
		clear(h[257:])
		copy(h[148:156], "        ")
		sum := 0
		for _, b := range h {
			sum += int(b)
		}
		copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
		off += 512 + int((size+511)/512*512)
	}
	return out
}

// unpackInto unpacks archive into dest under the source tree src (made if
// needed).
func unpackInto(t testing.TB, archive, src, dest string) error {
	t.Helper()
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	tree, err := os.OpenRoot(src)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	return Unpack(archive, tree, dest)
}

func TestUnpack(t *testing.T) {
	plain := makeTar(t, []entry{
		{name: "hello-1.0/", typ: tar.TypeDir},
		{name: "hello-1.0/configure", body: "#!/bin/sh\n"},
		{name: "hello-1.0/src/main.c", body: "int main(void){return 0;}\n"},
		{name: "hello-1.0/link", typ: tar.TypeSymlink, link: "src/main.c"},
	})
	var gz, xzb, zst bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	xw, _ := xz.NewWriter(&xzb)
	xw.Write(plain)
	xw.Close()
	sw, _ := zstd.NewWriter(&zst)
	sw.Write(plain)
	sw.Close()
	v7 := toV7(t, plain)
	var v7xz bytes.Buffer
	xw, _ = xz.NewWriter(&v7xz)
	xw.Write(v7)
	xw.Close()
	for name, data := range map[string][]byte{"tar": plain, "gzip": gz.Bytes(), "xz": xzb.Bytes(), "zstd": zst.Bytes(), "v7": v7, "v7-xz": v7xz.Bytes()} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			a := filepath.Join(dir, "a")
			os.WriteFile(a, data, 0o644)
			if ok, err := IsArchive(a); !ok || err != nil {
				t.Fatalf("IsArchive = %v, %v", ok, err)
			}
			dest := filepath.Join(dir, "src")
			if err := unpackInto(t, a, dest, ""); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dest, "link"))
			if err != nil || !strings.Contains(string(b), "main") {
				t.Errorf("link: %q %v", b, err)
			}
			fi, err := os.Stat(filepath.Join(dest, "configure"))
			if err != nil || fi.ModTime().Unix() != 1000000000 {
				t.Errorf("configure mtime not kept: %v %v", fi, err)
			}
			if names := dirNames(t, dest); strings.Join(names, " ") != "configure link src" {
				t.Errorf("top level: %v", names)
			}
		})
	}
	for name, entries := range map[string][]entry{
		"dotdot":  {{name: "../evil", body: "x"}},
		"abs":     {{name: "/etc/evil", body: "x"}},
		"symlink": {{name: "a", typ: tar.TypeSymlink, link: "/tmp"}, {name: "a/evil", body: "x"}},
		"hard":    {{name: "h", typ: tar.TypeLink, link: "../../etc/passwd"}},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			a := filepath.Join(dir, "a")
			os.WriteFile(a, makeTar(t, entries), 0o644)
			if err := unpackInto(t, a, filepath.Join(dir, "src"), ""); err == nil {
				t.Fatal("an escaping entry was accepted")
			}
			if _, err := os.Stat("/tmp/evil"); err == nil {
				t.Fatal("wrote through a symlink")
			}
		})
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("plain text, not an archive"), 0o644)
	if ok, _ := IsArchive(filepath.Join(dir, "notes.txt")); ok {
		t.Error("a text file is an archive")
	}
}

func TestDebianTarballs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		want  []string
	}{
		{"quilt", []string{"hello_1.0-1.debian.tar.xz", "hello_1.0-1.dsc", "hello_1.0.orig.tar.gz", "hello_1.0.orig.tar.gz.asc"},
			[]string{"hello_1.0.orig.tar.gz"}},
		{"quilt with a component", []string{"hello_1.0-1.debian.tar.xz", "hello_1.0.orig-docs.tar.gz", "hello_1.0.orig.tar.xz"},
			[]string{"hello_1.0.orig.tar.xz"}},
		{"quilt without its orig", []string{"hello_1.0-1.debian.tar.xz", "hello_1.0-1.dsc"}, nil},
		{"native", []string{"ca-certificates_20230311+deb12u1.dsc", "ca-certificates_20230311+deb12u1.tar.xz"},
			[]string{"ca-certificates_20230311+deb12u1.tar.xz"}},
		{"native, signed", []string{"x_1.tar.gz", "x_1.tar.gz.asc"}, []string{"x_1.tar.gz"}},
		{"nothing", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := debianTarballs(tc.files)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("debianTarballs(%q) = %q, want %q", tc.files, got, tc.want)
			}
		})
	}
}
