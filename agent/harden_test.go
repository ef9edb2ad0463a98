package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/artifact/artifacttest"
	"github.com/ingot-linux/ingot/format/luks2"
	"github.com/ingot-linux/ingot/layout"
)

// limitFileSize makes writes past n bytes fail (EFBIG) for the rest of
// the test, so an unbounded copy cannot fill the machine's disk.
func limitFileSize(t *testing.T, n uint64) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = min(n, old.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old) })
}

// TestHarden02UpdateTOCTOU changes an artifact file after it was verified
// and before it is written. The update must be refused with slot b left
// unlabelled, nothing after the slot changed, and no new UKI.
func TestHarden02UpdateTOCTOU(t *testing.T) {
	limitFileSize(t, 64<<20)
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
	}{
		{"swapped for a symlink to /dev/zero", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/dev/zero", path); err != nil {
				t.Fatal(err)
			}
		}},
		{"grown past the slot", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write(bytes.Repeat([]byte{0xee}, 8*mib)); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced by other bytes of the same size", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[2000] ^= 0xff
			mustWrite(t, path+".new", b)
			if err := os.Rename(path+".new", path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, "1.0.0")
			dir := m.artifact(t, "2.0.0", nil)
			before := m.state(t)
			a := m.agent(func(step string) {
				if strings.HasPrefix(step, "verified") {
					tt.change(t, filepath.Join(dir, artifact.FileUsr))
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := a.Update(ctx, dir)
			if err == nil {
				t.Fatal("Update installed a file changed after it was verified")
			}
			t.Log(err)
			after := m.state(t)
			// Up to the backup partition table, which relabelling rewrites.
			end := int(m.table(t).LastUsableLBA+1) * 512
			if len(after.disk) != len(before.disk) || !bytes.Equal(after.disk[afterSlotsLBA*512:end], before.disk[afterSlotsLBA*512:end]) {
				t.Error("bytes after slot b changed")
			}
			if name := m.table(t).ByType(layout.TypeUsr)[1].Name; name != layout.EmptyLabel {
				t.Errorf("slot b is labelled %q, want %s", name, layout.EmptyLabel)
			}
			if !sameMap(before.esp, after.esp) {
				t.Errorf("the ESP changed: %v", keys(after.esp))
			}
		})
	}
}

// TestHarden08UpdateRefusesOversizedFiles: a manifest declaring a file
// larger than the slot's partition is refused before the file is read,
// naming the file, its declared size and the limit.
func TestHarden08UpdateRefusesOversizedFiles(t *testing.T) {
	m := newMachine(t, "1.0.0")
	dir := m.artifact(t, "2.0.0", nil)
	a, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Manifest.Files {
		if a.Manifest.Files[i].Role == artifact.RoleUsr {
			a.Manifest.Files[i].Size = 1 << 40
		}
	}
	b, err := a.Manifest.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(dir, artifact.ManifestFile), b)
	before := m.state(t)
	_, err = m.agent(nil).Update(context.Background(), dir)
	want := "usr.erofs declares 1099511627776 bytes, more than the 3145728 bytes of slot b's usr partition"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Update: %v, want %q", err, want)
	}
	m.unchanged(t, before)
}

// TestHarden12UpdateDowngrade: an older version needs WithAllowDowngrade;
// then the booted entry is marked as a rollback marks it (+0-0), so the
// older one is the newest entry with tries left and boots next, and the
// booted one stays for systemd-boot to fall back to. A LoaderEntryDefault
// left by bootctl set-default would pin another entry: it is removed.
func TestHarden12UpdateDowngrade(t *testing.T) {
	m := newMachine(t, "2.0.0")
	vars := filepath.Join(m.root, layout.EFIVarsDir)
	dir := m.artifact(t, "1.0.0", nil)

	before := m.state(t)
	_, err := m.agent(nil).Update(context.Background(), dir)
	if !errors.Is(err, ErrDowngrade) || !strings.Contains(err.Error(), "version 1.0.0, running 2.0.0") {
		t.Fatalf("downgrade without allowing it: %v", err)
	}
	m.unchanged(t, before)

	mustWrite(t, filepath.Join(vars, "LoaderEntryDefault-"+layout.LoaderVendor), []byte{7, 0, 0, 0, 'x', 0, 0, 0})
	res, err := m.agent(nil).Update(context.Background(), dir, WithAllowDowngrade(true))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Downgrade || !strings.Contains(res.NextBoot, "ingot_1.0.0+3-0.efi, the newest entry with tries left") ||
		!strings.Contains(res.NextBoot, "ingot_2.0.0+0-0.efi") || !strings.Contains(res.NextBoot, "LoaderEntryDefault=x removed") {
		t.Errorf("result %+v does not say how 1.0.0 boots next", res)
	}
	if _, err := os.Stat(filepath.Join(vars, "LoaderEntryDefault-"+layout.LoaderVendor)); !os.IsNotExist(err) {
		t.Errorf("LoaderEntryDefault left in place: %v", err)
	}
	names := entryNames(t, m)
	if strings.Join(names, " ") != "ingot_1.0.0+3-0.efi ingot_2.0.0+0-0.efi" {
		t.Fatalf("ESP entries %v, want 1.0.0 with three tries and 2.0.0 marked", names)
	}
	st, err := m.agent(nil).Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != "1.0.0" {
		t.Errorf("status pending %q, want 1.0.0", st.Pending)
	}
}

