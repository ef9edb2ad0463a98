package vm

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults used for the zero values of Config fields.
const (
	DefaultMemoryMiB = 1024
	DefaultCPUs      = 2
	DefaultAccel     = "tcg"
	DefaultQEMU      = "qemu-system-x86_64"
	DefaultQEMUImg   = "qemu-img"
	DefaultSWTPM     = "swtpm"
	// DefaultExtraDiskBytes is how much larger than the image the overlay
	// is made when Config.DiskSizeBytes is 0.
	DefaultExtraDiskBytes = 2 << 30
	// DefaultGuestForwardAddr is the guest-side address of a GuestForward
	// whose GuestAddr is empty.
	DefaultGuestForwardAddr = "10.0.2.100"
	// DefaultHangRestart is Config.HangRestart's default.
	DefaultHangRestart = 2 * time.Minute
	// MaxHangRestarts bounds the restarts of Config.HangRestart, so a
	// kernel that always hangs still fails its test.
	MaxHangRestarts = 2
)

// Names of the files that Start puts in the run directory.
const (
	overlayName = "disk0.qcow2"
	varsName    = "OVMF_VARS.fd"
	logName     = "console.log"
	tpmDirName  = "tpm"
	tpmSockName = "swtpm.sock"
	tpmLogName  = "swtpm.log"
)

