package gpt

import (
	"encoding/hex"
	"fmt"
)

// GUID is a globally unique identifier stored in string order (RFC 4122
// byte order): GUID{0x84, 0x84, 0x68, 0x0c, ...} prints as
// "8484680c-...". Encoding to and from the GPT on-disk layout, whose first
// three fields are little-endian, happens inside this package.
type GUID [16]byte

// Well-known partition type GUIDs from the UEFI specification and the UAPI
// Discoverable Partitions Specification. Treat them as constants.
var (
	// TypeESP is the EFI System Partition.
	TypeESP = MustParseGUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
	// TypeXBOOTLDR is the Extended Boot Loader Partition.
	TypeXBOOTLDR = MustParseGUID("bc13c2ff-59e6-4262-a352-b275fd6f7172")
	// TypeLinuxGeneric is a generic Linux file system partition.
	TypeLinuxGeneric = MustParseGUID("0fc63daf-8483-4772-8e79-3d69d8477de4")
	// TypeRootAMD64 is the root partition for x86-64.
	TypeRootAMD64 = MustParseGUID("4f68bce3-e8cd-4db1-96e7-fbcaf984b709")
	// TypeRootVerityAMD64 is the dm-verity hash partition of the x86-64 root.
	TypeRootVerityAMD64 = MustParseGUID("2c7357ed-ebd2-46d9-aec1-23d437ec2bf5")
	// TypeRootVeritySigAMD64 is the verity signature partition of the x86-64 root.
	TypeRootVeritySigAMD64 = MustParseGUID("41092b05-9fc8-4523-994f-2def0408b176")
	// TypeUsrAMD64 is the /usr partition for x86-64.
	TypeUsrAMD64 = MustParseGUID("8484680c-9521-48c6-9c11-b0720656f69e")
	// TypeUsrVerityAMD64 is the dm-verity hash partition of the x86-64 /usr.
	TypeUsrVerityAMD64 = MustParseGUID("77ff5f63-e7b6-4633-acf4-1565b864c0e6")
	// TypeUsrVeritySigAMD64 is the verity signature partition of the x86-64 /usr.
	TypeUsrVeritySigAMD64 = MustParseGUID("e7bb33fb-06cf-4e81-8273-e543b413e2e2")
)

// ParseGUID parses the canonical 36-character form
// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (either case).
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("gpt: parse GUID %q: not in xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx form", s)
	}
	hexDigits := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(g[:], []byte(hexDigits)); err != nil {
		return GUID{}, fmt.Errorf("gpt: parse GUID %q: %w", s, err)
	}
	return g, nil
}

// MustParseGUID is like ParseGUID but panics on error. It is meant for
// constants in source code.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// GUIDFromBytes returns the GUID whose string form is the hex of b, without
// touching version or variant bits. Per the Discoverable Partitions
// Specification, a partition protected by dm-verity gets
// GUIDFromBytes(first 16 bytes of the root hash) and its verity partition
// GUIDFromBytes(last 16 bytes of the root hash).
func GUIDFromBytes(b [16]byte) GUID {
	return GUID(b)
}

// String returns the lower-case canonical form of g.
func (g GUID) String() string {
	var buf [36]byte
	hex.Encode(buf[0:8], g[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], g[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], g[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], g[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:36], g[10:16])
	return string(buf[:])
}

// IsZero reports whether g is the all-zero GUID.
func (g GUID) IsZero() bool {
	return g == GUID{}
}

// putGUID stores g into b[0:16] in GPT's mixed-endian layout.
func putGUID(b []byte, g GUID) {
	_ = b[15]
	b[0], b[1], b[2], b[3] = g[3], g[2], g[1], g[0]
	b[4], b[5] = g[5], g[4]
	b[6], b[7] = g[7], g[6]
	copy(b[8:16], g[8:16])
}

// getGUID decodes a GUID from b[0:16] in GPT's mixed-endian layout.
func getGUID(b []byte) GUID {
	_ = b[15]
	var g GUID
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:16], b[8:16])
	return g
}
