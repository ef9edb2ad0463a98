package luks2

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// AddToken stores token, a JSON object with at least a "type" string and a
// "keyslots" array of keyslot numbers as strings (such as
// {"type":"systemd-tpm2","keyslots":["1"],...}), and returns its number, the
// lowest free one. The keyslots must exist.
func AddToken(dev Device, token json.RawMessage) (int, error) {
	id, err := addToken(dev, token)
	if err != nil {
		return -1, fmt.Errorf("luks2: add token: %w", err)
	}
	return id, nil
}

func addToken(dev Device, token json.RawMessage) (int, error) {
	var head jsonTokenHead
	if err := strictUnmarshal(token, &head); err != nil {
		return -1, fmt.Errorf("token is not a JSON object: %w", err)
	}
	if head.Type == nil || *head.Type == "" {
		return -1, fmt.Errorf("token has no \"type\"")
	}
	if head.Keyslots == nil {
		return -1, fmt.Errorf("token has no \"keyslots\" array")
	}
	h, err := readHeader(dev)
	if err != nil {
		return -1, fmt.Errorf("read header: %w", err)
	}
	if err := h.checkRequirements(); err != nil {
		return -1, err
	}
	for _, k := range *head.Keyslots {
		_, canonical := parseID(k, maxKeyslots)
		if _, exists := h.meta.keyslots[k]; !canonical || !exists {
			return -1, fmt.Errorf("token refers to keyslot %q, which does not exist", k)
		}
	}
	id := -1
	for i := range maxKeyslots {
		if _, used := h.meta.tokens[strconv.Itoa(i)]; !used {
			id = i
			break
		}
	}
	if id < 0 {
		return -1, fmt.Errorf("all %d tokens are in use: %w", maxKeyslots, ErrNoSpace)
	}
	raw, err := marshal(token)
	if err != nil {
		return -1, fmt.Errorf("token: %w", err)
	}
	h.meta.tokens[strconv.Itoa(id)] = raw
	if err := h.commit(dev, randOrDefault(nil)); err != nil {
		return -1, err
	}
	return id, nil
}
