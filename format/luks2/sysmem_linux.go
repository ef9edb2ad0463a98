package luks2

import "golang.org/x/sys/unix"

// defaultArgon2MemoryKiB is 1 GiB, or half of the physical memory if that
// is less (but at least 32 MiB), as cryptsetup limits it.
func defaultArgon2MemoryKiB() uint32 {
	const want = 1 << 20
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return want
	}
	half := uint64(si.Totalram) * uint64(si.Unit) / 2 / 1024
	return uint32(max(min(want, half), 32<<10))
}
