package luks2

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Keyslot describes one keyslot of a header.
type Keyslot struct {
	// ID is the keyslot number, 0 to 31.
	ID int
	// Type is "luks2" for passphrase keyslots; other types (such as
	// "reencrypt") are listed but never opened.
	Type string
	// KeyBytes is the length of the key the keyslot stores.
	KeyBytes int
	// Priority is 0 (ignored by Open), 1 (normal) or 2 (tried first).
	Priority int
	// PBKDF is the key derivation of a luks2 keyslot.
	PBKDF PBKDF
	// AreaOffset and AreaSize locate the keyslot's encrypted material, in
	// bytes from the start of the device.
	AreaOffset int64
	AreaSize   int64
	// AreaCipher encrypts the area, normally "aes-xts-plain64".
	AreaCipher string
	// Stripes and AFHash are the anti-forensic splitter's parameters.
	Stripes int
	AFHash  string
	// Digest is the ID of the digest that verifies the stored key, or -1
	// if none does.
	Digest int
}

// Segment describes one data segment.
type Segment struct {
	// ID is the segment number.
	ID int
	// Type is "crypt" for encrypted data.
	Type string
	// Offset is where the segment starts, in bytes.
	Offset int64
	// Size is the segment's size in bytes; -1 means "dynamic", up to the
	// end of the device.
	Size int64
	// IVTweak is added to the sector number for the IV.
	IVTweak uint64
	// Cipher is the segment's encryption, such as "aes-xts-plain64".
	Cipher string
	// SectorSize is the encryption sector size in bytes.
	SectorSize int
}

// Digest describes one digest, which verifies a volume key.
type Digest struct {
	// ID is the digest number.
	ID int
	// Type is "pbkdf2".
	Type string
	// Keyslots and Segments are the IDs the digest is bound to.
	Keyslots []int
	Segments []int
	// Hash and Iterations are the PBKDF2 parameters.
	Hash       string
	Iterations int
}

// Token is a token object: metadata that tells how to obtain a keyslot's
// passphrase, such as a systemd-tpm2 sealed secret.
type Token struct {
	// ID is the token number, 0 to 31.
	ID int
	// Type is the token type, such as "systemd-tpm2".
	Type string
	// Keyslots are the keyslots the token unlocks.
	Keyslots []int
	// JSON is the whole token object.
	JSON json.RawMessage
}

// JSON objects of the metadata. Integers that may exceed 2^53 are strings.
type (
	jsonKeyslot struct {
		Type     string   `json:"type"`
		KeySize  int      `json:"key_size"`
		AF       jsonAF   `json:"af"`
		Area     jsonArea `json:"area"`
		KDF      jsonKDF  `json:"kdf"`
		Priority *int     `json:"priority,omitempty"`
	}
	jsonAF struct {
		Type    string `json:"type"`
		Stripes int    `json:"stripes"`
		Hash    string `json:"hash"`
	}
	jsonArea struct {
		Type       string `json:"type"`
		Offset     uint64 `json:"offset,string"`
		Size       uint64 `json:"size,string"`
		Encryption string `json:"encryption"`
		KeySize    int    `json:"key_size"`
	}
	jsonKDF struct {
		Type       string `json:"type"`
		Hash       string `json:"hash,omitempty"`
		Iterations uint32 `json:"iterations,omitempty"`
		Time       uint32 `json:"time,omitempty"`
		Memory     uint32 `json:"memory,omitempty"`
		CPUs       uint32 `json:"cpus,omitempty"`
		Salt       []byte `json:"salt"`
	}
	jsonSegment struct {
		Type       string `json:"type"`
		Offset     uint64 `json:"offset,string"`
		Size       string `json:"size"`
		IVTweak    uint64 `json:"iv_tweak,string"`
		Encryption string `json:"encryption"`
		SectorSize int    `json:"sector_size"`
	}
	jsonDigest struct {
		Type       string   `json:"type"`
		Keyslots   []string `json:"keyslots"`
		Segments   []string `json:"segments"`
		Hash       string   `json:"hash"`
		Iterations int      `json:"iterations"`
		Salt       []byte   `json:"salt"`
		Digest     []byte   `json:"digest"`
	}
	jsonConfig struct {
		JSONSize     uint64            `json:"json_size,string"`
		KeyslotsSize uint64            `json:"keyslots_size,string"`
		Flags        []string          `json:"flags,omitempty"`
		Requirements *jsonRequirements `json:"requirements,omitempty"`
	}
	jsonRequirements struct {
		Mandatory []string `json:"mandatory,omitempty"`
	}
	jsonTokenHead struct {
		Type     *string   `json:"type"`
		Keyslots *[]string `json:"keyslots"`
	}
	jsonType struct {
		Type *string `json:"type"`
	}
)

