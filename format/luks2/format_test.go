package luks2

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		key  int
	}{
		{"pbkdf2", Options{PBKDF: cheapPBKDF2}, 64},
		{"pbkdf2-sha512", Options{PBKDF: PBKDF{Type: KDFPBKDF2, Iterations: 1000, Hash: "sha512"}}, 64},
		{"argon2id", Options{PBKDF: cheapArgon2}, 64},
		{"argon2i", Options{PBKDF: cheapArgon2i}, 64},
		{"aes128", Options{PBKDF: cheapPBKDF2, KeyBytes: 32}, 32},
		{"sector4096", Options{PBKDF: cheapPBKDF2, SectorSize: 4096}, 64},
		{"metadata64k", Options{PBKDF: cheapPBKDF2, MetadataSize: 64 << 10}, 64},
		{"labels", Options{PBKDF: cheapPBKDF2, Label: "root", Subsystem: "ingot", UUID: "C0FFEE00-0000-4000-8000-000000000001"}, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.KeyslotsAreaSize = smallKeyslots
			o.Passphrase = []byte("pass " + tc.name)
			o.Rand = seeded(1)
			meta := o.MetadataSize
			if meta == 0 {
				meta = 16 << 10
			}
			dataOffset := 2*meta + smallKeyslots
			size := dataOffset + 64<<10
			dev := newMemDevice(int(size))
			key := testKey(1, tc.key)
			if err := Format(dev, size, key, o); err != nil {
				t.Fatalf("Format: %v", err)
			}
			got, slot, err := Open(dev, o.Passphrase)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, key) || slot != 0 {
				t.Errorf("Open = %x, slot %d; want %x, slot 0", got, slot, key)
			}
			h, err := ReadHeader(dev)
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			sector := o.SectorSize
			if sector == 0 {
				sector = 512
			}
			if h.DataOffset != dataOffset || h.SectorSize != sector || h.Cipher != "aes-xts-plain64" ||
				h.MetadataSize != meta || h.KeyslotsSize != smallKeyslots || h.SeqID != 2 {
				t.Errorf("header: offset %d sector %d cipher %q metadata %d keyslots %d seqid %d",
					h.DataOffset, h.SectorSize, h.Cipher, h.MetadataSize, h.KeyslotsSize, h.SeqID)
			}
			if o.UUID != "" && h.UUID != strings.ToLower(o.UUID) || !validUUID(h.UUID) {
				t.Errorf("UUID = %q", h.UUID)
			}
			if h.Label != o.Label || h.Subsystem != o.Subsystem {
				t.Errorf("labels = %q, %q; want %q, %q", h.Label, h.Subsystem, o.Label, o.Subsystem)
			}
			wantPBKDF := o.PBKDF.withDefaults()
			wantSlot := Keyslot{
				ID: 0, Type: "luks2", KeyBytes: tc.key, Priority: 1, PBKDF: wantPBKDF,
				AreaOffset: 2 * meta, AreaSize: 258048 * int64(tc.key) / 64, AreaCipher: "aes-xts-plain64",
				Stripes: 4000, AFHash: "sha256", Digest: 0,
			}
			if tc.key == 32 {
				wantSlot.AreaSize = 131072
			}
			if len(h.Keyslots) != 1 || !reflect.DeepEqual(h.Keyslots[0], wantSlot) {
				t.Errorf("keyslots = %+v\nwant [%+v]", h.Keyslots, wantSlot)
			}
			wantSeg := []Segment{{ID: 0, Type: "crypt", Offset: dataOffset, Size: -1, Cipher: "aes-xts-plain64", SectorSize: sector}}
			if !reflect.DeepEqual(h.Segments, wantSeg) {
				t.Errorf("segments = %+v, want %+v", h.Segments, wantSeg)
			}
			wantDigest := []Digest{{ID: 0, Type: "pbkdf2", Keyslots: []int{0}, Segments: []int{0}, Hash: "sha256", Iterations: 1000}}
			if !reflect.DeepEqual(h.Digests, wantDigest) {
				t.Errorf("digests = %+v, want %+v", h.Digests, wantDigest)
			}
			if _, _, err := Open(dev, []byte("wrong")); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("Open with a wrong passphrase: %v, want ErrWrongPassphrase", err)
			}
		})
	}
}

