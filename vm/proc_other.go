//go:build !linux

package vm

import (
	"errors"
	"io"
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

func terminate(p *os.Process) error { return p.Kill() }

func socketpair() (local, remote *os.File, err error) {
	return nil, nil, errors.ErrUnsupported
}

func saveTerminal(io.Reader) func() { return func() {} }
