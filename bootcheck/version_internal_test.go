package bootcheck

import "testing"

func TestStrverscmp(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0},
		{"1.0.0", "2.0.0", -1},
		{"10.0", "9.0", 1},
		{"1.0~rc1", "1.0", -1},
		{"1.0", "1.0.1", -1},
		{"1.0-1", "1.0.1", -1},
		{"1.0^1", "1.0", 1},
		{"1.0a", "1.0b", -1},
		{"1.0", "1.0a", -1}, // longer is newer
		{"001", "1", 0},
		{"", "1", -1},
		{"ingot_2.0.0.efi", "ingot_10.0.0.efi", -1},
	}
	for _, tt := range tests {
		if got := strverscmp(tt.a, tt.b); got != tt.want {
			t.Errorf("strverscmp(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := strverscmp(tt.b, tt.a); got != -tt.want {
			t.Errorf("strverscmp(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestEntryOrderAndSelection(t *testing.T) {
	mk := func(name, version string) Entry {
		e, ok := parseEntryName(name)
		if !ok {
			t.Fatalf("%s not an entry", name)
		}
		e.SortKey, e.Version = "ingot", version
		return e
	}
	es := []Entry{mk("ingot_1.0.0.efi", "1.0.0"), mk("ingot_3.0.0+0-3.efi", "3.0.0"), mk("ingot_2.0.0+3-0.efi", "2.0.0")}
	sortEntries(es)
	var got []string
	for _, e := range es {
		got = append(got, e.File)
	}
	want := []string{"ingot_2.0.0+3-0.efi", "ingot_1.0.0.efi", "ingot_3.0.0+0-3.efi"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
	tests := []struct {
		efi, conf string
		want      int
	}{
		{"", "", 0},
		{"ingot_1.0.0.efi", "", 1},
		{"ingot_3.0.0.efi", "", 2}, // the variable wins even over a bad entry
		{"", "ingot_1*", 1},
		{"gone.efi", "nomatch*", 0},
	}
	for _, tt := range tests {
		if got := selectDefault(es, tt.efi, tt.conf); got != tt.want {
			t.Errorf("selectDefault(%q, %q) = %d, want %d", tt.efi, tt.conf, got, tt.want)
		}
	}
}
