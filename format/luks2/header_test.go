package luks2

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const secondary = 16 << 10 // offset of the secondary copy in small volumes

func TestDamagedCopies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(b []byte)
		healthy int // copy that must survive: 0, 1, or -1 for none
	}{
		{"primary checksum", func(b []byte) { b[offCsum] ^= 1 }, 1},
		{"primary JSON", func(b []byte) { b[binHeaderSize+2] ^= 1 }, 1},
		{"primary seqid", func(b []byte) { b[offSeqID+7] = 99 }, 1},
		{"primary magic", func(b []byte) { b[0] = 'X' }, 1},
		{"primary version", func(b []byte) { b[offVersion+1] = 1 }, 1},
		{"primary size", func(b []byte) { b[offHdrSize+6] = 0x50 }, 1},
		{"primary wiped", func(b []byte) { clear(b[:secondary]) }, 1},
		{"secondary checksum", func(b []byte) { b[secondary+offCsum+31] ^= 0x80 }, 0},
		{"secondary JSON padding", func(b []byte) { b[2*secondary-1] = 1 }, 0},
		{"secondary offset", func(b []byte) { b[secondary+offHdrOffset+7] = 1 }, 0},
		{"secondary magic", func(b []byte) { copy(b[secondary:], "LUKS") }, 0},
		{"both checksums", func(b []byte) { b[offCsum] ^= 1; b[secondary+offCsum] ^= 1 }, -1},
		{"both wiped", func(b []byte) { clear(b[:2*secondary]) }, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev, key := formatSmall(t, 30)
			salts := [][]byte{
				bytes.Clone(dev.b[offSalt : offSalt+headerSalt]),
				bytes.Clone(dev.b[secondary+offSalt : secondary+offSalt+headerSalt]),
			}
			tc.damage(dev.b)
			h, err := ReadHeader(dev)
			if tc.healthy < 0 {
				if !errors.Is(err, ErrNoHeader) || !strings.HasPrefix(err.Error(), "luks2: read header: ") {
					t.Fatalf("ReadHeader: %v, want ErrNoHeader", err)
				}
				if _, _, err := Open(dev, []byte("correct horse")); !errors.Is(err, ErrNoHeader) {
					t.Errorf("Open: %v, want ErrNoHeader", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			if h.SeqID != 2 || len(h.Keyslots) != 1 {
				t.Errorf("header from copy %d: seqid %d, keyslots %v", tc.healthy, h.SeqID, h.Keyslots)
			}
			got, _, err := Open(dev, []byte("correct horse"))
			if err != nil || !bytes.Equal(got, key) {
				t.Fatalf("Open = %x, %v", got, err)
			}
			// The next update rewrites both copies, with a new salt only for
			// the damaged one.
			if _, err := AddToken(dev, json.RawMessage(`{"type":"t","keyslots":[]}`)); err != nil {
				t.Fatal(err)
			}
			for i, off := range []int64{0, secondary} {
				c, err := readCopy(dev, off, i == 1)
				if err != nil {
					t.Fatalf("copy %d after the update: %v", i, err)
				}
				if c.seqID != 3 {
					t.Errorf("copy %d has seqid %d, want 3", i, c.seqID)
				}
				if kept := bytes.Equal(c.salt, salts[i]); kept != (i == tc.healthy) {
					t.Errorf("copy %d salt kept = %v", i, kept)
				}
			}
		})
	}
}

// TestNewerCopyWins checks that of two intact copies the one with the
// higher sequence ID is used, whichever it is.
func TestNewerCopyWins(t *testing.T) {
	for _, stale := range []int64{0, secondary} {
		dev, key := formatSmall(t, 31)
		old := bytes.Clone(dev.b[stale : stale+secondary])
		if _, err := AddKeyslot(dev, key, []byte("new"), KeyslotOptions{PBKDF: cheapPBKDF2}); err != nil {
			t.Fatal(err)
		}
		copy(dev.b[stale:], old) // as if the update stopped half way
		h, err := ReadHeader(dev)
		if err != nil {
			t.Fatal(err)
		}
		if h.SeqID != 3 || len(h.Keyslots) != 2 {
			t.Errorf("stale copy at %d: seqid %d, %d keyslots; want the newer copy", stale, h.SeqID, len(h.Keyslots))
		}
		if _, slot, err := Open(dev, []byte("new")); err != nil || slot != 1 {
			t.Errorf("Open = slot %d, %v", slot, err)
		}
	}
}

// editJSON formats a small volume, applies edit to its metadata as a
// generic JSON value and writes the result to both copies.
func editJSON(t *testing.T, edit func(m map[string]any)) (*memDevice, []byte) {
	t.Helper()
	dev, key := formatSmall(t, 32)
	var m map[string]any
	jsonUnmarshal(t, jsonText(dev.b, 0), &m)
	edit(m)
	js := jsonMarshal(t, m)
	setJSON(t, dev.b, 0, js)
	setJSON(t, dev.b, secondary, js)
	return dev, key
}

func obj(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m = m[p].(map[string]any)
	}
	return m
}

