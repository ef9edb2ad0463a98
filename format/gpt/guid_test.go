package gpt

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestParseGUID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want GUID
		ok   bool
	}{
		{"01020304-0506-0708-090a-0b0c0d0e0f10", GUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, true},
		{"C12A7328-F81F-11D2-BA4B-00A0C93EC93B", GUID{0xc1, 0x2a, 0x73, 0x28, 0xf8, 0x1f, 0x11, 0xd2, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}, true},
		{"00000000-0000-0000-0000-000000000000", GUID{}, true},
		{"", GUID{}, false},
		{"01020304-0506-0708-090a-0b0c0d0e0f1", GUID{}, false},
		{"01020304-0506-0708-090a-0b0c0d0e0f100", GUID{}, false},
		{"01020304x0506-0708-090a-0b0c0d0e0f10", GUID{}, false},
		{"0102030g-0506-0708-090a-0b0c0d0e0f10", GUID{}, false},
		{"{1020304-0506-0708-090a-0b0c0d0e0f1}", GUID{}, false},
		{"010203040506070809-0a-0b0c0d0e0f1000", GUID{}, false},
	} {
		got, err := ParseGUID(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseGUID(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok {
			if s := got.String(); s != strings.ToLower(tc.in) {
				t.Errorf("String() = %q, want %q", s, strings.ToLower(tc.in))
			}
		}
	}
}

func TestMustParseGUIDPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParseGUID did not panic")
		}
	}()
	MustParseGUID("nope")
}

func TestMixedEndian(t *testing.T) {
	g := MustParseGUID("01020304-0506-0708-090a-0b0c0d0e0f10")
	var b [16]byte
	putGUID(b[:], g)
	if want := "04030201060508070" + "90a0b0c0d0e0f10"; hex.EncodeToString(b[:]) != want {
		t.Errorf("on-disk bytes %x, want %s", b, want)
	}
	if back := getGUID(b[:]); back != g {
		t.Errorf("getGUID = %v", back)
	}
}

// TestGUIDFromBytes checks the Discoverable Partitions Specification rule:
// the PARTUUID string is the hex of the first (data) or last (verity) 128
// bits of the root hash.
func TestGUIDFromBytes(t *testing.T) {
	hash := sha256.Sum256([]byte("ingot"))
	data := GUIDFromBytes([16]byte(hash[:16]))
	verity := GUIDFromBytes([16]byte(hash[16:]))
	h := hex.EncodeToString(hash[:])
	dash := func(s string) string {
		return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
	}
	if data.String() != dash(h[:32]) || verity.String() != dash(h[32:]) {
		t.Errorf("GUIDFromBytes: %v %v from hash %s", data, verity, h)
	}
}

// TestTypeGUIDs pins the well-known type GUIDs to the Discoverable
// Partitions Specification's strings.
func TestTypeGUIDs(t *testing.T) {
	for g, want := range map[GUID]string{
		TypeESP:                "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
		TypeXBOOTLDR:           "bc13c2ff-59e6-4262-a352-b275fd6f7172",
		TypeLinuxGeneric:       "0fc63daf-8483-4772-8e79-3d69d8477de4",
		TypeRootAMD64:          "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
		TypeRootVerityAMD64:    "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
		TypeRootVeritySigAMD64: "41092b05-9fc8-4523-994f-2def0408b176",
		TypeUsrAMD64:           "8484680c-9521-48c6-9c11-b0720656f69e",
		TypeUsrVerityAMD64:     "77ff5f63-e7b6-4633-acf4-1565b864c0e6",
		TypeUsrVeritySigAMD64:  "e7bb33fb-06cf-4e81-8273-e543b413e2e2",
	} {
		if g.String() != want {
			t.Errorf("%v, want %s", g, want)
		}
	}
}

func TestNameCodec(t *testing.T) {
	for _, name := range []string{"", "root", "usr-ü-𝔘", "123456789012345678901234567890123456", "日本語"} {
		b := make([]byte, 2*MaxNameLen)
		if err := encodeName(b, name); err != nil {
			t.Fatalf("encodeName(%q): %v", name, err)
		}
		if got := decodeName(b); got != name {
			t.Errorf("decodeName = %q, want %q", got, name)
		}
	}
	// An unpaired surrogate decodes to U+FFFD instead of failing.
	if got := decodeName([]byte{0x00, 0xd8, 'a', 0}); got != "\uFFFDa" {
		t.Errorf("unpaired surrogate: %q", got)
	}
}
