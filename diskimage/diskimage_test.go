package diskimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	erofs "github.com/erofs/go-erofs"
	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/tpm"
	"github.com/ingot-linux/ingot/trust"
)

const epoch = 1700000000

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// binaries builds static ingot-init and the device's ingot (ingot-agent)
// once for all tests, as make build does.
func binaries(t *testing.T) (initPath, agentPath string) {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "ingot-image-test-bin-*")
		if binErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", binDir+"/", "../cmd/ingot-agent", "../cmd/ingot-init", "../cmd/ingot")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = errors.New(string(out))
		}
	})
	if binErr != nil {
		t.Fatalf("build binaries: %v", binErr)
	}
	return filepath.Join(binDir, "ingot-init"), filepath.Join(binDir, "ingot-agent")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// hostEFI returns systemd-boot's binaries from the host (Debian package
// systemd-boot-efi): the stub must be a real PE for the UKI to be built.
func hostEFI(t *testing.T) (loader, stub []byte) {
	t.Helper()
	dir := "/usr/lib/systemd/boot/efi"
	l, err1 := os.ReadFile(dir + "/systemd-bootx64.efi")
	s, err2 := os.ReadFile(dir + "/linuxx64.efi.stub")
	if err := errors.Join(err1, err2); err != nil {
		ingottest.Skip(t, "systemd-boot EFI binaries missing (Debian package systemd-boot-efi): %v", err)
	}
	return l, s
}

type tarEntry struct {
	hdr  tar.Header
	data []byte
}

// fixture is a small merged-/usr root filesystem with the metadata an
// unprivileged build must keep.
func fixture(t *testing.T, drop ...string) []tarEntry {
	loader, stub := hostEFI(t)
	mt := time.Unix(epoch+1000, 0) // later than the epoch: must be clamped
	dir := func(name string, mode int64) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: mt}}
	}
	file := func(name string, mode int64, data string) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mt}, data: []byte(data)}
	}
	link := func(name, target string) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, ModTime: mt}}
	}
	kdir := "usr/lib/modules/6.0.0-test/"
	entries := []tarEntry{
		dir("./", 0o755), link("bin", "usr/bin"), link("sbin", "usr/sbin"), link("lib", "usr/lib"), link("lib64", "usr/lib64"),
		dir("etc/", 0o755), file("etc/hostname", 0o644, "fixture\n"), link("etc/os-release", "../usr/lib/os-release"),
		dir("tmp/", 0o1777), dir("root/", 0o700), dir("var/", 0o755), dir("var/lib/", 0o755), file("var/lib/state", 0o600, "factory var\n"),
		dir("usr/", 0o755), dir("usr/bin/", 0o755), dir("usr/sbin/", 0o755), dir("usr/lib/", 0o755), dir("usr/lib64/", 0o755),
		file("usr/lib/os-release", 0o644, "ID=fixture\nNAME=\"Fixture OS\"\n"),
		file("usr/lib/systemd/systemd", 0o755, "systemd"),
		file("usr/sbin/mkfs.ext4", 0o755, "mkfs"),
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/bin/su", Mode: 0o4755, Size: 2, ModTime: mt}, data: []byte("su")},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/bin/ping", Mode: 0o755, Size: 4, ModTime: mt,
			PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}}, data: []byte("ping")},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/share/doc/owned", Mode: 0o640, Uid: 1000, Gid: 1001, Size: 1, ModTime: mt}, data: []byte("x")},
		{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "usr/lib/fixture/null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: mt}},
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "usr/bin/su-link", Linkname: "usr/bin/su", ModTime: mt}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/lib/systemd/boot/efi/systemd-bootx64.efi", Mode: 0o644, Size: int64(len(loader)), ModTime: mt}, data: loader},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/lib/systemd/boot/efi/linuxx64.efi.stub", Mode: 0o644, Size: int64(len(stub)), ModTime: mt}, data: stub},
		file(kdir+"vmlinuz", 0o644, "not really a kernel"),
		file(kdir+"modules.dep", 0o644, "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/virtio/virtio_ring.ko:\nkernel/fs/erofs/erofs.ko:\n"),
		file(kdir+"modules.builtin", 0o644, "kernel/fs/ext4/ext4.ko\n"),
		file(kdir+"kernel/drivers/block/virtio_blk.ko", 0o644, "virtio_blk module"),
		file(kdir+"kernel/drivers/virtio/virtio_ring.ko", 0o644, "virtio_ring module"),
		file(kdir+"kernel/fs/erofs/erofs.ko", 0o644, "erofs module"),
	}
	var out []tarEntry
	for _, e := range entries {
		keep := true
		for _, d := range drop {
			if strings.HasPrefix(strings.TrimPrefix(e.hdr.Name, "./"), d) {
				keep = false
			}
		}
		if keep {
			out = append(out, e)
		}
	}
	return out
}

