package diskimage_test

import (
	"archive/tar"
	"context"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/ingottest"
)

// TestUnitsVerify builds an image with every unit ingot can add (a health
// check, autologin), copies its /usr over the host's systemd units into a
// root directory and runs systemd-analyze verify there on every unit the
// image adds or changes with a drop-in. A unit with a typo in a key is
// refused by the same check.
func TestUnitsVerify(t *testing.T) {
	ingottest.LookTool(t, "systemd-analyze", "systemd")
	root := imageUsrRoot(t)
	units := changedUnits(t, root)
	if len(units) < 10 {
		t.Fatalf("found only %d units to verify: %v", len(units), units)
	}
	t.Logf("verifying %s", strings.Join(units, " "))
	if err := ingottest.SystemdVerify(t, root, units...); err != nil {
		t.Error(err)
	}

	tests := []struct{ name, unit string }{
		{"misspelt key", "[Service]\nType=oneshot\nExecStrat=/usr/bin/ingot health\nExecStart=/usr/bin/ingot health\n"},
		{"missing program", "[Service]\nType=oneshot\nExecStart=/usr/bin/ingot-absent\n"},
		{"unknown section", "[Servce]\nExecStart=/usr/bin/ingot health\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "ingot-bad-" + strings.ReplaceAll(tc.name, " ", "-") + ".service"
			writeFile(t, filepath.Join(root, "usr/lib/systemd/system", name), tc.unit, 0o644)
			if err := ingottest.SystemdVerify(t, root, name); err == nil {
				t.Errorf("systemd-analyze verify accepted %s:\n%s", name, tc.unit)
			}
		})
	}
}

// imageUsrRoot builds the image and returns a root directory with the
// host's systemd units (for boot-complete.target, getty units, …), the
// image's /usr over them, and stand-ins for the programs the units run
// that the fixture lacks.
func imageUsrRoot(t *testing.T) string {
	dir := t.TempDir()
	tarball := filepath.Join(dir, "rootfs.tar")
	entries := append(fixture(t), tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/lib/systemd/system/fixture-check.service", Mode: 0o644},
		data: []byte("[Service]\nType=oneshot\nExecStart=/usr/bin/true\n")})
	writeTar(t, tarball, entries)
	initPath, agentPath := filepath.Join(dir, "ingot-init"), filepath.Join(dir, "ingot")
	writeFile(t, initPath, string(staticELF(1)), 0o755)
	writeFile(t, agentPath, string(staticELF(2)), 0o755)
	res, err := diskimage.Build(context.Background(), diskimage.Options{RootFS: tarball, Version: "1.0.0", OutputDir: filepath.Join(dir, "out"),
		Epoch: epoch, InitPath: initPath, AgentPath: agentPath, Autologin: true, HealthChecks: []string{"fixture-check.service"}})
	if err != nil {
		t.Fatal(err)
	}
	usr := usrFS(t, res.DiskPath)
	root := filepath.Join(dir, "root")
	copyFS(t, os.DirFS("/usr/lib/systemd/system"), filepath.Join(root, "usr/lib/systemd/system"))
	copyFS(t, usr, filepath.Join(root, "usr"))
	for _, p := range []string{"usr/bin/true", "usr/sbin/agetty", "usr/bin/bootctl"} {
		if _, err := os.Lstat(filepath.Join(root, p)); os.IsNotExist(err) {
			writeFile(t, filepath.Join(root, p), "#!/bin/sh\n", 0o755)
		}
	}
	return root
}

// changedUnits lists the units of root's /usr/lib/systemd/system that are
// files (not masks or enablement links) and those that have drop-ins,
// template units instantiated.
func changedUnits(t *testing.T, root string) []string {
	dir := filepath.Join(root, "usr/lib/systemd/system")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var units []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "ingot-") && !strings.HasSuffix(name, ".d") {
			continue // the host's, unless the image adds a drop-in
		}
		if strings.HasSuffix(name, ".d") {
			if !hasIngotDropIn(t, filepath.Join(dir, name)) {
				continue
			}
			name = strings.TrimSuffix(name, ".d")
		}
		name = strings.Replace(name, "@.", "@ttyS0.", 1) // a template's instance
		units = append(units, name)
	}
	return slices.Compact(units) // a unit and its drop-in directory
}

func hasIngotDropIn(t *testing.T, dir string) bool {
	matches, err := filepath.Glob(filepath.Join(dir, "*-ingot-*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return len(matches) > 0
}

// copyFS copies the directories, regular files and symlinks of fsys into
// dst; anything else (device nodes) is left out.
func copyFS(t *testing.T, fsys fs.FS, dst string) {
	t.Helper()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		to := filepath.Join(dst, filepath.FromSlash(p))
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := fs.ReadLink(fsys, p)
			if err != nil {
				return err
			}
			os.Remove(to)
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			os.Remove(to)
			return os.WriteFile(to, b, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copy into %s: %v", dst, err)
	}
}

func writeFile(t *testing.T, name, data string, perm fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(path.Dir(filepath.ToSlash(name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
}
