package oci_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1api "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/artifact/artifacttest"
	"github.com/ingot-linux/ingot/oci"
)

// randomBytes returns n reproducible bytes.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// usrArtifact writes an artifact of version whose /usr is usr.
func usrArtifact(t *testing.T, version string, usr []byte) *artifact.Artifact {
	t.Helper()
	in := artifacttest.InputsFromUsr(t, t.TempDir(), version, usr)
	dir := filepath.Join(t.TempDir(), artifact.DirName(version))
	m, err := artifact.Write(dir, in)
	if err != nil {
		t.Fatal(err)
	}
	return &artifact.Artifact{Dir: dir, Manifest: m}
}

// seedsOf returns an artifact's files as seeds.
func seedsOf(t *testing.T, a *artifact.Artifact) []oci.Seed {
	t.Helper()
	var seeds []oci.Seed
	for _, f := range a.Manifest.Files {
		seeds = append(seeds, oci.Seed{Name: f.Name, Path: filepath.Join(a.Dir, f.Name), Size: f.Size})
	}
	return seeds
}

// deltaVersions are two versions of a 4 MiB /usr: the second has 100 KiB
// changed in the middle and 3 bytes inserted near the start.
func deltaVersions(t *testing.T) (v1, v2 *artifact.Artifact) {
	t.Helper()
	old := randomBytes(1, 4<<20)
	neu := append([]byte{}, old[:300<<10]...)
	neu = append(neu, "new"...)
	neu = append(neu, old[300<<10:]...)
	copy(neu[2<<20:], randomBytes(2, 100<<10))
	neu = neu[:len(old)] // the same size: 3 bytes fall off the end
	return usrArtifact(t, "1.0.0", old), usrArtifact(t, "2.0.0", neu)
}

