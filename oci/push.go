package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ingot-linux/ingot/artifact"
)

// Info describes an artifact in a registry.
type Info struct {
	// Ref is the reference as given, without "oci://".
	Ref string `json:"ref"`
	// Digest is the manifest's digest, "sha256:…".
	Digest string `json:"digest"`
	// ArtifactType is the manifest's artifactType.
	ArtifactType string `json:"artifactType"`
	// Manifest is the artifact's manifest.json, from the config blob.
	Manifest *artifact.Manifest `json:"manifest"`
	// Layers are the manifest's layers, one per file.
	Layers []Layer `json:"layers"`
	// ChunkIndexes are the layers holding files' casync chunk indexes,
	// titled "<file>.caibx".
	ChunkIndexes []Layer `json:"chunkIndexes,omitempty"`
	// Transfer says, after Pull, where the files' bytes came from.
	Transfer *Transfer `json:"transfer,omitempty"`
}

// Layer is one file of an artifact in a registry.
type Layer struct {
	// Name is the file name, from the layer's title annotation.
	Name string `json:"name"`
	// Role is the file's role in the artifact manifest.
	Role string `json:"role"`
	// MediaType is the layer's media type, e.g. MediaTypeUsr.
	MediaType string `json:"mediaType"`
	// Digest is the blob's digest, "sha256:…".
	Digest string `json:"digest"`
	// Size is the blob's length in bytes.
	Size int64 `json:"size"`
}

// roleOrder is the order of the layers; roleMediaTypes their media types.
var (
	roleOrder      = []string{artifact.RoleUsr, artifact.RoleVerity, artifact.RoleUKI, artifact.RoleVeritySig}
	roleMediaTypes = map[string]string{
		artifact.RoleUsr:       MediaTypeUsr,
		artifact.RoleVerity:    MediaTypeVerity,
		artifact.RoleUKI:       MediaTypeUKI,
		artifact.RoleVeritySig: MediaTypeVeritySig,
	}
)

// Push verifies the artifact directory dir (for the architecture its
// manifest names) and uploads it to ref.
func Push(ctx context.Context, dir, ref string, opts ...Option) (*Info, error) {
	info, err := push(ctx, dir, ref, opts)
	if err != nil {
		return nil, fmt.Errorf("push %s to %s: %w", dir, ref, err)
	}
	return info, nil
}

func push(ctx context.Context, dir, ref string, opts []Option) (*Info, error) {
	o, r, scheme, err := optionsFor(ref, opts)
	if err != nil {
		return nil, err
	}
	a, err := artifact.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := a.Verify(ctx, artifact.WithArch(a.Manifest.Architecture)); err != nil {
		return nil, err
	}
	config, err := os.ReadFile(filepath.Join(dir, artifact.ManifestFile))
	if err != nil {
		return nil, err
	}
	var indexes map[string][]byte
	if !o.noIndex {
		if indexes, err = makeIndexes(a); err != nil {
			return nil, err
		}
	}
	img, info, err := newImage(a, config, indexes)
	if err != nil {
		return nil, err
	}
	info.Ref = r.String()
	ropts := o.remote(ctx, r, scheme)
	o.logger.Debug("push artifact", "path", dir, "ref", info.Ref, "digest", info.Digest)
	if o.progress != nil {
		updates := make(chan v1.Update, 64)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for u := range updates {
				if u.Error == nil {
					o.progress(u.Complete, u.Total)
				}
			}
		}()
		ropts = append(ropts, remote.WithProgress(updates))
		err = remote.Write(r, img, ropts...)
		<-done // remote.Write closes updates
	} else {
		err = remote.Write(r, img, ropts...)
	}
	if err != nil {
		return nil, err
	}
	return info, nil
}

// remote returns the go-containerregistry options for talking to r's
// registry over scheme.
func (o *options) remote(ctx context.Context, r name.Reference, scheme string) []remote.Option {
	t := &schemeTransport{host: r.Context().RegistryStr(), scheme: scheme, inner: o.transport}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(t),
		remote.WithAuthFromKeychain(o.keychain),
		remote.WithUserAgent("ingot"),
	}
}

