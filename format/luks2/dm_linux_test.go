package luks2

import (
	"bytes"
	"crypto/aes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
	"golang.org/x/crypto/xts"
)

func TestDMIoctlBuffers(t *testing.T) {
	// _IOWR(0xfd, nr, struct dm_ioctl) as <linux/dm-ioctl.h> defines them.
	for nr, want := range map[uintptr]uintptr{dmDevCreate: 0xc138fd03, dmDevRemove: 0xc138fd04, dmDevSuspend: 0xc138fd06, dmTableLoad: 0xc138fd09} {
		if got := dmRequest(nr); got != want {
			t.Errorf("dmRequest(%d) = %#x, want %#x", nr, got, want)
		}
	}
	params := []byte("aes-xts-plain64 00ff 0 /dev/loop0 32768")
	buf, err := tableLoadBuffer("root", 2048, "crypt", params)
	if err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	specLen := (dmTargetSpecSize + len(params) + 1 + 7) &^ 7
	for _, f := range []struct {
		name      string
		got, want uint64
	}{
		{"length", uint64(len(buf)), uint64(dmIoctlSize + specLen)},
		{"version", uint64(ne.Uint32(buf[0:])), 4},
		{"data_size", uint64(ne.Uint32(buf[12:])), uint64(len(buf))},
		{"data_start", uint64(ne.Uint32(buf[16:])), dmIoctlSize},
		{"target_count", uint64(ne.Uint32(buf[20:])), 1},
		{"flags", uint64(ne.Uint32(buf[28:])), 1 << 15},
		{"sector_start", ne.Uint64(buf[dmIoctlSize:]), 0},
		{"target length", ne.Uint64(buf[dmIoctlSize+8:]), 2048},
		{"next", uint64(ne.Uint32(buf[dmIoctlSize+20:])), uint64(specLen)},
	} {
		if f.got != f.want {
			t.Errorf("%s = %d, want %d", f.name, f.got, f.want)
		}
	}
	if cString(buf[48:176]) != "root" || cString(buf[dmIoctlSize+24:dmIoctlSize+40]) != "crypt" ||
		cString(buf[dmIoctlSize+40:]) != string(params) {
		t.Errorf("name, target type or parameters misplaced: %q", buf)
	}
	for _, name := range []string{"", "a/b", strings.Repeat("n", 128), ".."} {
		if _, err := newDMBuffer(name, "", 0); err == nil {
			t.Errorf("newDMBuffer(%q) succeeded", name)
		}
	}
}

// requireDM skips unless the test can create device-mapper and loop
// devices.
func requireDM(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create loop and device-mapper devices")
	}
	// libdevmapper makes the control node even where the kernel has no
	// device-mapper, so open it.
	ctl, err := os.OpenFile(dmControl, os.O_RDWR, 0)
	if err != nil {
		t.Skipf("kernel without device-mapper: %v", err)
	}
	ctl.Close()
	ingottest.LookTool(t, "losetup", "mount")
	ingottest.LookTool(t, "cryptsetup", "cryptsetup-bin")
}

// loopDevice attaches img to a loop device until the test ends.
func loopDevice(t *testing.T, img string) string {
	t.Helper()
	loop := strings.TrimSpace(ingottest.Run(t, "losetup", "--find", "--show", img))
	t.Cleanup(func() { ingottest.Run(t, "losetup", "--detach", loop) })
	return loop
}

// pattern returns n recognisable bytes.
func pattern(n int) []byte {
	b := make([]byte, n)
	io.ReadFull(seeded(50), b)
	return b
}

func readAt(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// decryptData decrypts ciphertext read at byte off of a crypt segment the
// way dm-crypt does for LUKS2: aes-xts-plain64 per sector, with the IV
// counting 512-byte units even for larger sectors.
func decryptData(t *testing.T, key, ct []byte, off int64, sector int) []byte {
	t.Helper()
	c, err := xts.NewCipher(aes.NewCipher, key)
	if err != nil {
		t.Fatal(err)
	}
	pt := make([]byte, len(ct))
	for i := 0; i < len(ct); i += sector {
		c.Decrypt(pt[i:i+sector], ct[i:i+sector], uint64(off+int64(i))/512)
	}
	return pt
}

// TestActivateDataPath writes through Activate's mapping and reads it back
// through cryptsetup's, and the other way round.
func TestActivateDataPath(t *testing.T) {
	requireDM(t)
	const size = 24 << 20
	data := pattern(1 << 20)
	for _, sector := range []int{512, 4096} {
		t.Run("ours-then-cryptsetup-"+strconv.Itoa(sector), func(t *testing.T) {
			img, f := newImage(t, size)
			key := testKey(51, 64)
			o := Options{SectorSize: sector, Passphrase: []byte("pass"), PBKDF: cheapPBKDF2}
			if err := Format(f, size, key, o); err != nil {
				t.Fatal(err)
			}
			f.Close()
			loop := loopDevice(t, img)
			name := fmt.Sprintf("ingot-luks2-test-%d-a", os.Getpid())
			mapper, err := Activate(name, loop, key)
			if err != nil {
				t.Fatal(err)
			}
			active := true
			t.Cleanup(func() {
				if active {
					Deactivate(name)
				}
			})
			writeAt(t, mapper, 8192, data)
			if err := Deactivate(name); err != nil {
				t.Fatal(err)
			}
			active = false

			raw := readAt(t, img, 16<<20+8192, len(data))
			if bytes.Equal(raw, data) {
				t.Fatal("data reached the disk unencrypted")
			}
			if !bytes.Equal(decryptData(t, key, raw, 8192, sector), data) {
				t.Error("the data on disk is not aes-xts-plain64 of what was written")
			}
			pw := writeFile(t, "pw", o.Passphrase)
			other := name + "-cs"
			ingottest.Run(t, "cryptsetup", "open", "--key-file", pw, loop, other)
			defer ingottest.Run(t, "cryptsetup", "close", other)
			if got := readAt(t, "/dev/mapper/"+other, 8192, len(data)); !bytes.Equal(got, data) {
				t.Error("cryptsetup's mapping reads other data")
			}
		})
	}
	t.Run("cryptsetup-then-ours", func(t *testing.T) {
		img, f := newImage(t, size)
		f.Close()
		pw := writeFile(t, "pw", []byte("pass"))
		ingottest.Run(t, "cryptsetup", "luksFormat", "-q", "--type", "luks2", "--pbkdf", "pbkdf2",
			"--pbkdf-force-iterations", "1000", "--key-file", pw, img)
		loop := loopDevice(t, img)
		other := fmt.Sprintf("ingot-luks2-test-%d-b", os.Getpid())
		ingottest.Run(t, "cryptsetup", "open", "--key-file", pw, loop, other)
		writeAt(t, "/dev/mapper/"+other, 4096, data)
		ingottest.Run(t, "cryptsetup", "close", other)

		lf, err := os.Open(loop)
		if err != nil {
			t.Fatal(err)
		}
		key, _, err := Open(lf, []byte("pass"))
		lf.Close()
		if err != nil {
			t.Fatal(err)
		}
		name := other + "-ours"
		mapper, err := Activate(name, loop, key)
		if err != nil {
			t.Fatal(err)
		}
		defer Deactivate(name)
		if got := readAt(t, mapper, 4096, len(data)); !bytes.Equal(got, data) {
			t.Error("Activate's mapping reads other data than cryptsetup wrote")
		}
		if _, err := Activate(name+"-x", loop, testKey(52, 64)); err == nil {
			t.Error("Activate with a wrong key succeeded")
		}
	})
}
