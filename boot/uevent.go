package boot

import (
	"bytes"
	"context"
	"time"

	"golang.org/x/sys/unix"
)

// uevents is the kernel's uevent socket (what udev listens to): a step
// waiting for a device sleeps until the kernel announces one instead of
// polling, and drivers for devices that appear are loaded at once.
type uevents struct {
	fd  int
	buf []byte
}

// maxUevent bounds one uevent message (the kernel's own limit is 2 KiB of
// environment plus the header).
const maxUevent = 8 << 10

// openUevents subscribes to the kernel's uevents; nil when the socket
// cannot be had (then waiting falls back to a timer).
func openUevents() *uevents {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil
	}
	return &uevents{fd: fd, buf: make([]byte, maxUevent)}
}

// wait blocks until the kernel sends uevents or d passes, then reads every
// message waiting and returns the modaliases they name. ok is false when
// no event came.
func (u *uevents) wait(d time.Duration) (modaliases []string, ok bool) {
	fds := []unix.PollFd{{Fd: int32(u.fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, int(d.Milliseconds())); err != nil || n == 0 {
		return nil, false
	}
	for {
		n, _, err := unix.Recvfrom(u.fd, u.buf, unix.MSG_DONTWAIT)
		if err != nil || n <= 0 {
			return modaliases, true
		}
		if ma := ueventModalias(u.buf[:n]); ma != "" {
			modaliases = append(modaliases, ma)
		}
	}
}

func (u *uevents) close() {
	if u != nil {
		unix.Close(u.fd)
	}
}

// ueventModalias returns the MODALIAS of an "add" uevent from the kernel
// ("add@/devices/…\0ACTION=add\0…MODALIAS=…\0"), "" for any other message.
func ueventModalias(msg []byte) string {
	fields := bytes.Split(msg, []byte{0})
	if len(fields) == 0 || !bytes.HasPrefix(fields[0], []byte("add@")) {
		return ""
	}
	for _, f := range fields[1:] {
		if v, ok := bytes.CutPrefix(f, []byte("MODALIAS=")); ok {
			return string(v)
		}
	}
	return ""
}

// waitDevices waits up to d for the kernel to announce a device (on a
// machine without the uevent socket: sleeps d), loading the drivers the
// initrd carries for the devices that came. It returns ctx's error if ctx
// ends first.
func (s *State) waitDevices(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.events == nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	if modaliases, ok := s.events.wait(d); ok && s.modules != nil {
		if s.modules.loadFor(modaliases) > 0 {
			// A driver that loaded may bring more devices at once.
			for s.modules.loadFor(s.modaliases()) > 0 {
			}
		}
	}
	return ctx.Err()
}
