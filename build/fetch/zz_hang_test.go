package fetch

import (
	"archive/tar"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestZZHang(t *testing.T) {
	seeds := [][]byte{
		makeTar(t, []entry{{name: "x/", typ: tar.TypeDir}, {name: "x/a", body: "a"}, {name: "x/l", typ: tar.TypeSymlink, link: "a"}}),
		makeTar(t, []entry{{name: "l", typ: tar.TypeSymlink, link: ".."}, {name: "l/escape", body: "x"}}),
		makeTar(t, []entry{{name: "h", typ: tar.TypeLink, link: "../h"}}),
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 3000; i++ {
		d := append([]byte{}, seeds[rng.Intn(3)]...)
		for k := 0; k < 1+rng.Intn(4); k++ {
			d[rng.Intn(len(d))] = byte(rng.Intn(256))
		}
		dir := t.TempDir()
		a := filepath.Join(dir, "archive")
		os.WriteFile(a, d, 0o644)
		done := make(chan struct{})
		go func() { Unpack(a, filepath.Join(dir, "src")); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			os.WriteFile("/tmp/hang.tar", d, 0o644)
			t.Fatalf("hang at %d", i)
		}
	}
}
