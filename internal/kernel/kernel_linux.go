// Package kernel holds the thin Linux wrappers that ingot-init and the agent need:
// mounts, module loading, dm-verity and dm-crypt (through internal/dm),
// partition notification, switch_root and reboot. Everything above it talks to these through small
// interfaces so that it can be tested without root.
package kernel

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/format/luks2"
	"github.com/ingot-linux/ingot/internal/dm"
)

// Linux implements the initrd's system interface with real syscalls.
type Linux struct{}

// Mount mounts source on target, creating target first.
func (Linux) Mount(source, target, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("mount %s: %w", target, err)
	}
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", source, fstype, target, err)
	}
	return nil
}

// Unmount unmounts target.
func (Linux) Unmount(target string) error {
	if err := unix.Unmount(target, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// LoadModule loads a kernel module from its uncompressed content. A module
// that is already loaded is not an error.
func (Linux) LoadModule(content []byte, params string) error {
	err := unix.InitModule(content, params)
	if err == nil || errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// VerityCreate creates and activates a read-only dm-verity device with the
// given target parameters and returns the path of its block device node
// (/dev/mapper/<name>, a link to the /dev/dm-N devtmpfs makes).
func (Linux) VerityCreate(name string, sectors uint64, params string) (string, error) {
	dev, err := dm.Create(dm.Device{Name: name, ReadOnly: true,
		Target: dm.Target{Type: "verity", LengthSectors: sectors, Params: []byte(params)}})
	if err != nil {
		return "", err
	}
	minor := unix.Minor(uint64(dev))
	node := fmt.Sprintf("/dev/dm-%d", minor)
	if err := waitFor(node, 5*time.Second); err != nil {
		// devtmpfs normally creates it; make it ourselves if not.
		if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(dev)); err != nil && !errors.Is(err, unix.EEXIST) {
			return "", fmt.Errorf("create %s: %w", node, err)
		}
	}
	if err := os.MkdirAll("/dev/mapper", 0o755); err != nil {
		return "", err
	}
	link := "/dev/mapper/" + name
	os.Remove(link)
	if err := os.Symlink(fmt.Sprintf("../dm-%d", minor), link); err != nil {
		return "", fmt.Errorf("link %s: %w", link, err)
	}
	return link, nil
}

// blkpgPartition mirrors struct blkpg_partition from linux/blkpg.h.
type blkpgPartition struct {
	Start   int64
	Length  int64
	Pno     int32
	Devname [64]byte
	Volname [64]byte
	_       [4]byte
}

// blkpgIoctlArg mirrors struct blkpg_ioctl_arg.
type blkpgIoctlArg struct {
	Op      int32
	Flags   int32
	Datalen int32
	_       [4]byte
	Data    uintptr
}

const (
	blkpgIoctl        = 0x1269
	blkpgAddPartition = 1
)

// AddPartition tells the kernel about a partition just written to disk's
// table, without re-reading the whole table (which fails while another
// partition of the disk is in use).
func (Linux) AddPartition(disk string, index int, startBytes, lengthBytes int64) error {
	f, err := os.OpenFile(disk, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", disk, err)
	}
	defer f.Close()
	p := blkpgPartition{Start: startBytes, Length: lengthBytes, Pno: int32(index)}
	arg := blkpgIoctlArg{Op: blkpgAddPartition, Datalen: int32(unsafe.Sizeof(p)), Data: uintptr(unsafe.Pointer(&p))}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), blkpgIoctl, uintptr(unsafe.Pointer(&arg)))
	if errno != 0 && errno != unix.EBUSY {
		return fmt.Errorf("add partition %d to %s: %w", index, disk, errno)
	}
	return nil
}

// Run runs argv (argv[0] a path inside root) chrooted into root, with its
// output sent to out.
func (Linux) Run(root string, argv []string, out *os.File) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &unix.SysProcAttr{Chroot: root}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = out, out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("run %s: %w", strings.Join(argv, " "), err)
	}
	return nil
}

