package activate_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/ext/activate"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/internal/kernel"
	"github.com/ingot-linux/ingot/trust"
	"golang.org/x/sys/unix"
)

// The tests attach and mount real extension images with this host's
// kernel (read-only loop devices, EROFS), so they need root. dm-verity is
// veritysetup's: the build machines' kernels may have no device-mapper,
// and the VM tests map the same tables with the guest's. The mapping's
// check is the independent validator's (veritysetup verify of exactly
// the table Activate asks for), and the device is the data's loop device.

func needKernel(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		ingottest.Skip(t, "activating an extension needs root (loop devices, mounts)")
	}
	ingottest.LookTool(t, "veritysetup", "cryptsetup-bin")
}

// sys is the host's kernel with veritysetup standing in for dm-verity.
type sys struct {
	kernel.Linux
	open map[string]*os.File // "mapped" devices: their loop device held open
}

func newSys() *sys { return &sys{open: map[string]*os.File{}} }

// VerityCreate checks the table's data against its tree and root hash
// with veritysetup and "maps" the data's loop device.
func (s *sys) VerityCreate(name string, sectors uint64, params string) (string, error) {
	f := strings.Fields(params) // version data hash dbs hbs blocks start alg root salt
	if len(f) != 10 || f[6] != "1" {
		return "", fmt.Errorf("unexpected table %q", params)
	}
	args := []string{"verify", "--hash-offset=4096", "--no-superblock", "--data-block-size=" + f[3], "--hash-block-size=" + f[4],
		"--data-blocks=" + f[5], "--hash=" + f[7], "--salt=" + f[9], "--format=" + f[0], f[1], f[2], f[8]}
	if out, err := exec.Command("veritysetup", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("veritysetup verify: %v: %s", err, out)
	}
	dev, err := os.Open(f[1])
	if err != nil {
		return "", err
	}
	s.open[name] = dev
	return f[1], nil
}

func (s *sys) VerityRemove(name string) error {
	if f, ok := s.open[name]; ok {
		f.Close()
		delete(s.open, name)
	}
	return nil
}

func (s *sys) Unmount(target string) error { return unix.Unmount(target, unix.MNT_DETACH) }