func TestInvalidMetadata(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m map[string]any)
		text string
	}{
		{"no config", func(m map[string]any) { delete(m, "config") }, `no "config" section`},
		{"tokens not object", func(m map[string]any) { m["tokens"] = []any{} }, `"tokens" is not an object`},
		{"json_size", func(m map[string]any) { obj(m, "config")["json_size"] = "4096" }, "json_size 4096"},
		{"json_size number", func(m map[string]any) { obj(m, "config")["json_size"] = 12288 }, "config"},
		{"keyslot id", func(m map[string]any) { k := obj(m, "keyslots"); k["32"] = k["0"]; delete(k, "0") }, `keyslot object name "32"`},
		{"keyslot id zero", func(m map[string]any) { k := obj(m, "keyslots"); k["00"] = k["0"]; delete(k, "0") }, `keyslot object name "00"`},
		{"keyslot no type", func(m map[string]any) { delete(obj(m, "keyslots", "0"), "type") }, "keyslot 0 has no type"},
		{"keyslot area outside", func(m map[string]any) { obj(m, "keyslots", "0", "area")["offset"] = "4096" }, "outside the keyslots area"},
		{"keyslot area past end", func(m map[string]any) { obj(m, "keyslots", "0", "area")["offset"] = "819200" }, "outside the keyslots area"},
		{"keyslot area small", func(m map[string]any) { obj(m, "keyslots", "0", "area")["size"] = "4096" }, "area size"},
		{"keyslot stripes", func(m map[string]any) { obj(m, "keyslots", "0", "af")["stripes"] = 0 }, "af stripes"},
		{"keyslot salt", func(m map[string]any) { obj(m, "keyslots", "0", "kdf")["salt"] = "" }, "salt length"},
		{"overlap", func(m map[string]any) {
			k := obj(m, "keyslots")
			k["1"] = k["0"]
			d := obj(m, "digests", "0")
			d["keyslots"] = []any{"0"}
		}, "keyslots 0 and 1 overlap"},
		{"digest keyslot", func(m map[string]any) { obj(m, "digests", "0")["keyslots"] = []any{"0", "5"} }, "missing keyslot 5"},
		{"digest segment", func(m map[string]any) { obj(m, "digests", "0")["segments"] = []any{"1"} }, "missing segment 1"},
		{"two digests", func(m map[string]any) { d := obj(m, "digests"); d["1"] = d["0"] }, "bound to digests 0 and 1"},
		{"segment sector", func(m map[string]any) { obj(m, "segments", "0")["sector_size"] = 8192 }, "sector_size 8192"},
		{"segment size", func(m map[string]any) { obj(m, "segments", "0")["size"] = "100" }, "size"},
		{"segment offset", func(m map[string]any) { obj(m, "segments", "0")["offset"] = "-1" }, "segment 0"},
		{"token type", func(m map[string]any) { obj(m, "tokens")["0"] = map[string]any{"keyslots": []any{}} }, "token 0 has no type"},
		{"token keyslots", func(m map[string]any) { obj(m, "tokens")["0"] = map[string]any{"type": "x", "keyslots": []any{1}} }, "token 0 is not an object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev, _ := editJSON(t, tc.edit)
			_, err := ReadHeader(dev)
			if !errors.Is(err, ErrNoHeader) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("ReadHeader: %v\nwant ErrNoHeader mentioning %q", err, tc.text)
			}
		})
	}
}

func TestJSONAreaFraming(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame func(js []byte) []byte
	}{
		{"leading space", func(js []byte) []byte { return append([]byte(" "), js...) }},
		{"data after NUL", func(js []byte) []byte { return append(append(js, 0, 0), "junk"...) }},
		{"two objects", func(js []byte) []byte { return append(js, "{}"...) }},
		{"not JSON", func(js []byte) []byte { return js[:len(js)-1] }},
		{"array", func(js []byte) []byte { return []byte("[" + string(js) + "]") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev, _ := formatSmall(t, 33)
			js := tc.frame(jsonText(dev.b, 0))
			setJSON(t, dev.b, 0, js)
			setJSON(t, dev.b, secondary, js)
			if _, err := ReadHeader(dev); !errors.Is(err, ErrNoHeader) || !errors.Is(err, ErrCorrupt) {
				t.Errorf("ReadHeader: %v, want ErrNoHeader and ErrCorrupt", err)
			}
		})
	}
}

