package machineconfig

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// BenchmarkApply is ingot-init's work for a changed configuration of 50
// files and 10 users (with keys) into a fresh root, and for an empty one.
func BenchmarkApply(b *testing.B) {
	var doc strings.Builder
	doc.WriteString("version: 1\nhostname: bench\nusers:\n")
	for i := range 10 {
		fmt.Fprintf(&doc, "  - {name: u%d, ssh_authorized_keys: [\"ssh-ed25519 AAAA u%d\"]}\n", i, i)
	}
	doc.WriteString("files:\n")
	for i := range 50 {
		fmt.Fprintf(&doc, "  - {path: /etc/bench/f%d, content: \"%s\"}\n", i, strings.Repeat("x", 512))
	}
	for _, tc := range []struct{ name, doc string }{{"empty", "version: 1\n"}, {"50files10users", doc.String()}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				root := b.TempDir()
				os.MkdirAll(root+"/etc", 0o755)
				os.WriteFile(root+"/etc/passwd", []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
				b.StartTimer()
				c, err := Parse("b.yaml", []byte(tc.doc))
				if err != nil {
					b.Fatal(err)
				}
				e, err := Render(root, Merge(c))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Apply(root, e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