// SwitchRoot moves the API filesystems into newRoot, frees the initramfs,
// makes newRoot the root and executes init there. It returns only on error.
func (Linux) SwitchRoot(newRoot, init string, args []string) error {
	for _, m := range []string{"/dev", "/proc", "/sys", "/run"} {
		target := filepath.Join(newRoot, m)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", target, err)
		}
		if err := unix.Mount(m, target, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s to %s: %w", m, target, err)
		}
	}
	if err := os.Chdir(newRoot); err != nil {
		return fmt.Errorf("enter %s: %w", newRoot, err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err == nil {
		removeInitramfs("/", st.Dev, newRoot)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Exec(init, append([]string{init}, args...), os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", init, err)
	}
	return nil
}

// removeInitramfs deletes the files of the initramfs (the filesystem with
// device dev) so its memory is freed, skipping keep and other filesystems.
func removeInitramfs(dir string, dev uint64, keep string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if p == keep {
			continue
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || st.Dev != dev {
			continue
		}
		if e.IsDir() {
			removeInitramfs(p, dev, keep)
			unix.Rmdir(p)
			continue
		}
		unix.Unlink(p)
	}
}

// Reboot syncs the disks and restarts the machine.
func (Linux) Reboot() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}

func waitFor(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %v", path, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitFor waits until path exists.
func WaitFor(path string, timeout time.Duration) error { return waitFor(path, timeout) }

// CryptActivate maps the LUKS2 volume at devPath, decrypted with
// volumeKey, to /dev/mapper/<name> with dm-crypt and returns that path.
// The key is checked against the header's digest first, so a wrong key
// fails here instead of producing garbage. It makes the device node
// itself, so it works without udev.
func (Linux) CryptActivate(name, devPath string, volumeKey []byte) (string, error) {
	p, err := cryptActivate(name, devPath, volumeKey)
	if err != nil {
		return "", fmt.Errorf("activate LUKS2 volume %s on %s: %w", name, devPath, err)
	}
	return p, nil
}

func cryptActivate(name, devPath string, volumeKey []byte) (string, error) {
	f, err := os.Open(devPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h, err := luks2.ReadHeader(f)
	if err != nil {
		return "", fmt.Errorf("read header: %w", err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", fmt.Errorf("size of %s: %w", devPath, err)
	}
	t, err := h.CryptTarget(devPath, size, name, volumeKey)
	if err != nil {
		return "", err
	}
	dev, err := dm.Create(dm.Device{Name: name, UUID: t.UUID, Secret: true,
		Target: dm.Target{Type: "crypt", LengthSectors: t.Sectors, Params: t.Params}})
	clear(t.Params)
	if dm.ErrNoTarget(err) {
		// dm-crypt reports a cipher the kernel cannot instantiate so.
		err = fmt.Errorf("%w (is the cipher available? it may need the xts and ecb modules)", err)
	}
	if err != nil {
		return "", err
	}
	node := filepath.Join("/dev/mapper", name)
	if err := makeNode(node, dev); err != nil {
		dm.Remove(name)
		return "", err
	}
	return node, nil
}

// CryptDeactivate removes the mapping name made by CryptActivate (or by
// cryptsetup open) and its node in /dev/mapper, if CryptActivate made that.
func (Linux) CryptDeactivate(name string) error {
	if err := dm.Remove(name); err != nil {
		return err
	}
	node := filepath.Join("/dev/mapper", name)
	if fi, err := os.Lstat(node); err == nil && fi.Mode()&os.ModeDevice != 0 {
		os.Remove(node)
	}
	return nil
}

// makeNode makes path a block device node for dev, unless it already is
// one, possibly through a symbolic link that udev made.
func makeNode(path string, dev dm.Dev) error {
	rdev := unix.Mkdev(unix.Major(uint64(dev)), unix.Minor(uint64(dev)))
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err == nil {
		if st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == rdev {
			return nil
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove stale %s: %w", path, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(rdev)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}