func writeTar(t *testing.T, path string, entries []tarEntry) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".zst") {
		enc, _ := zstd.NewWriter(nil)
		if err := os.WriteFile(path, enc.EncodeAll(buf.Bytes(), nil), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func build(t *testing.T, rootfs, out string, mod func(*diskimage.Options)) (*diskimage.Result, error) {
	t.Helper()
	initPath, agentPath := binaries(t)
	o := diskimage.Options{RootFS: rootfs, Version: "1.0.0", OutputDir: out, Epoch: epoch,
		InitPath: initPath, AgentPath: agentPath, Modules: []string{"virtio_blk", "erofs", "ext4", "nonexistent"}}
	if mod != nil {
		mod(&o)
	}
	return diskimage.Build(context.Background(), o)
}

func TestBuildFromTarball(t *testing.T) {
	dir := t.TempDir()
	tarball := filepath.Join(dir, "rootfs.tar.zst")
	writeTar(t, tarball, fixture(t))
	res, err := build(t, tarball, filepath.Join(dir, "out"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.KernelVersion != "6.0.0-test" {
		t.Errorf("kernel version %q", res.KernelVersion)
	}
	if strings.Join(res.MissingModules, ",") != "nonexistent" {
		t.Errorf("missing modules %v, want [nonexistent]", res.MissingModules)
	}
	d, f, err := diskimage.InspectFile(res.DiskPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if hex.EncodeToString(d.UsrHash) != res.UsrHash || d.Version != "1.0.0" {
		t.Errorf("UKI says usrhash %x version %q; built %s", d.UsrHash, d.Version, res.UsrHash)
	}
	if got := d.UKIs; len(got) != 1 || got[0] != "ingot_1.0.0+3-0.efi" {
		t.Errorf("UKIs on ESP: %v", got)
	}
	checkPartitions(t, d)
	checkUsr(t, f, d)
	checkInitrd(t, f, d)
	validate(t, res.DiskPath, d)
}

func checkPartitions(t *testing.T, d *diskimage.Disk) {
	t.Helper()
	want := []struct {
		index int
		typ   string
		name  string
	}{
		{1, layout.TypeESP.String(), "esp"},
		{2, layout.TypeUsr.String(), "ingot_1.0.0"},
		{3, layout.TypeUsrVerity.String(), "ingot_1.0.0_verity"},
		{4, layout.TypeUsrVeritySig.String(), "_empty"},
		{5, layout.TypeUsr.String(), "_empty"},
		{6, layout.TypeUsrVerity.String(), "_empty"},
		{7, layout.TypeUsrVeritySig.String(), "_empty"},
	}
	if len(d.Table.Partitions) != len(want) {
		t.Fatalf("%d partitions, want %d", len(d.Table.Partitions), len(want))
	}
	for i, w := range want {
		p := d.Table.Partitions[i]
		if p.Index != w.index || p.Type.String() != w.typ || p.Name != w.name {
			t.Errorf("partition %d: index %d type %s name %q; want %d %s %q", i, p.Index, p.Type, p.Name, w.index, w.typ, w.name)
		}
	}
	if d.Usr.Index != 2 || d.Verity.Index != 3 {
		t.Errorf("usrhash names partitions %d and %d, want 2 and 3", d.Usr.Index, d.Verity.Index)
	}
	if got, want := d.Usr.UUID.String(), hex.EncodeToString(d.UsrHash[:16]); strings.ReplaceAll(got, "-", "") != want {
		t.Errorf("usr PARTUUID %s, want first 128 bits of the root hash %s", got, want)
	}
}

// checkUsr reads the EROFS back and checks the metadata an unprivileged
// build has to keep.
func checkUsr(t *testing.T, f *os.File, d *diskimage.Disk) {
	t.Helper()
	fsys, err := erofs.Open(io.NewSectionReader(f, d.Usr.Offset(512), d.Usr.Size(512)))
	if err != nil {
		t.Fatal(err)
	}
	stat := func(p string) *erofs.Stat {
		fi, err := fs.Stat(fsys, p)
		if err != nil {
			t.Fatalf("stat /usr/%s: %v", p, err)
		}
		return fi.Sys().(*erofs.Stat)
	}
	if st := stat("bin/su"); st.Mode&fs.ModeSetuid == 0 || st.Mode.Perm() != 0o755 {
		t.Errorf("/usr/bin/su mode %v, want setuid 0755", st.Mode)
	}
	if st := stat("share/doc/owned"); st.UID != 1000 || st.GID != 1001 || st.Mode.Perm() != 0o640 {
		t.Errorf("/usr/share/doc/owned: %d:%d %v, want 1000:1001 0640", st.UID, st.GID, st.Mode)
	}
	if st := stat("bin/ping"); st.Xattrs["security.capability"] == "" {
		t.Errorf("/usr/bin/ping lost its security.capability xattr: %v", st.Xattrs)
	}
	if st := stat("lib/fixture/null"); st.Mode&fs.ModeCharDevice == 0 || st.Rdev != 1<<8|3 {
		t.Errorf("/usr/lib/fixture/null: mode %v rdev %#x, want char device 1:3", st.Mode, st.Rdev)
	}
	if st := stat("bin/su-link"); st.Size != 2 || st.Ino != stat("bin/su").Ino || st.Nlink != 2 {
		t.Errorf("hard link: size %d, inode %d (su's: %d), nlink %d; want one inode with two names", st.Size, st.Ino, stat("bin/su").Ino, st.Nlink)
	}
	if st := stat("lib/os-release"); st.Mtime != epoch {
		t.Errorf("mtime %d not clamped to SOURCE_DATE_EPOCH %d", st.Mtime, epoch)
	}
	for p, want := range map[string]string{
		"share/ingot/factory/etc/hostname":   "fixture\n",
		"share/ingot/factory/var/lib/state":  "factory var\n",
		"share/ingot/factory/etc/machine-id": "",
	} {
		if got, err := fs.ReadFile(fsys, p); err != nil || string(got) != want {
			t.Errorf("/usr/%s = %q, %v; want %q", p, got, err, want)
		}
	}
	osr, _ := fs.ReadFile(fsys, "lib/os-release")
	if !strings.Contains(string(osr), "IMAGE_VERSION=1.0.0") || !strings.Contains(string(osr), "IMAGE_ID=ingot") {
		t.Errorf("os-release lacks the image fields:\n%s", osr)
	}
	for _, p := range []string{"bin/ingot", "lib/systemd/system/ingot-boot-marker.service",
		"lib/systemd/system/multi-user.target.wants/ingot-boot-marker.service", "lib/ingot/root.json",
		"lib/systemd/system/ingot-health.service", "lib/systemd/system/ingot-health.service.d/50-ingot-health.conf"} {
		if _, err := fs.Stat(fsys, p); err != nil {
			t.Errorf("ingot runtime file /usr/%s: %v", p, err)
		}
	}
	lay, _ := fs.ReadFile(fsys, "lib/ingot/root.json")
	for _, want := range []string{`"bin": "usr/bin"`, `"tmp": "1777"`, `"root": "0700"`} {
		if !strings.Contains(string(lay), want) {
			t.Errorf("root.json lacks %s:\n%s", want, lay)
		}
	}
}

func checkInitrd(t *testing.T, f *os.File, d *diskimage.Disk) {
	t.Helper()
	files := initrdFiles(t, d)
	if _, ok := files["init"]; !ok {
		t.Error("initrd has no /init")
	}
	if _, ok := files["dev/console"]; !ok {
		t.Error("initrd has no /dev/console")
	}
	var order []string
	for _, l := range strings.Split(strings.TrimSpace(files["usr/lib/modules/"+layout.InitrdModulesFile]), "\n") {
		order = append(order, strings.Fields(l)[0])
	}
	want := []string{"6.0.0-test/kernel/drivers/virtio/virtio_ring.ko", "6.0.0-test/kernel/drivers/block/virtio_blk.ko", "6.0.0-test/kernel/fs/erofs/erofs.ko"}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("module load order %v, want %v", order, want)
	}
	if got := files["usr/lib/modules/"+layout.InitrdModulesFile]; !regexp.MustCompile(`virtio_blk\.ko .*dep:virtio_ring`).MatchString(got) {
		t.Errorf("the module list does not name virtio_blk's dependency:\n%s", got)
	}
	if files["usr/lib/modules/6.0.0-test/kernel/fs/erofs/erofs.ko"] != "erofs module" {
		t.Error("erofs module content missing from the initrd")
	}
}

// validate runs the independent validators on the image.
func validate(t *testing.T, disk string, d *diskimage.Disk) {
	t.Helper()
	dir := t.TempDir()
	ingottest.SgdiskVerify(t, disk)
	esp := d.Table.Partitions[0]
	ingottest.FsckVfat(t, ingottest.Extract(t, disk, esp.Offset(512), esp.Size(512), dir, "esp.img"))
	usr := ingottest.Extract(t, disk, d.Usr.Offset(512), d.Usr.Size(512), dir, "usr.img")
	ingottest.FsckErofs(t, usr)
	verity := ingottest.Extract(t, disk, d.Verity.Offset(512), d.Verity.Size(512), dir, "verity.img")
	ingottest.VeritySetupVerify(t, usr, verity, hex.EncodeToString(d.UsrHash))
	out := ingottest.SystemdDissect(t, disk)
	for _, want := range []string{"usr", "usr-verity", "esp", "IMAGE_VERSION=1.0.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("systemd-dissect does not show %q:\n%s", want, out)
		}
	}
}

func TestReproducible(t *testing.T) {
	dir := t.TempDir()
	tarball := filepath.Join(dir, "rootfs.tar")
	writeTar(t, tarball, fixture(t))
	a, err := build(t, tarball, filepath.Join(dir, "a"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := build(t, tarball, filepath.Join(dir, "b"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if sa, sb := ingottest.FileSHA256(t, a.DiskPath), ingottest.FileSHA256(t, b.DiskPath); sa != sb {
		t.Fatalf("two builds differ: %s vs %s", sa, sb)
	}
	c, err := build(t, tarball, filepath.Join(dir, "c"), func(o *diskimage.Options) { o.Epoch = epoch + 1 })
	if err != nil {
		t.Fatal(err)
	}
	if ingottest.FileSHA256(t, a.DiskPath) == ingottest.FileSHA256(t, c.DiskPath) {
		t.Error("a different SOURCE_DATE_EPOCH gave the same bytes: the epoch is not used")
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name string
		drop []string
		mod  func(*diskimage.Options)
		want string
	}{
		{"no kernel", []string{"usr/lib/modules/6.0.0-test/vmlinuz"}, nil, "no kernel"},
		{"no systemd-boot", []string{"usr/lib/systemd/boot"}, nil, "no systemd-boot EFI binaries"},
		{"no systemd", []string{"usr/lib/systemd/systemd"}, nil, "no systemd"},
		{"not merged usr", []string{"bin"}, nil, ""},
		{"usr partition too small", nil, func(o *diskimage.Options) { o.UsrSlotBytes = 1 << 20 }, "disk image too small"},
		{"bad version", nil, func(o *diskimage.Options) { o.Version = "1.0/evil" }, "version"},
		{"output not writable", nil, func(o *diskimage.Options) { o.OutputDir = "/proc/ingot" }, "output directory"},
		{"missing rootfs", nil, func(o *diskimage.Options) { o.RootFS = "/nonexistent/rootfs.tar" }, "no such file"},
		{"health check not a unit", nil, func(o *diskimage.Options) { o.HealthChecks = []string{"../evil"} }, "not a systemd unit name"},
		{"health check missing", nil, func(o *diskimage.Options) { o.HealthChecks = []string{"absent.service"} }, "absent.service: no such unit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			entries := fixture(t, tc.drop...)
			want := tc.want
			if tc.name == "not merged usr" {
				entries = append(entries, tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755}})
				want = "merged-/usr"
			}
			tarball := filepath.Join(dir, "rootfs.tar")
			writeTar(t, tarball, entries)
			out := filepath.Join(dir, "out")
			_, err := build(t, tarball, out, tc.mod)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want one containing %q", err, want)
			}
			if left, _ := os.ReadDir(out); len(left) != 0 {
				t.Errorf("output directory not empty after a failed build: %v", left)
			}
		})
	}
}

// TestUnprivileged runs the real binary as nobody: owners, setuid bits,
// xattrs and device nodes from the tarball must survive without root.
func TestUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		ingottest.Skip(t, "needs root to switch to an unprivileged user")
	}
	setpriv := ingottest.LookTool(t, "setpriv", "util-linux")
	initPath, agentPath := binaries(t)
	dir, err := os.MkdirTemp("", "ingot-unpriv-*")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	bins := filepath.Join(dir, "bin")
	os.Mkdir(bins, 0o755)
	// The workstation ingot, with ingot-init and ingot-agent beside it.
	for _, p := range []string{initPath, agentPath, filepath.Join(filepath.Dir(agentPath), "ingot")} {
		b, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(bins, filepath.Base(p)), b, 0o755)
	}
	tarball := filepath.Join(dir, "rootfs.tar")
	writeTar(t, tarball, fixture(t))
	os.Chmod(tarball, 0o644)
	out := filepath.Join(dir, "out")
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
		filepath.Join(bins, "ingot"), "image", "--rootfs", tarball, "--version", "1.0.0", "--output", out, "--json",
		"--compression=none") // checkUsr reads /usr with go-erofs, which reads no compressed files
	cmd.Env = []string{"SOURCE_DATE_EPOCH=1700000000", "HOME=/nonexistent", "TMPDIR=" + dir}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ingot image as nobody: %v\n%s", err, b)
	}
	d, f, err := diskimage.InspectFile(filepath.Join(out, "ingot_1.0.0.raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkUsr(t, f, d)

	// An unreadable file in a directory root filesystem: one clear error
	// naming it, nothing left in the output directory.
	rootDir := filepath.Join(dir, "rootdir")
	if out, err := exec.Command("tar", "-xf", tarball, "-C", mkdir(t, rootDir)).CombinedOutput(); err != nil {
		t.Fatalf("extract fixture: %v\n%s", err, out)
	}
	// Everything readable but the one file below.
	if out, err := exec.Command("chmod", "-R", "a+rX", rootDir).CombinedOutput(); err != nil {
		t.Fatalf("chmod: %v\n%s", err, out)
	}
	secret := filepath.Join(rootDir, "usr/share/secret")
	if err := os.WriteFile(secret, []byte("x"), 0o000); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(dir, "out2")
	cmd = exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
		filepath.Join(bins, "ingot"), "image", "--rootfs", rootDir, "--version", "1.0.0", "--output", out2)
	cmd.Env = []string{"SOURCE_DATE_EPOCH=1700000000", "HOME=/nonexistent", "TMPDIR=" + dir}
	b, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "usr/share/secret") || !strings.Contains(string(b), "permission denied") || strings.Count(string(b), "ingot: ") != 1 {
		t.Errorf("unreadable file: %v\n%s", err, b)
	}
	if left, _ := os.ReadDir(out2); len(left) != 0 {
		t.Errorf("output left after a failed build: %v", left)
	}
}

