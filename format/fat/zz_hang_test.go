package fat

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

func TestZZHang(t *testing.T) {
	seed := tinyImage(t)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		b := bytes.Clone(seed)
		for k := r.IntN(8) + 1; k > 0; k-- {
			switch r.IntN(3) {
			case 0:
				b[r.IntN(len(b))] = byte(r.Uint32())
			case 1:
				b[r.IntN(512)] = byte(r.Uint32())
			case 2:
				off := r.IntN(len(b) - 4)
				copy(b[off:], []byte{0xff, 0xff, 0xff, 0x0f})
			}
		}
		start := time.Now()
		done := make(chan bool)
		go func() {
			fsys, err := Open(bytes.NewReader(b))
			if err == nil {
				walkAll(t, fsys)
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			os.WriteFile("/tmp/hang.bin", b, 0o644)
			t.Fatalf("hang at iteration %d", i)
		}
		if d := time.Since(start); d > 50*time.Millisecond {
			os.WriteFile("/tmp/slow.bin", b, 0o644)
			t.Fatalf("slow %v at %d", d, i)
		}
	}
}
