package layout

import (
	"testing"

	"github.com/ingot-linux/ingot/format/gpt"
)

// TestDeriveGUID pins every derived GUID of the contract to the value
// images and machines made before carry (computed independently with
// Python's hashlib from the formulas they were made with).
func TestDeriveGUID(t *testing.T) {
	root := make([]byte, 32)
	for i := range root {
		root[i] = byte(i)
	}
	disk := gpt.MustParseGUID("11111111-2222-4333-8444-555555555555")
	tests := []struct {
		seed    []byte
		purpose Purpose
		want    string
	}{
		{root, PurposeDisk, "cf6c6409-6b70-4099-a153-195afab472e0"},
		{root, PurposeESP, "2d6a8342-6ec8-446e-a196-9e6bd929d395"},
		{root, PurposeSigA, "9657bd84-14df-4da3-8278-0feca2d51d02"},
		{root, PurposeUsrB, "853381c6-b83c-4c99-9931-f13cd61fbd3c"},
		{root, PurposeVerityB, "3742fc76-3468-4c27-8f00-440d014f69ce"},
		{root, PurposeSigB, "113b5daf-23b0-4b85-ae80-33e3ee015ecb"},
		{disk[:], PurposeRoot, "12e92e34-c6ef-4519-9728-7815e374b440"},
		{disk[:], PurposeRootFS, "d1708477-67c2-495a-acad-fced80c51401"},
		{disk[:], PurposeRootLUKS, "0c1a801b-5f22-485d-beb0-a5fd0fb23d86"},
		{disk[:], PurposeEmptyUsr("a"), "21dbd852-5f2b-42dd-8bea-3c6f92d0f584"},
		{disk[:], PurposeEmptyVerity("b"), "79f66cbe-5bc4-4251-92f5-e5ee798d8814"},
	}
	for _, tc := range tests {
		if got := DeriveGUID(tc.seed, tc.purpose).String(); got != tc.want {
			t.Errorf("DeriveGUID(%x, %q) = %s, want %s", tc.seed, tc.purpose, got, tc.want)
		}
	}
	if got, want := ESPVolumeID(root), uint32(2566686809); got != want {
		t.Errorf("ESPVolumeID = %d, want %d", got, want)
	}
}

func TestUsrPartUUIDs(t *testing.T) {
	h := make([]byte, 32)
	for i := range h {
		h[i] = byte(i)
	}
	usr, verity := UsrPartUUIDs(h)
	if got, want := usr.String(), "00010203-0405-0607-0809-0a0b0c0d0e0f"; got != want {
		t.Errorf("usr PARTUUID %s, want %s", got, want)
	}
	if got, want := verity.String(), "10111213-1415-1617-1819-1a1b1c1d1e1f"; got != want {
		t.Errorf("verity PARTUUID %s, want %s", got, want)
	}
}