func mkdir(t *testing.T, p string) string {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSignedImage signs with the committed test keys and checks the result
// with sbverify and our own verifiers.
func TestSignedImage(t *testing.T) {
	keyDir := "../trust/testdata/keys"
	keys, err := trust.LoadKeys(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tarball := filepath.Join(dir, "rootfs.tar")
	writeTar(t, tarball, fixture(t))
	res, err := build(t, tarball, filepath.Join(dir, "out"), func(o *diskimage.Options) { o.Keys, o.KeyDir = keys, keyDir })
	if err != nil {
		t.Fatal(err)
	}
	d, f, err := diskimage.InspectFile(res.DiskPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sbverify := ingottest.LookTool(t, "sbverify", "sbsigntool")
	for _, p := range []string{"EFI/BOOT/BOOTX64.EFI", "EFI/Linux/" + d.UKIs[0]} {
		b, err := fs.ReadFile(d.ESP, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := trust.VerifyPE(b, []*x509.Certificate{keys.DB.Cert}); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		tmp := filepath.Join(dir, filepath.Base(p))
		os.WriteFile(tmp, b, 0o644)
		ingottest.Run(t, sbverify, "--cert", filepath.Join(keyDir, "db.crt"), tmp)
	}
	for _, name := range []string{"PK", "KEK", "db"} {
		if _, err := fs.Stat(d.ESP, "loader/keys/auto/"+name+".auth"); err != nil {
			t.Errorf("enrollment file: %v", err)
		}
	}
	conf, _ := fs.ReadFile(d.ESP, "loader/loader.conf")
	if !strings.Contains(string(conf), "secure-boot-enroll if-safe") {
		t.Errorf("loader.conf:\n%s", conf)
	}
	ukiFile, _ := d.ESP.Open("EFI/Linux/" + d.UKIs[0])
	img, err := uki.Open(ukiFile.(io.ReaderAt))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{uki.SectionPCRSig, uki.SectionPCRPKey} {
		if _, err := img.Section(s); err != nil {
			t.Errorf("signed UKI lacks %s: %v", s, err)
		}
	}
	sig := d.Table.Partitions[3]
	if sig.Name != "ingot_1.0.0_verity_sig" {
		t.Errorf("verity-sig partition named %q", sig.Name)
	}
	blob := make([]byte, sig.Size(512))
	if _, err := f.ReadAt(blob, sig.Offset(512)); err != nil {
		t.Fatal(err)
	}
	got, err := trust.VerifyRootHashSig(blob, []*x509.Certificate{keys.Verity.Cert})
	if err != nil || hex.EncodeToString(got) != res.UsrHash {
		t.Errorf("verity signature: root hash %x, %v; want %s", got, err, res.UsrHash)
	}
	fsys, err := erofs.Open(io.NewSectionReader(f, d.Usr.Offset(512), d.Usr.Size(512)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(fsys, "lib/ingot/keys/db.crt"); err != nil {
		t.Errorf("/usr lacks the trusted db certificate: %v", err)
	}
	files := initrdFiles(t, d)
	if files["usr/lib/ingot/keys/verity.crt"] == "" {
		t.Error("the initrd lacks the verity certificate ingot-init checks usr-verity-sig with")
	}
	if pcr, _ := tpm.PCRPubKeyPEM(keys.PCR.Public()); files["usr/lib/ingot/keys/pcr.pem"] != string(pcr) {
		t.Error("the initrd lacks the PCR public key an encrypted root is sealed to")
	}
	if _, err := fs.Stat(fsys, "lib/ingot/keys/pcr.pem"); err == nil {
		t.Error("/usr has the PCR key: the usrhash would change with it")
	}
	checkSigWithOpenSSL(t, blob, filepath.Join(keyDir, "verity.crt"), res.UsrHash)
	art, err := artifact.Open(filepath.Join(dir, "out", artifact.DirName("1.0.0")))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(art.Path(artifact.RoleVeritySig)); err != nil || len(b) > len(blob) || !bytes.Equal(b, blob[:len(b)]) {
		t.Errorf("update artifact's verity signature: %v (want the partition's)", err)
	}
	// Signing is reproducible too.
	again, err := build(t, tarball, filepath.Join(dir, "again"), func(o *diskimage.Options) { o.Keys, o.KeyDir = keys, keyDir })
	if err != nil {
		t.Fatal(err)
	}
	if ingottest.FileSHA256(t, res.DiskPath) != ingottest.FileSHA256(t, again.DiskPath) {
		t.Error("two signed builds differ")
	}
}

// initrdFiles returns the files of the first UKI's initrd by name.
func initrdFiles(t *testing.T, d *diskimage.Disk) map[string]string {
	t.Helper()
	ukiFile, err := d.ESP.Open("EFI/Linux/" + d.UKIs[0])
	if err != nil {
		t.Fatal(err)
	}
	img, err := uki.Open(ukiFile.(io.ReaderAt))
	if err != nil {
		t.Fatal(err)
	}
	compressed, err := img.Section(uki.SectionInitrd)
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := zstd.NewReader(nil)
	raw, err := dec.DecodeAll(compressed, nil)
	if err != nil {
		t.Fatalf("initrd is not zstd: %v", err)
	}
	files := map[string]string{}
	rr := cpio.Newc.Reader(bytes.NewReader(raw))
	err = cpio.ForEachRecord(rr, func(r cpio.Record) error {
		content, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		files[r.Name] = string(content)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// checkSigWithOpenSSL verifies a usr-verity-sig's PKCS#7 signature of the
// hex root hash with openssl, independently of package trust.
func checkSigWithOpenSSL(t *testing.T, blob []byte, certPath, rootHash string) {
	t.Helper()
	openssl := ingottest.LookTool(t, "openssl", "openssl")
	var v struct{ RootHash, Signature string }
	if err := json.Unmarshal(bytes.TrimRight(blob, "\x00"), &v); err != nil {
		t.Fatal(err)
	}
	der, err := base64.StdEncoding.DecodeString(v.Signature)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sig, content := filepath.Join(dir, "sig.p7s"), filepath.Join(dir, "roothash")
	os.WriteFile(sig, der, 0o644)
	os.WriteFile(content, []byte(rootHash), 0o644)
	ingottest.Run(t, openssl, "smime", "-verify", "-binary", "-inform", "DER", "-in", sig,
		"-content", content, "-CAfile", certPath, "-purpose", "any", "-out", "/dev/null")
	os.WriteFile(content, []byte(strings.Repeat("0", len(rootHash))), 0o644)
	if out, err := exec.Command(openssl, "smime", "-verify", "-binary", "-inform", "DER", "-in", sig,
		"-content", content, "-CAfile", certPath, "-purpose", "any", "-out", "/dev/null").CombinedOutput(); err == nil {
		t.Errorf("openssl accepted the signature for another root hash:\n%s", out)
	}
}

// TestHarden15FailedBuildLeavesNothing: a root filesystem the image cannot
// hold (a 256-byte name, finding 11; content beyond its bound, finding 14)
// gives one error naming the file, and the failed build removes the output
// directories it made and leaves what was there before.
func TestHarden15FailedBuildLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	long := "usr/lib/" + strings.Repeat("n", 256)
	tests := []struct {
		name    string
		entries []tarEntry
		mod     func(*diskimage.Options)
		want    []string
	}{
		{"256-byte name", []tarEntry{
			{hdr: tar.Header{Typeflag: tar.TypeReg, Name: long, Mode: 0o644}, data: []byte("x")},
		}, nil, []string{"/" + long + ": name", "more than 255"}},
		{"content beyond its bound", []tarEntry{
			{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/zeros", Mode: 0o644}, data: make([]byte, 2<<20)},
		}, func(o *diskimage.Options) { o.RootFSMaxBytes = 1 << 20 }, []string{"/usr/zeros: its 2097152 bytes", "RootFSMaxBytes"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tarball := filepath.Join(t.TempDir(), "rootfs.tar.zst")
			writeTar(t, tarball, tc.entries)
			_, err := build(t, tarball, filepath.Join(dir, "a/b/c"), tc.mod)
			if err == nil {
				t.Fatal("built an image")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %v\nlacks %q", err, w)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
				t.Errorf("the failed build left the output directories it made: %v", err)
			}
			out := mkdir(t, filepath.Join(t.TempDir(), "out"))
			os.WriteFile(filepath.Join(out, "keep"), []byte("x"), 0o644)
			if _, err := build(t, tarball, out, tc.mod); err == nil {
				t.Fatal("built an image")
			}
			if left, _ := os.ReadDir(out); len(left) != 1 || left[0].Name() != "keep" {
				t.Errorf("the failed build changed an existing output directory: %v", left)
			}
		})
	}
}
