package dm

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func TestRequest(t *testing.T) {
	// _IOWR(0xfd, nr, struct dm_ioctl) as <linux/dm-ioctl.h> defines them.
	for nr, want := range map[uintptr]uintptr{cmdDevCreate: 0xc138fd03, cmdDevRemove: 0xc138fd04, cmdDevSuspend: 0xc138fd06, cmdTableLoad: 0xc138fd09} {
		if got := request(nr); got != want {
			t.Errorf("request(%d) = %#x, want %#x", nr, got, want)
		}
	}
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

func TestTableLoad(t *testing.T) {
	params := []byte("aes-xts-plain64 00ff 0 /dev/loop0 32768")
	specLen := uint64(targetSpecSize+len(params)+1+7) &^ 7
	for _, tc := range []struct {
		name  string
		dev   Device
		flags uint64
	}{
		{"crypt", Device{Name: "root", Secret: true, Target: Target{Type: "crypt", LengthSectors: 2048, Params: params}}, flagSecureData},
		{"verity", Device{Name: "root", ReadOnly: true, Target: Target{Type: "crypt", LengthSectors: 2048, Params: params}}, flagReadOnly},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := tableLoad(tc.dev)
			ne := binary.NativeEndian
			for _, f := range []struct {
				name      string
				got, want uint64
			}{
				{"length", uint64(len(buf)), ioctlSize + specLen},
				{"version", uint64(ne.Uint32(buf[0:])), 4},
				{"data_size", uint64(ne.Uint32(buf[12:])), uint64(len(buf))},
				{"data_start", uint64(ne.Uint32(buf[16:])), ioctlSize},
				{"target_count", uint64(ne.Uint32(buf[20:])), 1},
				{"flags", uint64(ne.Uint32(buf[28:])), tc.flags},
				{"sector_start", ne.Uint64(buf[ioctlSize:]), 0},
				{"target length", ne.Uint64(buf[ioctlSize+8:]), 2048},
				{"next", uint64(ne.Uint32(buf[ioctlSize+20:])), specLen},
			} {
				if f.got != f.want {
					t.Errorf("%s = %d, want %d", f.name, f.got, f.want)
				}
			}
			if cString(buf[offName:offUUID]) != "root" || cString(buf[ioctlSize+24:ioctlSize+40]) != tc.dev.Target.Type ||
				cString(buf[ioctlSize+targetSpecSize:]) != string(params) {
				t.Errorf("name, target type or parameters misplaced: %q", buf)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := Target{Type: "verity", LengthSectors: 8}
	for _, tc := range []struct {
		name string
		dev  Device
	}{
		{"empty name", Device{Target: ok}},
		{"slash", Device{Name: "a/b", Target: ok}},
		{"long name", Device{Name: strings.Repeat("n", nameLen), Target: ok}},
		{"dotdot", Device{Name: "..", Target: ok}},
		{"long uuid", Device{Name: "a", UUID: strings.Repeat("u", uuidLen), Target: ok}},
		{"no type", Device{Name: "a", Target: Target{LengthSectors: 8}}},
		{"empty table", Device{Name: "a", Target: Target{Type: "verity"}}},
	} {
		if err := tc.dev.validate(); err == nil {
			t.Errorf("%s: validate succeeded", tc.name)
		}
	}
	if err := (Device{Name: "usr", Target: ok}).validate(); err != nil {
		t.Errorf("valid device refused: %v", err)
	}
}
