package rootfs

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	ingoterofs "github.com/ingot-linux/ingot/format/erofs"
	"github.com/ingot-linux/ingot/ingottest"
)

// TestCompressedEROFS writes a tree at the loader's limits (but for the
// path length, which fsck.erofs cannot extract below a directory), with hard
// links, xattrs and an ACL, through format/erofs and checks it with
// fsck.erofs --extract: content, owners, modes and links as in the tree.
func TestCompressedEROFS(t *testing.T) {
	big := strings.Repeat("compressible line of text\n", 20000)
	acl := "\x02\x00\x00\x00\x01\x00\x07\x00\xff\xff\xff\xff\x02\x00\x05\x00\xe8\x03\x00\x00\x04\x00\x05\x00\xff\xff\xff\xff\x10\x00\x05\x00\xff\xff\xff\xff\x20\x00\x05\x00\xff\xff\xff\xff"
	files := []tarFile{
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "usr/", Mode: 0o755}},
		reg("usr/"+strings.Repeat("n", 255), "name"),
		reg("usr/big", big),
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "usr/big2", Linkname: "usr/big"}},
		sym("usr/longlink", strings.Repeat("t", 4095)),
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/owned", Mode: 0o6755, Uid: MaxID, Gid: 70000}, data: big[:9000]},
		dev("usr/dev", MaxDevMajor, MaxDevMinor),
		withXattrs(reg("usr/x", big[:50000]), "user.big", strings.Repeat("v", MaxXattrValueBytes),
			"security.capability", "\x01\x00\x00\x02", "system.posix_acl_access", acl),
	}
	tr, err := LoadTar(bytes.NewReader(makeTar(t, false, files...)), Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, c := range []ingoterofs.Compression{{Algorithm: ingoterofs.LZ4HC}, {Algorithm: ingoterofs.Zstd}} {
		t.Run(c.String(), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "usr.erofs")
			f, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := tr.WriteCompressedEROFS(f, "usr", 1700000000, c); err != nil {
				t.Fatal(err)
			}
			fsck := ingottest.LookTool(t, "fsck.erofs", "erofs-utils")
			if out, _ := exec.Command(fsck, "-V").CombinedOutput(); c.Algorithm == ingoterofs.Zstd && !bytes.Contains(out, []byte("zstd")) {
				ingottest.Skip(t, "%s cannot check zstd (erofs-utils >= 1.9.4 needed; run scripts/setup)", fsck)
			}
			dir := filepath.Join(t.TempDir(), "x")
			ingottest.Run(t, fsck, "--extract="+dir, img)
			checkExtracted(t, dir, big)
		})
	}
}

func checkExtracted(t *testing.T, dir, big string) {
	t.Helper()
	for p, want := range map[string]string{"big": big, "big2": big, "owned": big[:9000], "x": big[:50000],
		strings.Repeat("n", 255): "name"} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != want {
			t.Errorf("%.40s: %d bytes, %v", p, len(b), err)
		}
	}
	var a, b, o unix.Stat_t
	if unix.Lstat(filepath.Join(dir, "big"), &a) != nil || unix.Lstat(filepath.Join(dir, "big2"), &b) != nil || a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("big and big2 are not one inode with two links: %d/%d nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	if err := unix.Lstat(filepath.Join(dir, "owned"), &o); err != nil || o.Uid != MaxID || o.Gid != 70000 || o.Mode&0o7777 != 0o6755 {
		t.Errorf("owned: %d:%d %o, %v", o.Uid, o.Gid, o.Mode, err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "longlink")); err != nil || len(l) != 4095 {
		t.Errorf("longlink: %d bytes, %v", len(l), err)
	}
	if err := unix.Lstat(filepath.Join(dir, "dev"), &o); err != nil || o.Rdev != unix.Mkdev(MaxDevMajor, MaxDevMinor) {
		t.Errorf("dev: %#x, %v", o.Rdev, err)
	}
}
