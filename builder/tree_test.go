package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/cookbook"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(body, "->") {
			if err := os.Symlink(strings.TrimPrefix(body, "->"), full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSplitOutputs(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	writeTree(t, out, map[string]string{
		"usr/bin/tool":                    "x",
		"usr/include/tool.h":              "x",
		"usr/lib/libtool.so":              "->libtool.so.1",
		"usr/lib/libtool.so.1":            "x",
		"usr/share/man/man1/tool.1":       "x",
		"usr/lib/pkgconfig/tool.pc":       "x",
		"usr/share/tool/data/keep.dat":    "x",
		"usr/share/tool/static/libkeep.a": "x",
	})
	os.MkdirAll(filepath.Join(out, "var/empty"), 0o755)
	entry := filepath.Join(dir, "entry")
	if err := splitOutputs(out, entry, cookbook.Outputs{Runtime: []string{"usr/share/tool/**"}}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"runtime/usr/bin/tool": true, "dev/usr/include/tool.h": true, "dev/usr/lib/libtool.so": true,
		"runtime/usr/lib/libtool.so.1": true, "doc/usr/share/man/man1/tool.1": true,
		"dev/usr/lib/pkgconfig/tool.pc": true, "runtime/usr/share/tool/static/libkeep.a": true,
		"runtime/var/empty": true, "dev/usr/bin": false,
	} {
		if _, err := os.Lstat(filepath.Join(entry, p)); (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", p, err == nil, want)
		}
	}
}

func TestComposeSysroot(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeTree(t, a, map[string]string{"runtime/usr/lib/liba.so.1": "a", "dev/usr/include/a.h": "a", "doc/usr/share/doc/a": "a"})
	writeTree(t, b, map[string]string{"runtime/usr/lib/libb.so.1": "b", "dev/usr/lib/libb.so": "->libb.so.1"})
	root := filepath.Join(dir, "sysroot")
	if err := composeSysroot(root, []input{{"a", a}, {"b", b}}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"usr/lib/liba.so.1": true, "usr/include/a.h": true, "usr/lib/libb.so": true, "usr/share/doc/a": false} {
		if _, err := os.Lstat(filepath.Join(root, p)); (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", p, err == nil, want)
		}
	}
	c := filepath.Join(dir, "c")
	writeTree(t, c, map[string]string{"dev/usr/include/a.h": "c"})
	err := composeSysroot(filepath.Join(dir, "sysroot2"), []input{{"a", a}, {"c", c}})
	if err == nil || !strings.Contains(err.Error(), "usr/include/a.h is in both a and c") {
		t.Errorf("conflict: %v", err)
	}
}
