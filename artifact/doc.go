// Package artifact writes, reads and verifies ingot's update artifact: the
// files an A/B update installs (the EROFS /usr, its dm-verity hash tree and
// the UKI that pins them) plus a manifest that names, sizes and hashes them.
//
// Writing, from the image stage:
//
//	m, err := artifact.Write(filepath.Join(out, artifact.DirName("1.2.0")), artifact.Inputs{
//		Version: "1.2.0", Arch: artifact.ArchX86_64, UsrHash: rootHash,
//		UsrPath: "work/usr.erofs", VerityPath: "work/usr.verity", UKI: ukiBytes,
//	})
//
// Reading and verifying, on the device or before a push:
//
//	a, err := artifact.Open("out/ingot_1.2.0.update")
//	if err != nil { ... }
//	err = a.Verify(ctx, artifact.WithArch(artifact.ArchX86_64))
//	var mm *artifact.MismatchError
//	if errors.As(err, &mm) { ... } // mm.File, mm.Field, mm.Want, mm.Got
//
// # Layout
//
// An artifact is a directory, by convention ingot_<version>.update (see
// [DirName]) next to the disk image ingot_<version>.raw, holding exactly:
//
//	usr.erofs      role "usr": /usr as EROFS, padded to whole 4096-byte blocks
//	usr.verity     role "verity": dm-verity superblock in the first 4096 bytes,
//	               the hash tree (sha256, 4096-byte blocks) from offset 4096
//	ingot.efi      role "uki": the UKI; its .cmdline carries usrhash=<root hash>
//	usr.verity-sig role "verity-sig", signed images only: the root hash
//	               signed by the verity key, as in the usr-verity-sig partition
//	manifest.json  the [Manifest]
//
// Files are mode 0644, the directory 0755. manifest.json is indented JSON
// with its keys in sorted order and its files sorted by name, with no
// timestamps, so the same inputs give the same bytes, and the same OCI digest
// when pushed (see package oci).
//
// # Verification
//
// [Artifact.Verify] trusts nothing in the directory: it checks the
// architecture, each file's size and sha256 against the manifest, that the
// UKI's command line has usrhash= equal to the manifest's usrhash, and that
// the dm-verity tree in usr.verity, with the parameters of its superblock,
// proves usr.erofs to have that root hash, and that the UKI's .osrel names
// the manifest's version (IMAGE_VERSION). Problems a caller can act on are
// typed: [*MismatchError] for sizes, digests and hashes, [*SizeError] for
// a file larger than its [Limits], [*ArchError] for an
// artifact of another architecture; a missing file's error matches
// fs.ErrNotExist.
//
// Installers use [Artifact.OpenPayload] instead: it runs the same checks on
// files it opens once (no symbolic links, regular files of the declared
// size), keeps the UKI and verity signature bytes it checked, and copies
// the large files with [Payload.CopyTo], which is bounded and hashes what
// it writes, so what is installed is what was verified.
//
// Verify does not check the UKI's Authenticode signature: a manifest that
// verifies is consistent, not trusted. Trust comes from the signed UKI (see
// DESIGN.md, update flow), which pins usrhash, which pins every block of
// /usr.
package artifact

// File names inside an artifact directory.
const (
	FileUsr    = "usr.erofs"
	FileVerity = "usr.verity"
	FileUKI    = "ingot.efi"
	// FileVeritySig is optional: the usr-verity-sig content of a signed
	// image (see trust.SignRootHash).
	FileVeritySig = "usr.verity-sig"
	ManifestFile  = "manifest.json"
)

// Roles of the files in a manifest.
const (
	RoleUsr    = "usr"    // the EROFS /usr image
	RoleVerity = "verity" // the dm-verity superblock and hash tree of the usr image
	RoleUKI    = "uki"    // the unified kernel image that pins usr by usrhash=
	// RoleVeritySig is the signature of the usr root hash by the image's
	// verity key. Only signed images have it; a machine that trusts a
	// verity key requires it.
	RoleVeritySig = "verity-sig"
)

// ArchX86_64 is the architecture name of x86-64 artifacts, as the
// Discoverable Partitions Specification spells it.
const ArchX86_64 = "x86-64"

// SchemaVersion is the version of the manifest format this package writes
// and the only one it reads.
const SchemaVersion = 1
