package luks2

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
)

// cryptsetup runs cryptsetup and returns its combined output and exit code.
func cryptsetup(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ingottest.LookTool(t, "cryptsetup", "cryptsetup-bin")
	cmd := exec.Command("cryptsetup", args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("cryptsetup %s: %v", strings.Join(args, " "), err)
	return "", -1
}

// mustCryptsetup runs cryptsetup and fails the test unless it succeeds.
func mustCryptsetup(t *testing.T, args ...string) string {
	t.Helper()
	out, code := cryptsetup(t, args...)
	if code != 0 {
		t.Fatalf("cryptsetup %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// dumpVolumeKey returns the volume key as cryptsetup decrypts it with the
// passphrase in keyFile.
func dumpVolumeKey(t *testing.T, img, keyFile string) []byte {
	t.Helper()
	out := mustCryptsetup(t, "luksDump", "-q", "--dump-volume-key", "--key-file", keyFile, img)
	_, dump, ok := strings.Cut(out, "MK dump:")
	if !ok {
		t.Fatalf("no MK dump in:\n%s", out)
	}
	key, err := hex.DecodeString(strings.Join(strings.Fields(dump), ""))
	if err != nil {
		t.Fatalf("MK dump: %v\n%s", err, out)
	}
	return key
}

// newImage creates a sparse image file of size bytes.
func newImage(t *testing.T, size int64) (string, *os.File) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "luks.img")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p, f
}

// sameJSON fails unless a and b hold the same JSON value.
func sameJSON(t *testing.T, what string, a, b []byte) {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, a)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, b)
	}
	if !reflect.DeepEqual(va, vb) {
		t.Errorf("%s differs:\n%s\nwant\n%s", what, a, b)
	}
}

