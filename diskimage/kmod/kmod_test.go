package kmod

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

type mapFS map[string]string

func (m mapFS) ReadFile(name string) ([]byte, error) {
	if v, ok := m[name]; ok {
		return []byte(v), nil
	}
	return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
}

func TestResolve(t *testing.T) {
	d := "usr/lib/modules/6.1/"
	fsys := mapFS{
		d + "modules.dep": "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko\n" +
			"kernel/fs/jbd2/jbd2.ko:\nkernel/lib/crc16.ko:\nkernel/crypto/crc32c_generic.ko:\n",
		d + "modules.builtin":        "kernel/drivers/block/virtio_blk.ko\n",
		d + "modules.softdep":        "softdep ext4 pre: crypto-crc32c\n",
		d + "modules.alias":          "alias crypto-crc32c crc32c_generic\n",
		d + "kernel/fs/ext4/ext4.ko": "ext4", d + "kernel/fs/jbd2/jbd2.ko": "jbd2",
		d + "kernel/lib/crc16.ko": "crc16", d + "kernel/crypto/crc32c_generic.ko": "crc32c",
	}
	set, err := Resolve(fsys, "6.1", []string{"ext4", "virtio-blk", "nvme"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range set.Modules {
		names = append(names, m.Name)
	}
	if got := strings.Join(names, " "); got != "crc32c_generic jbd2 crc16 ext4" {
		t.Errorf("load order %q", got)
	}
	if strings.Join(set.Builtin, ",") != "virtio_blk" || strings.Join(set.Missing, ",") != "nvme" {
		t.Errorf("builtin %v missing %v", set.Builtin, set.Missing)
	}
	// Device drivers carry their bus aliases; what was asked for is marked.
	drv := mapFS{
		d + "modules.dep":    "kernel/nvme.ko: kernel/nvme-core.ko\nkernel/nvme-core.ko:\n",
		d + "modules.alias":  "alias pci:v*d*sv*sd*bc01sc08i02* nvme\nalias nvme-fabrics nvme_core\nalias fs-ext4 ext4\n",
		d + "kernel/nvme.ko": "nvme", d + "kernel/nvme-core.ko": "core",
	}
	set, err = Resolve(drv, "6.1", []string{"nvme"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range set.Modules {
		got = append(got, fmt.Sprintf("%s %v %v %v", m.Name, m.Requested, m.DeviceAliases, m.Deps))
	}
	if want := "nvme_core false [] [] | nvme true [pci:v*d*sv*sd*bc01sc08i02*] [nvme_core]"; strings.Join(got, " | ") != want {
		t.Errorf("driver modules: %s", got)
	}
	// A kernel without loadable modules: nothing to load, not an error.
	if set, err := Resolve(mapFS{}, "6.1", []string{"ext4"}); err != nil || len(set.Modules) != 0 {
		t.Errorf("modules-free kernel: %+v, %v", set, err)
	}
	// Modules installed but no modules.dep: a broken tree.
	if _, err := Resolve(mapFS{d + "modules.order": "kernel/fs/ext4/ext4.ko\n"}, "6.1", nil); err == nil || !strings.Contains(err.Error(), "depmod") {
		t.Errorf("modules without modules.dep: %v", err)
	}
	cyc := mapFS{d + "modules.dep": "a.ko: b.ko\nb.ko: a.ko\n", d + "a.ko": "", d + "b.ko": ""}
	if _, err := Resolve(cyc, "6.1", []string{"a"}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: %v", err)
	}
}

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{"dm-verity": "dm_verity", "kernel/x/dm-verity.ko.xz": "dm_verity", "ext4.ko.zst": "ext4"} {
		if got := NormalizeName(in); got != want {
			t.Errorf("NormalizeName(%q) = %q", in, got)
		}
	}
}
