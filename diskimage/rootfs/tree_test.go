package rootfs

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"strings"
	"testing"
)

func TestResolveAndMove(t *testing.T) {
	tr := New()
	tr.Mkdir("usr/lib", 0o755, 0)
	tr.PutFile("usr/lib/os-release", []byte("ID=x\n"), 0o644, 0)
	tr.PutSymlink("lib", "usr/lib", 0)
	tr.PutSymlink("etc/os-release", "../usr/lib/os-release", 0)
	tr.PutSymlink("loop", "loop", 0)
	for p, want := range map[string]string{
		"lib/os-release":        "usr/lib/os-release",
		"/etc/os-release":       "usr/lib/os-release",
		"usr/../lib/os-release": "usr/lib/os-release",
	} {
		if e := tr.Resolve(p); e == nil || e.Path != want {
			t.Errorf("Resolve(%q) = %v, want %s", p, e, want)
		}
	}
	if tr.Resolve("loop/x") != nil {
		t.Error("a symlink loop resolved")
	}
	if b, err := tr.ReadFile("etc/os-release"); err != nil || string(b) != "ID=x\n" {
		t.Errorf("ReadFile through a link: %q, %v", b, err)
	}
	if err := tr.Move("etc", "usr/share/factory/etc"); err != nil {
		t.Fatal(err)
	}
	if tr.Lookup("etc") != nil || tr.Lookup("usr/share/factory/etc/os-release") == nil {
		t.Errorf("move left %v", tr.Paths())
	}
	if err := tr.Move("usr", "usr/x"); err == nil {
		t.Error("moved a tree into itself")
	}
	paths := strings.Join(tr.Paths(), " ")
	if !strings.HasPrefix(paths, ". lib loop usr usr/lib") {
		t.Errorf("order: %s", paths)
	}
}

func TestLoadTar(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdrs := []tar.Header{
		{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755},
		{Typeflag: tar.TypeReg, Name: "./usr/bin/su", Mode: 0o4755, Size: 2, Uid: 0},
		{Typeflag: tar.TypeLink, Name: "./usr/bin/su2", Linkname: "./usr/bin/su"},
		{Typeflag: tar.TypeBlock, Name: "./dev/sda", Mode: 0o660, Devmajor: 8, Devminor: 0, Gid: 6},
		{Typeflag: tar.TypeFifo, Name: "./run/fifo", Mode: 0o600},
	}
	for _, h := range hdrs {
		h.Format = tar.FormatPAX
		tw.WriteHeader(&h)
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte("su"))
		}
	}
	tw.Close()
	tr, err := LoadTar(&buf, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if e := tr.Lookup("usr/bin/su"); e == nil || e.Mode&fs.ModeSetuid == 0 {
		t.Errorf("setuid lost: %+v", e)
	}
	if b, err := tr.ReadFile("usr/bin/su2"); err != nil || string(b) != "su" {
		t.Errorf("hard link: %q %v", b, err)
	}
	if e := tr.Lookup("dev/sda"); e == nil || e.Mode&fs.ModeDevice == 0 || e.Rdev != 8<<8 || e.GID != 6 {
		t.Errorf("block device: %+v", e)
	}
	if e := tr.Lookup("run/fifo"); e == nil || e.Mode&fs.ModeNamedPipe == 0 {
		t.Errorf("fifo: %+v", e)
	}

	if _, err := LoadTar(strings.NewReader(""), Options{TempDir: t.TempDir()}); err == nil {
		t.Error("an empty tarball loaded")
	}
	var bad bytes.Buffer
	tw = tar.NewWriter(&bad)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: "a", Linkname: "missing"})
	tw.Close()
	if _, err := LoadTar(&bad, Options{TempDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "hard link a") {
		t.Errorf("dangling hard link: %v", err)
	}
}

func TestClampMtimes(t *testing.T) {
	tr := New()
	tr.PutFile("a", nil, 0o644, 100)
	tr.PutFile("b", nil, 0o644, 5)
	tr.ClampMtimes(50)
	if tr.Lookup("a").MtimeUnix != 50 || tr.Lookup("b").MtimeUnix != 5 {
		t.Error("clamp")
	}
}