type fixture struct {
	keys, other *trust.Keys
	out         string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{out: t.TempDir()}
	var err error
	if f.keys, err = trust.InitKeys(filepath.Join(t.TempDir(), "k"), trust.KeyOptions{Name: "act"}); err != nil {
		t.Fatal(err)
	}
	if f.other, err = trust.InitKeys(filepath.Join(t.TempDir(), "o"), trust.KeyOptions{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	return f
}

// build makes extension name (a unique name per test: dm names are
// global) of kind for version, signed by keys (nil: unsigned).
func (f *fixture) build(t *testing.T, name string, kind ext.Kind, version string, keys *trust.Keys) string {
	t.Helper()
	src := t.TempDir()
	file := "usr/bin/" + name
	if kind == ext.Confext {
		file = "etc/" + name + ".conf"
	}
	if err := os.MkdirAll(filepath.Join(src, filepath.Dir(file)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, file), []byte(strings.Repeat(name+"\n", 3000)), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := diskimage.BuildExtension(context.Background(), diskimage.ExtensionOptions{
		Name: name, Kind: kind, Version: "1", For: version, Contents: src, Keys: keys,
		OutputDir: filepath.Join(f.out, name), Epoch: 1700000000,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Path
}

func host(t *testing.T, keys *trust.Keys) activate.Host {
	h := activate.Host{ID: "ingot", Version: "1.0.0", Root: t.TempDir()}
	if keys != nil {
		h.Roots = []*x509.Certificate{keys.Verity.Cert}
	}
	return h
}

func noDevice(t *testing.T, s *sys, name string) {
	t.Helper()
	if _, ok := s.open[name]; ok {
		t.Errorf("verity device %s left behind", name)
	}
}

func TestActivate(t *testing.T) {
	needKernel(t)
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		kind ext.Kind
		dir  func(string) string
		file string
	}{
		{"acttest-sys", ext.Sysext, activate.SysextDir, "usr/bin/acttest-sys"},
		{"acttest-conf", ext.Confext, activate.ConfextDir, "etc/acttest-conf.conf"},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			path := f.build(t, tc.name, tc.kind, "1.0.0", f.keys)
			h := host(t, f.keys)
			s := newSys()
			res, err := activate.Activate(s, h, path, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { activate.Deactivate(s, h.Root, tc.name) })
			if res.Kind != tc.kind || !res.Signed || res.Dir != tc.dir(tc.name) {
				t.Errorf("result %+v", res)
			}
			b, err := os.ReadFile(filepath.Join(h.Root, res.Dir, tc.file))
			if err != nil || !strings.HasPrefix(string(b), tc.name+"\n") {
				t.Errorf("mounted tree: %q, %v", b[:min(len(b), 20)], err)
			}
			if got := activate.Deactivate(s, h.Root, tc.name); got != tc.kind {
				t.Errorf("Deactivate found %q mounted, want %s", got, tc.kind)
			}
			noDevice(t, s, activate.DMName(tc.name))
		})
	}
}

// TestActivateRefuses: every refusal leaves nothing mapped or mounted.
func TestActivateRefuses(t *testing.T) {
	needKernel(t)
	f := newFixture(t)
	flipped := func(t *testing.T, path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		im := openImage(t, path)
		off := im.DataOffset() + im.DataReader().Size()/2
		b[off] ^= 0xff
		p := filepath.Join(t.TempDir(), "flipped.raw")
		os.WriteFile(p, b, 0o644)
		return p
	}
	for _, tc := range []struct {
		name    string
		image   func(t *testing.T) string
		host    activate.Host
		check   bool // activate.Check instead of Activate
		wantErr error
		want    string
	}{
		{name: "acttest-wrongos", image: func(t *testing.T) string { return f.build(t, "acttest-wrongos", ext.Sysext, "2.0.0", f.keys) },
			host: host(t, f.keys), wantErr: ext.ErrWrongOS},
		{name: "acttest-wrongos2", image: func(t *testing.T) string { return f.build(t, "acttest-wrongos2", ext.Sysext, "2.0.0", f.keys) },
			host: host(t, f.keys), check: true, wantErr: ext.ErrWrongOS},
		{name: "acttest-unsigned", image: func(t *testing.T) string { return f.build(t, "acttest-unsigned", ext.Sysext, "1.0.0", nil) },
			host: host(t, f.keys), wantErr: ext.ErrUnsigned},
		{name: "acttest-unsigned2", image: func(t *testing.T) string { return f.build(t, "acttest-unsigned2", ext.Sysext, "1.0.0", nil) },
			host: host(t, nil), wantErr: ext.ErrUnsigned, want: "--allow-unsigned"},
		{name: "acttest-other", image: func(t *testing.T) string { return f.build(t, "acttest-other", ext.Sysext, "1.0.0", f.other) },
			host: host(t, f.keys), wantErr: trust.ErrUntrusted},
		{name: "acttest-flip", image: func(t *testing.T) string {
			return flipped(t, f.build(t, "acttest-flip", ext.Sysext, "1.0.0", f.keys))
		}, host: host(t, f.keys), want: "veritysetup verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.image(t)
			s := newSys()
			var err error
			if tc.check {
				err = activate.Check(s, tc.host, path, tc.name)
			} else {
				_, err = activate.Activate(s, tc.host, path, tc.name)
			}
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %v with %q", err, tc.wantErr, tc.want)
			}
			noDevice(t, s, activate.DMName(tc.name))
			noDevice(t, s, "ingot-ext-check-"+tc.name)
			for _, d := range []string{activate.SysextDir(tc.name), activate.ConfextDir(tc.name), "/run/ingot/ext-staging/" + tc.name} {
				if _, err := os.Stat(filepath.Join(tc.host.Root, d)); err == nil {
					t.Errorf("%s left behind", d)
				}
			}
		})
	}
	t.Run("unsigned allowed", func(t *testing.T) {
		h := host(t, nil)
		h.AllowUnsigned = true
		path := f.build(t, "acttest-allowed", ext.Sysext, "1.0.0", nil)
		s := newSys()
		res, err := activate.Activate(s, h, path, "acttest-allowed")
		if err != nil || res.Signed {
			t.Fatalf("%+v, %v", res, err)
		}
		activate.Deactivate(s, h.Root, "acttest-allowed")
	})
	t.Run("installed under another name", func(t *testing.T) {
		path := f.build(t, "acttest-named", ext.Sysext, "1.0.0", f.keys)
		_, err := activate.Activate(newSys(), host(t, f.keys), path, "acttest-renamed")
		if !errors.Is(err, ext.ErrMalformed) {
			t.Fatalf("got %v, want ErrMalformed", err)
		}
	})
}

func TestEtcOverlay(t *testing.T) {
	for _, tc := range []struct {
		dirs []string
		want string
	}{
		{nil, "lowerdir=/r/usr/share/ingot/factory/etc,upperdir=/r/.ingot/etc.upper,workdir=/w,index=off"},
		{[]string{"/run/ingot/confexts/a", "/run/ingot/confexts/b"},
			"lowerdir=/run/ingot/confexts/b/etc:/run/ingot/confexts/a/etc:/r/usr/share/ingot/factory/etc,upperdir=/r/.ingot/etc.upper,workdir=/w,index=off"},
	} {
		if got := activate.EtcOverlay("/r", tc.dirs, "/w"); got != tc.want {
			t.Errorf("EtcOverlay(%v):\n got %s\nwant %s", tc.dirs, got, tc.want)
		}
	}
}

func openImage(t *testing.T, path string) *ext.Image {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	fi, _ := fh.Stat()
	im, err := ext.Open(fh, fi.Size())
	if err != nil {
		t.Fatal(fmt.Errorf("open %s: %w", path, err))
	}
	return im
}