// newImage builds the OCI artifact of a, with the chunk indexes by role:
// its manifest is a deterministic function of the artifact's
// manifest.json (config) and the indexes.
func newImage(a *artifact.Artifact, config []byte, indexes map[string][]byte) (v1.Image, *Info, error) {
	cfgDigest, cfgSize, err := v1.SHA256(bytes.NewReader(config))
	if err != nil {
		return nil, nil, err
	}
	im := &image{config: config, layers: map[v1.Hash]partial.CompressedLayer{}}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        v1.Descriptor{MediaType: ConfigMediaType, Size: cfgSize, Digest: cfgDigest},
		Annotations:   map[string]string{AnnotationVersion: a.Manifest.Version},
	}
	info := &Info{ArtifactType: ArtifactType, Manifest: a.Manifest}
	for _, role := range roleOrder {
		f, ok := a.Manifest.File(role)
		if !ok {
			continue // an optional role
		}
		h := v1.Hash{Algorithm: "sha256", Hex: f.SHA256}
		mt := types.MediaType(roleMediaTypes[role])
		m.Layers = append(m.Layers, v1.Descriptor{
			MediaType:   mt,
			Size:        f.Size,
			Digest:      h,
			Annotations: map[string]string{AnnotationTitle: f.Name},
		})
		im.layers[h] = &fileLayer{path: filepath.Join(a.Dir, f.Name), digest: h, size: f.Size, mediaType: mt}
		info.Layers = append(info.Layers, Layer{Name: f.Name, Role: role, MediaType: string(mt), Digest: h.String(), Size: f.Size})
	}
	for _, role := range indexedRoles {
		f, _ := a.Manifest.File(role)
		b, ok := indexes[role]
		if !ok {
			continue
		}
		h, _, err := v1.SHA256(bytes.NewReader(b))
		if err != nil {
			return nil, nil, err
		}
		l := &memLayer{b: b, digest: h, mediaType: MediaTypeChunkIndex}
		title := f.Name + indexSuffix
		m.Layers = append(m.Layers, v1.Descriptor{
			MediaType:   MediaTypeChunkIndex,
			Size:        int64(len(b)),
			Digest:      h,
			Annotations: map[string]string{AnnotationTitle: title},
		})
		im.layers[h] = l
		info.ChunkIndexes = append(info.ChunkIndexes, Layer{Name: title, Role: role, MediaType: MediaTypeChunkIndex, Digest: h.String(), Size: int64(len(b))})
	}
	if im.manifest, err = json.Marshal(&m); err != nil {
		return nil, nil, err
	}
	d, _, err := v1.SHA256(bytes.NewReader(im.manifest))
	if err != nil {
		return nil, nil, err
	}
	info.Digest = d.String()
	img, err := partial.CompressedToImage(im)
	return img, info, err
}

// image is an OCI artifact whose layers are files.
type image struct {
	manifest, config []byte
	layers           map[v1.Hash]partial.CompressedLayer
}

var _ partial.CompressedImageCore = (*image)(nil)

func (i *image) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *image) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (i *image) RawManifest() ([]byte, error)        { return i.manifest, nil }
func (i *image) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := i.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("no layer %s", h)
}

// fileLayer is a layer stored uncompressed in a file whose digest is known
// (and was verified by artifact.Verify).
type fileLayer struct {
	path      string
	digest    v1.Hash
	size      int64
	mediaType types.MediaType
}

var _ partial.CompressedLayer = (*fileLayer)(nil)

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

// memLayer is a small layer held in memory (a chunk index).
type memLayer struct {
	b         []byte
	digest    v1.Hash
	mediaType types.MediaType
}

var _ partial.CompressedLayer = (*memLayer)(nil)

func (l *memLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.b)), nil
}
func (l *memLayer) Size() (int64, error)                { return int64(len(l.b)), nil }
func (l *memLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
