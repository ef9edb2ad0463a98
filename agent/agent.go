// Package agent is ingot's device side: status, A/B updates, blessing,
// rollback and factory reset of the running system.
//
// It writes the slot the booted UKI does not use, sets the slot's partition
// names and PARTUUIDs last, and installs the new UKI on the ESP with a
// temporary file and a rename, so a power cut at any point leaves a machine
// that boots a complete version.
//
//	a := agent.New(agent.Config{})
//	res, err := a.Update(ctx, "/var/tmp/ingot_2.0.0.update")
package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/internal/kernel"
	"github.com/ingot-linux/ingot/layout"
)

// Config configures an Agent. The zero value is the running system.
type Config struct {
	// Root is where the system's filesystem is ("/" on a device).
	Root string
	// Keep is how many UKIs stay on the ESP after an update (default 2:
	// the booted one and the new one). The booted one is never removed.
	Keep int
	// Mounter mounts the ESP; nil means the real mount(2).
	Mounter Mounter
	// ExtSys activates extensions; nil means the running system's.
	ExtSys ExtSys
	// Logger receives details; nil discards them.
	Logger *slog.Logger
	// Progress, if set, is told each step of an update as it happens (the
	// power-cut tests stop the machine at these).
	Progress func(step string)
}

// Mounter mounts and unmounts filesystems.
type Mounter interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string) error
}

// Agent acts on the running system.
type Agent struct {
	cfg Config
}

// New returns an Agent for cfg.
func New(cfg Config) *Agent {
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	if cfg.Keep < 2 {
		cfg.Keep = 2
	}
	if cfg.Mounter == nil {
		cfg.Mounter = kernel.Linux{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Agent{cfg: cfg}
}

func (a *Agent) path(p string) string { return filepath.Join(a.cfg.Root, p) }

func (a *Agent) step(format string, args ...any) {
	if a.cfg.Progress != nil {
		a.cfg.Progress(fmt.Sprintf(format, args...))
	}
}

// ErrNotIngot says the running system was not booted by ingot-init.
var ErrNotIngot = errors.New("this system was not booted by ingot-init (no " + layout.BootInfoPath + ")")

func (a *Agent) bootInfo() (*layout.BootInfo, error) {
	b, err := os.ReadFile(a.path(layout.BootInfoPath))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotIngot
	}
	if err != nil {
		return nil, err
	}
	var info layout.BootInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("parse boot record: %w", err)
	}
	return &info, nil
}

// disk is the boot disk with its partition table.
type disk struct {
	path       string // /dev/vda
	name       string // vda
	f          *os.File
	size       int64
	sectorSize int // the unit of the partition table: the disk's logical sector size
	table      *gpt.Table
}

func (a *Agent) openDisk(info *layout.BootInfo, write bool) (*disk, error) {
	name := filepath.Base(info.Disk)
	size, sectorSize, err := kernel.DiskSize(a.path("/sys"), name)
	if err != nil {
		return nil, err
	}
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(a.path(info.Disk), flag, 0)
	if err != nil {
		return nil, err
	}
	d := &disk{path: info.Disk, name: name, f: f, size: size, sectorSize: sectorSize}
	d.table, err = gpt.Read(f, d.size, d.sectorSize)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read partition table of %s: %w", info.Disk, err)
	}
	return d, nil
}

// withESP mounts the ESP of d at /run/ingot/esp for fn.
func (a *Agent) withESP(d *disk, fn func(dir string) error) error {
	esps := d.table.ByType(layout.TypeESP)
	if len(esps) != 1 {
		return fmt.Errorf("want one ESP on %s, found %d", d.path, len(esps))
	}
	part, err := kernel.PartitionName(a.path("/sys"), d.name, esps[0].Index)
	if err != nil {
		return err
	}
	dir := a.path(layout.RunDir + "/esp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := a.cfg.Mounter.Mount(a.path("/dev/"+part), dir, "vfat", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "umask=0077"); err != nil {
		return fmt.Errorf("mount ESP: %w", err)
	}
	ferr := fn(dir)
	unix.Sync()
	if err := a.cfg.Mounter.Unmount(dir); err != nil && ferr == nil {
		ferr = fmt.Errorf("unmount ESP: %w", err)
	}
	return ferr
}
