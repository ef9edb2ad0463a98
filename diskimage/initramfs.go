package diskimage

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"

	"github.com/ingot-linux/ingot/diskimage/kmod"
	"github.com/ingot-linux/ingot/diskimage/rootfs"
	"github.com/ingot-linux/ingot/layout"
)

// DefaultModules are the modules ingot-init loads when the kernel has them as
// modules: storage drivers for common virtual and physical machines, and what
// the boot itself needs. Modules that are built in or absent are skipped.
var DefaultModules = []string{
	// storage
	"virtio_pci", "virtio_blk", "virtio_scsi", "nvme", "ahci", "ata_piix", "sd_mod",
	"usb_storage", "uas", "xhci_pci", "ehci_pci", "mmc_block", "sdhci_pci",
	"hv_storvsc", "xen_blkfront", "vmw_pvscsi",
	// the boot
	"dm_mod", "dm_verity", "erofs", "overlay", "crc32c_generic", "crc32c_intel", "ext4",
	// extensions: read-only loop devices under their dm-verity devices
	"loop",
	// an encrypted root (the initrd has no modprobe for the kernel to ask
	// for a cipher on demand; loaded only when the root is one, see
	// CryptModules) and the TPM that unseals its key
	"dm_crypt", "ecb", "xts", "aesni_intel", "aes_generic", "tpm_tis", "tpm_crb",
	// the Secure Boot state and the ESP the boot loader was loaded from
	"efivarfs",
}

// CryptModules are the modules of an encrypted root and the TPM that
// unseals its key: ingot-init loads them when it makes or opens one (a
// root may have been encrypted by an earlier version of the image, so every
// initrd carries them), whether or not the TPM's driver matched a device
// before the boot disk was found.
var CryptModules = []string{"dm_crypt", "ecb", "xts", "aesni_intel", "aes_generic", "tpm_tis", "tpm_crb"}

// initramfs builds the zstd-compressed newc cpio that the UKI carries:
// ingot-init as /init and the kernel modules it loads, in load order.
//
// A signed image's initrd also carries the verity certificate (from /usr)
// and pcrKey, the PCR public key, which seals an encrypted root's key: in
// the initrd only, so that /usr, and with it the usrhash, does not depend
// on the PCR key.
func initramfs(t *rootfs.Tree, kver string, init []byte, modules []string, osRelease, pcrKey []byte) ([]byte, *kmod.Set, error) {
	set, err := kmod.Resolve(t, kver, modules)
	if err != nil {
		return nil, nil, fmt.Errorf("resolve kernel modules: %w", err)
	}
	recs := []cpio.Record{
		dir("dev"), dir("proc"), dir("sys"), dir("run"), dir("sysroot"), dir("etc"), dir("tmp"),
		dir("usr"), dir("usr/lib"), dir("usr/lib/modules"),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.CharDev("dev/kmsg", 0o600, 1, 11),
		cpio.CharDev("dev/null", 0o666, 1, 3),
		file("init", init, 0o755),
		file("etc/initrd-release", osRelease, 0o644),
	}
	// A signed image's initrd checks the usr-verity-sig partition with the
	// verity certificate (initrd.VerityCertPath) and seals an encrypted
	// root's key to the PCR key (initrd.PCRKeyPath).
	if cert, err := t.ReadFile("usr/" + layout.TrustDir + "/verity.crt"); err == nil {
		recs = append(recs, dir("usr/lib/ingot"), dir("usr/lib/ingot/keys"),
			file("usr/"+layout.TrustDir+"/verity.crt", cert, 0o644))
		if pcrKey != nil {
			recs = append(recs, file("usr/"+layout.TrustDir+"/pcr.pem", pcrKey, 0o644))
		}
	}
	var order strings.Builder
	dirs := map[string]bool{}
	for _, m := range set.Modules {
		rel := kver + "/" + m.Path
		parts := strings.Split(rel, "/")
		for i := 1; i < len(parts); i++ {
			d := "usr/lib/modules/" + strings.Join(parts[:i], "/")
			if !dirs[d] {
				dirs[d] = true
				recs = append(recs, dir(d))
			}
		}
		recs = append(recs, file("usr/lib/modules/"+rel, m.Content, 0o644))
		order.WriteString(moduleLine(rel, m))
	}
	recs = append(recs, file("usr/lib/modules/"+layout.InitrdModulesFile, []byte(order.String()), 0o644))
	sortRecords(recs)

	var raw bytes.Buffer
	w := cpio.Newc.Writer(&raw)
	for _, r := range recs {
		if err := w.WriteRecord(cpio.MakeReproducible(r)); err != nil {
			return nil, nil, fmt.Errorf("write initramfs: %w", err)
		}
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, nil, fmt.Errorf("write initramfs: %w", err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, nil, err
	}
	defer enc.Close()
	return enc.EncodeAll(raw.Bytes(), nil), set, nil
}

// moduleLine is a module's line in the initrd's module list, in load
// order: its path under /usr/lib/modules, then "boot" if every boot loads
// it, "crypt" if an encrypted root needs it (CryptModules), "dep:NAME" for each module it needs first and "alias:PATTERN" for each
// device it drives (loaded when a device matches). A module with neither
// "boot" nor aliases loads only for another. ingot-init reads it
// (boot.loadModules).
func moduleLine(rel string, m kmod.Module) string {
	var b strings.Builder
	b.WriteString(rel)
	switch {
	case m.Requested && slices.Contains(CryptModules, m.Name):
		b.WriteString(" crypt")
	case m.Requested && len(m.DeviceAliases) == 0:
		b.WriteString(" boot")
	}
	for _, d := range m.Deps {
		b.WriteString(" dep:" + d)
	}
	for _, a := range m.DeviceAliases {
		b.WriteString(" alias:" + a)
	}
	b.WriteString("\n")
	return b.String()
}

// sortRecords puts parents before children and otherwise sorts by name, so
// the archive does not depend on the order modules were resolved in.
func sortRecords(recs []cpio.Record) {
	sort.SliceStable(recs, func(i, j int) bool {
		a, b := recs[i].Name, recs[j].Name
		if strings.HasPrefix(b, a+"/") {
			return true
		}
		if strings.HasPrefix(a, b+"/") {
			return false
		}
		return a < b
	})
}

func dir(name string) cpio.Record { return cpio.Directory(name, 0o755) }

func file(name string, content []byte, perm uint64) cpio.Record {
	return cpio.StaticRecord(content, cpio.Info{Name: name, Mode: cpio.S_IFREG | perm, FileSize: uint64(len(content)), NLink: 1})
}
