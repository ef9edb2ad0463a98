// Package diskimage turns a root filesystem into ingot's bootable disk image:
// /usr as EROFS with a dm-verity tree, a UKI that pins that /usr by its root
// hash, systemd-boot on an ESP, and a GPT with two A/B slots. It needs no root
// privileges and no host tools, and the same inputs give the same bytes.
//
//	res, err := image.Build(ctx, image.Options{
//		RootFS: "rootfs.tar.zst", Version: "1.0.0", OutputDir: "out",
//		Epoch: 1700000000, InitPath: "bin/ingot-init", AgentPath: "bin/ingot",
//	})
//
// Build is NewPlan, which checks and resolves the Options once into an
// immutable Plan (problems are *FieldErrors naming the field), then
// Plan.Build: make the disk, update artifact inputs and SBOM in a work
// directory, then commit them to the output directory.
package diskimage

import (
	"bytes"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/ingot-linux/ingot/diskimage/rootfs"
	"github.com/ingot-linux/ingot/layout"
)

// newestMtime is the newest timestamp in t: the epoch under
// EpochFromContent. The top directory does not count: it is where the
// tree was put (a directory made for an assembled base has the time it
// was made), not part of its content, and counting it made two images
// of the same base differ.
func newestMtime(t *rootfs.Tree) int64 {
	var newest int64
	_ = t.Walk(".", func(e *rootfs.Entry) error {
		if e.Path != "." {
			newest = max(newest, e.MtimeUnix)
		}
		return nil
	})
	return newest
}

// platformCmdline sends the console to both the screen and the first
// serial port (the last console= is /dev/console). systemd.verity=no
// keeps systemd-veritysetup-generator, which also reads usrhash=, from
// setting up /usr a second time on the booted system: ingot-init has done
// it. panic=10 turns a dead PID 1 into a reboot, which boot counting
// needs. pty.legacy_count=0 keeps a kernel built with CONFIG_LEGACY_PTYS
// (the musl base's) from making 256 BSD pseudo-terminal pairs nothing
// uses: 512 of its 780 devices, each coldplugged by udev and a device
// unit in systemd before sysinit.target (docs/boot.md); a kernel without
// legacy ptys (Debian's) ignores the parameter.
var platformCmdline = layout.ParseCmdline("console=tty0 console=ttyS0,115200 systemd.firstboot=off systemd.verity=no panic=10 pty.legacy_count=0")

// kernelCmdline pins /usr by its root hash, followed by the plan's
// fixed part (bootCmdline).
func kernelCmdline(rootHash []byte, rest layout.Cmdline) layout.Cmdline {
	return append(layout.Cmdline{layout.KV(layout.KeyUsrHash, hex.EncodeToString(rootHash))}, rest...)
}

// readStatic reads a binary that must run without a dynamic loader: the
// initrd has none, and /usr/bin/ingot must not depend on the image's libc.
// Its errors are *FieldErrors of field (InitPath, AgentPath).
func readStatic(path, what, field string) ([]byte, error) {
	if path == "" {
		return nil, &FieldError{Field: field, Problem: "no " + what + " binary given"}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &FieldError{Field: field, Value: path, Problem: "read " + what + " binary (build it with make)", Err: err}
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, &FieldError{Field: field, Value: path, Problem: what + " binary is not an ELF executable", Err: err}
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return nil, &FieldError{Field: field, Value: path, Problem: fmt.Sprintf("%s binary is for %v, not x86-64", what, f.Machine)}
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, &FieldError{Field: field, Value: path, Problem: what + " binary is dynamically linked: build it with CGO_ENABLED=0"}
		}
	}
	return b, nil
}
