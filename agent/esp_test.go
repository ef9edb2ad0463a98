package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseEntryName(t *testing.T) {
	tests := []struct {
		name       string
		ok         bool
		version    string
		left, done int
	}{
		{"ingot_1.0.0+3-0.efi", true, "1.0.0", 3, 0},
		{"ingot_1.0.0+2-1.efi", true, "1.0.0", 2, 1},
		{"ingot_1.0.0+0-3.efi", true, "1.0.0", 0, 3},
		{"ingot_1.0.0+3.efi", true, "1.0.0", 3, 0},
		{"ingot_1.0.0.efi", true, "1.0.0", -1, 0},
		{"ingot_2.0.0-rc1.efi", true, "2.0.0-rc1", -1, 0},
		{"other_1.0.efi", false, "", 0, 0},
		{"ingot_1.0.0+x-1.efi", false, "", 0, 0},
		{"ingot_1.0.0+3-0.conf", false, "", 0, 0},
		{"ingot_.efi", false, "", 0, 0},
		{".ingot-new.tmp", false, "", 0, 0},
	}
	for _, tc := range tests {
		e, ok := parseEntryName(tc.name)
		if ok != tc.ok || ok && (e.Version != tc.version || e.TriesLeft != tc.left || e.TriesDone != tc.done) {
			t.Errorf("parseEntryName(%q) = %+v, %v", tc.name, e, ok)
		}
	}
}

func TestInstallUKIAtomic(t *testing.T) {
	esp := t.TempDir()
	if err := installUKI(esp, "ingot_2.0.0+3-0.efi", []byte("uki"), nil); err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadDir(filepath.Join(esp, "EFI/Linux"))
	if len(names) != 1 || names[0].Name() != "ingot_2.0.0+3-0.efi" {
		t.Errorf("ESP holds %v, want only the installed UKI (no temporary file)", names)
	}
	if err := renameEntry(esp, "ingot_2.0.0+3-0.efi", "ingot_2.0.0.efi"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(esp, "EFI/Linux/ingot_2.0.0.efi")); err != nil {
		t.Error(err)
	}
}

func TestUpdateLock(t *testing.T) {
	a := New(Config{Root: t.TempDir()})
	unlock, err := a.lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.lock(); err != ErrBusy {
		t.Errorf("second lock: %v, want ErrBusy", err)
	}
	unlock()
	again, err := a.lock()
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	again()
}

func TestESPFull(t *testing.T) {
	esp := t.TempDir()
	err := checkESPRoom(esp, nil, 1<<50)
	if !errors.Is(err, ErrESPFull) || !strings.Contains(err.Error(), "--esp-size") {
		t.Errorf("a 1 PiB UKI: %v", err)
	}
	if err := checkESPRoom(esp, nil, 1024); err != nil {
		t.Errorf("a 1 KiB UKI: %v", err)
	}
}
