package layout

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/ingot-linux/ingot/format/gpt"
)

// Purpose names one GUID of the contract that is derived rather than
// random, so the same input always gives the same disk. Its value is the
// salt hashed after the seed. The three spellings below are historic:
// each is on disk in images and machines made before, so each stays;
// a new purpose uses the "\x00ingot:" form of the image's.
type Purpose string

// GUIDs of the image, derived from the root hash of its /usr.
const (
	PurposeDisk    Purpose = "\x00ingot:disk"
	PurposeESP     Purpose = "\x00ingot:esp"
	PurposeSigA    Purpose = "\x00ingot:sig-a"
	PurposeUsrB    Purpose = "\x00ingot:usr-b"
	PurposeVerityB Purpose = "\x00ingot:verity-b"
	PurposeSigB    Purpose = "\x00ingot:sig-b"
)

// GUIDs ingot-init makes on first boot, derived from the disk's GUID.
const (
	// PurposeRoot is the root partition's PARTUUID.
	PurposeRoot Purpose = "ingot:root"
	// PurposeRootFS is the root filesystem's UUID.
	PurposeRootFS Purpose = "ingot:root-fs"
	// PurposeRootLUKS is the LUKS2 header's UUID of an encrypted root.
	PurposeRootLUKS Purpose = "ingot:root-luks"
)

// PurposeEmptyUsr and PurposeEmptyVerity are the throwaway PARTUUIDs the
// agent gives slot's usr and verity partitions while it writes them,
// derived from the disk's GUID, so no UKI can find a half-written slot.
func PurposeEmptyUsr(slot string) Purpose    { return Purpose("empty-usr-" + slot) }
func PurposeEmptyVerity(slot string) Purpose { return Purpose("empty-verity-" + slot) }

// DeriveGUID is the GUID for purpose from seed (the root hash for the
// image's GUIDs, the disk GUID for the device's): the first 128 bits of
// sha256(seed || purpose), marked as a version 4 UUID.
func DeriveGUID(seed []byte, purpose Purpose) gpt.GUID {
	return uuidFromSum(sha256.Sum256(append(append([]byte{}, seed...), purpose...)))
}

// uuidFromSum takes the first 128 bits of sum and sets the version 4
// and RFC 4122 variant bits.
func uuidFromSum(sum [32]byte) gpt.GUID {
	var b [16]byte
	copy(b[:], sum[:16])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return gpt.GUIDFromBytes(b)
}

// VeritySalt and VerityUUID are the salt and the superblock UUID of the
// dm-verity tree of a /usr whose EROFS image has sha256 content.
func VeritySalt(content []byte) [32]byte {
	return sha256.Sum256(append([]byte("ingot verity salt\x00"), content...))
}

// VerityUUID is the dm-verity superblock UUID of a /usr whose EROFS image
// has sha256 content.
func VerityUUID(content []byte) [16]byte {
	return uuidFromSum(sha256.Sum256(append([]byte("ingot verity uuid\x00"), content...)))
}

// ESPVolumeID is the FAT volume id of the ESP of an image with rootHash.
func ESPVolumeID(rootHash []byte) uint32 {
	sum := sha256.Sum256(append(append([]byte{}, rootHash...), "esp-volume-id"...))
	return binary.LittleEndian.Uint32(sum[:4])
}

// GUIDs of an extension image (ext), derived from its verity root hash
// (the root and root-verity partitions' PARTUUIDs are UsrPartUUIDs').
const (
	// PurposeExtDisk is an extension image's disk GUID.
	PurposeExtDisk Purpose = "\x00ingot:ext-disk"
	// PurposeExtSig is its root-verity-sig partition's PARTUUID.
	PurposeExtSig Purpose = "\x00ingot:ext-sig"
)
