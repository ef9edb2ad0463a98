package machineconfig

import (
	"encoding/json"
	"reflect"
	"strings"
)

// SchemaID is the $id of the JSON Schema.
const SchemaID = "https://github.com/ingot-linux/ingot/machineconfig/v1.schema.json"

// Schema returns the format as a JSON Schema (draft 2020-12), made from
// the same Go types and struct tags Parse reads, indented, with a final
// newline.
func Schema() []byte {
	s := schemaOf(reflect.TypeFor[Config](), "")
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = SchemaID
	s["title"] = "ingot machine configuration"
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		panic(err) // maps of strings, bools and slices always marshal
	}
	return append(b, '\n')
}

// schemaOf describes type t; tag is the struct field's tag.
func schemaOf(t reflect.Type, tag reflect.StructTag) map[string]any {
	s := map[string]any{}
	if doc := tag.Get("doc"); doc != "" {
		s["description"] = doc
	}
	switch t.Kind() {
	case reflect.Pointer:
		for k, v := range schemaOf(t.Elem(), tag) {
			s[k] = v
		}
	case reflect.Struct:
		s["type"] = "object"
		s["additionalProperties"] = false
		props := map[string]any{}
		var required []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			props[yamlName(f)] = schemaOf(f.Type, f.Tag)
			if hasOpt(f.Tag.Get("schema"), "required") {
				required = append(required, yamlName(f))
			}
		}
		s["properties"] = props
		if required != nil {
			s["required"] = required
		}
	case reflect.Slice:
		s["type"] = "array"
		s["items"] = schemaOf(t.Elem(), reflect.StructTag(strings.Replace(string(tag), "doc:", "x:", 1)))
	case reflect.Map:
		s["type"] = "object"
		s["additionalProperties"] = map[string]any{"type": []string{"string", "number", "boolean"}}
	case reflect.String:
		s["type"] = "string"
		if hasOpt(tag.Get("schema"), "scalar") {
			s["type"] = []string{"string", "number", "boolean"}
		}
		if p := tag.Get("pattern"); p != "" {
			s["pattern"] = p
		}
		if e := tag.Get("enum"); e != "" {
			s["enum"] = strings.Split(e, "|")
		}
	case reflect.Int:
		s["type"] = "integer"
	case reflect.Bool:
		s["type"] = "boolean"
	}
	return s
}