// metadata is the JSON area as objects keyed by ID. Fields this package
// does not know are kept, so that updates preserve them.
type metadata struct {
	top      map[string]json.RawMessage
	keyslots map[string]json.RawMessage
	tokens   map[string]json.RawMessage
	segments map[string]json.RawMessage
	digests  map[string]json.RawMessage
}

// decodeMetadata parses a JSON area: one JSON object followed only by zero
// bytes.
func decodeMetadata(area []byte) (*metadata, error) {
	if len(area) == 0 || area[0] != '{' {
		return nil, fmt.Errorf("JSON area does not start with '{': %w", ErrCorrupt)
	}
	end := bytes.IndexByte(area, 0)
	if end < 0 {
		return nil, fmt.Errorf("JSON area has no terminating NUL: %w", ErrCorrupt)
	}
	if bytes.ContainsFunc(area[end:], func(r rune) bool { return r != 0 }) {
		return nil, fmt.Errorf("JSON area has data after the JSON text: %w", ErrCorrupt)
	}
	m := &metadata{}
	if err := json.Unmarshal(area[:end], &m.top); err != nil {
		return nil, fmt.Errorf("parse JSON metadata: %w", errors.Join(ErrCorrupt, err))
	}
	for _, s := range []struct {
		name string
		dst  *map[string]json.RawMessage
	}{
		{"keyslots", &m.keyslots}, {"tokens", &m.tokens}, {"segments", &m.segments},
		{"digests", &m.digests}, {"config", nil},
	} {
		raw, ok := m.top[s.name]
		if !ok {
			return nil, fmt.Errorf("JSON metadata has no %q section: %w", s.name, ErrCorrupt)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return nil, fmt.Errorf("JSON section %q is not an object: %w", s.name, ErrCorrupt)
		}
		if s.dst != nil {
			*s.dst = obj
		}
	}
	return m, nil
}

// encode renders m as compact JSON.
func (m *metadata) encode() ([]byte, error) {
	for name, sec := range map[string]map[string]json.RawMessage{
		"keyslots": m.keyslots, "tokens": m.tokens, "segments": m.segments, "digests": m.digests,
	} {
		raw, err := marshal(sec)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", name, err)
		}
		m.top[name] = raw
	}
	js, err := marshal(m.top)
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	return js, nil
}

// marshal encodes v as compact JSON without HTML escaping.
func marshal(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// parseID parses an object name or reference: a decimal number below limit
// without sign or leading zeros.
func parseID(s string, limit int) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n >= limit || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}

// parseIDs parses a list of references.
func parseIDs(refs []string, limit int) ([]int, bool) {
	ids := make([]int, 0, len(refs))
	for _, r := range refs {
		n, ok := parseID(r, limit)
		if !ok {
			return nil, false
		}
		ids = append(ids, n)
	}
	return ids, true
}

// sortedIDs returns the object names of sec as numbers, sorted, or an error
// naming the first invalid one.
func sortedIDs(section string, sec map[string]json.RawMessage, limit int) ([]int, error) {
	ids := make([]int, 0, len(sec))
	for k := range sec {
		n, ok := parseID(k, limit)
		if !ok {
			return nil, fmt.Errorf("%s object name %q is not a number below %d: %w", section, k, limit, ErrCorrupt)
		}
		ids = append(ids, n)
	}
	slices.Sort(ids)
	return ids, nil
}

// strictUnmarshal decodes raw into v, refusing a JSON null.
func strictUnmarshal(raw json.RawMessage, v any) error {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return errors.New("null object")
	}
	return json.Unmarshal(raw, v)
}

