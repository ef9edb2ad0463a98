//go:build !linux

package luks2

// defaultArgon2MemoryKiB is 1 GiB.
func defaultArgon2MemoryKiB() uint32 { return 1 << 20 }
