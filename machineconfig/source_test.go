package machineconfig

import (
	"encoding/base64"
	"testing"
)

func TestCredentialFromDMITable(t *testing.T) {
	bios := "\x00\x04\x00\x00bios\x00\x00"
	oem := func(strs string) string { return "\x0b\x05\x01\x00\x01" + strs + "\x00" }
	end := "\x7f\x04\xff\xff\x00\x00"
	bin := "io.systemd.credential.binary:ingot.config=" + base64.StdEncoding.EncodeToString([]byte("a\nb"))
	tests := []struct {
		name, table, want string
		ok                bool
	}{
		{"text", bios + oem("x\x00io.systemd.credential:ingot.config=v: 1\x00") + end, "v: 1", true},
		{"binary", bios + oem(bin+"\x00") + end, "a\nb", true},
		{"second type 11", bios + oem("other\x00") + oem("io.systemd.credential:ingot.config=2\x00") + end, "2", true},
		{"other name", bios + oem("io.systemd.credential:ingot.configx=1\x00") + end, "", false},
		{"after the end", bios + end + oem("io.systemd.credential:ingot.config=1\x00"), "", false},
		{"no strings", bios + "\x0b\x05\x01\x00\x00\x00\x00" + end, "", false},
		{"truncated", bios + "\x0b\x40\x01\x00", "", false},
		{"no string end", bios + oem("io.systemd.credential:ingot.config=1")[:20], "", false},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := CredentialFromDMITable([]byte(tt.table), "ingot.config")
			if string(got) != tt.want || ok != tt.ok {
				t.Errorf("got %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