func entryNames(t *testing.T, m *machine) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(m.esp, layout.UKIDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range des {
		names = append(names, d.Name())
	}
	sort.Strings(names)
	return names
}

// TestHarden12UpdateNeverOverwritesUKI: a file already named like the new
// UKI is refused before anything changes.
func TestHarden12UpdateNeverOverwritesUKI(t *testing.T) {
	m := newMachine(t, "1.0.0")
	dir := m.artifact(t, "2.0.0", nil)
	mustWrite(t, filepath.Join(m.esp, layout.UKIDir, layout.UKIName("2.0.0", 3)), []byte("someone's UKI"))
	before := m.state(t)
	_, err := m.agent(nil).Update(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("Update: %v, want a refusal to overwrite the UKI", err)
	}
	m.unchanged(t, before)
}

// TestHarden12UpdateSameVersionOtherUsr: the running version's label on
// another /usr is refused.
func TestHarden12UpdateSameVersionOtherUsr(t *testing.T) {
	m := newMachine(t, "2.0.0")
	before := m.state(t)
	_, err := m.agent(nil).Update(context.Background(), m.artifact(t, "2.0.0", nil))
	if err == nil || !strings.Contains(err.Error(), "is the running version") {
		t.Fatalf("Update: %v", err)
	}
	m.unchanged(t, before)
}

// TestHarden12RollbackClearsDefault: rollback removes a LoaderEntryDefault
// a downgrade set, or it would keep naming its entry.
func TestHarden12RollbackClearsDefault(t *testing.T) {
	m := newMachine(t, "2.0.0")
	if err := os.MkdirAll(filepath.Join(m.root, layout.EFIVarsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	a := m.agent(nil)
	if _, err := a.Update(context.Background(), m.artifact(t, "1.0.0", nil), WithAllowDowngrade(true)); err != nil {
		t.Fatal(err)
	}
	to, err := a.Rollback()
	if err != nil || to != "1.0.0" {
		t.Fatalf("Rollback = %q, %v", to, err)
	}
	if v, err := a.readLoaderVar(loaderEntryDefault); err != nil || v != "" {
		t.Errorf("LoaderEntryDefault after rollback: %q, %v", v, err)
	}
}

// sealedRootPartition is a LUKS2 root partition with the systemd-tpm2
// token systemd-cryptenroll 252 made for trust's test PCR key.
func sealedRootPartition(t *testing.T) []byte {
	t.Helper()
	const size = 20 << 20
	path := filepath.Join(t.TempDir(), "root")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	opts := luks2.Options{Passphrase: []byte("recovery"), PBKDF: luks2.PBKDF{Type: luks2.KDFPBKDF2, Iterations: 1000}}
	if err := luks2.Format(f, size, bytes.Repeat([]byte{7}, 64), opts); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../tpm/testdata/systemd-252-token.json")
	if err != nil {
		t.Fatal(err)
	}
	var tok map[string]any
	if err := json.Unmarshal(b, &tok); err != nil {
		t.Fatal(err)
	}
	tok["keyslots"] = []string{"0"}
	if _, err := luks2.AddToken(f, mustJSON(t, tok)); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHarden17UpdateSealedRootPCRKey: on a machine whose root is sealed
// to a PCR key, an update whose UKI another PCR key signed is refused
// (it would need the recovery key at the next boot); one signed by the
// sealed-to key installs.
func TestHarden17UpdateSealedRootPCRKey(t *testing.T) {
	root := sealedRootPartition(t)
	sealedTo := testKeys(t).PCR
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		uki     func(t *testing.T, usrhash string) []byte
		refused bool
	}{
		{"another PCR key", func(t *testing.T, h string) []byte {
			return artifacttest.PCRSignedUKI(t, "2.0.0", "usrhash="+h, other)
		}, true},
		{"no PCR signature", func(t *testing.T, h string) []byte {
			return artifacttest.VersionedUKI(t, "2.0.0", "usrhash="+h)
		}, true},
		{"the sealed-to PCR key", func(t *testing.T, h string) []byte {
			return artifacttest.PCRSignedUKI(t, "2.0.0", "usrhash="+h, sealedTo)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachineRoot(t, "1.0.0", root)
			dir := m.artifact(t, "2.0.0", func(h string) []byte { return tt.uki(t, h) })
			before := m.state(t)
			_, err := m.agent(nil).Update(context.Background(), dir)
			if !tt.refused {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrSealedRoot) || !strings.Contains(err.Error(), "recovery key") {
				t.Fatalf("Update: %v, want a refusal saying the recovery key would be needed", err)
			}
			t.Log(err)
			m.unchanged(t, before)
		})
	}
}

// TestHarden17PlainRootSkipsCheck: a machine with a plain root takes a
// UKI without PCR signatures.
func TestHarden17PlainRootSkipsCheck(t *testing.T) {
	m := newMachine(t, "1.0.0")
	if _, err := m.agent(nil).Update(context.Background(), m.artifact(t, "2.0.0", nil)); err != nil {
		t.Fatal(err)
	}
}