func TestKeyslotsAndTokens(t *testing.T) {
	dev := newMemDevice(smallDevice)
	key := testKey(2, 64)
	o := smallOptions(2)
	o.Passphrase = nil
	if err := Format(dev, smallDevice, key, o); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHeader(dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Keyslots) != 0 || len(h.Tokens) != 0 || h.SeqID != 1 {
		t.Fatalf("new volume has keyslots %v, tokens %v, seqid %d", h.Keyslots, h.Tokens, h.SeqID)
	}
	if _, _, err := Open(dev, []byte("anything")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("Open without keyslots: %v, want ErrWrongPassphrase", err)
	}

	pass := []string{"first", "second", "third"}
	for i, p := range pass {
		kdf := []PBKDF{cheapPBKDF2, cheapArgon2, cheapArgon2i}[i]
		slot, err := AddKeyslot(dev, key, []byte(p), KeyslotOptions{PBKDF: kdf, Rand: seeded(byte(10 + i))})
		if err != nil || slot != i {
			t.Fatalf("AddKeyslot %d = %d, %v", i, slot, err)
		}
	}
	if _, err := AddKeyslot(dev, key, []byte("fourth"), KeyslotOptions{PBKDF: cheapPBKDF2}); !errors.Is(err, ErrNoSpace) {
		t.Errorf("AddKeyslot to a full keyslots area: %v, want ErrNoSpace", err)
	}
	for i, p := range pass {
		got, slot, err := Open(dev, []byte(p))
		if err != nil || slot != i || !bytes.Equal(got, key) {
			t.Errorf("Open(%q) = %x, %d, %v; want the key from slot %d", p, got, slot, err, i)
		}
		for j := range pass {
			got, err := OpenKeyslot(dev, j, []byte(p))
			switch {
			case i == j && (err != nil || !bytes.Equal(got, key)):
				t.Errorf("OpenKeyslot(%d, %q) = %x, %v", j, p, got, err)
			case i != j && !errors.Is(err, ErrWrongPassphrase):
				t.Errorf("OpenKeyslot(%d, %q): %v, want ErrWrongPassphrase", j, p, err)
			}
		}
	}

	tok := json.RawMessage(`{"type":"systemd-tpm2","keyslots":["1"],"tpm2-blob":"AAAA","tpm2-pcrs":[7],"tpm2-pcr-bank":"sha256"}`)
	for want := range 2 {
		id, err := AddToken(dev, tok)
		if err != nil || id != want {
			t.Fatalf("AddToken = %d, %v; want %d", id, err, want)
		}
	}
	h, err = ReadHeader(dev)
	if err != nil {
		t.Fatal(err)
	}
	if h.SeqID != 6 {
		t.Errorf("seqid after 5 updates = %d, want 6", h.SeqID)
	}
	if len(h.Tokens) != 2 {
		t.Fatalf("tokens = %+v", h.Tokens)
	}
	for i, tk := range h.Tokens {
		if tk.ID != i || tk.Type != "systemd-tpm2" || !reflect.DeepEqual(tk.Keyslots, []int{1}) {
			t.Errorf("token %d = %+v", i, tk)
		}
		var a, b any
		json.Unmarshal(tk.JSON, &a)
		json.Unmarshal(tok, &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("token %d JSON = %s, want %s", i, tk.JSON, tok)
		}
	}
	if !reflect.DeepEqual(h.Digests[0].Keyslots, []int{0, 1, 2}) {
		t.Errorf("digest keyslots = %v", h.Digests[0].Keyslots)
	}
	for i, k := range h.Keyslots {
		if k.AreaOffset != 32<<10+int64(i)*258048 || k.AreaSize != 258048 {
			t.Errorf("keyslot %d area [%d, +%d)", i, k.AreaOffset, k.AreaSize)
		}
	}
}

