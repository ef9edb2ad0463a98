package machineconfig

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	goccy "github.com/goccy/go-yaml"
	goccyparser "github.com/goccy/go-yaml/parser"
	"gopkg.in/yaml.v3"
)

// MaxBytes bounds a configuration document.
const MaxBytes = 4 << 20

// Error is one problem in a document, at a line and column (1-based; 0
// when the YAML parser could not say).
type Error struct {
	File         string
	Line, Column int
	// Msg says what is wrong; it never quotes a secret value.
	Msg string
}

func (e *Error) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.Column == 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Parse reads a configuration document and checks it against the
// format: unknown keys, wrong types, patterns and every rule Validate
// knows. file names the document in errors. All problems are returned,
// joined, each an *Error.
func Parse(file string, data []byte) (*Config, error) {
	if len(data) > MaxBytes {
		return nil, &Error{File: file, Msg: fmt.Sprintf("larger than %d bytes", MaxBytes)}
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return nil, yamlError(file, data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: file, Line: extra.Line, Column: extra.Column, Msg: "a second YAML document: one file holds one configuration"}
	}
	d := &decoder{file: file, pos: map[string]*yaml.Node{}, re: map[string]*regexp.Regexp{}}
	cfg := &Config{}
	n := &root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	d.pos[""] = n
	d.decode(n, reflect.ValueOf(cfg).Elem(), "", "")
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	for _, fe := range cfg.check() {
		d.errs = append(d.errs, d.at(fe.path, fe.msg))
	}
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// yamlParserProblems are the problems gopkg.in/yaml.v3 reports from its
// parser rather than its scanner: for those it gives the line counted
// from 0, and no line at all for the first.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// yamlError turns the YAML parser's error into an *Error with its line
// and column. gopkg.in/yaml.v3 says only a line, counted differently by
// its scanner and its parser, so the position and the message come from
// goccy/go-yaml's parser when it finds the document broken too; else
// from yaml.v3's message, its line set right.
func yamlError(file string, data []byte, err error) error {
	if err.Error() == "EOF" {
		return &Error{File: file, Msg: "empty: want a mapping with version: 1"}
	}
	if e := syntaxError(file, data); e != nil {
		return e
	}
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return &Error{File: file, Msg: "YAML: " + err.Error()}
	}
	line, _ := strconv.Atoi(m[1])
	if slices.Contains(yamlParserProblems, m[2]) || line == 0 {
		line++
	}
	return &Error{File: file, Line: line, Msg: "YAML: " + m[2]}
}

// syntaxError locates a syntax error with goccy/go-yaml's parser; nil
// when that parser finds none (or fails in a way it does not place).
func syntaxError(file string, data []byte) (e *Error) {
	defer func() {
		if recover() != nil { // a second opinion only: never fail on it
			e = nil
		}
	}()
	_, err := goccyparser.ParseBytes(data, 0)
	var se *goccy.SyntaxError
	if !errors.As(err, &se) || se.Token == nil || se.Token.Position == nil {
		return nil
	}
	return &Error{File: file, Line: se.Token.Position.Line, Column: se.Token.Position.Column, Msg: "YAML: " + se.Message}
}

// decoder fills Go values from YAML nodes by their yaml tags, refusing
// unknown keys, and remembers each value's node by its path
// ("users[1].name") so later checks can report a position.
type decoder struct {
	file string
	errs []error
	pos  map[string]*yaml.Node
	re   map[string]*regexp.Regexp
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Column: n.Column, Msg: fmt.Sprintf(format, args...)})
}

// at makes an error for path at the position of its node, or of the
// nearest enclosing node that has one.
func (d *decoder) at(path, msg string) error {
	for p := path; ; p = parentPath(p) {
		if n, ok := d.pos[p]; ok {
			return &Error{File: d.file, Line: n.Line, Column: n.Column, Msg: path + ": " + msg}
		}
		if p == "" {
			return &Error{File: d.file, Msg: path + ": " + msg}
		}
	}
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decode fills v from n; tag holds the struct field's checks.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, tag reflect.StructTag) {
	d.pos[path] = n
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.errorf(n, "%s: YAML anchors and aliases are not allowed", describe(path))
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // the zero value
	}
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		d.decode(n, v.Elem(), path, tag)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path, tag)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.String:
		d.decodeString(n, v, path, tag)
	case reflect.Int:
		d.decodeInt(n, v, path)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.errorf(n, "%s: want true or false", describe(path))
			return
		}
		b, _ := strconv.ParseBool(strings.ToLower(n.Value))
		v.SetBool(b)
	}
}

func describe(path string) string {
	if path == "" {
		return "the document"
	}
	return path
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: want a mapping of keys to values", describe(path))
		return
	}
	t := v.Type()
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		f, ok := fieldByKey(t, k.Value)
		if !ok {
			d.errorf(k, "%s: unknown key %q (known: %s)", describe(path), k.Value, strings.Join(keys(t), ", "))
			continue
		}
		if seen[k.Value] {
			d.errorf(k, "%s: key %q given twice", describe(path), k.Value)
			continue
		}
		seen[k.Value] = true
		d.decode(val, v.FieldByIndex(f.Index), join(path, k.Value), f.Tag)
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if hasOpt(f.Tag.Get("schema"), "required") && !seen[yamlName(f)] {
			d.errorf(n, "%s: %s is required", describe(path), yamlName(f))
		}
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string, tag reflect.StructTag) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s: want a list", describe(path))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		d.decode(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i), tag)
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: want a mapping of keys to values", describe(path))
		return
	}
	m := reflect.MakeMap(v.Type())
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "%s: keys must be plain strings", describe(path))
			continue
		}
		if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
			d.errorf(k, "%s: key %q given twice", describe(path), k.Value)
			continue
		}
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, e, path+"["+strconv.Quote(k.Value)+"]", `schema:"scalar"`)
		m.SetMapIndex(reflect.ValueOf(k.Value), e)
	}
	v.Set(m)
}

func (d *decoder) decodeString(n *yaml.Node, v reflect.Value, path string, tag reflect.StructTag) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" && !hasOpt(tag.Get("schema"), "scalar") {
		d.errorf(n, "%s: want a string", describe(path))
		return
	}
	v.SetString(n.Value)
	if p := tag.Get("pattern"); p != "" && !d.regexp(p).MatchString(n.Value) {
		d.errorf(n, "%s: does not match %s", describe(path), p)
	}
	if e := tag.Get("enum"); e != "" && !slices.Contains(strings.Split(e, "|"), n.Value) {
		d.errorf(n, "%s: want one of %s", describe(path), strings.ReplaceAll(e, "|", ", "))
	}
}

func (d *decoder) decodeInt(n *yaml.Node, v reflect.Value, path string) {
	i, err := strconv.ParseInt(n.Value, 0, 32)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
		d.errorf(n, "%s: want an integer", describe(path))
		return
	}
	v.SetInt(i)
}

func (d *decoder) regexp(p string) *regexp.Regexp {
	if re, ok := d.re[p]; ok {
		return re
	}
	re := regexp.MustCompile(p) // the patterns are our own struct tags
	d.re[p] = re
	return re
}

// yamlName is the key of a struct field.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); yamlName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func keys(t reflect.Type) []string {
	var ks []string
	for i := 0; i < t.NumField(); i++ {
		ks = append(ks, yamlName(t.Field(i)))
	}
	return ks
}

func hasOpt(list, opt string) bool { return slices.Contains(strings.Split(list, ","), opt) }
