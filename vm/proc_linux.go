//go:build linux

package vm

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// sysProcAttr makes the kernel kill QEMU when the process that started it
// dies, so that not even a killed test binary leaks a QEMU.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// terminate asks QEMU to quit (it restores the terminal it changed);
// exec.Cmd.WaitDelay kills it if it does not.
func terminate(p *os.Process) error {
	return p.Signal(syscall.SIGTERM)
}

// socketpair returns the two ends of a connected Unix stream socket.
func socketpair() (local, remote *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	return os.NewFile(uintptr(fds[0]), "qmp"), os.NewFile(uintptr(fds[1]), "qmp-qemu"), nil
}

// saveTerminal records the settings of in if it is a terminal and returns a
// function that puts them back (QEMU changes them and cannot restore them
// when it is killed).
func saveTerminal(in io.Reader) func() {
	f, ok := in.(*os.File)
	if !ok {
		return func() {}
	}
	fd := f.Fd()
	var saved syscall.Termios
	if ioctl(fd, syscall.TCGETS, &saved) != nil {
		return func() {}
	}
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
	return func() {
		ioctl(fd, syscall.TCSETS, &saved)
		if errno == 0 {
			syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETFL, flags)
		}
	}
}

func ioctl(fd uintptr, req uint, t *syscall.Termios) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, uintptr(req), uintptr(unsafe.Pointer(t))); errno != 0 {
		return errno
	}
	return nil
}
