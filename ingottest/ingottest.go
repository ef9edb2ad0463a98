// Package ingottest holds test helpers shared by ingot's packages: running
// the independent validators (sgdisk, fsck.vfat, fsck.erofs, veritysetup,
// systemd-dissect, systemd-analyze) on ingot's output, finding the cached
// fixtures, and comparing format writers' output with sparse golden files (SparseGolden).
//
// A missing tool skips the test with the tool's name, unless
// INGOT_REQUIRE_TOOLS=1 (as CI sets it), where it fails. Nothing skips
// silently.
package ingottest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RequireTools reports whether missing tools fail tests instead of skipping
// them.
func RequireTools() bool { return os.Getenv("INGOT_REQUIRE_TOOLS") == "1" }

// Skip is the one way a test gives up because this machine lacks
// something (a tool, a kernel feature, root, a pseudo-terminal): it skips
// with the reason, or fails under INGOT_REQUIRE_TOOLS=1, so CI never
// passes a test that did not run. Tests that are merely slow skip under
// testing.Short() instead.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if RequireTools() {
		t.Fatalf("%s and INGOT_REQUIRE_TOOLS=1", msg)
	}
	t.Skip(msg)
}

// LookFile returns the first of paths that exists, or skips (fails under
// INGOT_REQUIRE_TOOLS=1) naming the first and the Debian package that
// has it.
func LookFile(t testing.TB, pkg string, paths ...string) string {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	Skip(t, "%s not installed (Debian package %s)", paths[0], pkg)
	return ""
}

// LookTool returns the path of tool, or skips (fails under
// INGOT_REQUIRE_TOOLS=1) naming the Debian package that has it.
func LookTool(t testing.TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	Skip(t, "%s not installed (Debian package %s)", tool, pkg)
	return ""
}

// Run runs a validator and returns its combined output; a non-zero exit fails
// the test with the output.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Extract copies size bytes at offset of the file at src into a new file in
// dir (sparse where the source is zero) and returns its path: validators
// that take no offset run on the copy.
func Extract(t testing.TB, src string, offset, size int64, dir, name string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p := filepath.Join(dir, name)
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	r := io.NewSectionReader(in, offset, size)
	var pos int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if !bytes.Equal(buf[:n], zero[:n]) {
				if _, werr := out.WriteAt(buf[:n], pos); werr != nil {
					t.Fatal(werr)
				}
			}
			pos += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Truncate(pos); err != nil {
		t.Fatal(err)
	}
	return p
}

// SgdiskVerify checks a disk image's GPT with sgdisk -v.
func SgdiskVerify(t testing.TB, disk string) {
	t.Helper()
	LookTool(t, "sgdisk", "gdisk")
	out := Run(t, "sgdisk", "-v", disk)
	if !strings.Contains(out, "No problems found") {
		t.Fatalf("sgdisk -v %s found problems:\n%s", disk, out)
	}
}

// FsckVfat checks a FAT image with fsck.vfat -n (no changes).
func FsckVfat(t testing.TB, img string) {
	t.Helper()
	LookTool(t, "fsck.vfat", "dosfstools")
	out := Run(t, "fsck.vfat", "-n", "-v", img)
	for _, bad := range []string{"will be", "Free cluster summary wrong", "differ", "Dirty bit"} {
		if strings.Contains(out, bad) {
			t.Fatalf("fsck.vfat -n %s reports %q:\n%s", img, bad, out)
		}
	}
}

// FsckErofs checks an EROFS image, reading every file (--extract without a
// target walks and decompresses everything).
func FsckErofs(t testing.TB, img string) {
	t.Helper()
	LookTool(t, "fsck.erofs", "erofs-utils")
	Run(t, "fsck.erofs", "--extract", img)
}

// VeritySetupVerify checks data against its hash tree and root hash with
// veritysetup verify.
func VeritySetupVerify(t testing.TB, data, hash, rootHash string) {
	t.Helper()
	LookTool(t, "veritysetup", "cryptsetup-bin")
	Run(t, "veritysetup", "verify", data, hash, rootHash)
}

// SystemdDissect returns systemd-dissect's description of an image, failing
// the test when it cannot make sense of it.
func SystemdDissect(t testing.TB, img string, args ...string) string {
	t.Helper()
	LookTool(t, "systemd-dissect", "systemd-container")
	return Run(t, "systemd-dissect", append(args, img)...)
}

// SystemdVerify runs systemd-analyze verify on units as the root
// directory root has them (--root; no generators, no man page checks): the
// units, their drop-ins, the units they name and the programs they run
// must be in root. It returns an error with the output when
// systemd-analyze exits non-zero or prints anything at all: an unknown
// key such as ExecStrat= is only a warning to it, and a typo in a unit is
// a bug.
func SystemdVerify(t testing.TB, root string, units ...string) error {
	t.Helper()
	LookTool(t, "systemd-analyze", "systemd")
	args := append([]string{"verify", "--root=" + root, "--man=no", "--generators=no"}, units...)
	out, err := exec.Command("systemd-analyze", args...).CombinedOutput()
	if err != nil || len(out) > 0 {
		return fmt.Errorf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// DebianRootfs returns the cached Debian bookworm root filesystem tarball
// made by test/fixtures/debian-rootfs.sh, building it first if it is
// missing (this needs root, mmdebstrap and a few minutes).
//
// INGOT_TEST_ROOTFS names another root filesystem (directory or tarball) to
// run the same tests on, e.g. another distribution's.
func DebianRootfs(t testing.TB, repoRoot string) string {
	t.Helper()
	if p := os.Getenv("INGOT_TEST_ROOTFS"); p != "" {
		return p
	}
	script := filepath.Join(repoRoot, "test/fixtures/debian-rootfs.sh")
	LookTool(t, "mmdebstrap", "mmdebstrap")
	cmd := exec.Command("bash", script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := fmt.Sprintf("build Debian root filesystem: %v\n%s", err, stderr.String())
		if os.Geteuid() == 0 {
			t.Fatal(msg)
		}
		Skip(t, "%s (needs root)", msg)
	}
	return strings.TrimSpace(string(out))
}

// FileSHA256 returns the hex sha256 of a file's content.
func FileSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Swtpm starts a software TPM 2.0 (swtpm) on a Unix socket in a new state
// directory, already started up (no TPM2_Startup needed), stopped when the
// test ends, and returns the socket's path once it listens. Connect with
// net.Dial("unix", path); it serves one connection at a time.
func Swtpm(t testing.TB) string {
	t.Helper()
	bin := LookTool(t, "swtpm", "swtpm")
	dir := t.TempDir()
	sock := filepath.Join(dir, "tpm.sock")
	cmd := exec.Command(bin, "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--server", "type=unixio,path="+sock, "--ctrl", "type=unixio,path="+sock+".ctrl",
		"--flags", "not-need-init,startup-clear")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		if i == 100 {
			t.Fatal("swtpm did not listen")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
