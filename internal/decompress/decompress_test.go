package decompress

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

func TestReader(t *testing.T) {
	plain := []byte("ustar and more: the plain stream\n")
	var gz, xzb bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(plain)
	gw.Close()
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(plain)
	xw.Close()
	enc, _ := zstd.NewWriter(nil)
	tests := []struct {
		name string
		in   []byte
	}{
		{"plain", plain},
		{"gzip", gz.Bytes()},
		{"xz", xzb.Bytes()},
		{"zstd", enc.EncodeAll(plain, nil)},
	}
	for _, tc := range tests {
		r, done, err := Reader(bytes.NewReader(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := io.ReadAll(r)
		done()
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s: read %q, %v; want %q", tc.name, got, err, plain)
		}
	}
	if _, _, err := Reader(bytes.NewReader([]byte{0x1f, 0x8b, 0, 0})); err == nil {
		t.Error("a truncated gzip header gave no error")
	}
}