// TestDeltaPull pulls v2 with v1's files as seeds, through a registry
// that may misbehave, and checks what came over the network.
func TestDeltaPull(t *testing.T) {
	v1, v2 := deltaVersions(t)
	usr, _ := v2.Manifest.File(artifact.RoleUsr)
	corrupt := func(w http.ResponseWriter, r *http.Request, digest string, serve http.Handler) bool {
		if digest != "sha256:"+usr.SHA256 || r.Header.Get("Range") == "" {
			return false
		}
		serve.ServeHTTP(&corruptingWriter{ResponseWriter: w, off: 100}, r)
		return true
	}
	noRanges := func(w http.ResponseWriter, r *http.Request, digest string, serve http.Handler) bool {
		r.Header.Del("Range")
		return false
	}
	for _, tc := range []struct {
		name    string
		hook    blobHook
		noIndex bool
		seeds   []oci.Seed
		// want: the most downloaded; whole: files fetched whole
		maxDownload int64
		whole       string
		mismatch    bool
	}{
		{name: "one region changed", seeds: seedsOf(t, v1), maxDownload: 1 << 20},
		{name: "same version", seeds: seedsOf(t, v2), maxDownload: 64 << 10},
		{name: "no seeds", maxDownload: 5 << 20, whole: "usr.erofs,usr.verity,ingot.efi"},
		{name: "no index", noIndex: true, seeds: seedsOf(t, v1), maxDownload: 5 << 20, whole: "usr.erofs,usr.verity,ingot.efi"},
		{name: "registry serves no ranges", hook: noRanges, seeds: seedsOf(t, v1), maxDownload: 5 << 20, whole: "usr.erofs,usr.verity,ingot.efi"},
		{name: "tampered chunk", hook: corrupt, seeds: seedsOf(t, v1), mismatch: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			host, rl := memRegistry(t, tc.hook)
			ref := host + "/ingot/update:2.0.0"
			if _, err := oci.Push(ctx, v2.Dir, ref, oci.WithChunkIndex(!tc.noIndex)); err != nil {
				t.Fatal(err)
			}
			parent := t.TempDir()
			dst := filepath.Join(parent, "update")
			info, err := oci.Pull(ctx, ref, dst, oci.WithSeeds(tc.seeds...), oci.WithCacheDir(t.TempDir()))
			if tc.mismatch {
				var mm *artifact.MismatchError
				if !errors.As(err, &mm) || mm.Field != "digest" || !strings.Contains(mm.File, "usr.erofs chunk") {
					t.Fatalf("Pull: %v, want a chunk digest mismatch", err)
				}
				if l := leftovers(t, parent); len(l) != 0 {
					t.Errorf("failed pull left %v", l)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sameTree(t, v2.Dir, dst)
			tr := info.Transfer
			if tr.Downloaded > tc.maxDownload || strings.Join(tr.Whole, ",") != tc.whole {
				t.Errorf("transfer %+v, want at most %d bytes, whole %q", tr, tc.maxDownload, tc.whole)
			}
			if tc.whole == "" {
				if ranged := rl.matching("GET", "bytes="); len(ranged) != tr.RangeRequests {
					t.Errorf("%d ranged requests counted, the registry saw %q", tr.RangeRequests, ranged)
				}
				for _, r := range rl.matching("GET", usr.SHA256) {
					if !strings.Contains(r, "bytes=") {
						t.Errorf("whole usr blob fetched: %s", r)
					}
				}
			}
			t.Logf("%s: %+v", tc.name, tr)
		})
	}
}

// TestDeltaResume: chunks fetched by an interrupted pull are kept in the
// cache and not fetched again.
func TestDeltaResume(t *testing.T) {
	ctx := context.Background()
	v1, v2 := deltaVersions(t)
	usr, _ := v2.Manifest.File(artifact.RoleUsr)
	cut, ranges := true, 0
	host, _ := memRegistry(t, func(w http.ResponseWriter, r *http.Request, digest string, serve http.Handler) bool {
		if !cut || digest != "sha256:"+usr.SHA256 || r.Header.Get("Range") == "" {
			return false
		}
		if ranges++; ranges == 1 {
			return false // the first range arrives
		}
		w.WriteHeader(http.StatusNotFound) // then the registry is gone
		return true
	})
	ref := host + "/ingot/update:2.0.0"
	if _, err := oci.Push(ctx, v2.Dir, ref); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	seeds := oci.WithSeeds(seedsOf(t, v1)...)
	before, err := oci.PlanPull(ctx, ref, seeds, oci.WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oci.Pull(ctx, ref, filepath.Join(t.TempDir(), "u"), seeds, oci.WithCacheDir(cache)); err == nil {
		t.Fatal("pull through a failing registry succeeded")
	}
	after, err := oci.PlanPull(ctx, ref, seeds, oci.WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if after.Download >= before.Download {
		t.Fatalf("plan after the interrupted pull: %d bytes, before %d", after.Download, before.Download)
	}
	cut = false
	info, err := oci.Pull(ctx, ref, filepath.Join(t.TempDir(), "u"), seeds, oci.WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if info.Transfer.Cached == 0 || info.Transfer.Downloaded != after.Download {
		t.Errorf("resumed pull %+v, planned %d bytes", info.Transfer, after.Download)
	}
	if _, err := os.Stat(filepath.Join(cache, "chunks")); !os.IsNotExist(err) {
		t.Errorf("chunk cache kept after a complete pull: %v", err)
	}
}

// TestDeltaPlanSameVersion: against the same version, only the indexes
// would be downloaded.
func TestDeltaPlanSameVersion(t *testing.T) {
	ctx := context.Background()
	_, v2 := deltaVersions(t)
	host, _ := memRegistry(t, nil)
	ref := host + "/ingot/update:2.0.0"
	info, err := oci.Push(ctx, v2.Dir, ref)
	if err != nil {
		t.Fatal(err)
	}
	p, err := oci.PlanPull(ctx, ref, oci.WithSeeds(seedsOf(t, v2)...))
	if err != nil {
		t.Fatal(err)
	}
	var indexes int64
	for _, l := range info.ChunkIndexes {
		indexes += l.Size
	}
	for _, f := range p.Files {
		if f.Missing != 0 {
			t.Errorf("%s: %d chunks missing", f.Name, f.Missing)
		}
	}
	if p.Download != indexes {
		t.Errorf("plan downloads %d bytes, the indexes have %d", p.Download, indexes)
	}
}

// TestDeltaForgedIndex: an index that lists another file's chunks (here
// v1's /usr under v2's manifest, every chunk local and valid) assembles
// a file whose digest is not the manifest's: refused, nothing left.
func TestDeltaForgedIndex(t *testing.T) {
	ctx := context.Background()
	v1, v2 := deltaVersions(t)
	host, _ := memRegistry(t, nil)
	p1, err := oci.Push(ctx, v1.Dir, host+"/ingot/update:1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := oci.Push(ctx, v2.Dir, host+"/ingot/update:2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(host + "/ingot/update@" + p2.Digest)
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	var m v1api.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	for i, l := range m.Layers {
		if l.Annotations[oci.AnnotationTitle] == "usr.erofs.caibx" {
			h, _ := v1api.NewHash(p1.ChunkIndexes[0].Digest)
			m.Layers[i].Digest, m.Layers[i].Size = h, p1.ChunkIndexes[0].Size
		}
	}
	raw, _ := json.Marshal(&m)
	ref := host + "/ingot/forged:2.0.0"
	fr, _ := name.ParseReference(ref)
	if err := remote.Put(fr, rawManifest(raw)); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	_, err = oci.Pull(ctx, ref, filepath.Join(parent, "u"), oci.WithSeeds(seedsOf(t, v1)...))
	var mm *artifact.MismatchError
	if !errors.As(err, &mm) || mm.File != artifact.FileUsr || mm.Field != "sha256" {
		t.Fatalf("Pull: %v, want usr.erofs's sha256 mismatch", err)
	}
	if l := leftovers(t, parent); len(l) != 0 {
		t.Errorf("failed pull left %v", l)
	}
}
