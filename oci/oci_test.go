package oci_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/oci"
)

// roundTrip pushes an artifact to the registry at host, inspects it, pulls
// it by tag and by digest, and checks what the registry stored.
func roundTrip(t *testing.T, host string) {
	ctx := context.Background()
	a := writeArtifact(t, "1.0.0", "round trip", artifact.ArchX86_64)
	ref := "oci://" + host + "/ingot/update:1.0.0"

	var last, total int64
	calls := 0
	pushed, err := oci.Push(ctx, a.Dir, ref, oci.WithProgress(func(done, tot int64) {
		calls++
		if done < last {
			t.Errorf("progress went back from %d to %d", last, done)
		}
		last, total = done, tot
	}))
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || last != total || total == 0 {
		t.Errorf("push progress: %d calls, ended at %d of %d", calls, last, total)
	}
	if pushed.Ref != host+"/ingot/update:1.0.0" || !strings.HasPrefix(pushed.Digest, "sha256:") {
		t.Errorf("Push returned %+v", pushed)
	}

	// The stored manifest is an OCI artifact as documented.
	r, err := name.ParseReference(host + "/ingot/update@" + pushed.Digest)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.ArtifactType != oci.ArtifactType ||
		m.Config.MediaType != oci.ConfigMediaType || m.Annotations[oci.AnnotationVersion] != "1.0.0" {
		t.Errorf("manifest: %s", desc.Manifest)
	}
	var got []string
	for _, l := range m.Layers {
		got = append(got, string(l.MediaType)+" "+l.Annotations[oci.AnnotationTitle])
	}
	want := "application/vnd.ingot.usr.erofs usr.erofs,application/vnd.ingot.usr.verity usr.verity,application/vnd.ingot.uki ingot.efi," +
		"application/vnd.ingot.chunk-index.caibx usr.erofs.caibx,application/vnd.ingot.chunk-index.caibx usr.verity.caibx,application/vnd.ingot.chunk-index.caibx ingot.efi.caibx"
	if strings.Join(got, ",") != want {
		t.Errorf("layers %q, want %q", got, want)
	}

	info, err := oci.Inspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if info.Digest != pushed.Digest || info.Manifest.UsrHash != a.Manifest.UsrHash || len(info.Layers) != 3 {
		t.Errorf("Inspect = %+v, pushed %+v", info, pushed)
	}

	for _, pullRef := range []string{ref, host + "/ingot/update@" + pushed.Digest} {
		out := filepath.Join(t.TempDir(), "pulled")
		var pdone, ptotal int64
		pulled, err := oci.Pull(ctx, pullRef, out, oci.WithProgress(func(d, tot int64) { pdone, ptotal = d, tot }))
		if err != nil {
			t.Fatal(err)
		}
		if pulled.Digest != pushed.Digest {
			t.Errorf("pulled %s, pushed %s", pulled.Digest, pushed.Digest)
		}
		if pdone != ptotal || ptotal == 0 {
			t.Errorf("pull progress ended at %d of %d", pdone, ptotal)
		}
		sameTree(t, a.Dir, out)
		if l := leftovers(t, filepath.Dir(out)); len(l) != 1 {
			t.Errorf("pull left %v", l)
		}
	}

	// Pushing the same artifact again gives the same digest.
	again, err := oci.Push(ctx, a.Dir, host+"/ingot/update:again")
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != pushed.Digest {
		t.Errorf("second push has digest %s, first %s", again.Digest, pushed.Digest)
	}
}

func TestRoundTripMemoryRegistry(t *testing.T) {
	host, _ := memRegistry(t, nil)
	roundTrip(t, host)
}

func TestRoundTripDistribution(t *testing.T) {
	host, _ := dockerRegistry(t)
	roundTrip(t, host)
}

// TestPullTamperedBlob: a registry that serves a changed blob is caught, and
// nothing is left behind.
func TestPullTamperedBlob(t *testing.T) {
	ctx := context.Background()
	a := writeArtifact(t, "1.0", "tamper", artifact.ArchX86_64)
	usr, _ := a.Manifest.File(artifact.RoleUsr)
	host, _ := memRegistry(t, func(w http.ResponseWriter, r *http.Request, digest string, serve http.Handler) bool {
		if digest != "sha256:"+usr.SHA256 {
			return false
		}
		serve.ServeHTTP(&corruptingWriter{ResponseWriter: w, off: 1234}, r)
		return true
	})
	ref := host + "/ingot/update:1.0"
	if _, err := oci.Push(ctx, a.Dir, ref); err != nil {
		t.Fatal(err)
	}
	parent, cache := t.TempDir(), t.TempDir()
	_, err := oci.Pull(ctx, ref, filepath.Join(parent, "update"), oci.WithCacheDir(cache))
	checkDigestMismatch(t, err, artifact.FileUsr)
	if l := leftovers(t, parent); len(l) != 0 {
		t.Errorf("failed pull left %v", l)
	}
	if l := leftovers(t, filepath.Join(cache, "sha256")); len(l) != 0 {
		t.Errorf("failed pull kept the corrupt blob in the cache: %v", l)
	}
}