// load validates m against the binary header fields already in h and sets
// h's other fields from it.
func (h *Header) load(m *metadata) error {
	var cfg jsonConfig
	if err := strictUnmarshal(m.top["config"], &cfg); err != nil {
		return fmt.Errorf("config: %w", errors.Join(ErrCorrupt, err))
	}
	if int64(cfg.JSONSize) != h.MetadataSize-binHeaderSize {
		return fmt.Errorf("config json_size %d does not match the %d-byte header: %w", cfg.JSONSize, h.MetadataSize, ErrCorrupt)
	}
	if cfg.KeyslotsSize%areaAlign != 0 || cfg.KeyslotsSize > 1<<40 {
		return fmt.Errorf("config keyslots_size %d: %w", cfg.KeyslotsSize, ErrCorrupt)
	}
	n := &Header{
		UUID: h.UUID, Label: h.Label, Subsystem: h.Subsystem, SeqID: h.SeqID,
		MetadataSize: h.MetadataSize, KeyslotsSize: int64(cfg.KeyslotsSize),
		Flags: cfg.Flags, meta: m, salts: h.salts, csumAlg: h.csumAlg,
		keyslots: map[int]*jsonKeyslot{}, digests: map[int]*jsonDigest{},
	}
	if cfg.Requirements != nil {
		n.Requirements = cfg.Requirements.Mandatory
	}
	areasStart := 2 * n.MetadataSize
	areasEnd := areasStart + n.KeyslotsSize

	ksIDs, err := sortedIDs("keyslot", m.keyslots, maxKeyslots)
	if err != nil {
		return err
	}
	for _, id := range ksIDs {
		k, err := parseKeyslot(id, m.keyslots[strconv.Itoa(id)], areasStart, areasEnd)
		if err != nil {
			return err
		}
		n.Keyslots = append(n.Keyslots, k.pub)
		if k.luks2 != nil {
			n.keyslots[id] = k.luks2
		}
	}
	if err := checkOverlaps(n.Keyslots); err != nil {
		return err
	}

	segIDs, err := sortedIDs("segment", m.segments, 1<<31)
	if err != nil {
		return err
	}
	for _, id := range segIDs {
		s, err := parseSegment(id, m.segments[strconv.Itoa(id)])
		if err != nil {
			return err
		}
		n.Segments = append(n.Segments, s)
		if s.Type == "crypt" && n.Cipher == "" {
			n.DataOffset, n.SectorSize, n.Cipher = s.Offset, s.SectorSize, s.Cipher
		}
	}

	dgIDs, err := sortedIDs("digest", m.digests, 1<<31)
	if err != nil {
		return err
	}
	for i := range n.Keyslots {
		n.Keyslots[i].Digest = -1
	}
	for _, id := range dgIDs {
		d, jd, err := parseDigest(id, m.digests[strconv.Itoa(id)], ksIDs, segIDs)
		if err != nil {
			return err
		}
		for _, ks := range d.Keyslots {
			i := slices.IndexFunc(n.Keyslots, func(k Keyslot) bool { return k.ID == ks })
			if n.Keyslots[i].Digest >= 0 {
				return fmt.Errorf("keyslot %d is bound to digests %d and %d: %w", ks, n.Keyslots[i].Digest, id, ErrCorrupt)
			}
			n.Keyslots[i].Digest = id
		}
		n.Digests = append(n.Digests, d)
		if jd != nil {
			n.digests[id] = jd
		}
	}

	tokIDs, err := sortedIDs("token", m.tokens, maxKeyslots)
	if err != nil {
		return err
	}
	for _, id := range tokIDs {
		t, err := parseToken(id, m.tokens[strconv.Itoa(id)])
		if err != nil {
			return err
		}
		n.Tokens = append(n.Tokens, t)
	}
	*h = *n
	return nil
}

// parsedKeyslot is a keyslot's public description and, for luks2
// keyslots, its JSON object.
type parsedKeyslot struct {
	pub   Keyslot
	luks2 *jsonKeyslot
}

