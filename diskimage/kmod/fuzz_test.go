package kmod

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseModulesDep feeds arbitrary modules.dep files to the parser and
// to Resolve: they may fail, but must not panic or loop, every module path
// must stay inside the modules directory, and whatever Resolve returns
// loads each module after its dependencies.
func FuzzParseModulesDep(f *testing.F) {
	for _, seed := range []string{
		"kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko\nkernel/fs/jbd2/jbd2.ko:\nkernel/lib/crc16.ko:\n",
		"# comment\n\nkernel/a.ko.xz: kernel/b.ko.zst\nkernel/b.ko.zst:\n",
		"a.ko: b.ko\nb.ko: a.ko\n",
		"a.ko: missing.ko\n",
		"no colon here\n",
		"../../../etc/shadow: \n",
		"/lib/modules/2.6/kernel/old.ko:\n",
		": dep.ko\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		deps, files, err := parseDep(data)
		if err != nil {
			return
		}
		for name, file := range files {
			if !filepath.IsLocal(file) || strings.ContainsRune(file, 0) {
				t.Fatalf("module %s at %q, outside the modules directory", name, file)
			}
			if NormalizeName(file) != name {
				t.Fatalf("module %q named %q", file, name)
			}
		}
		checkResolve(t, data, deps, files)
	})
}

// checkResolve resolves every module of a fuzzed modules.dep whose files
// all exist (empty, uncompressed) and checks the load order.
func checkResolve(t *testing.T, data []byte, deps map[string][]string, files map[string]string) {
	const d = "usr/lib/modules/k/"
	fsys := mapFS{d + "modules.dep": string(data)}
	var wanted []string
	for name, file := range files {
		fsys[d+file] = ""
		wanted = append(wanted, name)
	}
	set, err := Resolve(fsys, "k", wanted)
	if err != nil {
		return
	}
	loaded := map[string]bool{}
	for _, m := range set.Modules {
		for _, dep := range deps[m.Name] {
			if !loaded[dep] {
				t.Fatalf("%s loads before its dependency %s: %v", m.Name, dep, set.Modules)
			}
		}
		if loaded[m.Name] {
			t.Fatalf("module %s loaded twice: %v", m.Name, set.Modules)
		}
		loaded[m.Name] = true
	}
}