// TestPullTamperedBlobDistribution changes a blob in the real registry's
// storage.
func TestPullTamperedBlobDistribution(t *testing.T) {
	ctx := context.Background()
	host, root := dockerRegistry(t)
	a := writeArtifact(t, "1.0", "tamper on disk", artifact.ArchX86_64)
	ref := host + "/ingot/update:1.0"
	if _, err := oci.Push(ctx, a.Dir, ref); err != nil {
		t.Fatal(err)
	}
	uki, _ := a.Manifest.File(artifact.RoleUKI)
	data := filepath.Join(root, "docker/registry/v2/blobs/sha256", uki.SHA256[:2], uki.SHA256, "data")
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	_, err = oci.Pull(ctx, ref, filepath.Join(parent, "update"))
	checkDigestMismatch(t, err, artifact.FileUKI)
	if l := leftovers(t, parent); len(l) != 0 {
		t.Errorf("failed pull left %v", l)
	}
}

func checkDigestMismatch(t *testing.T, err error, file string) {
	t.Helper()
	var mm *artifact.MismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("Pull: %v, want a *artifact.MismatchError", err)
	}
	if mm.File != file || mm.Field != "digest" {
		t.Errorf("mismatch %+v, want the digest of %s", mm, file)
	}
}

// TestPullResume: an interrupted download is resumed with a range request,
// within one Pull and, with a cache directory, by the next Pull.
func TestPullResume(t *testing.T) {
	ctx := context.Background()
	a := writeArtifact(t, "1.0", "resume", artifact.ArchX86_64)
	usr, _ := a.Manifest.File(artifact.RoleUsr)
	var failures atomic.Int32 // how many more downloads of the usr blob to cut short
	host, rl := memRegistry(t, func(w http.ResponseWriter, r *http.Request, digest string, serve http.Handler) bool {
		if digest != "sha256:"+usr.SHA256 {
			return false
		}
		if failures.Add(-1) < 0 {
			failures.Store(0)
			return false
		}
		serve.ServeHTTP(&truncatingWriter{ResponseWriter: w, limit: 4096}, r)
		return true
	})
	ref := host + "/ingot/update:1.0"
	if _, err := oci.Push(ctx, a.Dir, ref); err != nil {
		t.Fatal(err)
	}

	t.Run("within one pull", func(t *testing.T) {
		failures.Store(1)
		out := filepath.Join(t.TempDir(), "u")
		if _, err := oci.Pull(ctx, ref, out); err != nil {
			t.Fatal(err)
		}
		sameTree(t, a.Dir, out)
		if got := rl.matching("GET", usr.SHA256, "bytes=4096-"); len(got) != 1 {
			t.Errorf("requests for the rest of the blob: %q", got)
		}
	})

	t.Run("across pulls", func(t *testing.T) {
		failures.Store(3) // every attempt of the first pull
		parent, cache := t.TempDir(), t.TempDir()
		out := filepath.Join(parent, "u")
		if _, err := oci.Pull(ctx, ref, out, oci.WithCacheDir(cache)); err == nil {
			t.Fatal("first pull succeeded")
		}
		if l := leftovers(t, parent); len(l) != 0 {
			t.Errorf("failed pull left %v", l)
		}
		part := filepath.Join(cache, "sha256", usr.SHA256+".partial")
		fi, err := os.Stat(part)
		if err != nil {
			t.Fatalf("no partial blob in the cache: %v", err)
		}
		if fi.Size() != 3*4096 {
			t.Errorf("partial blob has %d bytes, want %d", fi.Size(), 3*4096)
		}
		var first int64 = -1
		if _, err := oci.Pull(ctx, ref, out, oci.WithCacheDir(cache), oci.WithProgress(func(done, _ int64) {
			if first < 0 {
				first = done
			}
		})); err != nil {
			t.Fatal(err)
		}
		sameTree(t, a.Dir, out)
		if got := rl.matching("GET", usr.SHA256, "bytes=12288-"); len(got) != 1 {
			t.Errorf("requests for the rest of the blob: %q", got)
		}
		if first != 3*4096 {
			t.Errorf("progress started at %d, want the %d bytes already there", first, 3*4096)
		}
		if _, err := os.Stat(part); !os.IsNotExist(err) {
			t.Errorf("partial blob still in the cache: %v", err)
		}
	})
}

func TestPullWrongArch(t *testing.T) {
	ctx := context.Background()
	a := writeArtifact(t, "1.0", "arm", "arm64")
	host, rl := memRegistry(t, nil)
	ref := host + "/ingot/update:1.0"
	if _, err := oci.Push(ctx, a.Dir, ref); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	_, err := oci.Pull(ctx, ref, filepath.Join(parent, "u"))
	var ae *artifact.ArchError
	if !errors.As(err, &ae) || ae.Want != "x86-64" || ae.Got != "arm64" {
		t.Fatalf("Pull: %v, want an ArchError for arm64", err)
	}
	usr, _ := a.Manifest.File(artifact.RoleUsr)
	if got := rl.matching("GET", usr.SHA256); len(got) != 0 {
		t.Errorf("pull of the wrong architecture downloaded the usr image: %q", got)
	}
	if l := leftovers(t, parent); len(l) != 0 {
		t.Errorf("failed pull left %v", l)
	}
	if _, err := oci.Pull(ctx, ref, filepath.Join(parent, "u"), oci.WithArch("arm64")); err != nil {
		t.Errorf("pull with WithArch(arm64): %v", err)
	}
}

