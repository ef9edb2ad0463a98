package boot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/go-dmverity/pkg/dm"
	"github.com/containerd/go-dmverity/pkg/verity"
	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/ext/activate"
	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/layout"
)

func setupVerity(_ context.Context, s *State) error {
	f, err := os.Open(s.path(s.VerityPart))
	if err != nil {
		return err
	}
	sb, err := verity.ReadSuperblock(f, 0)
	f.Close()
	if err != nil {
		return fmt.Errorf("read verity superblock of %s: %w", s.VerityPart, err)
	}
	algo := strings.TrimRight(string(sb.Algorithm[:]), "\x00")
	params, err := dm.BuildTargetParams(dm.OpenArgs{
		Version:        sb.Version,
		DataDevice:     s.UsrPart,
		HashDevice:     s.VerityPart,
		DataBlockSize:  sb.DataBlockSize,
		HashBlockSize:  sb.HashBlockSize,
		DataBlocks:     sb.DataBlocks,
		HashName:       algo,
		RootDigest:     s.Params.UsrHash,
		Salt:           sb.Salt[:sb.SaltSize],
		HashStartBytes: uint64(sb.HashBlockSize), // the superblock takes the first hash block
	})
	if err != nil {
		return fmt.Errorf("build verity table: %w", err)
	}
	sectors := sb.DataBlocks * uint64(sb.DataBlockSize) / 512
	s.needModules("dm_mod", "dm_verity")
	dev, err := s.Sys.VerityCreate("usr", sectors, params)
	if err != nil {
		return err
	}
	s.UsrDevice = dev
	return nil
}

func mountUsr(_ context.Context, s *State) error {
	s.needModules("erofs")
	return s.Sys.Mount(s.UsrDevice, s.path(usrStage), "erofs", unix.MS_RDONLY|unix.MS_NODEV, "")
}

// minRootBytes is the smallest root partition ingot-init creates.
const minRootBytes = 256 << 20

// prepareRoot finds the root partition on the usr disk, or creates it in the
// disk's free space (first boot), and makes its filesystem: on a LUKS2
// volume when the image asks for an encrypted root. A new partition is
// named layout.RootSetupLabel until its filesystem is complete, so a boot
// cut short during the setup does it again instead of mounting half a
// filesystem.
func prepareRoot(ctx context.Context, s *State) error {
	disk, err := s.openDisk()
	if err != nil {
		return err
	}
	defer disk.f.Close()
	t, err := gpt.Read(disk.f, disk.size, disk.sectorSize)
	if err != nil {
		return fmt.Errorf("read partition table of %s: %w", s.Disk, err)
	}
	if p, err := findRoot(t); err == nil {
		name, err := partitionName(s.path("/sys"), filepath.Base(s.Disk), p.Index)
		if err != nil {
			return err
		}
		s.RootPart = "/dev/" + name
		if p.Name == layout.RootSetupLabel {
			s.logf("the root partition's first-boot setup did not finish: doing it again")
			return setupRoot(s, disk, t, p)
		}
		return openRoot(ctx, s)
	}
	s.logf("first boot: creating the root partition on %s", s.Disk)
	p, err := addRootPartition(t, disk.f, disk.size)
	if err != nil {
		return err
	}
	if err := disk.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", s.Disk, err)
	}
	if err := s.Sys.AddPartition(s.path(s.Disk), p.Index, p.Offset(t.SectorSize), p.Size(t.SectorSize)); err != nil {
		return err
	}
	name, err := waitPartition(s, filepath.Base(s.Disk), p.Index)
	if err != nil {
		return err
	}
	s.RootPart = "/dev/" + name
	return setupRoot(s, disk, t, p)
}

// setupRoot makes the root filesystem on the new partition p (through
// dm-crypt when the image says so), then names the partition "root".
func setupRoot(s *State, disk *openDisk, t *gpt.Table, p gpt.Partition) error {
	s.FirstBoot = true
	s.RootDevice = s.RootPart
	if s.Params.Encrypt != layout.EncryptNone {
		dev, err := encryptRoot(s, p.Size(t.SectorSize), layout.DeriveGUID(t.DiskGUID[:], layout.PurposeRootLUKS).String())
		if err != nil {
			return err
		}
		s.RootDevice = dev
	}
	if err := s.makeRootFS(layout.DeriveGUID(t.DiskGUID[:], layout.PurposeRootFS)); err != nil {
		return err
	}
	for i := range t.Partitions {
		if t.Partitions[i].Index == p.Index {
			t.Partitions[i].Name = layout.RootLabel
		}
	}
	if err := t.Write(disk.f, disk.size); err != nil {
		return fmt.Errorf("name the root partition: %w", err)
	}
	return disk.f.Sync()
}