func parseKeyslot(id int, raw json.RawMessage, areasStart, areasEnd int64) (parsedKeyslot, error) {
	var head jsonType
	if err := strictUnmarshal(raw, &head); err != nil || head.Type == nil {
		return parsedKeyslot{}, fmt.Errorf("keyslot %d has no type: %w", id, ErrCorrupt)
	}
	pub := Keyslot{ID: id, Type: *head.Type, Priority: 1}
	if pub.Type != "luks2" {
		// Record where other keyslot types keep data, if they say.
		var other struct {
			KeySize int `json:"key_size"`
			Area    *struct {
				Offset uint64 `json:"offset,string"`
				Size   uint64 `json:"size,string"`
			} `json:"area"`
		}
		if err := json.Unmarshal(raw, &other); err != nil {
			return parsedKeyslot{}, fmt.Errorf("keyslot %d (%s): %w", id, pub.Type, errors.Join(ErrCorrupt, err))
		}
		pub.KeyBytes = other.KeySize
		if a := other.Area; a != nil {
			if a.Offset < uint64(areasStart) || a.Size > uint64(areasEnd) || a.Offset > uint64(areasEnd)-a.Size {
				return parsedKeyslot{}, fmt.Errorf("keyslot %d area [%d, +%d) is outside the keyslots area: %w", id, a.Offset, a.Size, ErrCorrupt)
			}
			pub.AreaOffset, pub.AreaSize = int64(a.Offset), int64(a.Size)
		}
		return parsedKeyslot{pub: pub}, nil
	}
	k := new(jsonKeyslot)
	if err := json.Unmarshal(raw, k); err != nil {
		return parsedKeyslot{}, fmt.Errorf("keyslot %d: %w", id, errors.Join(ErrCorrupt, err))
	}
	bad := func(what string, v any) error {
		return fmt.Errorf("keyslot %d: %s %v: %w", id, what, v, ErrCorrupt)
	}
	switch {
	case k.KeySize <= 0 || k.KeySize > 1024:
		return parsedKeyslot{}, bad("key_size", k.KeySize)
	case k.AF.Type != "luks1":
		return parsedKeyslot{}, bad("af type", k.AF.Type)
	case k.AF.Stripes <= 0 || k.AF.Stripes > 1<<16:
		return parsedKeyslot{}, bad("af stripes", k.AF.Stripes)
	case k.AF.Hash == "":
		return parsedKeyslot{}, bad("af hash", `""`)
	case k.Area.Type != "raw":
		return parsedKeyslot{}, bad("area type", k.Area.Type)
	case k.Area.KeySize <= 0 || k.Area.KeySize > 1024:
		return parsedKeyslot{}, bad("area key_size", k.Area.KeySize)
	case k.Area.Encryption == "":
		return parsedKeyslot{}, bad("area encryption", `""`)
	case k.Area.Offset < uint64(areasStart) || k.Area.Size > uint64(areasEnd) || k.Area.Offset > uint64(areasEnd)-k.Area.Size:
		return parsedKeyslot{}, fmt.Errorf("keyslot %d area [%d, +%d) is outside the keyslots area: %w", id, k.Area.Offset, k.Area.Size, ErrCorrupt)
	case uint64(afSectors(k.KeySize, k.AF.Stripes))*512 > k.Area.Size:
		return parsedKeyslot{}, bad("area size", k.Area.Size)
	case k.KDF.Type == "":
		return parsedKeyslot{}, bad("kdf type", `""`)
	case len(k.KDF.Salt) == 0 || len(k.KDF.Salt) > 1024:
		return parsedKeyslot{}, bad("kdf salt length", len(k.KDF.Salt))
	case k.Priority != nil && (*k.Priority < 0 || *k.Priority > 2):
		return parsedKeyslot{}, bad("priority", *k.Priority)
	}
	// The KDF's parameters are checked when the keyslot is opened: a header
	// with an exotic hash is still readable.
	p := PBKDF{Type: k.KDF.Type, Time: k.KDF.Time, MemoryKiB: k.KDF.Memory, Parallelism: k.KDF.CPUs,
		Iterations: k.KDF.Iterations, Hash: k.KDF.Hash}
	pub.KeyBytes = k.KeySize
	if k.Priority != nil {
		pub.Priority = *k.Priority
	}
	pub.PBKDF = p
	pub.AreaOffset, pub.AreaSize = int64(k.Area.Offset), int64(k.Area.Size)
	pub.AreaCipher = k.Area.Encryption
	pub.Stripes, pub.AFHash = k.AF.Stripes, k.AF.Hash
	return parsedKeyslot{pub: pub, luks2: k}, nil
}

// checkOverlaps fails if two keyslot areas overlap.
func checkOverlaps(ks []Keyslot) error {
	for i, a := range ks {
		for _, b := range ks[i+1:] {
			if a.AreaSize > 0 && b.AreaSize > 0 &&
				a.AreaOffset < b.AreaOffset+b.AreaSize && b.AreaOffset < a.AreaOffset+a.AreaSize {
				return fmt.Errorf("keyslots %d and %d overlap: %w", a.ID, b.ID, ErrCorrupt)
			}
		}
	}
	return nil
}

