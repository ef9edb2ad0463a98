package layout

import (
	"slices"
	"testing"
)

func TestCompareVersions(t *testing.T) {
	// Pairs from the UAPI Version Format Specification's examples and
	// systemd's test-string-util strverscmp_improved cases: a older than b.
	older := []struct{ a, b string }{
		{"1.0.0", "1.0.0a"},
		{"1.0.0", "2.0.0"},
		{"2.0.9", "2.0.10"},
		{"2.0.10", "10.0.0"},
		{"2.0~rc1", "2.0"},
		{"2.0~rc1", "2.0~rc2"},
		{"2.0", "2.0.1"},
		{"2.0-1", "2.0.1"},
		{"2.0", "2.0^1"},
		{"2.0^1", "2.0.1"},
		{"a", "1"},
		{"abc", "abcd"},
		{"122", "123"},
		{"123", "0124"},
		{"1.9", "1.10"},
		{"5.0", "5.0.0"},
		{"1_0", "1_1"},
	}
	for _, tc := range older {
		if got := CompareVersions(tc.a, tc.b); got != -1 {
			t.Errorf("CompareVersions(%q, %q) = %d, want -1", tc.a, tc.b, got)
		}
		if got := CompareVersions(tc.b, tc.a); got != 1 {
			t.Errorf("CompareVersions(%q, %q) = %d, want 1", tc.b, tc.a, got)
		}
	}
	for _, v := range []string{"", "1.0.0", "2.0~rc1", "0123", "1_0"} {
		if got := CompareVersions(v, v); got != 0 {
			t.Errorf("CompareVersions(%q, %q) = %d, want 0", v, v, got)
		}
	}
	if got := CompareVersions("0123", "123"); got != 0 {
		t.Errorf("leading zeros: %d, want 0", got)
	}
}

func TestVersionOrder(t *testing.T) {
	got := []string{"10.0.0", "2.0.0", "1.0.0", "2.0.10", "2.0.9", "1.0.0a", "2.0.0~rc1"}
	slices.SortFunc(got, CompareVersions)
	want := []string{"1.0.0", "1.0.0a", "2.0.0~rc1", "2.0.0", "2.0.9", "2.0.10", "10.0.0"}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}