// TestNotAnArtifact: an ordinary container image is refused.
func TestNotAnArtifact(t *testing.T) {
	host, _ := memRegistry(t, nil)
	img, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(host + "/some/image:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	if _, err := oci.Inspect(context.Background(), r.String()); err == nil || !strings.Contains(err.Error(), "not an ingot artifact") {
		t.Errorf("Inspect of a container image: %v", err)
	}
	parent := t.TempDir()
	if _, err := oci.Pull(context.Background(), r.String(), filepath.Join(parent, "u")); err == nil {
		t.Error("Pull of a container image succeeded")
	}
	if l := leftovers(t, parent); len(l) != 0 {
		t.Errorf("failed pull left %v", l)
	}
}

// TestForgedManifest: layers that do not match the config's files are
// refused before anything is downloaded.
func TestForgedManifest(t *testing.T) {
	ctx := context.Background()
	a := writeArtifact(t, "1.0", "forged", artifact.ArchX86_64)
	host, _ := memRegistry(t, nil)
	pushed, err := oci.Push(ctx, a.Dir, host+"/ingot/update:1.0")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(host + "/ingot/update@" + pushed.Digest)
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(m *v1.Manifest)
		want   string
	}{
		{"titles swapped", func(m *v1.Manifest) {
			m.Layers[0].Annotations, m.Layers[1].Annotations = m.Layers[1].Annotations, m.Layers[0].Annotations
		}, "media type"},
		{"layer missing", func(m *v1.Manifest) { m.Layers = m.Layers[:2] }, "2 layers for 3 files"},
		{"unknown title", func(m *v1.Manifest) { m.Layers[2].Annotations[oci.AnnotationTitle] = "../x" }, "no file of the artifact"},
		{"other artifact type", func(m *v1.Manifest) { m.ArtifactType = "application/x-other" }, "not an ingot artifact"},
		{"digest of another blob", func(m *v1.Manifest) { m.Layers[0].Digest = m.Layers[1].Digest }, "digest"},
		// Layers 3–5 are the chunk indexes of usr.erofs, usr.verity, ingot.efi.
		{"index of no file", func(m *v1.Manifest) { m.Layers[3].Annotations[oci.AnnotationTitle] = "x.caibx" }, "indexes no file"},
		{"two indexes of one file", func(m *v1.Manifest) { m.Layers[4].Annotations[oci.AnnotationTitle] = "usr.erofs.caibx" }, "two layers are titled"},
		{"index larger than its file allows", func(m *v1.Manifest) { m.Layers[5].Size = 1 << 40 }, "more than an index"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m v1.Manifest
			if err := json.Unmarshal(desc.Manifest, &m); err != nil {
				t.Fatal(err)
			}
			tt.change(&m)
			raw, _ := json.Marshal(&m)
			ref := host + "/ingot/forged:" + string(rune('a'+i))
			fr, _ := name.ParseReference(ref)
			if err := remote.Put(fr, rawManifest(raw)); err != nil {
				t.Fatal(err)
			}
			parent := t.TempDir()
			_, err := oci.Pull(ctx, ref, filepath.Join(parent, "u"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Pull: %v, want an error mentioning %q", err, tt.want)
			}
			if l := leftovers(t, parent); len(l) != 0 {
				t.Errorf("failed pull left %v", l)
			}
		})
	}
}

// rawManifest is an OCI manifest to put as is.
type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func TestPushRefusesBrokenArtifact(t *testing.T) {
	a := writeArtifact(t, "1.0", "broken", artifact.ArchX86_64)
	if err := os.WriteFile(a.Path(artifact.RoleUKI), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	host, rl := memRegistry(t, nil)
	_, err := oci.Push(context.Background(), a.Dir, host+"/ingot/update:1.0")
	var mm *artifact.MismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("Push of a broken artifact: %v", err)
	}
	if got := rl.matching(""); len(got) != 0 {
		t.Errorf("Push of a broken artifact contacted the registry: %q", got)
	}
}

func TestBadReferences(t *testing.T) {
	a := writeArtifact(t, "1.0", "refs", artifact.ArchX86_64)
	for _, ref := range []string{
		"ingot/update:1.0",            // no registry
		"127.0.0.1:1/ingot/update",    // no tag
		"https://127.0.0.1:1/ingot:1", // other scheme
		"oci://127.0.0.1:1/Ingot:1",   // upper case repository
	} {
		if _, err := oci.Push(context.Background(), a.Dir, ref); err == nil || !strings.Contains(err.Error(), "reference") {
			t.Errorf("Push to %q: %v, want a reference error", ref, err)
		}
	}
}