// openRoot sets RootDevice for an existing root partition, unlocking it
// first if it is encrypted.
func openRoot(ctx context.Context, s *State) error {
	s.RootDevice = s.RootPart
	enc, err := isLUKS(s.path(s.RootPart))
	if err != nil {
		return err
	}
	if !enc {
		return checkPlainRoot(s)
	}
	dev, err := unlockRoot(ctx, s)
	if err != nil {
		return err
	}
	s.RootDevice = dev
	return nil
}

type openDisk struct {
	f          *os.File
	size       int64
	sectorSize int
}

func (s *State) openDisk() (*openDisk, error) {
	disks, err := listDisks(s.path("/sys"))
	if err != nil {
		return nil, err
	}
	for _, d := range disks {
		if "/dev/"+d.Name == s.Disk {
			f, err := os.OpenFile(s.path(s.Disk), os.O_RDWR, 0)
			if err != nil {
				return nil, err
			}
			return &openDisk{f: f, size: d.SizeBytes, sectorSize: d.SectorSize}, nil
		}
	}
	return nil, fmt.Errorf("disk %s disappeared", s.Disk)
}

// addRootPartition grows the table to the disk's size (the image was
// written to a larger disk) and adds the root partition in the largest free
// extent. The backup table is written before the primary one.
func addRootPartition(t *gpt.Table, w io.WriterAt, diskSize int64) (gpt.Partition, error) {
	if _, err := t.Grow(diskSize); err != nil {
		return gpt.Partition{}, fmt.Errorf("grow partition table to %d bytes: %w", diskSize, err)
	}
	free, ok := t.LargestFree(gpt.DefaultAlign)
	if !ok {
		return gpt.Partition{}, fmt.Errorf("no room for the root partition: the disk has no free space (grow the disk: ingot vm --disk-size, or write the image to a larger disk)")
	}
	p := gpt.Partition{
		Index:    layout.RootIndex,
		Type:     layout.TypeRoot,
		UUID:     layout.DeriveGUID(t.DiskGUID[:], layout.PurposeRoot),
		Name:     layout.RootSetupLabel,
		FirstLBA: free.FirstLBA,
		LastLBA:  free.LastLBA,
	}
	if _, used := t.Find(func(q gpt.Partition) bool { return q.Index == p.Index }); used {
		p.Index = 0 // the next free entry
	}
	if p.Size(t.SectorSize) < minRootBytes {
		return p, fmt.Errorf("no room for the root partition: %d MiB free, need %d MiB (grow the disk: ingot vm --disk-size, or write the image to a larger disk)",
			p.Size(t.SectorSize)>>20, minRootBytes>>20)
	}
	p, err := t.Add(p)
	if err != nil {
		return p, fmt.Errorf("add root partition: %w", err)
	}
	if err := t.Write(w, diskSize); err != nil {
		return p, fmt.Errorf("write partition table: %w", err)
	}
	return p, nil
}