// TestPreservesUnknownFields checks that updates keep what this package does
// not interpret, and that keyslot priorities order Open.
func TestPreservesUnknownFields(t *testing.T) {
	dev, key := editJSON(t, func(m map[string]any) {
		m["x-vendor"] = map[string]any{"a": 1.0}
		obj(m, "config")["flags"] = []any{"allow-discards"}
		obj(m, "digests", "0")["x-note"] = "kept"
		obj(m, "keyslots", "0")["priority"] = 0.0
		obj(m, "keyslots", "0")["x-extra"] = true
	})
	h, err := ReadHeader(dev)
	if err != nil {
		t.Fatal(err)
	}
	if h.Keyslots[0].Priority != 0 || len(h.Flags) != 1 || h.Flags[0] != "allow-discards" {
		t.Fatalf("priority %d, flags %v", h.Keyslots[0].Priority, h.Flags)
	}
	if _, _, err := Open(dev, []byte("correct horse")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("Open used a keyslot of priority 0: %v", err)
	}
	if got, err := OpenKeyslot(dev, 0, []byte("correct horse")); err != nil || !bytes.Equal(got, key) {
		t.Errorf("OpenKeyslot(0) = %x, %v", got, err)
	}
	if _, err := AddKeyslot(dev, key, []byte("correct horse"), KeyslotOptions{PBKDF: cheapPBKDF2}); err != nil {
		t.Fatal(err)
	}
	if _, slot, err := Open(dev, []byte("correct horse")); err != nil || slot != 1 {
		t.Errorf("Open = slot %d, %v; want slot 1", slot, err)
	}
	var m map[string]any
	if err := json.Unmarshal(jsonText(dev.b, 0), &m); err != nil {
		t.Fatal(err)
	}
	if obj(m, "x-vendor")["a"] != 1.0 || obj(m, "digests", "0")["x-note"] != "kept" ||
		obj(m, "keyslots", "0")["x-extra"] != true || obj(m, "keyslots", "0")["priority"] != 0.0 {
		t.Errorf("unknown fields lost: %s", jsonText(dev.b, 0))
	}
	if !bytes.Equal(jsonText(dev.b, 0), jsonText(dev.b, secondary)) {
		t.Error("the copies differ")
	}
}

func TestRequirements(t *testing.T) {
	dev, key := editJSON(t, func(m map[string]any) {
		obj(m, "config")["requirements"] = map[string]any{"mandatory": []any{"online-reencrypt-v2"}}
	})
	h, err := ReadHeader(dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Requirements) != 1 || h.Requirements[0] != "online-reencrypt-v2" {
		t.Errorf("requirements = %v", h.Requirements)
	}
	if _, _, err := Open(dev, []byte("correct horse")); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Open: %v, want ErrUnsupported", err)
	}
	if _, err := AddKeyslot(dev, key, []byte("x"), KeyslotOptions{PBKDF: cheapPBKDF2}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("AddKeyslot: %v, want ErrUnsupported", err)
	}
	if _, err := AddToken(dev, json.RawMessage(`{"type":"x","keyslots":[]}`)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("AddToken: %v, want ErrUnsupported", err)
	}
}

// TestUnboundKeyslot checks that a keyslot whose digest is not bound to the
// data segment is not used to unlock it.
func TestUnboundKeyslot(t *testing.T) {
	dev, _ := editJSON(t, func(m map[string]any) {
		obj(m, "digests", "0")["segments"] = []any{}
	})
	if _, _, err := Open(dev, []byte("correct horse")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("Open: %v", err)
	}
	if _, err := OpenKeyslot(dev, 0, []byte("correct horse")); err == nil || !strings.Contains(err.Error(), "does not unlock the data segment") {
		t.Errorf("OpenKeyslot: %v", err)
	}
}

func TestJSONAreaFull(t *testing.T) {
	dev, _ := formatSmall(t, 34)
	big := `{"type":"big","keyslots":["0"],"data":"` + strings.Repeat("x", 6000) + `"}`
	if _, err := AddToken(dev, json.RawMessage(big)); err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(dev.b[:2*secondary])
	if _, err := AddToken(dev, json.RawMessage(big)); !errors.Is(err, ErrNoSpace) {
		t.Errorf("AddToken beyond the JSON area: %v, want ErrNoSpace", err)
	}
	if !bytes.Equal(before, dev.b[:2*secondary]) {
		t.Error("a failed AddToken changed the metadata")
	}
}
