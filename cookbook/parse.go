package cookbook

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxFileBytes bounds recipe and set files.
const maxFileBytes = 1 << 20

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// ParseRecipe decodes and validates a recipe file (YAML). file names the
// file in messages; every error is a *FieldError naming file and line.
func ParseRecipe(file string, data []byte) (*Recipe, error) {
	r := &Recipe{file: file}
	lines, err := decodeStrict(file, data, r)
	if err != nil {
		return nil, err
	}
	r.file, r.lines = file, lines
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// Sets names groups of packages, e.g. "base"; the build's default target
// is the base set.
type Sets map[string][]string

// ParseSets decodes and validates a sets file: a YAML mapping from set
// name to a list of package names.
func ParseSets(file string, data []byte) (Sets, map[string]string, error) {
	var s Sets
	lines, err := decodeStrict(file, data, &s)
	if err != nil {
		return nil, nil, err
	}
	pos := map[string]string{}
	var errs []error
	for name, pkgs := range s {
		p := file
		if n, ok := lines[name]; ok {
			p = fmt.Sprintf("%s:%d", file, n)
		}
		pos[name] = p
		if !ValidName(name) {
			errs = append(errs, &FieldError{Pos: p, Field: name, Msg: "not a valid set name"})
		}
		for i, pkg := range pkgs {
			if !ValidName(pkg) {
				f := fmt.Sprintf("%s[%d]", name, i)
				errs = append(errs, &FieldError{Pos: fmt.Sprintf("%s:%d", file, lines[f]), Field: f, Msg: fmt.Sprintf("%q is not a package name", pkg)})
			}
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return s, pos, nil
}

// decodeStrict decodes one YAML document into v, rejecting unknown fields,
// and returns the line of every field path.
func decodeStrict(file string, data []byte, v any) (map[string]int, error) {
	if len(data) > maxFileBytes {
		return nil, &FieldError{Pos: file, Msg: fmt.Sprintf("%d bytes is too large (at most %d)", len(data), maxFileBytes)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlErrors(file, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &FieldError{Pos: file, Msg: "empty file"}
	}
	if top := doc.Content[0]; top.Kind != yaml.MappingNode {
		return nil, &FieldError{Pos: fmt.Sprintf("%s:%d", file, top.Line), Msg: "want a mapping of fields"}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return nil, yamlErrors(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, yamlErrors(file, err)
		}
		return nil, &FieldError{Pos: fmt.Sprintf("%s:%d", file, line), Msg: "more than one YAML document"}
	}
	lines := map[string]int{}
	indexLines(doc.Content[0], "", lines)
	return lines, nil
}

// yamlErrors turns the yaml package's "line N: msg" errors into FieldErrors.
func yamlErrors(file string, err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var errs []error
	for _, m := range msgs {
		fe := &FieldError{Pos: file, Msg: strings.TrimPrefix(m, "yaml: ")}
		if sm := yamlLineRE.FindStringSubmatch(m); sm != nil {
			n, _ := strconv.Atoi(sm[1])
			fe.Pos, fe.Msg = fmt.Sprintf("%s:%d", file, n), sm[2]
		}
		fe.Msg = friendlyYAML(fe.Msg)
		errs = append(errs, fe)
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

var notFoundRE = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

func friendlyYAML(m string) string {
	if sm := notFoundRE.FindStringSubmatch(m); sm != nil {
		return fmt.Sprintf("unknown field %q", sm[1])
	}
	return strings.NewReplacer("!!seq", "a list", "!!map", "a mapping", "!!str", "a string",
		"!!int", "a number", "!!bool", "a boolean", "spec.", "").Replace(m)
}

// indexLines records the line of every field path below n.
func indexLines(n *yaml.Node, prefix string, lines map[string]int) {
	if _, ok := lines[prefix]; !ok {
		lines[prefix] = n.Line
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if prefix != "" {
				k = prefix + "." + k
			}
			lines[k] = n.Content[i].Line
			indexLines(n.Content[i+1], k, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			indexLines(c, fmt.Sprintf("%s[%d]", prefix, i), lines)
		}
	}
}
