package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"strconv"

	"github.com/ingot-linux/ingot/builder/toolchain"
	"github.com/ingot-linux/ingot/cookbook"
)

// keyVersion changes whenever the meaning of a key changes (the layout of
// outputs, normalization, the sandbox), so that old entries are not reused.
// v2: directories keep their sticky and setgid bits.
const keyVersion = "ingot-build-key-v2"

// keyInput is everything a build's output depends on.
type keyInput struct {
	recipe    *cookbook.Recipe
	script    string
	env       []string     // the fixed environment, in order, without JOBS
	files     []fileDigest // patches, files and fragments, in recipe order
	inputs    []inputKey   // build inputs, by name
	toolchain string       // toolchain identity digest
	tools     []toolchain.Component
	epoch     int64
}

type fileDigest struct{ name, sha256 string }

type inputKey struct{ name, key string }

// canon writes a canonical, unambiguous encoding: every value is tagged
// and length-prefixed, lists are counted, nothing comes from map order.
type canon struct{ h hash.Hash }

func (c canon) str(tag, s string) {
	fmt.Fprintf(c.h, "%s %d:%s\n", tag, len(s), s)
}

func (c canon) list(tag string, n int) { c.str(tag, strconv.Itoa(n)) }

// key computes the build key.
func (in *keyInput) key() (string, error) {
	c := canon{sha256.New()}
	c.str("version", keyVersion)
	// A struct (no maps) encodes deterministically.
	rj, err := json.Marshal(in.recipe)
	if err != nil {
		return "", fmt.Errorf("key of %s: %w", in.recipe.Name, err)
	}
	c.str("recipe", string(rj))
	c.str("script", in.script)
	c.list("env", len(in.env))
	for _, e := range in.env {
		c.str("env", e)
	}
	c.list("files", len(in.files))
	for _, f := range in.files {
		c.str("file", f.name)
		c.str("sha256", f.sha256)
	}
	c.list("inputs", len(in.inputs))
	for _, i := range in.inputs {
		c.str("input", i.name)
		c.str("key", i.key)
	}
	c.str("toolchain", in.toolchain)
	c.list("tools", len(in.tools))
	for _, t := range in.tools {
		c.str("tool", t.Name)
		c.str("path", t.Path)
		c.str("sha256", t.SHA256)
	}
	c.str("epoch", strconv.FormatInt(in.epoch, 10))
	return hex.EncodeToString(c.h.Sum(nil)), nil
}