// waitPartition waits for the partition the kernel was just told of (its
// node is usually there when BLKPG returns: devtmpfs makes it before the
// uevent goes out).
func waitPartition(s *State, disk string, index int) (string, error) {
	deadline := time.Now().Add(partitionTimeout)
	for {
		if name, err := partitionName(s.path("/sys"), disk, index); err == nil {
			if _, err := os.Stat(s.path("/dev/" + name)); err == nil {
				return name, nil
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return "", fmt.Errorf("partition %d of %s did not appear within %v", index, disk, partitionTimeout)
		}
		if err := s.waitDevices(context.Background(), left); err != nil {
			return "", err
		}
	}
}

// partitionTimeout bounds the wait for a partition added with BLKPG.
const partitionTimeout = 5 * time.Second

// makeRootFS runs the image's own mkfs.ext4 in a throwaway root made of
// /usr, so the initrd carries no filesystem tools.
func (s *State) makeRootFS(uuid gpt.GUID) error {
	env := s.path("/run/ingot/mkfs")
	if err := s.Sys.Mount("tmpfs", env, "tmpfs", 0, "mode=0755"); err != nil {
		return err
	}
	defer s.Sys.Unmount(env)
	if err := s.Sys.Mount(s.path(usrStage), filepath.Join(env, "usr"), "", unix.MS_BIND, ""); err != nil {
		return err
	}
	defer s.Sys.Unmount(filepath.Join(env, "usr"))
	if err := s.Sys.Mount(s.path("/dev"), filepath.Join(env, "dev"), "", unix.MS_BIND, ""); err != nil {
		return err
	}
	defer s.Sys.Unmount(filepath.Join(env, "dev"))
	if err := s.Sys.Mount("proc", filepath.Join(env, "proc"), "proc", 0, ""); err != nil {
		return err
	}
	defer s.Sys.Unmount(filepath.Join(env, "proc"))
	lay, err := readRootLayout(s.path(usrStage + "/" + layout.RootLayoutPath))
	if err != nil {
		return err
	}
	for name, target := range lay.Links {
		if err := os.Symlink(target, filepath.Join(env, name)); err != nil {
			return err
		}
	}
	if err := os.Symlink(layout.FactoryEtc, filepath.Join(env, "etc")); err != nil {
		return err
	}
	console := consoleFile(s)
	// Lazy inode tables and journal: the kernel initialises them in the
	// background after the boot. nodiscard: the partition was just made
	// from free space, and discarding all of it first is the slowest part
	// of mkfs on a thinly provisioned disk.
	argv := []string{"/usr/sbin/mkfs.ext4", "-q", "-F", "-L", "root", "-U", uuid.String(),
		"-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", s.RootDevice}
	if _, err := os.Stat(filepath.Join(env, argv[0])); err != nil {
		return fmt.Errorf("the image has no %s to format the root partition: add e2fsprogs to it", argv[0])
	}
	return s.Sys.Run(env, argv, console)
}

func consoleFile(s *State) *os.File {
	if f, ok := s.Console.(*os.File); ok {
		return f
	}
	return nil
}

func mountRoot(_ context.Context, s *State) error {
	s.needModules("ext4")
	if err := s.Sys.Mount(s.RootDevice, s.path(sysroot), "ext4", 0, ""); err != nil {
		return err
	}
	if err := s.Sys.Mount(s.path(usrStage), s.path(sysroot+"/usr"), "", unix.MS_MOVE, ""); err != nil {
		return err
	}
	return nil
}

func readRootLayout(p string) (*layout.RootLayout, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read root layout: %w", err)
	}
	var l layout.RootLayout
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("parse %s: %w", p, err)
	}
	return &l, nil
}

// populateRoot makes the top-level links and directories every boot (so an
// update can add one) and, on first boot, copies the factory /var.
func populateRoot(_ context.Context, s *State) error {
	root := s.path(sysroot)
	lay, err := readRootLayout(filepath.Join(root, "usr", layout.RootLayoutPath))
	if err != nil {
		return err
	}
	for name, target := range lay.Links {
		p := filepath.Join(root, name)
		if cur, err := os.Readlink(p); err == nil && cur == target {
			continue
		}
		os.Remove(p)
		if err := os.Symlink(target, p); err != nil {
			return err
		}
	}
	for name, mode := range lay.Dirs {
		p := filepath.Join(root, name)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		m, err := strconv.ParseUint(mode, 8, 32)
		if err != nil {
			return fmt.Errorf("root layout: mode %q of /%s: %w", mode, name, err)
		}
		if err := os.Mkdir(p, 0o700); err != nil {
			return err
		}
		if err := unix.Chmod(p, uint32(m)); err != nil {
			return err
		}
	}
	if !s.FirstBoot {
		return nil
	}
	src := filepath.Join(root, layout.FactoryVar)
	if _, err := os.Stat(src); err == nil {
		if err := copyTree(src, filepath.Join(root, "var")); err != nil {
			return fmt.Errorf("copy factory /var: %w", err)
		}
	}
	return nil
}

func mountEtc(_ context.Context, s *State) error {
	root := s.path(sysroot)
	upper := filepath.Join(root, layout.StateDir, "etc.upper")
	work := filepath.Join(root, layout.StateDir, "etc.work")
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Work directories of overlays the agent stacked on /etc at run time
	// (ingot ext add of a confext) are free again.
	stale, _ := filepath.Glob(filepath.Join(root, layout.StateDir, "etc.work.*"))
	for _, d := range stale {
		os.RemoveAll(d)
	}
	opts := activate.EtcOverlay(root, s.Confexts, work)
	s.needModules("overlay")
	return s.Sys.Mount("overlay", filepath.Join(root, "etc"), "overlay", 0, opts)
}

// machineID gives the machine a stable identity: made once, on first boot,
// and kept in the /etc overlay's upper layer.
func machineID(_ context.Context, s *State) error {
	p := s.path(sysroot + "/etc/machine-id")
	b, err := os.ReadFile(p)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if len(id) == 32 && id != strings.Repeat("0", 32) {
			return nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return err
	}
	raw[6] = raw[6]&0x0f | 0x40
	raw[8] = raw[8]&0x3f | 0x80
	os.Remove(p)
	return os.WriteFile(p, []byte(hex.EncodeToString(raw[:])+"\n"), 0o444)
}
