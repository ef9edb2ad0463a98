package builder

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ingot-linux/ingot/builder/toolchain"
)

// benchDistribution is n packages, each build-depending on up to three
// earlier ones, with sources served by up.
func benchDistribution(b *testing.B, up *upstream, n int) fstest.MapFS {
	fsys := fstest.MapFS{}
	var all []string
	for i := range n {
		name := fmt.Sprintf("p%02d", i)
		all = append(all, name)
		url, sum := up.add(name+".tar.gz", tarball(b, name, map[string]string{"x.c": name}))
		var deps []string
		for _, j := range []int{i - 1, i / 2, i / 3} {
			if j >= 0 && j < i && !strings.Contains(strings.Join(deps, ","), fmt.Sprintf("p%02d", j)) {
				deps = append(deps, fmt.Sprintf("p%02d", j))
			}
		}
		fsys[name+"/recipe.yaml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf(
			"name: %s\nversion: '1.0'\nlicence: MIT\nsources: [{url: '%s', sha256: %s}]\nbuild-deps: [%s]\nbuilder: {type: autotools}\n",
			name, url, sum, strings.Join(deps, ", ")))}
	}
	fsys["sets.yaml"] = &fstest.MapFile{Data: []byte("base: [" + strings.Join(all, ", ") + "]\n")}
	return fsys
}

// BenchmarkNoopBuild measures a rebuild when everything is in the store:
// loading and validating the recipes, identifying the toolchain (the real
// stage-0 one when musl-gcc is installed), computing every key and finding
// each entry. The goal is under a second for the base set.
func BenchmarkNoopBuild(b *testing.B) {
	for _, n := range []int{10, 60} {
		b.Run(fmt.Sprintf("packages=%d", n), func(b *testing.B) {
			up := newUpstream(b)
			fsys := benchDistribution(b, up, n)
			var probes []toolchain.Probe
			if _, err := exec.LookPath("musl-gcc"); err != nil {
				b.Logf("musl-gcc missing: identifying only sh")
				probes = []toolchain.Probe{{Name: "sh", Path: "sh"}}
			}
			st := b.TempDir()
			build := func() *Result {
				d, err := LoadDistribution(fsys, "bench")
				if err != nil {
					b.Fatal(err)
				}
				res, err := Build(context.Background(), nil, Options{Distribution: d, Recipes: fsys, Store: st,
					Runner: &fakeRunner{}, Toolchain: probes})
				if err != nil {
					b.Fatal(err)
				}
				return res
			}
			if res := build(); res.Built != n {
				b.Fatalf("first build built %d", res.Built)
			}
			for b.Loop() {
				if res := build(); res.Cached != n {
					b.Fatalf("no-op build: %d cached of %d", res.Cached, n)
				}
			}
		})
	}
}
