package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Main makes this process the sandbox's first process when
// Namespaces.Run started it (argv[0] is initArg0, which nothing else
// uses): it sets up the root and executes the command, and does not
// return. In any other process it returns at once. Every program that runs
// [Namespaces] calls it first thing in main, and so does the TestMain of
// every test binary that does; Namespaces.Run fails with ErrNoMain when the
// re-executed binary did not.
func Main() {
	if len(os.Args) == 0 || os.Args[0] != initArg0 {
		return
	}
	runtime.LockOSThread()
	errf := os.NewFile(4, "setup-errors")
	// The first byte tells Namespaces.Run that Main ran.
	errf.Write([]byte{mainRan})
	err := sandboxInit()
	// Only reached on failure: a successful exec closes fd 4 (close-on-exec)
	// and the parent reads EOF.
	fmt.Fprint(errf, err)
	os.Exit(125)
}

// devices are the host device nodes bound into /dev. /dev/tty is not one:
// the command has no controlling terminal to reach through it.
var devices = []string{"null", "zero", "full", "random", "urandom"}

func sandboxInit() error {
	syscall.CloseOnExec(4)
	var p protocol
	f := os.NewFile(3, "spec")
	if err := json.NewDecoder(f).Decode(&p); err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	f.Close()
	s, root := p.Spec, p.Root
	lastCap, err := readLastCap()
	if err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount root tmpfs: %w", err)
	}
	for _, fl := range s.Files {
		if err := makeFile(root, fl); err != nil {
			return err
		}
	}
	for _, m := range s.Mounts {
		if err := bind(root, m); err != nil {
			return err
		}
	}
	if err := mountSpecial(root); err != nil {
		return err
	}
	if err := unix.MountSetattr(-1, root, 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fmt.Errorf("make root read-only: %w", err)
	}
	host := s.Hostname
	if host == "" {
		host = "ingot"
	}
	if err := unix.Sethostname([]byte(host)); err != nil {
		return fmt.Errorf("set host name: %w", err)
	}
	if err := os.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	dir := s.Dir
	if dir == "" {
		dir = "/"
	}
	if err := os.Chdir(dir); err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	prog, err := lookPath(s.Args[0], s.Env)
	if err != nil {
		return err
	}
	if err := dropCapabilities(lastCap); err != nil {
		return err
	}
	unix.Umask(0o022)
	err = unix.Exec(prog, s.Args, s.Env)
	return fmt.Errorf("execute %s: %w", prog, err)
}

func makeFile(root string, fl File) error {
	p := filepath.Join(root, fl.Path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	var err error
	switch {
	case fl.Mode.IsDir():
		err = os.Mkdir(p, fl.Mode.Perm())
		if errors.Is(err, fs.ErrExist) {
			err = os.Chmod(p, fl.Mode.Perm())
		}
	case fl.Mode&fs.ModeSymlink != 0:
		err = os.Symlink(string(fl.Data), p)
	default:
		err = os.WriteFile(p, fl.Data, fl.Mode.Perm())
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", fl.Path, err)
	}
	return nil
}

func bind(root string, m Mount) error {
	target := filepath.Join(root, m.Target)
	fi, err := os.Stat(m.Source)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m.Target, err)
	}
	if err := mountPoint(target, fi.IsDir()); err != nil {
		return fmt.Errorf("mount point %s: %w", m.Target, err)
	}
	if err := unix.Mount(m.Source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", m.Source, m.Target, err)
	}
	if !m.Writable {
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID}
		if err := unix.MountSetattr(-1, target, unix.AT_RECURSIVE, attr); err != nil {
			return fmt.Errorf("make %s read-only: %w", m.Target, err)
		}
	}
	return nil
}

func mountPoint(p string, dir bool) error {
	if dir {
		return os.MkdirAll(p, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// mountSpecial mounts /dev, /proc, /dev/shm and /tmp.
func mountSpecial(root string) error {
	dev := filepath.Join(root, "dev")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, d := range devices {
		if _, err := os.Stat("/dev/" + d); err != nil {
			continue
		}
		if err := bind(root, Mount{Source: "/dev/" + d, Target: "/dev/" + d, Writable: true}); err != nil {
			return err
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	for _, t := range []struct{ dir, opts string }{{"dev/shm", "mode=1777"}, {"tmp", "mode=1777"}} {
		p := filepath.Join(root, t.dir)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", p, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, t.opts); err != nil {
			return fmt.Errorf("mount /%s: %w", t.dir, err)
		}
	}
	proc := filepath.Join(root, "proc")
	if err := os.MkdirAll(proc, 0o555); err != nil {
		return err
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	return nil
}

func readLastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("read last capability: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read last capability: %w", err)
	}
	return n, nil
}

// dropCapabilities empties the bounding, ambient, effective, permitted and
// inheritable sets and sets no_new_privs, so neither the command nor any
// program it executes (setuid or not) holds a capability: it cannot mount,
// remount the read-only trees, or change owners.
func dropCapabilities(lastCap int) error {
	for c := 0; c <= lastCap; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(hdr, &data[0]); err != nil {
		return fmt.Errorf("clear capabilities: %w", err)
	}
	return nil
}

// lookPath finds prog in the PATH of env (inside the new root).
func lookPath(prog string, env []string) (string, error) {
	if strings.Contains(prog, "/") {
		return prog, nil
	}
	path := "/usr/bin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		p := filepath.Join(d, prog)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH=%s", prog, path)
}