// Config describes a machine. The zero value is usable: no disk, 1 GiB of
// memory, 2 CPUs, TCG, OVMF from the ovmf package, no network.
type Config struct {
	// Image is the raw disk image to boot, attached as the first virtio-blk
	// disk with boot index 0. Empty means no boot disk.
	Image string
	// Persist makes the guest write to Image itself. By default it writes
	// to a qcow2 overlay in the run directory, and Image is left untouched.
	Persist bool
	// DiskSizeBytes is the size of the disk the guest sees, so that its
	// first boot has room to grow partitions. Without Persist, 0 means the
	// image size plus DefaultExtraDiskBytes. With Persist, the raw file
	// itself is grown to this size, and 0 leaves it as it is (growing by a
	// fixed amount on every run would grow it without bound). Sizes are
	// rounded up to a multiple of 512; a size smaller than the image is an
	// error, since disks are never shrunk.
	DiskSizeBytes int64
	// WriteLog, if set, records every write, flush and discard the guest
	// makes to the boot disk in this file, in the dm-log-writes format
	// (QEMU's blklogwrites driver; read it with format/logwrites). Start
	// empties the file; with log-append off each QEMU process (Start,
	// Restart) starts the log anew, while reboots of the guest keep
	// appending. Replayed onto Image (read as zeros past its end, up to
	// the disk size), the log gives the disk as the guest left it. The
	// disk is attached with a write-back cache so the guest sends flushes,
	// and they reach the log; the host files are not fsynced
	// (cache.no-flush), so logging costs little.
	WriteLog string
	// ExtraDisks are more disks, attached as virtio-blk after the image
	// and written directly. A name ending in ".qcow2" is opened as qcow2,
	// anything else as raw.
	ExtraDisks []string

	// MemoryMiB is the guest memory (default DefaultMemoryMiB).
	MemoryMiB int
	// CPUs is the number of virtual CPUs (default DefaultCPUs).
	CPUs int
	// Accel is "tcg" (the default) or "kvm". Start checks that /dev/kvm is
	// usable before it uses "kvm".
	Accel string

	// Firmware is the OVMF code image. Empty searches
	// /usr/share/OVMF/OVMF_CODE_4M.fd, /usr/share/OVMF/OVMF_CODE.fd and
	// /usr/share/qemu/OVMF.fd (with SecureBoot, the .secboot variants).
	// A firmware whose name has no "OVMF_CODE" and no FirmwareVars is
	// loaded with -bios, without NVRAM.
	Firmware string
	// FirmwareVars is the NVRAM template, copied into the run directory
	// so that each run starts with clean variables. Empty derives it from
	// Firmware: OVMF_CODE_4M.fd → OVMF_VARS_4M.fd, OVMF_CODE_4M.secboot.fd
	// → OVMF_VARS_4M.fd (no keys enrolled: setup mode),
	// OVMF_CODE_4M.ms.fd → OVMF_VARS_4M.ms.fd.
	FirmwareVars string
	// PersistentVars, if set, is the NVRAM file the guest uses directly,
	// so variables (boot entries, enrolled keys) survive across runs.
	// Start creates it from the template if it does not exist.
	PersistentVars string
	// SecureBoot selects the secure-boot firmware by default and enables
	// SMM, which that firmware needs. SMM is also enabled for any firmware
	// whose name contains ".secboot.", ".ms." or ".snakeoil.".
	SecureBoot bool

	// TPM gives the machine a TPM 2.0 (a tpm-tis device), emulated by a
	// swtpm process that runs as long as QEMU does: Start and Restart
	// start one, and it stops when QEMU exits. QEMU talks to it through
	// a socket in RunDir.
	TPM bool
	// TPMState is the directory with the TPM's state (its seeds, NV
	// indexes and, across reboots of the guest, its PCRs' reset state).
	// Empty means PersistentVars + ".tpm" when PersistentVars is set, so
	// the TPM survives across runs as the NVRAM does, and "tpm" in
	// RunDir otherwise (a fresh TPM for each Start).
	TPMState string
	// SWTPM is the swtpm binary (default DefaultSWTPM, from PATH).
	SWTPM string

	// QEMU is the emulator binary (default DefaultQEMU, from PATH).
	QEMU string
	// QEMUImg is the qemu-img binary (default DefaultQEMUImg, from PATH),
	// used to create the overlay.
	QEMUImg string

	// UserNet, if not nil, gives the guest a virtio-net NIC on QEMU user
	// networking with restrict=on: the guest reaches nothing but the
	// explicit forwards. Nil means no network at all (-nic none).
	UserNet *UserNet
	// SMBIOSCredentials are systemd credentials (name → value) passed as
	// SMBIOS type 11 OEM strings, one -smbios option each, always as
	// "io.systemd.credential.binary:NAME=BASE64" so that values may hold
	// newlines, commas and any byte. The guest finds them in
	// /sys/firmware/dmi/tables/DMI (systemd: /sys/firmware/dmi/entries).
	SMBIOSCredentials map[string][]byte
	// ExtraArgs are appended to QEMU's command line.
	ExtraArgs []string

	// RunDir holds the overlay, the NVRAM copy and the console log. Empty
	// makes a temporary directory that Close removes; a given directory is
	// created if needed and kept.
	RunDir string
	// LogFile is where the console log (CRs and terminal escapes removed)
	// is written. Empty means console.log in RunDir.
	LogFile string
	// Output, if not nil, receives a copy of the raw console output as it
	// arrives (for example os.Stdout, or a file).
	Output io.Writer
	// Interactive multiplexes the QEMU monitor onto the console, as
	// -serial mon:stdio does: Ctrl-A X quits, Ctrl-A C switches between
	// console and monitor, Ctrl-A H lists the keys.
	Interactive bool
	// Stdin, if not nil, is QEMU's standard input, that is the console's
	// keyboard; Send and Run then report an error. Pass os.Stdin for an
	// interactive session: QEMU puts a terminal in raw mode, and Machine
	// restores the terminal's settings when QEMU exits.
	Stdin io.Reader
	// Logger receives debug records (the command line, exits, QMP
	// events). Nil discards them.
	Logger *slog.Logger
	// HangRestart is how long the console may stay silent while the guest
	// kernel starts (after its "Linux version" banner, before it frees its
	// init memory) or after it printed "reboot: Restarting system", before
	// Machine cuts the power and starts QEMU again, as a hardware watchdog
	// would. Under TCG with more than one vCPU a guest now and then hangs
	// for good at exactly these two points (the clocksource switch's
	// stop_machine, the reset); nothing in the guest has written its disk
	// yet. It happens at most MaxHangRestarts times per Machine, is noted
	// on the console log, and a waiter does not see QEMU exit. Zero is
	// DefaultHangRestart; a negative value turns it off.
	HangRestart time.Duration
}

// UserNet is QEMU user-mode networking restricted to explicit forwards.
type UserNet struct {
	// HostForwards expose guest ports on the host's loopback.
	HostForwards []Forward
	// GuestForwards let the guest connect to services on this machine.
	GuestForwards []GuestForward
}

