package boot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/layout"
)

// Sys is what the boot plan needs from the kernel. internal/sys.Linux
// implements it; tests use a recording fake.
type Sys interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string) error
	LoadModule(content []byte, params string) error
	VerityCreate(name string, sectors uint64, params string) (string, error)
	AddPartition(disk string, index int, startBytes, lengthBytes int64) error
	Run(root string, argv []string, out *os.File) error
	SwitchRoot(newRoot, init string, args []string) error
	Reboot() error
	LoopAttach(path string, offsetBytes, sizeBytes int64) (string, io.Closer, error)
	VerityRemove(name string) error
}

// Config is the input to Run.
type Config struct {
	// Sys performs the syscalls.
	Sys Sys
	// Root is where the initrd's filesystem is: "/" in the initrd, a
	// temporary directory in tests. Every path hangs off it.
	Root string
	// Console receives the one-line progress and failure messages.
	Console io.Writer
	// Input is the console's input, where a recovery key can be typed;
	// nil when there is none.
	Input io.Reader
}

// Step is one named stage of the boot.
type Step struct {
	Name string
	Run  func(ctx context.Context, s *State) error
}

// State is what the steps find out and hand to each other.
type State struct {
	Config
	Params layout.Boot
	// Disk is the whole-disk device holding /usr, e.g. /dev/vda.
	Disk string
	// UsrPart and VerityPart are the partition devices of the booted slot.
	UsrPart, VerityPart string
	// SigPart is the usr-verity-sig partition of the booted slot, if the
	// disk has one.
	SigPart string
	// Slot is "a" or "b".
	Slot string
	// UsrDevice is the dm-verity device of /usr.
	UsrDevice string
	// RootPart is the root partition device.
	RootPart string
	// RootDevice is what holds the root filesystem: RootPart, or its
	// dm-crypt device when the root is encrypted.
	RootDevice string
	// FirstBoot is true when the root partition was created in this boot.
	FirstBoot bool
	// Measured is true when "enter-initrd" was measured into PCR 11, so
	// "leave-initrd" must be too.
	Measured bool
	// Confexts are the mount directories of the activated confexts,
	// layered into /etc.
	Confexts []string
	// Timings are the steps done so far and how long each took.
	Timings []StepTime
	// started is when ingot-init started, after the kernel's start.
	started time.Duration
	// modules loads the initrd's kernel modules (nil: it carries none).
	modules *moduleLoader
	// events are the kernel's uevents, opened before the modules load
	// (nil when they cannot be had).
	events *uevents
}

// The fixed places of the boot.
const (
	sysroot  = "/sysroot"
	usrStage = layout.RunDir + "/usr"
)

func (s *State) path(p string) string { return filepath.Join(s.Root, p) }

func (s *State) logf(format string, args ...any) {
	fmt.Fprintf(s.Console, "ingot-init: "+format+"\n", args...)
}

// Plan returns the boot steps in order.
func Plan() []Step {
	return []Step{
		{"mount API filesystems", mountAPI},
		{"measure enter-initrd", measureEnter},
		{"read kernel command line", readCmdline},
		{"load kernel modules", loadModules},
		{"mount efivarfs", mountEFIVars},
		{"find usr partitions", findUsr},
		{"verify usr signature", verifyUsrSig},
		{"set up dm-verity for /usr", setupVerity},
		{"mount /usr", mountUsr},
		{"prepare root partition", prepareRoot},
		{"mount root", mountRoot},
		{"populate root", populateRoot},
		{"activate extensions", activateExtensions},
		{"mount /etc overlay", mountEtc},
		{"apply machine configuration", applyConfig},
		{"set machine-id", machineID},
		{"record boot", recordBoot},
		{"measure leave-initrd", measureLeave},
		{"switch root", switchRoot},
	}
}

// Error is a failed step.
type Error struct {
	Step string
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Step, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Run executes the plan. It returns only on failure (switch_root replaces
// the process on success).
func Run(ctx context.Context, cfg Config) (*State, error) {
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	s := &State{Config: cfg, Params: layout.DefaultBoot()}
	s.started = sinceKernel()
	s.events = openUevents()
	defer s.events.close()
	for _, st := range Plan() {
		start := time.Now()
		if err := st.Run(ctx, s); err != nil {
			s.Timings = append(s.Timings, StepTime{Name: st.Name + " (failed)", Took: time.Since(start)})
			s.logf("%s", s.timingLine(sinceKernel()))
			return s, &Error{Step: st.Name, Err: err}
		}
		s.Timings = append(s.Timings, StepTime{Name: st.Name, Took: time.Since(start)})
	}
	return s, errors.New("switch root returned")
}

// StepTime is how long one step of the plan took.
type StepTime struct {
	Name string
	Took time.Duration
}

// sinceKernel is the time since the kernel started (CLOCK_BOOTTIME), zero
// if the clock cannot be read.
func sinceKernel() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// timingLine is the one line that tells where the boot's time went: when
// ingot-init started after the kernel, each step so far, and the total.
// It is printed on every boot, just before switch root, so a slow step
// shows in every console log and a benchmark can read it.
func (s *State) timingLine(now time.Duration) string {
	var b strings.Builder
	var sum time.Duration
	for i, t := range s.Timings {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", t.Name, fmtDuration(t.Took))
		sum += t.Took
	}
	return fmt.Sprintf("timing: started %s after the kernel; %s in %d steps (%s); switch root %s after the kernel",
		fmtDuration(s.started), fmtDuration(sum), len(s.Timings), b.String(), fmtDuration(now))
}

// fmtDuration is d in milliseconds below a second, else in seconds with
// two decimals: short, and the same on every boot.
func fmtDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func mountAPI(_ context.Context, s *State) error {
	mounts := []struct{ src, target, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755"},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
	}
	for _, m := range mounts {
		err := s.Sys.Mount(m.src, s.path(m.target), m.fstype, unix.MS_NOSUID, m.data)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			return err
		}
	}
	return nil
}

func readCmdline(_ context.Context, s *State) error {
	b, err := os.ReadFile(s.path("/proc/cmdline"))
	if err != nil {
		return err
	}
	p, err := layout.ParseBoot(string(b))
	s.Params = p
	return err
}

func recordBoot(_ context.Context, s *State) error {
	info := layout.BootInfo{
		UsrHash:   fmt.Sprintf("%x", s.Params.UsrHash),
		Slot:      s.Slot,
		Disk:      s.Disk,
		UsrPart:   s.UsrPart,
		RootPart:  s.RootPart,
		FirstBoot: s.FirstBoot,
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	p := s.path(layout.BootInfoPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, append(b, '\n'), 0o644)
}

func switchRoot(_ context.Context, s *State) error {
	init := s.Params.Init
	if _, err := os.Stat(s.path(sysroot + init)); err != nil {
		return fmt.Errorf("init %s is not in the image: %w", init, err)
	}
	// Every module load under way ends before systemd takes over.
	s.settleModules()
	s.logf("%s", s.timingLine(sinceKernel()))
	s.logf("switching root to %s (slot %s, %s)", init, s.Slot, s.UsrDevice)
	return s.Sys.SwitchRoot(s.path(sysroot), init, nil)
}
