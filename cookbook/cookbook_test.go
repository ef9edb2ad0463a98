package cookbook

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const okRecipe = `name: hello
version: "1.0"
licence: MIT
sources:
  - url: https://example.org/hello-1.0.tar.gz
    sha256: 0000000000000000000000000000000000000000000000000000000000000000
    mirrors: ["debian:hello=2.10-3", "file:///srv/hello-1.0.tar.gz"]
build-deps: [musl]
deps: [musl]
builder:
  type: make
  make-args: [CC=musl-gcc]
`

func TestParseRecipe(t *testing.T) {
	r, err := ParseRecipe("hello/recipe.yaml", []byte(okRecipe))
	if err != nil {
		t.Fatal(err)
	}
	want := &Recipe{
		Name: "hello", Version: "1.0", Licence: "MIT",
		Sources: []Source{{
			URL:     "https://example.org/hello-1.0.tar.gz",
			SHA256:  strings.Repeat("0", 64),
			Mirrors: []string{"debian:hello=2.10-3", "file:///srv/hello-1.0.tar.gz"},
		}},
		BuildDeps: []string{"musl"}, Deps: []string{"musl"},
		Builder: Builder{Type: Make, MakeArgs: []string{"CC=musl-gcc"}},
	}
	want.file, want.lines = r.file, r.lines
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
	if got := r.Pos("sources[0].mirrors[1]"); got != "hello/recipe.yaml:7" {
		t.Errorf("Pos = %q", got)
	}
	if got := r.Pos("builder.nothing"); got != "hello/recipe.yaml:10" {
		t.Errorf("Pos of a missing field = %q, want the enclosing one", got)
	}
}

func TestParseRecipeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, edit, want string
	}{
		{"unknown field", "licence: MIT\n", "hello/recipe.yaml:4: unknown field \"colour\""},
		{"bad sha", "sha256: 0000", "hello/recipe.yaml:6: sources[0].sha256: \"abc\" is not 64 lowercase hex digits"},
		{"missing sha", "sha256: 0000", "hello/recipe.yaml:6: sources[0].sha256: missing"},
		{"bad licence", "licence: MIT", "hello/recipe.yaml:3: licence: \"Frobnicate-1.0\" is not a known SPDX licence id"},
		{"bad builder", "type: make", "hello/recipe.yaml:11: builder.type: \"scons\" is not one of"},
		{"bad mirror", "debian:hello=2.10-3", "hello/recipe.yaml:7: sources[0].mirrors[0]: \"debian:hello\": want debian:SOURCEPACKAGE=VERSION"},
		{"self dep", "build-deps: [musl]", "hello/recipe.yaml:8: build-deps[0]: a package cannot depend on itself"},
		{"ftp", "url: https://", "hello/recipe.yaml:5: sources[0].url: \"ftp://example.org/hello-1.0.tar.gz\": want an https, http or file URL"},
		{"syntax", "deps: [musl]", "hello/recipe.yaml:7: did not find expected ',' or ']'"},
		{"type", "make-args: [CC=musl-gcc]", "hello/recipe.yaml:12: cannot unmarshal a mapping into []string"},
		{"steps without steps", "type: make", "hello/recipe.yaml:10: builder.steps: missing"},
		{"escaping patch", "deps: [musl]", "hello/recipe.yaml:9: patches[0]: \"../x.patch\" must be a relative path"},
		{"not a mapping", "name: hello", "hello/recipe.yaml:1: want a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := okRecipe
			switch tc.name {
			case "unknown field":
				src = strings.Replace(src, tc.edit, tc.edit+"colour: blue\n", 1)
			case "bad sha":
				src = strings.Replace(src, "sha256: "+strings.Repeat("0", 64), "sha256: abc", 1)
			case "missing sha":
				src = strings.Replace(src, "sha256: "+strings.Repeat("0", 64), "sha256: \"\"", 1)
			case "bad licence":
				src = strings.Replace(src, tc.edit, "licence: Frobnicate-1.0", 1)
			case "bad builder":
				src = strings.Replace(src, tc.edit, "type: scons", 1)
			case "bad mirror":
				src = strings.Replace(src, tc.edit, "debian:hello", 1)
			case "self dep":
				src = strings.Replace(src, tc.edit, "build-deps: [hello]", 1)
			case "ftp":
				src = strings.Replace(src, tc.edit, "url: ftp://", 1)
			case "syntax":
				src = strings.Replace(src, tc.edit, "deps: [musl", 1)
			case "type":
				src = strings.Replace(src, tc.edit, "make-args: {a: b}", 1)
			case "steps without steps":
				src = strings.Replace(src, tc.edit, "type: steps", 1)
			case "escaping patch":
				src = strings.Replace(src, tc.edit, tc.edit+"\npatches: [../x.patch]", 1)
			case "not a mapping":
				src = "[1, 2]\n"
			}
			_, err := ParseRecipe("hello/recipe.yaml", []byte(src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not a *FieldError", err)
			}
		})
	}
}

func TestCheckLicence(t *testing.T) {
	for expr, ok := range map[string]bool{
		"MIT": true, "GPL-2.0-only WITH Linux-syscall-note": true,
		"(MIT OR Apache-2.0) AND BSD-3-Clause": true, "LicenseRef-ingot-musl": true,
		"": false, "MIT AND": false, "(MIT": false, "MIT)": false,
		"MIT WITH Nope": false, "Nope": false, "AND MIT": false,
	} {
		if err := CheckLicence(expr); (err == nil) != ok {
			t.Errorf("CheckLicence(%q) = %v, want ok=%v", expr, err, ok)
		}
	}
}

