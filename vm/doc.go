// Package vm boots ingot disk images in QEMU and drives their serial
// console, for the `ingot vm` command and for end-to-end tests.
//
// A Machine is one QEMU process (x86_64, q35, OVMF firmware, TCG by
// default since this project's machines have no KVM) with the image attached
// as a virtio-blk disk. By default the image is never written: the guest sees
// a qcow2 copy-on-write overlay in a temporary run directory that is grown so
// the first boot has free space, and a fresh copy of the firmware's NVRAM
// template. The serial console is read into an in-memory log that WaitFor and
// Run scan with a cursor, so a test only ever matches output that arrived
// after its previous match. Guest reboots keep the QEMU process (there is no
// -no-reboot), so a test can reboot the guest and wait for the next boot.
//
// Typical use in a test:
//
//	ctx := t.Context()
//	m, err := vm.Start(ctx, vm.Config{
//		Image:  img,
//		Output: vm.LineWriter(func(s string) { t.Log(s) }),
//	})
//	if err != nil {
//		t.Fatal(err)
//	}
//	t.Cleanup(func() { m.Close() })
//	if _, err := m.WaitFor(ctx, "root@ingot:~#", 2*time.Minute); err != nil {
//		t.Fatal(err) // the error ends with the last lines of the console
//	}
//	out, code, err := m.Run(ctx, "cat /etc/os-release", 30*time.Second)
//	if err != nil || code != 0 {
//		t.Fatalf("os-release: status %d, %v\n%s", code, err, out)
//	}
//	m.Send("reboot\n")
//	// The prompt printed after the command above is still ahead of the
//	// cursor: wait for a line that only a boot prints first.
//	m.WaitFor(ctx, "Reached target", 2*time.Minute)
//	m.WaitFor(ctx, "root@ingot:~#", 2*time.Minute)
//	m.Kill()       // power cut
//	m.Restart(ctx) // power on: same disk, same NVRAM
//
// For an interactive session set Interactive and pass os.Stdin as Stdin and
// os.Stdout as Output: QEMU multiplexes its monitor on the console as with
// -nographic (Ctrl-A X quits, Ctrl-A C switches to the monitor) and puts the
// terminal in raw mode itself.
//
// Trusted boot: SecureBoot selects OVMF's Secure Boot firmware (with SMM) and
// an NVRAM in setup mode, so systemd-boot can enroll an image's keys; TPM
// adds a TPM 2.0 emulated by a swtpm process per QEMU process, which stops
// with QEMU (its state is kept next to PersistentVars when that is set).
//
// Cleanup: Close kills QEMU and removes the temporary run directory. QEMU is
// also killed when the context given to Start is done and, on Linux, when
// the process that started it dies.
package vm
