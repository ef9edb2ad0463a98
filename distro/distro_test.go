package distro_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/distro"
	"github.com/ingot-linux/ingot/ingottest"
)

// TestImageRootFSSBOMDate: an image of a root filesystem made elsewhere
// gets an SBOM, dated with the image's epoch: SOURCE_DATE_EPOCH when
// given, otherwise the newest timestamp in the root filesystem (not the
// build's default date).
func TestImageRootFSSBOMDate(t *testing.T) {
	newest := time.Unix(1_600_000_000, 0)
	tests := []struct {
		name  string
		epoch int64
		want  time.Time
	}{
		{"SOURCE_DATE_EPOCH", 1_500_000_000, time.Unix(1_500_000_000, 0)},
		{"from content", diskimage.EpochFromContent, newest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rootfs := rootFS(t, filepath.Join(dir, "rootfs"), newest)
			bin := func(name string, tag byte) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, staticELF(tag), 0o755); err != nil {
					t.Fatal(err)
				}
				return p
			}
			res, err := distro.Image(context.Background(), distro.ImageOptions{Tool: "ingot-test", Image: diskimage.Options{
				RootFS: rootfs, Version: "1.0.0", OutputDir: filepath.Join(dir, "out"), Epoch: tc.epoch,
				InitPath: bin("ingot-init", 1), AgentPath: bin("ingot", 2)}})
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(res.SBOMPath)
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				CreationInfo struct{ Created time.Time } `json:"creationInfo"`
			}
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			if got := doc.CreationInfo.Created; !got.Equal(tc.want) {
				t.Errorf("SBOM created %v, want %v", got, tc.want)
			}
		})
	}
}

// rootFS writes the smallest root filesystem diskimage.Build accepts, every
// timestamp at most newest, with the host's systemd-boot.
func rootFS(t *testing.T, root string, newest time.Time) string {
	efi := "/usr/lib/systemd/boot/efi/"
	loader := ingottest.LookFile(t, "systemd-boot-efi", efi+"systemd-bootx64.efi")
	stub := ingottest.LookFile(t, "systemd-boot-efi", efi+"linuxx64.efi.stub")
	files := map[string]string{
		"usr/lib/os-release":                           "ID=test\n",
		"usr/lib/systemd/systemd":                      "systemd",
		"usr/sbin/mkfs.ext4":                           "mkfs",
		"usr/lib/modules/6.0.0-test/vmlinuz":           "kernel",
		"usr/lib/modules/6.0.0-test/modules.dep":       "",
		"usr/lib/systemd/boot/efi/systemd-bootx64.efi": "",
		"usr/lib/systemd/boot/efi/linuxx64.efi.stub":   "",
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := []byte(data)
		switch filepath.Base(name) {
		case "systemd-bootx64.efi":
			b = readFile(t, loader)
		case "linuxx64.efi.stub":
			b = readFile(t, stub)
		}
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	older := newest.Add(-time.Hour)
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, older, older)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(root, "usr/lib/os-release"), newest, newest); err != nil {
		t.Fatal(err)
	}
	return root
}

func readFile(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// staticELF is the smallest x86-64 executable diskimage.Build takes for
// ingot-init and ingot.
func staticELF(tag byte) []byte {
	b := make([]byte, 64+56+1)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1
	le := binary.LittleEndian
	le.PutUint16(b[16:], 2)
	le.PutUint16(b[18:], 0x3e)
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], 0x400000)
	le.PutUint64(b[32:], 64)
	le.PutUint16(b[52:], 64)
	le.PutUint16(b[54:], 56)
	le.PutUint16(b[56:], 1)
	le.PutUint16(b[58:], 64)
	b[len(b)-1] = tag
	return b
}
