package fat_test

import (
	"fmt"
	"io/fs"
	"log"
	"os"
	"strings"
	"time"

	"github.com/ingot-linux/ingot/format/fat"
)

// Example builds a small EFI System Partition image and reads it back.
func Example() {
	w, err := fat.NewWriter(fat.Options{
		SizeBytes: 64 << 20,
		VolumeID:  0x1D60_0001,
		Time:      time.Date(2025, 1, 2, 3, 4, 6, 0, time.UTC),
	})
	if err != nil {
		log.Fatal(err)
	}
	uki := strings.NewReader("MZ... a unified kernel image")
	if err := w.AddFile("EFI/Linux/ingot_1.0.0+3-0.efi", uki, uki.Size()); err != nil {
		log.Fatal(err)
	}
	conf := "timeout 0\n"
	if err := w.AddFile("loader/loader.conf", strings.NewReader(conf), int64(len(conf))); err != nil {
		log.Fatal(err)
	}
	if err := w.Mkdir("EFI/BOOT"); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("using %d of %d bytes\n", w.Used(), w.Capacity())

	img, err := os.CreateTemp("", "esp-*.img")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(img.Name())
	defer img.Close()
	if err := w.Write(img); err != nil { // or io.NewOffsetWriter(disk, espOffset)
		log.Fatal(err)
	}

	fsys, err := fat.Open(img)
	if err != nil {
		log.Fatal(err)
	}
	err = fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Printf("%-30s %6d %s\n", path, info.Size(), info.ModTime().Format(time.DateTime))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// using 3584 of 66059264 bytes
	// .                                   0 2025-01-02 03:04:06
	// EFI                                 0 2025-01-02 03:04:06
	// EFI/BOOT                            0 2025-01-02 03:04:06
	// EFI/Linux                           0 2025-01-02 03:04:06
	// EFI/Linux/ingot_1.0.0+3-0.efi      28 2025-01-02 03:04:06
	// loader                              0 2025-01-02 03:04:06
	// loader/loader.conf                 10 2025-01-02 03:04:06
}
