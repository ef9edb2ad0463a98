package boot

import (
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

// wait blocks until the kernel sends uevents or d passes, then drains
// every message waiting. It is false when none came.
func (u *uevents) wait(d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(u.fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, int(d.Milliseconds())); err != nil || n == 0 {
		return false
	}
	for {
		// An overflowed socket (ENOBUFS) lost messages; the caller looks
		// at sysfs, not at the messages, so none is missed.
		if n, _, err := unix.Recvfrom(u.fd, u.buf, unix.MSG_DONTWAIT); (err != nil && err != unix.ENOBUFS) || n == 0 {
			return true
		}
	}
}

func (u *uevents) close() {
	if u != nil {
		unix.Close(u.fd)
	}
}

// noEventsInterval is how often devices are looked at again where the
// kernel's uevents cannot be had.
const noEventsInterval = 100 * time.Millisecond

// waitDevices waits up to d for the kernel to announce a device (on a
// machine without the uevent socket: noEventsInterval at most), and has the drivers the
// initrd carries matched against the devices that came. It returns ctx's error if ctx
// ends first.
func (s *State) waitDevices(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.events == nil {
		// No uevent socket (a kernel without netlink): look again soon.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(d, noEventsInterval)):
		}
		if s.modules != nil {
			s.modules.kick()
		}
		return nil
	}
	if s.events.wait(d) && s.modules != nil {
		s.modules.kick()
	}
	return ctx.Err()
}
