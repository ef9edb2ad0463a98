package agent

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ingot-linux/ingot/layout"
)

// Health checks that the running system is the one its boot entry
// describes: the kernel command line names the usrhash that ingot-init set
// up, /usr is the read-only EROFS on the dm-verity device "usr", the root
// file system is writable, and /usr says which version it is. It is
// ingot's own health check, run before boot-complete.target; a boot that
// fails it is not blessed.
func (a *Agent) Health() error {
	info, err := a.bootInfo()
	if err != nil {
		return err
	}
	cmdline, err := os.ReadFile(a.path("/proc/cmdline"))
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	b, err := layout.ParseBoot(string(cmdline))
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	if h := hex.EncodeToString(b.UsrHash); h != info.UsrHash {
		return fmt.Errorf("health: the kernel command line has usrhash=%s, but ingot-init set up /usr with %s", h, info.UsrHash)
	}
	mounts, err := readMountInfo(a.path("/proc/self/mountinfo"))
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	stack := mounts["/usr"]
	var usr mount
	if len(stack) > 0 {
		usr = stack[0]
	}
	switch {
	case len(stack) == 0:
		return errors.New("health: /usr is not mounted")
	case usr.fstype != "erofs":
		return fmt.Errorf("health: /usr is %s, want erofs", usr.fstype)
	case !usr.readOnly:
		return errors.New("health: /usr is mounted read-write")
	case usr.source != "/dev/mapper/usr":
		return fmt.Errorf("health: /usr comes from %s, want the dm-verity device /dev/mapper/usr", usr.source)
	}
	// Above it, only systemd-sysext's read-only overlay of the verified
	// extensions.
	for _, m := range stack[1:] {
		if m.fstype != "overlay" || !m.readOnly {
			return fmt.Errorf("health: /usr is covered by a %s mount from %s (read-only %v); only systemd-sysext's read-only overlay may be", m.fstype, m.source, m.readOnly)
		}
	}
	if root := mounts["/"]; len(root) == 0 || root[len(root)-1].readOnly {
		return errors.New("health: the root file system is not mounted read-write")
	}
	if v := osReleaseField(a.path("/usr/lib/os-release"), "IMAGE_VERSION"); v == "" {
		return errors.New("health: /usr/lib/os-release has no IMAGE_VERSION")
	}
	return nil
}

type mount struct {
	source, fstype string
	readOnly       bool
}

// readMountInfo parses /proc/self/mountinfo into the mounts of each mount
// point, bottom first.
func readMountInfo(path string) (map[string][]mount, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	mounts := map[string][]mount{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 2 {
			return nil, fmt.Errorf("%s: malformed line %q", path, sc.Text())
		}
		ro := false
		for _, o := range strings.Split(f[5], ",") {
			ro = ro || o == "ro"
		}
		p := unescapeMount(f[4])
		mounts[p] = append(mounts[p], mount{source: unescapeMount(g[1]), fstype: g[0], readOnly: ro})
	}
	return mounts, sc.Err()
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var c byte
			okOct := true
			for _, d := range []byte(s[i+1 : i+4]) {
				if d < '0' || d > '7' {
					okOct = false
					break
				}
				c = c*8 + d - '0'
			}
			if okOct {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
