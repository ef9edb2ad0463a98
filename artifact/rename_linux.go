package artifact

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// replaceDir renames tmp to dir. If dir is a directory that is not empty,
// the two are exchanged atomically (renameat2 RENAME_EXCHANGE), so dir
// always names a complete artifact, and the old one, now at tmp, is removed.
func replaceDir(tmp, dir string) error {
	err := os.Rename(tmp, dir)
	if err == nil || !(errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)) {
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE); err != nil {
		return &os.LinkError{Op: "exchange", Old: tmp, New: dir, Err: err}
	}
	os.RemoveAll(tmp) // the old artifact; a leftover is harmless
	return nil
}
