package diskimage

import (
	"testing"

	"github.com/ingot-linux/ingot/diskimage/rootfs"
	"github.com/ingot-linux/ingot/format/erofs"
)

func TestKernelCompression(t *testing.T) {
	for _, c := range []struct {
		name, kver, configPath, config string
		want                           erofs.Algorithm
	}{
		{"ingot base, no config", "7.2.8", "", "", erofs.Zstd},
		{"debian 12", "6.1.0-18-amd64", "boot/config-6.1.0-18-amd64", "CONFIG_EROFS_FS=m\nCONFIG_EROFS_FS_ZIP=y\n", erofs.LZ4HC},
		{"6.10 without zstd", "6.10.1", "usr/lib/modules/6.10.1/config", "CONFIG_EROFS_FS_ZIP=y\n# CONFIG_EROFS_FS_ZIP_ZSTD is not set\n", erofs.LZ4HC},
		{"6.12 with zstd", "6.12.0", "usr/lib/modules/6.12.0/config", "CONFIG_EROFS_FS_ZIP=y\nCONFIG_EROFS_FS_ZIP_ZSTD=y\n", erofs.Zstd},
		{"no decompressor", "6.1.0", "boot/config-6.1.0", "CONFIG_EROFS_FS=y\n", erofs.None},
		{"old, no config", "5.10.0", "", "", erofs.LZ4HC},
		{"unparsable version", "custom", "", "", erofs.LZ4HC},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := rootfs.New()
			if c.configPath != "" {
				tr.PutFile(c.configPath, []byte(c.config), 0o644, 0)
			}
			if got := kernelCompression(tr, c.kver); got.Algorithm != c.want {
				t.Errorf("%v, want %v", got, erofs.Compression{Algorithm: c.want})
			}
		})
	}
}

func TestUsrCompressionSetting(t *testing.T) {
	for _, c := range []struct {
		setting string
		want    string
		err     bool
	}{{"", "none", false}, {"none", "none", false}, {"lz4hc:4", "lz4hc:4", false}, {"auto", "zstd", false}, {"gzip", "", true}} {
		got, err := usrCompression(c.setting, rootfs.New(), "7.2.8")
		if (err != nil) != c.err || (!c.err && got.String() != c.want) {
			t.Errorf("%q: %v, %v", c.setting, got, err)
		}
		if (compressionProblem(c.setting) != nil) != c.err {
			t.Errorf("%q: check disagrees", c.setting)
		}
	}
}
