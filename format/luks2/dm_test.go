package luks2

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
)

func TestDMTable(t *testing.T) {
	const dataSize = 1<<20 + 1000 // not a whole number of 4096-byte sectors
	for _, tc := range []struct {
		name    string
		sector  int
		flags   []any
		key     int
		want    string // with K for the hex key
		sectors uint64
	}{
		{"default", 512, nil, 64, "0 2049 crypt aes-xts-plain64 K 0 /dev/vda3 O", 2049},
		{"sector4096", 4096, nil, 64, "0 2048 crypt aes-xts-plain64 K 0 /dev/vda3 O 1 sector_size:4096", 2048},
		{"aes128", 512, nil, 32, "0 2049 crypt aes-xts-plain64 K 0 /dev/vda3 O", 2049},
		{"flags", 4096, []any{"no-write-workqueue", "allow-discards", "unknown"}, 64,
			"0 2048 crypt aes-xts-plain64 K 0 /dev/vda3 O 3 allow_discards no_write_workqueue sector_size:4096", 2048},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := newMemDevice(smallDevice)
			key := testKey(40, tc.key)
			o := smallOptions(40)
			o.SectorSize, o.KeyBytes = tc.sector, tc.key
			if err := Format(dev, smallDevice, key, o); err != nil {
				t.Fatal(err)
			}
			if tc.flags != nil {
				var m map[string]any
				jsonUnmarshal(t, jsonText(dev.b, 0), &m)
				obj(m, "config")["flags"] = tc.flags
				js := jsonMarshal(t, m)
				setJSON(t, dev.b, 0, js)
				setJSON(t, dev.b, secondary, js)
			}
			h, err := ReadHeader(dev)
			if err != nil {
				t.Fatal(err)
			}
			if got := h.DataSectors(smallData + dataSize); got != tc.sectors {
				t.Errorf("DataSectors = %d, want %d", got, tc.sectors)
			}
			if got := h.DataSectors(smallData - 512); got != 0 {
				t.Errorf("DataSectors of a device smaller than the header = %d", got)
			}
			got := h.DMTable("/dev/vda3", h.DataSectors(smallData+dataSize), key)
			want := strings.NewReplacer("K", hex.EncodeToString(key), "O", strconv.Itoa(smallData/512)).Replace(tc.want)
			if got != want {
				t.Errorf("DMTable =\n%s\nwant\n%s", got, want)
			}
		})
	}
}
