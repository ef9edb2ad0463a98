package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ingot-linux/ingot/layout"
)

// RescueShell runs /bin/sh from the image's /usr on the console, in a
// throwaway root, when the boot failed after /usr was verified and mounted.
// It returns when the shell exits.
//
// An image with an encrypted root never gets one: the root may already
// be unlocked and the TPM still in the initrd phase, where it releases
// the root's key.
func RescueShell(s *State) error {
	if s.Params.Encrypt != layout.EncryptNone {
		return fmt.Errorf("ingot.debug=shell is refused: the image encrypts its root (ingot.encrypt=%s), and a shell now could read it", s.Params.Encrypt)
	}
	usr := s.path(sysroot + "/usr")
	if _, err := os.Stat(filepath.Join(usr, "bin/sh")); err != nil {
		usr = s.path(usrStage)
	}
	if _, err := os.Stat(filepath.Join(usr, "bin/sh")); err != nil {
		return errors.New("/usr is not mounted, so there is no shell (the failure came before /usr was verified)")
	}
	env := s.path("/run/ingot/rescue")
	if err := s.Sys.Mount("tmpfs", env, "tmpfs", 0, "mode=0755"); err != nil {
		return err
	}
	if err := s.Sys.Mount(usr, filepath.Join(env, "usr"), "", bindFlag, ""); err != nil {
		return err
	}
	for _, m := range []string{"dev", "proc", "sys", "run"} {
		if err := s.Sys.Mount(s.path("/"+m), filepath.Join(env, m), "", bindFlag|recFlag, ""); err != nil {
			return err
		}
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		os.Symlink("usr/"+l, filepath.Join(env, l))
	}
	os.Symlink(layout.FactoryEtc, filepath.Join(env, "etc"))
	s.logf("rescue shell: exit it to reboot")
	return s.Sys.Run(env, []string{"/bin/sh", "-i"}, consoleFile(s))
}
