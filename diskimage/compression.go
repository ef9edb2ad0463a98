package diskimage

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strconv"

	"github.com/ingot-linux/ingot/diskimage/rootfs"
	"github.com/ingot-linux/ingot/format/erofs"
)

// CompressionAuto picks /usr's compression from the image's kernel.
const CompressionAuto = "auto"

// parseCompression checks an Options.Compression value.
func parseCompression(s string) (erofs.Compression, error) {
	if s == "" || s == CompressionAuto {
		return erofs.Compression{}, nil
	}
	return erofs.ParseCompression(s)
}

// usrCompression resolves setting ("" is none) for the kernel kver of t.
func usrCompression(setting string, t *rootfs.Tree, kver string) (erofs.Compression, error) {
	if setting != CompressionAuto {
		return parseCompression(setting)
	}
	return kernelCompression(t, kver), nil
}

// kernelCompression is the best algorithm the kernel kver mounts: zstd
// from Linux 6.10, else LZ4. A kernel config in the tree
// (/usr/lib/modules/<kver>/config or /boot/config-<kver>) must then have
// the decompressor built in or as a module; without one the version
// decides.
func kernelCompression(t *rootfs.Tree, kver string) erofs.Compression {
	cfg := kernelConfig(t, kver)
	has := func(opt string) bool { return cfg == nil || cfg[opt] }
	switch {
	case kernelAtLeast(kver, 6, 10) && has("CONFIG_EROFS_FS_ZIP_ZSTD"):
		return erofs.Compression{Algorithm: erofs.Zstd}
	case has("CONFIG_EROFS_FS_ZIP"):
		return erofs.Compression{Algorithm: erofs.LZ4HC}
	}
	return erofs.Compression{}
}

// kernelConfig returns the options set to y or m in kver's config, or nil
// when the tree has none.
func kernelConfig(t *rootfs.Tree, kver string) map[string]bool {
	for _, p := range []string{"usr/lib/modules/" + kver + "/config", "boot/config-" + kver} {
		b, err := t.ReadFile(p)
		if err != nil {
			continue
		}
		set := map[string]bool{}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := bytes.Cut(sc.Bytes(), []byte("=")); ok && (string(v) == "y" || string(v) == "m") {
				set[string(k)] = true
			}
		}
		return set
	}
	return nil
}

var kernelVersionRE = regexp.MustCompile(`^(\d+)\.(\d+)`)

// kernelAtLeast reports whether the release kver ("6.1.0-18-amd64",
// "7.2.8") is major.minor or later.
func kernelAtLeast(kver string, major, minor int) bool {
	m := kernelVersionRE.FindStringSubmatch(kver)
	if m == nil {
		return false
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	return a > major || a == major && b >= minor
}

// compressionProblem is check's message for a bad Options.Compression.
func compressionProblem(s string) error {
	if _, err := parseCompression(s); err != nil {
		return fmt.Errorf("%w (or %s: from the image's kernel)", err, CompressionAuto)
	}
	return nil
}
