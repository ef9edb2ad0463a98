package ingottest

import (
	"bytes"
	"strings"
	"testing"
)

func TestSparseRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		img  func() []byte
	}{
		{"empty", func() []byte { return nil }},
		{"zeros", func() []byte { return make([]byte, 4096) }},
		{"scattered", func() []byte {
			b := make([]byte, 1<<20)
			copy(b[0:], "MZ")
			b[511] = 0xaa
			copy(b[3*SectorSize+0x1f0:], "|pipe| and\nnewline, a full line")
			b[len(b)-1] = 1
			return b
		}},
		{"odd-size", func() []byte {
			b := bytes.Repeat([]byte{0xff}, 2*SectorSize+21)
			clear(b[SectorSize : 2*SectorSize])
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := tc.img()
			text := EncodeSparse(img)
			got, err := DecodeSparse(text)
			if err != nil {
				t.Fatalf("DecodeSparse: %v\n%s", err, text)
			}
			if d := SectorDiff(img, got, 3); d != "" || len(got) != len(img) {
				t.Errorf("round trip differs:\n%s\nencoded:\n%s", d, text)
			}
		})
	}
}

func TestEncodeSparse(t *testing.T) {
	img := make([]byte, 3*SectorSize)
	copy(img[SectorSize+0x10:], "ingot\x00\x01")
	want := `ingot sparse image v1
size 1536
sector 1
010  69 6e 67 6f 74 00 01 00  00 00 00 00 00 00 00 00  |ingot...........|
`
	if got := string(EncodeSparse(img)); got != want {
		t.Errorf("EncodeSparse:\n%s\nwant\n%s", got, want)
	}
}

func TestDecodeSparseErrors(t *testing.T) {
	for _, text := range []string{
		"",
		"ingot sparse image v2\nsize 0\n",
		"ingot sparse image v1\nsize -1\n",
		"ingot sparse image v1\nsize 512\n000  01\n",                                          // bytes before a sector
		"ingot sparse image v1\nsize 512\nsector 1\n",                                         // past the end
		"ingot sparse image v1\nsize 1024\nsector 1\nsector 0\n",                              // descending
		"ingot sparse image v1\nsize 512\nsector 0\n008  01\n",                                // unaligned line
		"ingot sparse image v1\nsize 512\nsector 0\n200  01\n",                                // offset out of the sector
		"ingot sparse image v1\nsize 512\nsector 0\n1f0  " + strings.Repeat("01 ", 17) + "\n", // too long
		"ingot sparse image v1\nsize 20\nsector 0\n010  01 02 03 04 05\n",                     // past the size
		"ingot sparse image v1\nsize 512\nsector 0\n000  zz\n",
	} {
		if img, err := DecodeSparse([]byte(text)); err == nil {
			t.Errorf("DecodeSparse(%q) = %d bytes, want an error", text, len(img))
		}
	}
}

func TestSectorDiff(t *testing.T) {
	want := make([]byte, 4*SectorSize)
	got := bytes.Clone(want)
	if d := SectorDiff(want, got, 3); d != "" {
		t.Errorf("equal images: %q", d)
	}
	got[0x205] = 'x'
	got[3*SectorSize] = 1
	d := SectorDiff(want, got[:len(got)-1], 1)
	wantDiff := `size: want 2048 bytes, got 2047
2 of 4 sectors differ; the first 1:
sector 1 (offset 0x200):
  00000200 want 00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
           got  00 00 00 00 00 78 00 00  00 00 00 00 00 00 00 00  |.....x..........|
                               ^^
`
	if d != wantDiff {
		t.Errorf("SectorDiff:\n%s\nwant\n%s", d, wantDiff)
	}
}
