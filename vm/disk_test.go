package vm

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
)

// requireTool skips the test when a binary is missing, unless
// INGOT_REQUIRE_TOOLS=1 asks for a failure instead.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	ingottest.Skip(t, "%s not installed (Debian package %s)", name, pkg)
	return ""
}

func TestDiskSize(t *testing.T) {
	const gib = 1 << 30
	tests := []struct {
		name          string
		image, want   int64
		persist       bool
		size          int64
		errorContains string
	}{
		{name: "default overlay", image: 100 << 20, size: 100<<20 + 2*gib},
		{name: "default empty image", image: 0, size: 2 * gib},
		{name: "default rounds up", image: 1000, size: 1024 + 2*gib},
		{name: "explicit", image: 100 << 20, want: 4 * gib, size: 4 * gib},
		{name: "explicit rounds up", image: 512, want: 513, size: 1024},
		{name: "same size", image: 1 << 20, want: 1 << 20, size: 1 << 20},
		{name: "persist default leaves as is", image: 100 << 20, persist: true, size: 0},
		{name: "persist explicit", image: 100 << 20, want: gib, persist: true, size: gib},
		{name: "shrink", image: gib, want: gib - 512, errorContains: "never shrunk"},
		{name: "persist shrink", image: gib, want: 512, persist: true, errorContains: "never shrunk"},
		{name: "negative", image: 0, want: -1, errorContains: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := diskSize(tt.image, tt.want, tt.persist)
			if tt.errorContains != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errorContains) {
					t.Fatalf("diskSize(%d, %d, %v) = %d, %v; want error containing %q",
						tt.image, tt.want, tt.persist, got, err, tt.errorContains)
				}
				return
			}
			if err != nil || got != tt.size {
				t.Fatalf("diskSize(%d, %d, %v) = %d, %v; want %d",
					tt.image, tt.want, tt.persist, got, err, tt.size)
			}
		})
	}
}

func writeFile(t *testing.T, path string, data []byte, size int64) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if size > 0 {
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestPrepareDiskPersist(t *testing.T) {
	dir := t.TempDir()
	img := writeFile(t, filepath.Join(dir, "img.raw"), nil, 1<<20)
	c := Config{Image: img, Persist: true, RunDir: dir}

	// 0 leaves the image alone.
	if err := prepareDisk(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(img); st.Size() != 1<<20 {
		t.Fatalf("size after default persist = %d, want unchanged", st.Size())
	}
	c.DiskSizeBytes = 8 << 20
	if err := prepareDisk(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(img); st.Size() != 8<<20 {
		t.Fatalf("size after grow = %d, want %d", st.Size(), 8<<20)
	}
	c.DiskSizeBytes = 4 << 20
	if err := prepareDisk(context.Background(), c); err == nil || !strings.Contains(err.Error(), "never shrunk") {
		t.Fatalf("shrinking: err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, overlayName)); err == nil {
		t.Errorf("persist made an overlay")
	}
}

func TestImageRejectsQcow2(t *testing.T) {
	dir := t.TempDir()
	img := writeFile(t, filepath.Join(dir, "img.qcow2"), []byte("QFI\xfb\x00\x00\x00\x03"), 0)
	if _, err := imageSize(img); err == nil || !strings.Contains(err.Error(), "qcow2") {
		t.Fatalf("imageSize(qcow2) err = %v", err)
	}
	if _, err := imageSize(dir); err == nil {
		t.Fatalf("imageSize(dir) succeeded")
	}
}

func TestPrepareDiskOverlay(t *testing.T) {
	qemuImg := requireTool(t, "qemu-img", "qemu-utils")
	dir := t.TempDir()
	img := writeFile(t, filepath.Join(dir, "img.raw"), []byte("ingot"), 3<<20)
	run := filepath.Join(dir, "run")
	os.Mkdir(run, 0o755)
	c := Config{Image: img, RunDir: run, QEMUImg: qemuImg}
	if err := prepareDisk(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	overlay, format := c.diskPath()
	out, err := exec.Command(qemuImg, "info", "--output=json", overlay).Output()
	if err != nil {
		t.Fatalf("qemu-img info: %v", err)
	}
	var info struct {
		Format        string `json:"format"`
		VirtualSize   int64  `json:"virtual-size"`
		BackingFile   string `json:"backing-filename"`
		BackingFormat string `json:"backing-filename-format"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	if info.Format != format || info.VirtualSize != 3<<20+DefaultExtraDiskBytes ||
		info.BackingFile != img || info.BackingFormat != "raw" {
		t.Errorf("overlay = %+v, want qcow2 of %d bytes backed by raw %s", info, 3<<20+DefaultExtraDiskBytes, img)
	}
	if st, _ := os.Stat(img); st.Size() != 3<<20 {
		t.Errorf("image size changed to %d", st.Size())
	}
}

func TestFindFirmware(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.fd"), filepath.Join(dir, "b.fd")
	if _, err := findFirmware([]string{a, b}); err == nil || !strings.Contains(err.Error(), "package ovmf") {
		t.Fatalf("no firmware: err = %v, want one naming the ovmf package", err)
	}
	writeFile(t, b, []byte("fw"), 0)
	if got, err := findFirmware([]string{a, b}); err != nil || got != b {
		t.Fatalf("findFirmware = %q, %v; want %q", got, err, b)
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	fw := writeFile(t, filepath.Join(dir, "fw.fd"), []byte("fw"), 0)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing qemu", Config{QEMU: filepath.Join(dir, "no-qemu"), Firmware: fw}, "qemu-system-x86"},
		{"missing firmware", Config{QEMU: "/bin/true", Firmware: filepath.Join(dir, "none.fd")}, "firmware"},
		{"missing vars", Config{QEMU: "/bin/true", Firmware: writeFile(t, filepath.Join(dir, "OVMF_CODE_X.fd"), nil, 0)}, "FirmwareVars"},
		{"missing image", Config{QEMU: "/bin/true", QEMUImg: "/bin/true", Firmware: fw, Image: filepath.Join(dir, "none.raw")}, "image"},
		{"bad config", Config{Accel: "whpx"}, "accelerator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Start(context.Background(), tt.cfg)
			if err == nil {
				m.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start error %q does not mention %q", err, tt.want)
			}
		})
	}
	// A failing QEMU is reported with its stderr, and nothing is left behind.
	run := filepath.Join(dir, "run")
	_, err := Start(context.Background(), Config{QEMU: "/bin/false", Firmware: fw, RunDir: run})
	if err == nil {
		t.Fatal("Start with /bin/false succeeded")
	}
}
