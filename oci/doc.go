// Package oci pushes ingot update artifacts (see package artifact) to OCI
// registries and pulls them back, verified.
//
//	info, err := oci.Push(ctx, "out/ingot_1.2.0.update", "oci://registry.lan:5000/ingot/update:1.2.0",
//		oci.WithProgress(func(done, total int64) { ... }))
//	info, err = oci.Pull(ctx, "registry.lan:5000/ingot/update@"+info.Digest, "/var/lib/ingot/update")
//	info, err = oci.Inspect(ctx, "registry.lan:5000/ingot/update:1.2.0")
//
// # References
//
// A reference is host[:port]/repository:tag or host[:port]/repository@sha256:…,
// optionally prefixed with "oci://". The registry host must be given
// explicitly (there is no default registry), and so must the tag or digest.
//
// Plain HTTP is used for registries on loopback and private addresses:
// localhost and *.localhost, 127.0.0.0/8, ::1, 10.0.0.0/8, 172.16.0.0/12,
// 192.168.0.0/16 and fc00::/7, judged by the host as written (names are not
// resolved); every other registry is spoken to over HTTPS only, unless
// [WithInsecure] allows plain HTTP. The choice is enforced on every request
// to the registry host, so go-containerregistry's HTTPS-then-HTTP probing
// never sends plain HTTP where HTTPS was chosen.
//
// # The OCI artifact
//
// An artifact is stored as an OCI image manifest (schema 2, media type
// application/vnd.oci.image.manifest.v1+json) in the form OCI 1.1 gives
// artifacts:
//
//	artifactType  application/vnd.ingot.update.v1                  (ArtifactType)
//	config        application/vnd.ingot.update.config.v1+json      (ConfigMediaType)
//	              the artifact's manifest.json, byte for byte
//	layers, one per file, uncompressed, in the order usr, verity, UKI:
//	  application/vnd.ingot.usr.erofs    usr.erofs   (MediaTypeUsr)
//	  application/vnd.ingot.usr.verity   usr.verity  (MediaTypeVerity)
//	  application/vnd.ingot.uki          ingot.efi   (MediaTypeUKI)
//	each with the annotation org.opencontainers.image.title = the file name
//	manifest annotation org.opencontainers.image.version = the version
//
// No timestamps are recorded, so pushing the same artifact twice gives the
// same manifest digest.
//
// # Pulling
//
// [Pull] trusts nothing it downloads. It checks that the manifest describes
// an ingot artifact whose layers match the files in its config (names,
// media types, sizes, digests), downloads each blob and checks its sha256
// against the digest, then runs artifact.Verify on the result (sizes,
// sha256, usrhash in the UKI, dm-verity root hash, architecture). It works
// in a temporary directory next to the destination and renames it into
// place only when everything verified, so a failed or interrupted pull
// leaves no directory behind. A blob that fails its digest check yields an
// *artifact.MismatchError with Field "digest".
//
// Interrupted downloads are retried within one pull, resuming with HTTP
// range requests. With [WithCacheDir], partial blobs are kept under
// DIR/sha256/<hex>.partial and a later pull resumes them; a blob is
// verified as a whole when complete, and removed from the cache when it
// fails verification or when it has been moved into the artifact.
package oci

// Media types of the OCI artifact.
const (
	// ArtifactType is the manifest's artifactType.
	ArtifactType = "application/vnd.ingot.update.v1"
	// ConfigMediaType is the media type of the config blob, which holds the
	// artifact's manifest.json.
	ConfigMediaType = "application/vnd.ingot.update.config.v1+json"
	// MediaTypeUsr is the media type of the usr.erofs layer.
	MediaTypeUsr = "application/vnd.ingot.usr.erofs"
	// MediaTypeVerity is the media type of the usr.verity layer.
	MediaTypeVerity = "application/vnd.ingot.usr.verity"
	// MediaTypeUKI is the media type of the UKI layer.
	MediaTypeUKI = "application/vnd.ingot.uki"
	// MediaTypeVeritySig is the layer of a signed image's usr-verity-sig.
	MediaTypeVeritySig = "application/vnd.ingot.usr.verity-sig"
	// MediaTypeChunkIndex is the layer of a file's casync chunk index
	// (.caibx with sha256 ids), titled "<file>.caibx".
	MediaTypeChunkIndex = "application/vnd.ingot.chunk-index.caibx"
)

// Annotation keys used on the manifest and its layers.
const (
	// AnnotationTitle names a layer's file.
	AnnotationTitle = "org.opencontainers.image.title"
	// AnnotationVersion carries the artifact's version on the manifest.
	AnnotationVersion = "org.opencontainers.image.version"
)
