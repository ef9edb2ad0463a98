package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ingot-linux/ingot/internal/fileutil"
)

// diskSize returns the size the boot disk is given for an image of
// imageSize bytes when DiskSizeBytes is want, or 0 when the disk is to be
// left as it is.
func diskSize(imageSize, want int64, persist bool) (int64, error) {
	if want < 0 {
		return 0, fmt.Errorf("disk size %d is negative", want)
	}
	if want == 0 {
		if persist {
			return 0, nil
		}
		want = imageSize + DefaultExtraDiskBytes
	}
	want = (want + 511) &^ 511
	if want < imageSize {
		return 0, fmt.Errorf("disk size %d is smaller than the image (%d bytes): disks are never shrunk", want, imageSize)
	}
	return want, nil
}

// qcow2Magic starts every qcow2 file.
var qcow2Magic = []byte{'Q', 'F', 'I', 0xfb}

// imageSize checks that path is a raw image and returns its size.
func imageSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open image: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat image: %w", err)
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("image %s is not a regular file", path)
	}
	magic := make([]byte, len(qcow2Magic))
	if _, err := io.ReadFull(f, magic); err == nil && bytes.Equal(magic, qcow2Magic) {
		return 0, fmt.Errorf("image %s is qcow2: only raw images are supported", path)
	}
	return st.Size(), nil
}

// prepareDisk creates the overlay, or grows the persistent image, for the
// resolved config c.
func prepareDisk(ctx context.Context, c Config) error {
	if c.Image == "" {
		return nil
	}
	size, err := imageSize(c.Image)
	if err != nil {
		return err
	}
	want, err := diskSize(size, c.DiskSizeBytes, c.Persist)
	if err != nil {
		return err
	}
	if c.Persist {
		if want > size {
			if err := os.Truncate(c.Image, want); err != nil {
				return fmt.Errorf("grow image: %w", err)
			}
		}
		return nil
	}
	overlay, _ := c.diskPath()
	cmd := exec.CommandContext(ctx, c.QEMUImg, "create", "-q", "-f", "qcow2",
		"-F", "raw", "-b", c.Image, overlay, strconv.FormatInt(want, 10))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("create overlay: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// prepareWriteLog empties the write log, which QEMU's file driver needs to
// exist.
func prepareWriteLog(c Config) error {
	if c.WriteLog == "" {
		return nil
	}
	return os.WriteFile(c.WriteLog, nil, 0o644)
}

// prepareVars puts the NVRAM file in place for the resolved config c.
func prepareVars(c Config) error {
	dst := c.varsPath()
	if dst == "" {
		return nil
	}
	if c.PersistentVars != "" {
		if _, err := os.Stat(dst); err == nil {
			return nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("nvram: %w", err)
		}
	}
	if err := copyFile(c.varsTemplate(), dst); err != nil {
		return fmt.Errorf("nvram: %w", err)
	}
	return nil
}

func copyFile(src, dst string) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	return fileutil.CopyTo(out, src)
}

// findFirmware returns the first candidate that exists.
func findFirmware(candidates []string) (string, error) {
	for _, p := range candidates {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("no OVMF firmware found (looked for %s): install the Debian package ovmf or set Config.Firmware",
		strings.Join(candidates, ", "))
}

// resolve returns c with defaults filled in from the file system: binaries
// from PATH, firmware, absolute paths. It does not create anything.
func (c Config) resolve() (Config, error) {
	if err := c.Validate(); err != nil {
		return c, err
	}
	if c.MemoryMiB == 0 {
		c.MemoryMiB = DefaultMemoryMiB
	}
	if c.CPUs == 0 {
		c.CPUs = DefaultCPUs
	}
	if c.Accel == "" {
		c.Accel = DefaultAccel
	}
	if c.HangRestart == 0 {
		c.HangRestart = DefaultHangRestart
	}
	if c.Accel == "kvm" {
		f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
		if err != nil {
			return c, fmt.Errorf("accelerator kvm: /dev/kvm is not usable (use tcg): %w", err)
		}
		f.Close()
	}

	var err error
	if c.QEMU == "" {
		c.QEMU = DefaultQEMU
	}
	if c.QEMU, err = exec.LookPath(c.QEMU); err != nil {
		return c, fmt.Errorf("qemu: %w (install the Debian package qemu-system-x86)", err)
	}
	if c.UserNet != nil && len(c.UserNet.GuestForwards) > 0 {
		if _, err := exec.LookPath("socat"); err != nil {
			return c, fmt.Errorf("guest forwards: %w (install the Debian package socat)", err)
		}
	}
	if c.Image != "" && !c.Persist {
		if c.QEMUImg == "" {
			c.QEMUImg = DefaultQEMUImg
		}
		if c.QEMUImg, err = exec.LookPath(c.QEMUImg); err != nil {
			return c, fmt.Errorf("qemu-img: %w (install the Debian package qemu-utils)", err)
		}
	}

	if c.Firmware == "" {
		if c.Firmware, err = findFirmware(firmwareCandidates(c.SecureBoot)); err != nil {
			return c, err
		}
	} else if _, err := os.Stat(c.Firmware); err != nil {
		return c, fmt.Errorf("firmware: %w", err)
	}
	if tmpl := c.varsTemplate(); tmpl != "" && !exists(c.PersistentVars) {
		if _, err := os.Stat(tmpl); err != nil {
			return c, fmt.Errorf("nvram template for firmware %s: %w (set Config.FirmwareVars)", c.Firmware, err)
		}
	}

	if c.TPM {
		if c.SWTPM == "" {
			c.SWTPM = DefaultSWTPM
		}
		if c.SWTPM, err = exec.LookPath(c.SWTPM); err != nil {
			return c, fmt.Errorf("tpm: %w (install the Debian package swtpm)", err)
		}
	}

	if c.WriteLog != "" && c.Image == "" {
		return c, errors.New("a write log needs a boot disk (Image)")
	}
	for _, p := range []*string{&c.Image, &c.Firmware, &c.FirmwareVars, &c.PersistentVars, &c.RunDir, &c.LogFile, &c.TPMState, &c.WriteLog} {
		if *p == "" {
			continue
		}
		if *p, err = filepath.Abs(*p); err != nil {
			return c, err
		}
	}
	c.ExtraDisks = append([]string(nil), c.ExtraDisks...)
	for i, d := range c.ExtraDisks {
		if _, err := os.Stat(d); err != nil {
			return c, fmt.Errorf("extra disk: %w", err)
		}
		if c.ExtraDisks[i], err = filepath.Abs(d); err != nil {
			return c, err
		}
	}
	return c, nil
}

func exists(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return err == nil
}
