package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of an extension in a registry: an OCI 1.1 artifact with the
// empty config and one layer, the extension image as `ingot ext build`
// wrote it.
const (
	// ExtensionArtifactType is an extension manifest's artifactType.
	ExtensionArtifactType = "application/vnd.ingot.extension.v1"
	// MediaTypeExtension is the media type of its one layer.
	MediaTypeExtension = "application/vnd.ingot.extension.v1.raw"
	// mediaTypeEmpty is the OCI empty descriptor's media type.
	mediaTypeEmpty = "application/vnd.oci.empty.v1+json"
)

// emptyConfig is the OCI empty JSON object, the config of an artifact
// that has none.
var emptyConfig = []byte("{}")

// PushExtension uploads the extension image file to ref as an OCI
// artifact and returns its manifest digest. The file is hashed once and
// uploaded from that descriptor's content; pushing the same file twice
// gives the same digest.
func PushExtension(ctx context.Context, file, ref string, opts ...Option) (string, error) {
	d, err := pushExtension(ctx, file, ref, opts)
	if err != nil {
		return "", fmt.Errorf("push %s to %s: %w", file, ref, err)
	}
	return d, nil
}

func pushExtension(ctx context.Context, file, ref string, opts []Option) (string, error) {
	o, r, scheme, err := optionsFor(ref, opts)
	if err != nil {
		return "", err
	}
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	h, size, err := v1.SHA256(f)
	f.Close()
	if err != nil {
		return "", err
	}
	cfgDigest, cfgSize, err := v1.SHA256(bytes.NewReader(emptyConfig))
	if err != nil {
		return "", err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ExtensionArtifactType,
		Config:        v1.Descriptor{MediaType: mediaTypeEmpty, Size: cfgSize, Digest: cfgDigest},
		Layers: []v1.Descriptor{{
			MediaType:   MediaTypeExtension,
			Size:        size,
			Digest:      h,
			Annotations: map[string]string{AnnotationTitle: filepath.Base(file)},
		}},
	}
	im := &image{config: emptyConfig, layers: map[v1.Hash]partial.CompressedLayer{
		h: &fileLayer{path: file, digest: h, size: size, mediaType: MediaTypeExtension},
	}}
	if im.manifest, err = json.Marshal(&m); err != nil {
		return "", err
	}
	img, err := partial.CompressedToImage(im)
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, img, o.remote(ctx, r, scheme)...); err != nil {
		return "", err
	}
	d, _, err := v1.SHA256(bytes.NewReader(im.manifest))
	return d.String(), err
}

// PullExtension downloads the extension at ref into the new file dst,
// at most maxBytes, verified against the manifest's digest (resumed from
// the cache directory when one is set). On error nothing is left at dst.
// What the image holds is for the caller to verify.
func PullExtension(ctx context.Context, ref, dst string, maxBytes int64, opts ...Option) error {
	if err := pullExtension(ctx, ref, dst, maxBytes, opts); err != nil {
		return fmt.Errorf("pull extension %s: %w", ref, err)
	}
	return nil
}

func pullExtension(ctx context.Context, ref, dst string, maxBytes int64, opts []Option) error {
	o, r, scheme, err := optionsFor(ref, opts)
	if err != nil {
		return err
	}
	desc, err := remote.Get(r, o.remote(ctx, r, scheme)...)
	if err != nil {
		return err
	}
	if desc.MediaType != types.OCIManifestSchema1 {
		return fmt.Errorf("%s is a %s, not an ingot extension (an OCI manifest of type %s)", r, desc.MediaType, ExtensionArtifactType)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return fmt.Errorf("parse OCI manifest: %w", err)
	}
	if m.ArtifactType != ExtensionArtifactType || len(m.Layers) != 1 || m.Layers[0].MediaType != MediaTypeExtension {
		return fmt.Errorf("%s is not an ingot extension: artifact type %q with %d layers (want %s with one %s layer; an update artifact is for `ingot update`)",
			r, m.ArtifactType, len(m.Layers), ExtensionArtifactType, MediaTypeExtension)
	}
	l := m.Layers[0]
	if l.Size <= 0 || l.Size > maxBytes {
		return fmt.Errorf("extension layer of %d bytes (at most %d)", l.Size, maxBytes)
	}
	client, err := newAuthClient(ctx, o, r, scheme)
	if err != nil {
		return err
	}
	f := &fetcher{
		client:   client,
		blobURL:  fmt.Sprintf("%s://%s/v2/%s/blobs/", scheme, r.Context().RegistryStr(), r.Context().RepositoryStr()),
		cacheDir: o.cacheDir,
		logger:   o.logger,
		progress: newTracker(o.progress, l.Size),
	}
	if err := f.fetch(ctx, "extension", v1.Descriptor{Digest: l.Digest, Size: l.Size}, dst); err != nil {
		os.Remove(dst)
		return err
	}
	return nil
}