func TestAddKeyslotWrongVolumeKey(t *testing.T) {
	dev, _ := formatSmall(t, 3)
	_, err := AddKeyslot(dev, testKey(4, 64), []byte("x"), KeyslotOptions{PBKDF: cheapPBKDF2})
	if !errors.Is(err, ErrWrongVolumeKey) {
		t.Errorf("AddKeyslot with another key: %v, want ErrWrongVolumeKey", err)
	}
}

func TestReproducible(t *testing.T) {
	build := func(seed byte) []byte {
		dev := newMemDevice(smallDevice)
		key := testKey(5, 64)
		o := smallOptions(seed)
		o.PBKDF = cheapArgon2
		if err := Format(dev, smallDevice, key, o); err != nil {
			t.Fatal(err)
		}
		if _, err := AddKeyslot(dev, key, []byte("recovery"), KeyslotOptions{PBKDF: cheapPBKDF2, Rand: seeded(seed + 1)}); err != nil {
			t.Fatal(err)
		}
		if _, err := AddToken(dev, json.RawMessage(`{"type":"x","keyslots":["1"]}`)); err != nil {
			t.Fatal(err)
		}
		return dev.b
	}
	a, b, c := build(7), build(7), build(8)
	if !bytes.Equal(a, b) {
		t.Errorf("two builds from the same inputs differ")
	}
	if bytes.Equal(a[:smallData], c[:smallData]) {
		t.Errorf("builds with different random seeds are equal")
	}
}

func TestFormatErrors(t *testing.T) {
	key := testKey(6, 64)
	for _, tc := range []struct {
		name string
		size int64
		key  []byte
		mod  func(*Options)
		want error  // nil: any error
		text string // part of the message
	}{
		{"unknown cipher", smallDevice, key, func(o *Options) { o.Cipher = "serpent-cbc-essiv:sha256" }, ErrUnsupported, "serpent"},
		{"key size", smallDevice, key, func(o *Options) { o.KeyBytes = 48 }, ErrUnsupported, "48-byte"},
		{"key length", smallDevice, key[:32], nil, nil, "volume key has 32 bytes, want 64"},
		{"too small", smallData, key, nil, nil, "too small"},
		{"empty device", 0, key, nil, nil, "too small"},
		{"sector size", smallDevice, key, func(o *Options) { o.SectorSize = 520 }, ErrUnsupported, "sector size"},
		{"metadata size", smallDevice, key, func(o *Options) { o.MetadataSize = 20 << 10 }, ErrUnsupported, "metadata size"},
		{"keyslots size", smallDevice, key, func(o *Options) { o.KeyslotsAreaSize = 1000 }, nil, "keyslots area"},
		{"no room for keyslot", smallDevice, key, func(o *Options) { o.KeyslotsAreaSize = 4096 * 3 }, ErrNoSpace, "keyslot"},
		{"uuid", smallDevice, key, func(o *Options) { o.UUID = "not-a-uuid" }, nil, "UUID"},
		{"label", smallDevice, key, func(o *Options) { o.Label = strings.Repeat("x", 48) }, nil, "longer than 47"},
		{"pbkdf", smallDevice, key, func(o *Options) { o.PBKDF = PBKDF{Type: "scrypt"} }, ErrUnsupported, "scrypt"},
		{"argon2 memory", smallDevice, key, func(o *Options) { o.PBKDF.Type = KDFArgon2id; o.PBKDF.MemoryKiB = 8 << 20 }, ErrUnsupported, "memory"},
		{"pbkdf2 hash", smallDevice, key, func(o *Options) { o.PBKDF.Hash = "md5" }, ErrUnsupported, "md5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := smallOptions(6)
			if tc.mod != nil {
				tc.mod(&o)
			}
			dev := newMemDevice(smallDevice)
			err := Format(dev, tc.size, tc.key, o)
			if err == nil {
				t.Fatal("Format succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v is not %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) || !strings.HasPrefix(err.Error(), "luks2: format: ") {
				t.Errorf("error %q does not start with \"luks2: format: \" and mention %q", err, tc.text)
			}
			if bytes.Contains(dev.b, []byte("LUKS")) {
				t.Error("a failed Format wrote a header")
			}
		})
	}
}