// TestCryptsetupReadsOurs checks volumes made by this package with
// cryptsetup: it must accept the metadata as it is (the JSON it dumps equals
// ours), open every keyslot with its passphrase and no other, recover the
// volume key, and be able to add a keyslot of its own that Open then uses.
func TestCryptsetupReadsOurs(t *testing.T) {
	ingottest.LookTool(t, "cryptsetup", "cryptsetup-bin")
	for _, tc := range []struct {
		name  string
		opts  Options
		slots []PBKDF // keyslots added after Format's keyslot 0
	}{
		{"default", Options{PBKDF: cheapArgon2, Label: "root", Subsystem: "ingot"}, []PBKDF{cheapPBKDF2}},
		{"sector4096-aes128", Options{PBKDF: cheapPBKDF2, SectorSize: 4096, KeyBytes: 32}, []PBKDF{cheapArgon2i}},
		{"metadata64k", Options{PBKDF: PBKDF{Type: KDFPBKDF2, Iterations: 1000, Hash: "sha512"}, MetadataSize: 64 << 10, KeyslotsAreaSize: 1 << 20}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.UUID = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3"
			o.Passphrase = []byte("slot 0 passphrase")
			o.Rand = seeded(20)
			keyBytes := max(o.KeyBytes, 64)
			if o.KeyBytes == 32 {
				keyBytes = 32
			}
			key := testKey(20, keyBytes)
			img, f := newImage(t, 20<<20)
			if err := Format(f, 20<<20, key, o); err != nil {
				t.Fatal(err)
			}
			passes := [][]byte{o.Passphrase}
			for i, p := range tc.slots {
				pass := []byte("passphrase of slot " + strconv.Itoa(i+1))
				slot, err := AddKeyslot(f, key, pass, KeyslotOptions{PBKDF: p, Rand: seeded(byte(21 + i))})
				if err != nil || slot != i+1 {
					t.Fatalf("AddKeyslot = %d, %v", slot, err)
				}
				passes = append(passes, pass)
			}
			tpmSlot := strconv.Itoa(len(passes) - 1)
			token := `{"type":"systemd-tpm2","keyslots":["` + tpmSlot + `"],"tpm2-blob":"AAEC","tpm2-pcrs":[7],"tpm2-pcr-bank":"sha256","tpm2-primary-alg":"ecc","tpm2-pin":false}`
			if id, err := AddToken(f, json.RawMessage(token)); err != nil || id != 0 {
				t.Fatalf("AddToken = %d, %v", id, err)
			}

			mustCryptsetup(t, "isLuks", "--type", "luks2", img)
			dump := mustCryptsetup(t, "luksDump", img)
			for _, want := range []string{
				"Version:       \t2\n",
				"UUID:          \t" + o.UUID + "\n",
				"Metadata area: \t" + strconv.FormatInt(max(o.MetadataSize, 16<<10), 10) + " [bytes]",
				"  0: luks2\n",
				"  0: systemd-tpm2\n",
				"cipher: aes-xts-plain64\n",
			} {
				if !strings.Contains(dump, want) {
					t.Errorf("luksDump lacks %q:\n%s", want, dump)
				}
			}
			if o.Label != "" && !strings.Contains(dump, "Label:         \t"+o.Label+"\n") {
				t.Errorf("luksDump lacks the label:\n%s", dump)
			}
			raw, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, "cryptsetup's JSON", []byte(mustCryptsetup(t, "luksDump", "--dump-json-metadata", img)), jsonText(raw, 0))

			dir := t.TempDir()
			for i, p := range passes {
				kf := filepath.Join(dir, "pass"+strconv.Itoa(i))
				if err := os.WriteFile(kf, p, 0o600); err != nil {
					t.Fatal(err)
				}
				mustCryptsetup(t, "open", "--test-passphrase", "--key-file", kf, "--key-slot", strconv.Itoa(i), img)
				if got := dumpVolumeKey(t, img, kf); !bytes.Equal(got, key) {
					t.Errorf("cryptsetup recovers %x with passphrase %d, want %x", got, i, key)
				}
			}
			wrong := writeFile(t, "wrong", []byte("slot 0 passphrasE"))
			if out, code := cryptsetup(t, "open", "--test-passphrase", "--key-file", wrong, img); code != 2 {
				t.Errorf("cryptsetup open with a wrong passphrase: exit %d, want 2\n%s", code, out)
			}

			// cryptsetup adds a keyslot to our metadata; we open it.
			added := writeFile(t, "added", []byte("added by cryptsetup"))
			mustCryptsetup(t, "luksAddKey", "-q", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
				"--key-file", filepath.Join(dir, "pass0"), img, added)
			got, slot, err := Open(f, []byte("added by cryptsetup"))
			if err != nil || !bytes.Equal(got, key) || slot != len(passes) {
				t.Errorf("Open after luksAddKey = %x, slot %d, %v", got, slot, err)
			}
			h, err := ReadHeader(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(h.Tokens) != 1 || h.Tokens[0].Type != "systemd-tpm2" {
				t.Errorf("tokens after luksAddKey: %+v", h.Tokens)
			}
		})
	}
}

