package layout

import (
	"bufio"
	"bytes"
	"os/exec"
	"path"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ingot-linux/ingot/"

// layers is the README's repository layout as import layers, top first:
// a package imports only packages in later layers (none of its own
// layer), so the stages read top to bottom and nothing reaches up.
var layers = [][]string{
	{"cmd/ingot", "cmd/ingot-init", "cmd/ingot-agent"},
	{"internal/cli", "distro/distrotest"},
	{"distro"},
	{"diskimage", "builder", "vm", "recipes", "builder/sandbox/sandboxtest", "internal/agentcli"},
	{"agent", "boot", "bootcheck", "oci", "diskimage/rootfs", "diskimage/kmod", "diskimage/binaries", "builder/fetch", "builder/sandbox", "builder/store",
		"builder/toolchain", "builder/sbom", "artifact/artifacttest", "ext/extfs"},
	{"ext/activate"},
	{"artifact", "cookbook", "ext", "machineconfig", "crashstate"},
	{"trust"},
	{"layout"},
	{"internal/kernel"},
	{"tpm", "internal/dm"},
	{"format/*", "casync", "internal/fileutil", "internal/decompress", "internal/clio", "ingottest"},
}

// never are imports a package may not have even indirectly (go list
// -deps), whatever the layers say.
var never = map[string][]string{
	"boot":     {"builder", "builder/*", "diskimage", "diskimage/*", "agent", "internal/cli"},
	"agent":    {"boot", "diskimage", "diskimage/*", "builder", "builder/*", "internal/cli"},
	"layout":   {"trust", "artifact", "internal/*"},
	"format/*": {"*"}, // the standard library only: checked below

	// The device's binary: only what a device runs (agentcli's
	// TestDeviceBinary also keeps cobra out and the size in budget).
	"cmd/ingot-agent":   {"boot", "diskimage", "diskimage/*", "builder", "builder/*", "vm", "internal/cli"},
	"internal/agentcli": {"boot", "diskimage", "diskimage/*", "builder", "builder/*", "vm", "internal/cli"},
}

// formatModules are the modules outside the standard library a format
// package may use: LUKS2's key derivation and cipher (argon2id, PBKDF2,
// XTS) are not in it, and x/crypto needs x/sys/cpu; EROFS's compressors
// (LZ4, zstd) are not either. No system calls.
var formatModules = map[string][]string{
	"format/luks2": {"golang.org/x/crypto/*", "golang.org/x/sys/cpu"}, // x/crypto detects CPU features through x/sys/cpu
	"format/erofs": {"github.com/pierrec/lz4/v4", "github.com/pierrec/lz4/v4/*", "github.com/klauspost/compress", "github.com/klauspost/compress/*"},
}

// trustUsers are the only packages that import trust: who signs (image,
// the CLI's keys verb), who verifies (initrd, agent, artifact, ext), and test
// helpers.
var trustUsers = []string{"diskimage", "boot", "bootcheck", "agent", "artifact", "ext", "internal/cli", "artifact/artifacttest", "distro/distrotest"}

func match(pattern, pkg string) bool {
	if pattern == "*" {
		return true
	}
	ok, _ := path.Match(pattern, pkg)
	return ok || strings.HasSuffix(pattern, "/*") && strings.HasPrefix(pkg, strings.TrimSuffix(pattern, "*"))
}

func layerOf(pkg string) int {
	for i, l := range layers {
		for _, p := range l {
			if match(p, pkg) {
				return i
			}
		}
	}
	return -1
}

// goList runs go list over the module and returns, for each non-test
// package, its direct imports (or all dependencies with deps) inside the
// module, and whether it needs anything outside the standard library.
func goList(t *testing.T, deps bool) (own, nonStd map[string][]string) {
	t.Helper()
	field := "Imports"
	if deps {
		field = "Deps"
	}
	cmd := exec.Command("go", "list", "-tags", "vm", "-f", `{{.ImportPath}}{{range .`+field+`}} {{.}}{{end}}`, module+"...")
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	own, nonStd = map[string][]string{}, map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(f[0], module)
		own[pkg] = nil
		for _, imp := range f[1:] {
			if rel, ok := strings.CutPrefix(imp, module); ok {
				own[pkg] = append(own[pkg], rel)
			} else if strings.Contains(strings.Split(imp, "/")[0], ".") {
				nonStd[pkg] = append(nonStd[pkg], imp)
			}
		}
	}
	return own, nonStd
}

// TestImportOrder enforces the README's layout on the module's non-test
// code.
func TestImportOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the module")
	}
	direct, _ := goList(t, false)
	for pkg, imps := range direct {
		if strings.HasPrefix(pkg, "test/") || pkg == "scripts" {
			continue // tests only
		}
		from := layerOf(pkg)
		if from < 0 {
			t.Errorf("%s is in no layer: add it to layers (and to the README's layout)", pkg)
			continue
		}
		for _, imp := range imps {
			if to := layerOf(imp); to <= from {
				t.Errorf("%s (layer %d) imports %s (layer %d): a package imports only packages further down", pkg, from, imp, to)
			}
			if imp == "trust" && !slices.Contains(trustUsers, pkg) {
				t.Errorf("%s imports trust: only %v may", pkg, trustUsers)
			}
			if imp == "internal/cli" && !strings.HasPrefix(pkg, "cmd/") {
				t.Errorf("%s imports internal/cli: only the mains may", pkg)
			}
		}
	}
	all, nonStd := goList(t, true)
	for pkg, deps := range all {
		for pattern, banned := range never {
			if !match(pattern, pkg) {
				continue
			}
			for _, d := range deps {
				for _, b := range banned {
					if match(b, d) {
						t.Errorf("%s depends on %s, which it must never do", pkg, d)
					}
				}
			}
		}
		if !match("format/*", pkg) {
			continue
		}
		for _, imp := range nonStd[pkg] {
			if !slices.ContainsFunc(formatModules[pkg], func(p string) bool { return match(p, imp) }) {
				t.Errorf("%s needs %s: format packages use only the standard library", pkg, imp)
			}
		}
	}
}