func TestAddTokenErrors(t *testing.T) {
	dev, _ := formatSmall(t, 9)
	for _, tc := range []struct{ token, text string }{
		{`[1]`, "not a JSON object"},
		{`null`, "not a JSON object"},
		{`{"keyslots":["0"]}`, `no "type"`},
		{`{"type":"","keyslots":["0"]}`, `no "type"`},
		{`{"type":"x"}`, `no "keyslots"`},
		{`{"type":"x","keyslots":"0"}`, "not a JSON object"},
		{`{"type":"x","keyslots":["1"]}`, `keyslot "1"`},
		{`{"type":"x","keyslots":["00"]}`, `keyslot "00"`},
	} {
		if _, err := AddToken(dev, json.RawMessage(tc.token)); err == nil || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("AddToken(%s): %v, want an error mentioning %q", tc.token, err, tc.text)
		}
	}
	h, err := ReadHeader(dev)
	if err != nil || len(h.Tokens) != 0 || h.SeqID != 2 {
		t.Errorf("after failed AddToken: %v, tokens %v, seqid %d", err, h.Tokens, h.SeqID)
	}
}

func TestAFSplitMerge(t *testing.T) {
	for _, n := range []int{16, 32, 33, 64, 100} {
		for _, hn := range []string{"sha1", "sha256", "sha512"} {
			for _, stripes := range []int{1, 2, 7, 4000} {
				h, _ := hashFunc(hn)
				key := testKey(byte(n), n)
				split, err := afSplit(key, stripes, h, seeded(byte(stripes)))
				if err != nil {
					t.Fatal(err)
				}
				if len(split) != n*stripes {
					t.Fatalf("split length %d", len(split))
				}
				if got := afMerge(split, n, stripes, h); !bytes.Equal(got, key) {
					t.Errorf("n=%d %s stripes=%d: merge = %x, want %x", n, hn, stripes, got, key)
				}
				if stripes > 1 {
					split[0] ^= 1
					if got := afMerge(split, n, stripes, h); bytes.Equal(got, key) {
						t.Errorf("n=%d %s stripes=%d: merge ignores a damaged stripe", n, hn, stripes)
					}
				}
			}
		}
	}
}

// TestReformat formats over a volume with larger metadata: nothing of the
// old volume may be found afterwards.
func TestReformat(t *testing.T) {
	dev := newMemDevice(smallDevice + 1<<20)
	old := smallOptions(12)
	old.MetadataSize = 64 << 10
	if err := Format(dev, int64(len(dev.b)), testKey(12, 64), old); err != nil {
		t.Fatal(err)
	}
	key := testKey(13, 64)
	if err := Format(dev, int64(len(dev.b)), key, smallOptions(13)); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHeader(dev)
	if err != nil || h.MetadataSize != 16<<10 {
		t.Fatalf("ReadHeader: %v, metadata size %d", err, h.MetadataSize)
	}
	if _, err := readCopy(dev, 64<<10, true); err == nil {
		t.Error("the old secondary copy survived")
	}
	// Without the new primary, the old volume must not come back.
	clear(dev.b[:16<<10])
	h, err = ReadHeader(dev)
	if err != nil || h.MetadataSize != 16<<10 {
		t.Fatalf("from the secondary copy: %v", err)
	}
	if got, _, err := Open(dev, []byte("correct horse")); err != nil || !bytes.Equal(got, key) {
		t.Errorf("Open = %x, %v", got, err)
	}
}
