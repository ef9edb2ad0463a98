package oci

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/internal/fileutil"
)

// Inspect reads the manifest and config of the artifact at ref, checks that
// they describe an ingot artifact, and returns them. It downloads no
// layers.
func Inspect(ctx context.Context, ref string, opts ...Option) (*Info, error) {
	o, r, scheme, err := optionsFor(ref, opts)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	res, err := resolve(ctx, o, r, scheme)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	return res.info, nil
}

// Pull downloads the artifact at ref into the directory dir, verifies it
// (see the package documentation), and renames it into place. dir may be
// missing, empty, or hold an earlier artifact (see artifact.CheckReplaceable),
// which is replaced; anything else is refused before anything is
// downloaded. The sizes the manifest declares are checked against
// WithLimits and the free space next to dir (and in the cache directory)
// first. On error nothing is left at dir.
func Pull(ctx context.Context, ref, dir string, opts ...Option) (*Info, error) {
	info, err := pull(ctx, ref, dir, opts)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return info, nil
}

func pull(ctx context.Context, ref, dir string, opts []Option) (*Info, error) {
	o, r, scheme, err := optionsFor(ref, opts)
	if err != nil {
		return nil, err
	}
	res, err := resolve(ctx, o, r, scheme)
	if err != nil {
		return nil, err
	}
	if got := res.info.Manifest.Architecture; got != o.arch {
		return nil, &artifact.ArchError{Want: o.arch, Got: got}
	}
	dir = filepath.Clean(dir)
	if err := checkRoom(o, res.info.Manifest, dir); err != nil {
		return nil, err
	}
	stage, err := fileutil.NewStaging(dir)
	if err != nil {
		return nil, err
	}
	defer stage.Discard()
	tmp := stage.Dir
	var total int64
	for _, l := range res.info.Layers {
		total += l.Size
	}
	f := &fetcher{
		client:   res.client,
		blobURL:  res.blobURL,
		cacheDir: o.cacheDir,
		logger:   o.logger,
		progress: newTracker(o.progress, total),
		maxRange: o.maxRange,
	}
	d := newDeltaPull(o, res.info, tmp)
	defer d.close()
	for _, l := range res.info.Layers {
		if err := d.fetch(ctx, f, l, filepath.Join(tmp, l.Name)); err != nil {
			return nil, err
		}
	}
	res.info.Transfer = d.transfer()
	if err := writeSynced(filepath.Join(tmp, artifact.ManifestFile), res.config); err != nil {
		return nil, err
	}
	a, err := artifact.Open(tmp)
	if err != nil {
		return nil, err
	}
	if err := a.Verify(ctx, artifact.WithArch(o.arch), artifact.WithTempDir(tmp)); err != nil {
		return nil, err
	}
	if err := artifact.Commit(tmp, dir); err != nil {
		return nil, err
	}
	stage.Keep()
	d.cleanup()
	o.logger.Debug("pulled artifact", "ref", res.info.Ref, "digest", res.info.Digest, "path", dir)
	return res.info, nil
}

// checkRoom checks, before anything is downloaded, that dir may be
// replaced and that the declared sizes fit the limits and the free space
// where the files will be.
func checkRoom(o *options, m *artifact.Manifest, dir string) error {
	if err := artifact.CheckReplaceable(dir); err != nil {
		return err
	}
	if err := o.limits.Check(m); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := artifact.CheckFreeSpace(filepath.Dir(dir), m); err != nil {
		return err
	}
	if o.cacheDir == "" {
		return nil
	}
	if err := os.MkdirAll(o.cacheDir, 0o755); err != nil {
		return fmt.Errorf("cache directory: %w", err)
	}
	return artifact.CheckFreeSpace(o.cacheDir, m)
}

// resolved is an artifact's manifest and config, checked against each
// other, and a client for its repository's blobs.
type resolved struct {
	info    *Info
	config  []byte
	client  *authClient
	blobURL string // ends in /blobs/
}

