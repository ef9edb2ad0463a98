package cookbook

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseRecipe checks that any input either parses into a recipe that
// validates, or fails with *FieldError values that carry the file name.
func FuzzParseRecipe(f *testing.F) {
	f.Add([]byte(okRecipe))
	f.Add([]byte("name: a\nversion: '1'\nlicence: MIT\nbuilder: {type: steps, steps: [true]}\n"))
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecipe("f.yaml", data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FieldError: %v", err, err)
			}
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("parsed recipe does not validate: %v", err)
		}
		for _, s := range r.Sources {
			for _, m := range s.Mirrors {
				if strings.HasPrefix(m, "debian:") {
					if _, _, ok := DebianMirror(m); !ok {
						t.Fatalf("validated mirror %q does not split", m)
					}
				}
			}
		}
	})
}

// FuzzParseSets checks that any sets file parses into valid names or fails
// with a *FieldError.
func FuzzParseSets(f *testing.F) {
	f.Add([]byte("base: [musl, busybox]\n"))
	f.Add([]byte("base: {a: b}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, _, err := ParseSets("sets.yaml", data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FieldError: %v", err, err)
			}
			return
		}
		for name, pkgs := range s {
			for _, p := range append([]string{name}, pkgs...) {
				if !ValidName(p) {
					t.Fatalf("accepted name %q", p)
				}
			}
		}
	})
}