func TestMatchAndSplit(t *testing.T) {
	for _, tc := range []struct {
		pat, p string
		want   bool
	}{
		{"usr/include/**", "usr/include/stdio.h", true},
		{"usr/include/**", "usr/include/sys/types.h", true},
		{"usr/include/**", "usr/include", true},
		{"usr/lib/*.a", "usr/lib/libc.a", true},
		{"usr/lib/*.a", "usr/lib/x/libc.a", false},
		{"**/*.la", "usr/lib/x/libc.la", true},
		{"usr/bin/sh", "usr/bin/shx", false},
	} {
		if got := Match(tc.pat, tc.p); got != tc.want {
			t.Errorf("Match(%q, %q) = %v", tc.pat, tc.p, got)
		}
	}
	o := Outputs{Runtime: []string{"usr/lib/libkeep.a"}}
	for p, want := range map[string]string{
		"usr/bin/hello": Runtime, "usr/include/hello.h": Dev, "usr/lib/libkeep.a": Runtime,
		"usr/lib/libhello.a": Dev, "usr/share/man/man1/hello.1": Doc, "usr/lib/libc.so": Runtime,
	} {
		if got := o.Split(p, false); got != want {
			t.Errorf("Split(%q) = %q, want %q", p, got, want)
		}
	}
	if got := o.Split("usr/lib/libz.so", true); got != Dev {
		t.Errorf("Split of a .so symlink = %q, want dev", got)
	}
}

func mustRecipe(t *testing.T, name string, buildDeps, deps []string) *Recipe {
	t.Helper()
	src := "name: " + name + "\nversion: '1'\nlicence: MIT\nbuilder: {type: steps, steps: [true]}\n"
	if len(buildDeps) > 0 {
		src += "build-deps: [" + strings.Join(buildDeps, ", ") + "]\n"
	}
	if len(deps) > 0 {
		src += "deps: [" + strings.Join(deps, ", ") + "]\n"
	}
	r, err := ParseRecipe(name+"/recipe.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDistribution(t *testing.T) {
	recipes := []*Recipe{
		mustRecipe(t, "musl", nil, nil),
		mustRecipe(t, "zlib", []string{"musl"}, []string{"musl"}),
		mustRecipe(t, "app", []string{"zlib"}, []string{"zlib"}),
		mustRecipe(t, "tool", []string{"musl"}, nil),
	}
	d, err := NewDistribution(recipes, Sets{"base": {"app", "tool"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Resolve([]string{"base"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"musl", "tool", "zlib", "app"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Resolve = %v, want %v", got, want)
	}
	if got, err := d.Shipped([]string{"@base"}); err != nil || !reflect.DeepEqual(got, []string{"app", "musl", "tool", "zlib"}) {
		t.Errorf("Shipped(@base) = %v, %v", got, err)
	}
	if got, want := d.BuildInputs("app"), []string{"musl", "zlib"}; !reflect.DeepEqual(got, want) {
		t.Errorf("BuildInputs(app) = %v, want %v", got, want)
	}
	var ue *UnknownError
	if _, err := d.Resolve([]string{"nope"}); !errors.As(err, &ue) {
		t.Errorf("Resolve(nope) = %v, want *UnknownError", err)
	}
}

func TestDistributionErrors(t *testing.T) {
	_, err := NewDistribution([]*Recipe{mustRecipe(t, "a", []string{"b"}, nil)}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), `a/recipe.yaml:5: build-deps[0]: unknown package "b"`) {
		t.Errorf("unknown dependency: %v", err)
	}
	_, err = NewDistribution([]*Recipe{
		mustRecipe(t, "a", []string{"b"}, nil),
		mustRecipe(t, "b", nil, []string{"c"}),
		mustRecipe(t, "c", []string{"a"}, nil),
	}, nil, nil)
	var ce *CycleError
	if !errors.As(err, &ce) || !reflect.DeepEqual(ce.Path, []string{"a", "b", "c", "a"}) {
		t.Errorf("cycle: %v", err)
	}
	_, err = NewDistribution([]*Recipe{mustRecipe(t, "a", nil, nil)}, Sets{"base": {"zz"}}, map[string]string{"base": "sets.yaml:1"})
	if err == nil || !strings.Contains(err.Error(), `sets.yaml:1: base[0]: unknown package "zz"`) {
		t.Errorf("unknown set member: %v", err)
	}
}

func TestParseSets(t *testing.T) {
	s, pos, err := ParseSets("sets.yaml", []byte("base: [musl, busybox]\ndev: [gcc]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, Sets{"base": {"musl", "busybox"}, "dev": {"gcc"}}) || pos["dev"] != "sets.yaml:2" {
		t.Errorf("got %v %v", s, pos)
	}
	if _, _, err := ParseSets("sets.yaml", []byte("base: [Musl]\n")); err == nil || !strings.Contains(err.Error(), "sets.yaml:1: base[0]") {
		t.Errorf("bad member: %v", err)
	}
}

func TestDebianMirror(t *testing.T) {
	pkg, v, ok := DebianMirror("debian:busybox=1:1.38.0-3")
	if !ok || pkg != "busybox" || v != "1:1.38.0-3" {
		t.Errorf("got %q %q %v", pkg, v, ok)
	}
	if _, _, ok := DebianMirror("https://example.org/x"); ok {
		t.Error("an https mirror is not a Debian one")
	}
}