// resolve fetches and checks r's manifest and config.
func resolve(ctx context.Context, o *options, r name.Reference, scheme string) (*resolved, error) {
	desc, err := remote.Get(r, o.remote(ctx, r, scheme)...)
	if err != nil {
		return nil, err
	}
	if desc.MediaType != types.OCIManifestSchema1 {
		return nil, fmt.Errorf("%s is a %s, not an ingot artifact (an OCI image manifest of type %s)", r, desc.MediaType, ArtifactType)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, fmt.Errorf("parse OCI manifest: %w", err)
	}
	if m.Config.MediaType != ConfigMediaType || (m.ArtifactType != "" && m.ArtifactType != ArtifactType) {
		return nil, fmt.Errorf("%s is not an ingot artifact: artifact type %q, config media type %q (want %s, %s)",
			r, m.ArtifactType, m.Config.MediaType, ArtifactType, ConfigMediaType)
	}
	if m.Config.Size <= 0 || m.Config.Size > artifact.MaxManifestBytes {
		return nil, fmt.Errorf("config blob of %d bytes (at most %d)", m.Config.Size, artifact.MaxManifestBytes)
	}
	client, err := newAuthClient(ctx, o, r, scheme)
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("%s://%s/v2/%s/blobs/", scheme, r.Context().RegistryStr(), r.Context().RepositoryStr())
	config, err := fetchSmall(ctx, client, base, m.Config)
	if err != nil {
		return nil, fmt.Errorf("config blob: %w", err)
	}
	am, err := artifact.ParseManifest(config)
	if err != nil {
		return nil, err
	}
	layers, indexes, err := checkLayers(m.Layers, am)
	if err != nil {
		return nil, err
	}
	return &resolved{
		info: &Info{
			Ref:          r.String(),
			Digest:       desc.Digest.String(),
			ArtifactType: m.ArtifactType,
			Manifest:     am,
			Layers:       layers,
			ChunkIndexes: indexes,
		},
		config:  config,
		client:  client,
		blobURL: base,
	}, nil
}

// checkLayers matches the manifest's layers with the artifact's files: one
// layer per file, named by its title annotation, with the file's media
// type, size and digest; and at most one chunk index per file.
func checkLayers(descs []v1.Descriptor, am *artifact.Manifest) (layers, indexes []Layer, err error) {
	seen := map[string]bool{}
	for _, d := range descs {
		if string(d.MediaType) == MediaTypeChunkIndex {
			l, err := matchIndexLayer(d, am, seen)
			if err != nil {
				return nil, nil, err
			}
			indexes = append(indexes, l)
			continue
		}
		l, err := matchFileLayer(d, am, seen)
		if err != nil {
			return nil, nil, err
		}
		layers = append(layers, l)
	}
	if len(layers) != len(am.Files) {
		return nil, nil, fmt.Errorf("OCI manifest has %d layers for %d files", len(layers), len(am.Files))
	}
	return layers, indexes, nil
}

// matchIndexLayer checks a chunk index layer.
func matchIndexLayer(d v1.Descriptor, am *artifact.Manifest, seen map[string]bool) (Layer, error) {
	f, err := checkIndexLayer(d, am)
	if err != nil {
		return Layer{}, err
	}
	title := f.Name + indexSuffix
	if seen[title] {
		return Layer{}, fmt.Errorf("two layers are titled %q", title)
	}
	seen[title] = true
	return Layer{Name: title, Role: f.Role, MediaType: string(d.MediaType), Digest: d.Digest.String(), Size: d.Size}, nil
}

// matchFileLayer checks the layer of one of the artifact's files.
func matchFileLayer(d v1.Descriptor, am *artifact.Manifest, seen map[string]bool) (Layer, error) {
	title := d.Annotations[AnnotationTitle]
	var f artifact.File
	for _, ff := range am.Files {
		if ff.Name == title {
			f = ff
		}
	}
	switch {
	case f.Name == "":
		return Layer{}, fmt.Errorf("layer %s is titled %q, which is no file of the artifact", d.Digest, title)
	case seen[f.Name]:
		return Layer{}, fmt.Errorf("two layers are titled %q", title)
	case string(d.MediaType) != roleMediaTypes[f.Role]:
		return Layer{}, fmt.Errorf("layer %s has media type %s, want %s", title, d.MediaType, roleMediaTypes[f.Role])
	case d.Digest.Algorithm != "sha256" || d.Digest.Hex != f.SHA256:
		return Layer{}, &artifact.MismatchError{File: title, Field: "digest", Want: "sha256:" + f.SHA256, Got: d.Digest.String()}
	case d.Size != f.Size:
		return Layer{}, &artifact.MismatchError{File: title, Field: "size", Want: fmt.Sprint(f.Size), Got: fmt.Sprint(d.Size)}
	}
	seen[f.Name] = true
	return Layer{Name: f.Name, Role: f.Role, MediaType: string(d.MediaType), Digest: d.Digest.String(), Size: d.Size}, nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// cachePath is where a partial download of a blob is kept.
func cachePath(cacheDir string, h v1.Hash) string {
	return filepath.Join(cacheDir, h.Algorithm, strings.ToLower(h.Hex)+".partial")
}