// Forward makes a guest port reachable on the host (QEMU hostfwd).
type Forward struct {
	// Proto is "tcp" (the default) or "udp".
	Proto string
	// HostAddr is the host address to listen on; it must be a loopback
	// address (default 127.0.0.1).
	HostAddr string
	// HostPort is the host port to listen on.
	HostPort int
	// GuestAddr is the guest address to forward to (default the guest's
	// DHCP address).
	GuestAddr string
	// GuestPort is the guest port to forward to.
	GuestPort int
}

// GuestForward sends the guest's TCP connections to GuestAddr:GuestPort to
// Target on this machine (QEMU guestfwd). Each guest connection gets its
// own connection to Target through socat: QEMU's plain tcp: guestfwd
// shares one host connection among all guest connections, which garbles
// concurrent HTTP requests.
type GuestForward struct {
	// GuestAddr is the address the guest connects to (default
	// DefaultGuestForwardAddr).
	GuestAddr string
	// GuestPort is the port the guest connects to.
	GuestPort int
	// Target is "host:port" on this machine; the host must be a loopback
	// address or "localhost".
	Target string
}

// Validate reports errors in c that do not need the file system: negative
// sizes, an unknown accelerator, forwards that are incomplete or that would
// reach beyond this machine.
func (c Config) Validate() error {
	var errs []error
	if c.DiskSizeBytes < 0 {
		errs = append(errs, fmt.Errorf("disk size %d is negative", c.DiskSizeBytes))
	}
	if c.MemoryMiB < 0 {
		errs = append(errs, fmt.Errorf("memory %d MiB is negative", c.MemoryMiB))
	}
	if c.CPUs < 0 {
		errs = append(errs, fmt.Errorf("cpu count %d is negative", c.CPUs))
	}
	switch c.Accel {
	case "", "tcg", "kvm":
	default:
		errs = append(errs, fmt.Errorf("accelerator %q is not tcg or kvm", c.Accel))
	}
	for name := range c.SMBIOSCredentials {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			errs = append(errs, fmt.Errorf("SMBIOS credential name %q is empty or holds '=' or NUL", name))
		}
	}
	if c.UserNet != nil {
		for i, f := range c.UserNet.HostForwards {
			if err := f.validate(); err != nil {
				errs = append(errs, fmt.Errorf("host forward %d: %w", i, err))
			}
		}
		for i, f := range c.UserNet.GuestForwards {
			if err := f.validate(); err != nil {
				errs = append(errs, fmt.Errorf("guest forward %d: %w", i, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (f Forward) validate() error {
	switch f.Proto {
	case "", "tcp", "udp":
	default:
		return fmt.Errorf("protocol %q is not tcp or udp", f.Proto)
	}
	if f.HostAddr != "" && !isLoopback(f.HostAddr) {
		return fmt.Errorf("host address %q is not a loopback address", f.HostAddr)
	}
	if f.GuestAddr != "" && net.ParseIP(f.GuestAddr) == nil {
		return fmt.Errorf("guest address %q is not an IP address", f.GuestAddr)
	}
	if err := checkPort("host", f.HostPort); err != nil {
		return err
	}
	return checkPort("guest", f.GuestPort)
}

func (g GuestForward) validate() error {
	if g.GuestAddr != "" && net.ParseIP(g.GuestAddr) == nil {
		return fmt.Errorf("guest address %q is not an IP address", g.GuestAddr)
	}
	if err := checkPort("guest", g.GuestPort); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(g.Target)
	if err != nil {
		return fmt.Errorf("target %q: %w", g.Target, err)
	}
	if !isLoopback(host) {
		return fmt.Errorf("target %q is not on a loopback address", g.Target)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("target %q: port is not a number", g.Target)
	}
	return checkPort("target", p)
}

func checkPort(what string, p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("%s port %d is not in 1-65535", what, p)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// firmwareCandidates lists where Start looks for OVMF when Config.Firmware
// is empty, in order.
func firmwareCandidates(secureBoot bool) []string {
	if secureBoot {
		return []string{
			"/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
			"/usr/share/OVMF/OVMF_CODE.secboot.fd",
		}
	}
	return []string{
		"/usr/share/OVMF/OVMF_CODE_4M.fd",
		"/usr/share/OVMF/OVMF_CODE.fd",
		"/usr/share/qemu/OVMF.fd",
	}
}

// varsFor returns the NVRAM template that goes with a firmware code image,
// or "" when the firmware is not a split OVMF_CODE image.
func varsFor(firmware string) string {
	dir, base := filepath.Split(firmware)
	if !strings.Contains(base, "OVMF_CODE") {
		return ""
	}
	base = strings.Replace(base, "OVMF_CODE", "OVMF_VARS", 1)
	base = strings.Replace(base, ".secboot.fd", ".fd", 1)
	return filepath.Join(dir, base)
}

// needsSMM reports whether the firmware must run with SMM enabled.
func (c Config) needsSMM() bool {
	base := filepath.Base(c.firmware())
	return c.SecureBoot || strings.Contains(base, ".secboot.") ||
		strings.Contains(base, ".ms.") || strings.Contains(base, ".snakeoil.")
}

func (c Config) firmware() string {
	if c.Firmware != "" {
		return c.Firmware
	}
	return firmwareCandidates(c.SecureBoot)[0]
}

// varsTemplate returns the NVRAM template, or "" if the firmware has none.
func (c Config) varsTemplate() string {
	if c.FirmwareVars != "" {
		return c.FirmwareVars
	}
	return varsFor(c.firmware())
}

// varsPath returns the NVRAM file QEMU uses, or "" for none.
func (c Config) varsPath() string {
	if c.PersistentVars != "" {
		return c.PersistentVars
	}
	if c.varsTemplate() == "" {
		return ""
	}
	return filepath.Join(c.RunDir, varsName)
}

// diskPath returns the file attached as the boot disk and its format.
func (c Config) diskPath() (path, format string) {
	if c.Persist {
		return c.Image, "raw"
	}
	return filepath.Join(c.RunDir, overlayName), "qcow2"
}

// tpmStateDir returns the directory of the TPM's state.
func (c Config) tpmStateDir() string {
	switch {
	case c.TPMState != "":
		return c.TPMState
	case c.PersistentVars != "":
		return c.PersistentVars + ".tpm"
	}
	return filepath.Join(c.RunDir, tpmDirName)
}

// tpmSocket returns the swtpm control socket QEMU connects to.
func (c Config) tpmSocket() string {
	return filepath.Join(c.RunDir, tpmSockName)
}

func (c Config) logPath() string {
	if c.LogFile != "" {
		return c.LogFile
	}
	return filepath.Join(c.RunDir, logName)
}

// Args returns QEMU's command line (without the binary) for c. It is a pure
// function of c and does not touch the file system: empty fields take their
// defaults, an empty Firmware is the first default candidate, and run
// directory files are named relative to RunDir (Start fills in the real
// firmware and run directory before it calls Args). The QMP socket is
// always file descriptor 3.
func (c Config) Args() []string {
	mem, cpus, accel := c.MemoryMiB, c.CPUs, c.Accel
	if mem == 0 {
		mem = DefaultMemoryMiB
	}
	if cpus == 0 {
		cpus = DefaultCPUs
	}
	if accel == "" {
		accel = DefaultAccel
	}
	machine := "q35"
	if c.needsSMM() {
		machine += ",smm=on"
	}
	args := []string{
		"-nodefaults", "-no-user-config",
		"-machine", machine,
		"-accel", accel,
		"-cpu", "max",
		"-smp", strconv.Itoa(cpus),
		"-m", strconv.Itoa(mem),
		"-display", "none",
	}

	if vars := c.varsPath(); vars == "" {
		args = append(args, "-bios", c.firmware())
	} else {
		if c.needsSMM() {
			args = append(args, "-global", "driver=cfi.pflash01,property=secure,value=on")
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+escape(c.firmware()),
			"-drive", "if=pflash,format=raw,unit=1,file="+escape(vars))
	}

	if c.Image != "" {
		path, format := c.diskPath()
		if c.WriteLog != "" {
			args = append(args, loggedDriveArgs(path, format, c.WriteLog)...)
		} else {
			args = append(args, driveArgs(0, path, format, 0)...)
		}
	}
	for i, d := range c.ExtraDisks {
		format := "raw"
		if strings.HasSuffix(d, ".qcow2") {
			format = "qcow2"
		}
		args = append(args, driveArgs(i+1, d, format, -1)...)
	}
	args = append(args, "-device", "virtio-rng-pci")
	args = append(args, c.smbiosArgs()...)
	if c.TPM {
		args = append(args,
			"-chardev", "socket,id=chrtpm,path="+escape(c.tpmSocket()),
			"-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
			"-device", "tpm-tis,tpmdev=tpm0")
	}

	if c.UserNet == nil {
		args = append(args, "-nic", "none")
	} else {
		args = append(args,
			"-netdev", c.UserNet.netdev("net0"),
			"-device", "virtio-net-pci,netdev=net0")
	}

	if c.Interactive {
		args = append(args,
			"-chardev", "stdio,id=console,signal=off,mux=on",
			"-serial", "chardev:console",
			"-mon", "chardev=console,mode=readline")
	} else {
		args = append(args,
			"-chardev", "stdio,id=console,signal=off",
			"-serial", "chardev:console")
	}
	args = append(args,
		"-chardev", "socket,id=qmp,fd=3",
		"-mon", "chardev=qmp,mode=control")
	return append(args, c.ExtraArgs...)
}

// smbiosArgs passes SMBIOSCredentials, in the order of their names.
func (c Config) smbiosArgs() []string {
	var args []string
	for _, name := range slices.Sorted(maps.Keys(c.SMBIOSCredentials)) {
		v := base64.StdEncoding.EncodeToString(c.SMBIOSCredentials[name])
		args = append(args, "-smbios", "type=11,value="+escape("io.systemd.credential.binary:"+name+"="+v))
	}
	return args
}

// driveArgs attaches a virtio-blk disk; bootIndex < 0 means none.
func driveArgs(n int, path, format string, bootIndex int) []string {
	id := "disk" + strconv.Itoa(n)
	dev := "virtio-blk-pci,drive=" + id
	if bootIndex >= 0 {
		dev += ",bootindex=" + strconv.Itoa(bootIndex)
	}
	return []string{
		"-drive", "if=none,id=" + id + ",format=" + format +
			",cache=unsafe,discard=unmap,file=" + escape(path),
		"-device", dev,
	}
}

// loggedDriveArgs attaches the boot disk through a blklogwrites node that
// logs every write, flush and discard to logPath.
func loggedDriveArgs(path, format, logPath string) []string {
	return []string{
		"-blockdev", "driver=file,node-name=disk0-file,cache.no-flush=on,filename=" + escape(path),
		"-blockdev", "driver=" + format + ",node-name=disk0-format,discard=unmap,file=disk0-file",
		"-blockdev", "driver=file,node-name=disk0-logfile,cache.no-flush=on,filename=" + escape(logPath),
		"-blockdev", "driver=blklogwrites,node-name=disk0,discard=unmap,file=disk0-format,log=disk0-logfile,log-sector-size=512",
		"-device", "virtio-blk-pci,drive=disk0,bootindex=0,write-cache=on,discard=off,write-zeroes=off",
	}
}

func (u *UserNet) netdev(id string) string {
	var b strings.Builder
	b.WriteString("user,id=" + id + ",restrict=on")
	for _, f := range u.HostForwards {
		proto, host := f.Proto, f.HostAddr
		if proto == "" {
			proto = "tcp"
		}
		if host == "" {
			host = "127.0.0.1"
		}
		fmt.Fprintf(&b, ",hostfwd=%s:%s:%d-%s:%d", proto, host, f.HostPort, f.GuestAddr, f.GuestPort)
	}
	for _, g := range u.GuestForwards {
		addr := g.GuestAddr
		if addr == "" {
			addr = DefaultGuestForwardAddr
		}
		fmt.Fprintf(&b, ",guestfwd=tcp:%s:%d-cmd:socat - TCP:%s", addr, g.GuestPort, g.Target)
	}
	return b.String()
}

// escape doubles commas, which QEMU's option parser treats as separators.
func escape(s string) string {
	return strings.ReplaceAll(s, ",", ",,")
}