func parseSegment(id int, raw json.RawMessage) (Segment, error) {
	var head jsonType
	if err := strictUnmarshal(raw, &head); err != nil || head.Type == nil {
		return Segment{}, fmt.Errorf("segment %d has no type: %w", id, ErrCorrupt)
	}
	s := Segment{ID: id, Type: *head.Type}
	var js jsonSegment
	if err := json.Unmarshal(raw, &js); err != nil {
		return Segment{}, fmt.Errorf("segment %d: %w", id, errors.Join(ErrCorrupt, err))
	}
	bad := func(what string, v any) error {
		return fmt.Errorf("segment %d: %s %v: %w", id, what, v, ErrCorrupt)
	}
	if js.Offset%512 != 0 || js.Offset > 1<<62 {
		return Segment{}, bad("offset", js.Offset)
	}
	s.Offset = int64(js.Offset)
	switch js.Size {
	case "dynamic":
		s.Size = -1
	default:
		size, err := strconv.ParseUint(js.Size, 10, 64)
		if err != nil || size%512 != 0 || size > 1<<62 {
			return Segment{}, bad("size", strconv.Quote(js.Size))
		}
		s.Size = int64(size)
	}
	if s.Type == "crypt" {
		switch js.SectorSize {
		case 512, 1024, 2048, 4096:
		default:
			return Segment{}, bad("sector_size", js.SectorSize)
		}
		if js.Encryption == "" {
			return Segment{}, bad("encryption", `""`)
		}
		if s.Offset%int64(js.SectorSize) != 0 || s.Size > 0 && s.Size%int64(js.SectorSize) != 0 {
			return Segment{}, bad("alignment to sector size", js.SectorSize)
		}
	}
	s.IVTweak, s.Cipher, s.SectorSize = js.IVTweak, js.Encryption, js.SectorSize
	return s, nil
}

func parseDigest(id int, raw json.RawMessage, keyslots, segments []int) (Digest, *jsonDigest, error) {
	var head jsonType
	if err := strictUnmarshal(raw, &head); err != nil || head.Type == nil {
		return Digest{}, nil, fmt.Errorf("digest %d has no type: %w", id, ErrCorrupt)
	}
	jd := new(jsonDigest)
	if err := json.Unmarshal(raw, jd); err != nil {
		return Digest{}, nil, fmt.Errorf("digest %d: %w", id, errors.Join(ErrCorrupt, err))
	}
	d := Digest{ID: id, Type: *head.Type, Hash: jd.Hash, Iterations: jd.Iterations}
	var ok bool
	if d.Keyslots, ok = parseIDs(jd.Keyslots, maxKeyslots); !ok || jd.Keyslots == nil {
		return Digest{}, nil, fmt.Errorf("digest %d: keyslots %q: %w", id, jd.Keyslots, ErrCorrupt)
	}
	if d.Segments, ok = parseIDs(jd.Segments, 1<<31); !ok || jd.Segments == nil {
		return Digest{}, nil, fmt.Errorf("digest %d: segments %q: %w", id, jd.Segments, ErrCorrupt)
	}
	for _, k := range d.Keyslots {
		if !slices.Contains(keyslots, k) {
			return Digest{}, nil, fmt.Errorf("digest %d refers to missing keyslot %d: %w", id, k, ErrCorrupt)
		}
	}
	for _, s := range d.Segments {
		if !slices.Contains(segments, s) {
			return Digest{}, nil, fmt.Errorf("digest %d refers to missing segment %d: %w", id, s, ErrCorrupt)
		}
	}
	if d.Type != "pbkdf2" {
		return d, nil, nil
	}
	if jd.Hash == "" || jd.Iterations <= 0 || len(jd.Salt) == 0 || len(jd.Salt) > 1024 || len(jd.Digest) == 0 || len(jd.Digest) > 1024 {
		return Digest{}, nil, fmt.Errorf("digest %d: bad hash, iterations, salt or digest: %w", id, ErrCorrupt)
	}
	return d, jd, nil
}

func parseToken(id int, raw json.RawMessage) (Token, error) {
	var head jsonTokenHead
	if err := strictUnmarshal(raw, &head); err != nil {
		return Token{}, fmt.Errorf("token %d is not an object: %w", id, ErrCorrupt)
	}
	if head.Type == nil || *head.Type == "" {
		return Token{}, fmt.Errorf("token %d has no type: %w", id, ErrCorrupt)
	}
	if head.Keyslots == nil {
		return Token{}, fmt.Errorf("token %d has no keyslots: %w", id, ErrCorrupt)
	}
	ks, ok := parseIDs(*head.Keyslots, maxKeyslots)
	if !ok {
		return Token{}, fmt.Errorf("token %d: keyslots %q: %w", id, *head.Keyslots, ErrCorrupt)
	}
	return Token{ID: id, Type: *head.Type, Keyslots: ks, JSON: bytes.Clone(raw)}, nil
}