// TestOpenCryptsetupVolumes opens volumes made by cryptsetup luksFormat
// and checks the volume key against cryptsetup's own dump, then adds a
// keyslot and a token that cryptsetup must accept.
func TestOpenCryptsetupVolumes(t *testing.T) {
	ingottest.LookTool(t, "cryptsetup", "cryptsetup-bin")
	for _, tc := range []struct {
		name   string
		args   []string
		sector int
		keyLen int
		meta   int64
	}{
		{"pbkdf2", []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}, 4096, 64, 16 << 10},
		{"argon2id", []string{"--pbkdf", "argon2id", "--pbkdf-memory", "32", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"}, 4096, 64, 16 << 10},
		{"argon2i-parallel", []string{"--pbkdf", "argon2i", "--pbkdf-memory", "256", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "3"}, 4096, 64, 16 << 10},
		{"sha512-sector512-aes128", []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--hash", "sha512", "--sector-size", "512", "--key-size", "256"}, 512, 32, 16 << 10},
		{"metadata", []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--luks2-metadata-size", "128k", "--luks2-keyslots-size", "2m", "--label", "data", "--subsystem", "s"}, 4096, 64, 128 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, _ := newImage(t, 20<<20)
			pw := writeFile(t, "pw", []byte("cryptsetup passphrase\n"))
			args := append([]string{"luksFormat", "-q", "--type", "luks2", "--key-file", pw}, tc.args...)
			mustCryptsetup(t, append(args, img)...)
			want := dumpVolumeKey(t, img, pw)
			if len(want) != tc.keyLen {
				t.Fatalf("cryptsetup made a %d-byte key", len(want))
			}
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()

			got, slot, err := Open(f, []byte("cryptsetup passphrase\n"))
			if err != nil || slot != 0 || !bytes.Equal(got, want) {
				t.Fatalf("Open = %x, slot %d, %v; want %x", got, slot, err, want)
			}
			if _, _, err := Open(f, []byte("cryptsetup passphrase")); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("Open with a wrong passphrase: %v", err)
			}
			h, err := ReadHeader(f)
			if err != nil {
				t.Fatal(err)
			}
			uuid := strings.TrimSpace(mustCryptsetup(t, "luksUUID", img))
			if h.UUID != uuid || h.SectorSize != tc.sector || h.MetadataSize != tc.meta || h.Cipher != "aes-xts-plain64" {
				t.Errorf("header UUID %q sector %d metadata %d cipher %q; cryptsetup UUID %q", h.UUID, h.SectorSize, h.MetadataSize, h.Cipher, uuid)
			}
			wantOffset := "\toffset: " + strconv.FormatInt(h.DataOffset, 10) + " [bytes]\n"
			if dump := mustCryptsetup(t, "luksDump", img); !strings.Contains(dump, wantOffset) || h.DataOffset != h.Segments[0].Offset {
				t.Errorf("data offset %d, segments %+v; luksDump:\n%s", h.DataOffset, h.Segments, dump)
			}

			// Our updates to cryptsetup's metadata must satisfy cryptsetup.
			slot, err = AddKeyslot(f, got, []byte("ours"), KeyslotOptions{PBKDF: cheapArgon2})
			if err != nil || slot != 1 {
				t.Fatalf("AddKeyslot = %d, %v", slot, err)
			}
			if _, err := AddToken(f, json.RawMessage(`{"type":"ingot-test","keyslots":["1"],"note":"<&>"}`)); err != nil {
				t.Fatal(err)
			}
			ours := writeFile(t, "ours", []byte("ours"))
			mustCryptsetup(t, "open", "--test-passphrase", "--key-slot", "1", "--key-file", ours, img)
			mustCryptsetup(t, "open", "--test-passphrase", "--key-slot", "0", "--key-file", pw, img)
			dump := mustCryptsetup(t, "luksDump", img)
			if !strings.Contains(dump, "  0: ingot-test\n") || !strings.Contains(dump, "  1: luks2\n") {
				t.Errorf("luksDump after our updates:\n%s", dump)
			}
		})
	}
}

// TestCryptsetupKeyslotless checks a volume formatted without a keyslot:
// cryptsetup must accept it and add a keyslot from the volume key, which
// Open then uses.
func TestCryptsetupKeyslotless(t *testing.T) {
	ingottest.LookTool(t, "cryptsetup", "cryptsetup-bin")
	img, f := newImage(t, 20<<20)
	key := testKey(23, 64)
	if err := Format(f, 20<<20, key, Options{Rand: seeded(23)}); err != nil {
		t.Fatal(err)
	}
	mustCryptsetup(t, "isLuks", "--type", "luks2", img)
	if dump := mustCryptsetup(t, "luksDump", img); !strings.Contains(dump, "Keyslots:\nTokens:\n") {
		t.Errorf("luksDump of a keyslot-less volume:\n%s", dump)
	}
	vk := writeFile(t, "vk", key)
	pw := writeFile(t, "pw", []byte("from cryptsetup"))
	mustCryptsetup(t, "luksAddKey", "-q", "--key-size", "512", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--volume-key-file", vk, img, pw)
	got, slot, err := Open(f, []byte("from cryptsetup"))
	if err != nil || slot != 0 || !bytes.Equal(got, key) {
		t.Errorf("Open = %x, slot %d, %v", got, slot, err)
	}
	// A wrong volume key must not get a keyslot.
	bad := writeFile(t, "bad", testKey(24, 64))
	if out, code := cryptsetup(t, "luksAddKey", "-q", "--key-size", "512", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--volume-key-file", bad, img, pw); code == 0 {
		t.Errorf("cryptsetup accepted a wrong volume key for our digest:\n%s", out)
	}
}
