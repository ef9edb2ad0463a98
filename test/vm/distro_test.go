//go:build vm

package vm_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/vm"
)

// TestDistroBoot (make check-distro alone) is the main job end
// to end: build ingot's own base from
// source (cached in the test store), make the image without --rootfs, boot
// it, and check that it is a musl system with systemd as PID 1, networking
// up and sshd answering.
func TestDistroBoot(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("VM tests boot real machines; not in -short")
	}
	// --compression=auto: the base's kernel (7.2, EROFS_FS_ZIP_ZSTD) has
	// zstd, so auto picks it and this boot mounts a zstd /usr with the
	// base's own kernel (TestDebianCompressedBoot mounts LZ4HC with 6.1).
	res := baseImage(t, filepath.Join(t.TempDir(), "out"), "--autologin", "--compression=auto")
	comp := usrCompression(t, res.Disk)
	t.Logf("image %s: /usr %d MiB, %s", res.Disk, res.UsrBytes>>20, comp)
	if comp != "compressed with zstd" {
		t.Errorf("--compression=auto on the base (its kernel has EROFS zstd): /usr %s, want zstd", comp)
	}
	checkSBOM(t, res.SBOM, []string{"musl", "linux", "systemd", "busybox", "openssh"})

	sshPort := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	m := startVM(ctx, t, vm.Config{Image: res.Disk, DiskSizeBytes: res.DiskBytes + 1<<30,
		UserNet: &vm.UserNet{HostForwards: []vm.Forward{{HostPort: sshPort, GuestPort: 22}}}})
	expectMarker(t, booted(ctx, t, m), "1.0.0", "a")

	if got := run(ctx, t, m, "readlink /proc/1/exe"); got != "/usr/lib/systemd/systemd" {
		t.Errorf("PID 1 is %q, want systemd", got)
	}
	run(ctx, t, m, "test -x /usr/lib/ld-musl-x86_64.so.1")
	if got := run(ctx, t, m, "find / -xdev \\( -name 'libc.so.6' -o -name 'ld-linux-x86-64.so.*' \\) -print; find /usr -xdev \\( -name 'libc.so.6' -o -name 'ld-linux-x86-64.so.*' \\) -print"); got != "" {
		t.Errorf("glibc in a musl system:\n%s", got)
	}
	if got := run(ctx, t, m, "systemctl is-system-running --wait || true"); got != "running" {
		t.Errorf("system state %q; failed units:\n%s", got, run(ctx, t, m, "systemctl --failed --no-legend"))
	}
	// networkd got an address from QEMU's DHCP server.
	waitForAddress(ctx, t, m)
	// sshd answers on the forwarded port with its banner.
	if banner, err := sshBanner(ctx, sshPort); err != nil || !strings.HasPrefix(banner, "SSH-2.0-OpenSSH") {
		t.Errorf("sshd banner %q, %v", banner, err)
	}
}

// sshBanner connects to the forwarded sshd and reads its first line,
// retrying while sshd starts.
func sshBanner(ctx context.Context, port int) (string, error) {
	var last error
	for i := 0; i < 60; i++ {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			c.SetDeadline(time.Now().Add(30 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err == nil {
				return strings.TrimSpace(line), nil
			}
			last = err
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return "", last
}

// baseResult is what ingot image --json says of an image.
type baseResult struct {
	Disk      string `json:"disk"`
	DiskBytes int64  `json:"diskBytes"`
	SBOM      string `json:"sbom"`
	UsrBytes  int64  `json:"usrBytes"`
}

// baseImage images ingot's own base, built into the test store (cold:
// the whole base build), with the ingot CLI as a user runs it, version
// 1.0.0 into out, with more ingot image flags.
func baseImage(t *testing.T, out string, args ...string) baseResult {
	t.Helper()
	baseRootfs(t) // the store is built once, before any image of it
	bin := binaries(t)
	argv := append([]string{"image", "--store", testStore(t), "--version", "1.0.0", "--output", out, "--json"}, args...)
	img := exec.Command(filepath.Join(bin, "ingot"), argv...)
	// No SOURCE_DATE_EPOCH: the packages keep the store's default epoch
	// (it is part of every key), the image takes its newest timestamp.
	img.Env = withoutEnv(os.Environ(), "SOURCE_DATE_EPOCH")
	img.Stderr = &testWriter{t: t}
	stdout, err := img.Output()
	if err != nil {
		t.Fatalf("ingot %s: %v", strings.Join(argv, " "), err)
	}
	var res baseResult
	if err := json.Unmarshal(stdout, &res); err != nil {
		t.Fatalf("ingot image --json: %v\n%s", err, stdout)
	}
	return res
}

// checkSBOM checks the SPDX document next to the image names the
// packages, each with a licence and (for upstream sources) a sha256.
func checkSBOM(t *testing.T, path string, want []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("SBOM: %v", err)
	}
	var doc struct {
		SPDXVersion string `json:"spdxVersion"`
		Packages    []struct {
			Name      string `json:"name"`
			Version   string `json:"versionInfo"`
			License   string `json:"licenseDeclared"`
			Checksums []struct {
				Value string `json:"checksumValue"`
			} `json:"checksums"`
		} `json:"packages"`
		Relationships []struct {
			Type string `json:"relationshipType"`
		} `json:"relationships"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("SBOM %s: %v", path, err)
	}
	if doc.SPDXVersion != "SPDX-2.3" {
		t.Errorf("SBOM version %q", doc.SPDXVersion)
	}
	have := map[string]bool{}
	for _, p := range doc.Packages {
		have[p.Name] = true
		if p.License == "" || p.Version == "" {
			t.Errorf("SBOM package %s has no licence or version", p.Name)
		}
	}
	for _, n := range want {
		if !have[n] {
			t.Errorf("SBOM lacks package %s", n)
		}
	}
	deps := 0
	for _, r := range doc.Relationships {
		if r.Type == "DEPENDS_ON" {
			deps++
		}
	}
	if deps == 0 {
		t.Error("SBOM has no dependency edges")
	}
}

// testWriter sends a command's output to the test log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
