package cookbook

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Distribution is a validated set of recipes and named sets whose
// dependencies all resolve and form no cycle.
type Distribution struct {
	recipes map[string]*Recipe
	sets    Sets
}

// NewDistribution checks that names are unique, every dependency and set
// member names a recipe, and the build graph has no cycle.
func NewDistribution(recipes []*Recipe, sets Sets, setPos map[string]string) (*Distribution, error) {
	d := &Distribution{recipes: map[string]*Recipe{}, sets: sets}
	var errs []error
	for _, r := range recipes {
		if prev, ok := d.recipes[r.Name]; ok {
			errs = append(errs, &FieldError{Pos: r.Pos("name"), Field: "name", Msg: fmt.Sprintf("%q is also defined in %s", r.Name, prev.File())})
			continue
		}
		d.recipes[r.Name] = r
	}
	for _, r := range recipes {
		for _, l := range []struct {
			field string
			names []string
		}{{"build-deps", r.BuildDeps}, {"deps", r.Deps}} {
			for i, n := range l.names {
				if d.recipes[n] == nil {
					f := fmt.Sprintf("%s[%d]", l.field, i)
					errs = append(errs, &FieldError{Pos: r.Pos(f), Field: f, Msg: fmt.Sprintf("unknown package %q", n)})
				}
			}
		}
	}
	for _, name := range sortedKeys(sets) {
		for i, n := range sets[name] {
			if d.recipes[n] == nil {
				errs = append(errs, &FieldError{Pos: setPos[name], Field: fmt.Sprintf("%s[%d]", name, i), Msg: fmt.Sprintf("unknown package %q", n)})
			}
		}
		if d.recipes[name] != nil {
			errs = append(errs, &FieldError{Pos: setPos[name], Field: name, Msg: "a set cannot have a package's name"})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := d.checkCycles(); err != nil {
		return nil, err
	}
	return d, nil
}

// Recipe returns the recipe called name, or nil.
func (d *Distribution) Recipe(name string) *Recipe { return d.recipes[name] }

// Names returns every package name, sorted.
func (d *Distribution) Names() []string { return sortedKeys(d.recipes) }

// Set returns the packages of a named set.
func (d *Distribution) Set(name string) ([]string, bool) {
	s, ok := d.sets[name]
	return s, ok
}

// BuildInputs returns the packages visible to name's build: its build
// dependencies and, transitively, their runtime dependencies; sorted.
func (d *Distribution) BuildInputs(name string) []string {
	seen := map[string]bool{}
	for _, b := range d.recipes[name].BuildDeps {
		d.withRuntimeDeps(b, seen)
	}
	return sortedKeys(seen)
}

// withRuntimeDeps adds n and, transitively, its runtime dependencies to
// seen.
func (d *Distribution) withRuntimeDeps(n string, seen map[string]bool) {
	if seen[n] {
		return
	}
	seen[n] = true
	for _, dep := range d.recipes[n].Deps {
		d.withRuntimeDeps(dep, seen)
	}
}

// Resolve expands targets (package or set names) into every package that
// must be built for them — their build inputs and runtime dependencies,
// transitively — ordered so that each package comes after its build inputs
// (ties broken by name).
func (d *Distribution) Resolve(targets []string) ([]string, error) {
	want := map[string]bool{}
	var visit func(n string)
	visit = func(n string) {
		if want[n] {
			return
		}
		want[n] = true
		r := d.recipes[n]
		for _, x := range append(slices.Clone(r.BuildDeps), r.Deps...) {
			visit(x)
		}
	}
	if err := d.eachTarget(targets, visit); err != nil {
		return nil, err
	}
	// Kahn's algorithm over build inputs, smallest name first.
	indeg := map[string]int{}
	users := map[string][]string{}
	for n := range want {
		for _, in := range d.BuildInputs(n) {
			indeg[n]++
			users[in] = append(users[in], n)
		}
	}
	var ready, order []string
	for n := range want {
		if indeg[n] == 0 {
			ready = append(ready, n)
		}
	}
	for len(ready) > 0 {
		sort.Strings(ready)
		n := ready[0]
		ready = ready[1:]
		order = append(order, n)
		for _, u := range users[n] {
			if indeg[u]--; indeg[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	return order, nil
}

// Shipped returns what targets (package or set names) put into an image:
// the named packages and, transitively, their runtime dependencies; sorted.
func (d *Distribution) Shipped(targets []string) ([]string, error) {
	seen := map[string]bool{}
	visit := func(n string) { d.withRuntimeDeps(n, seen) }
	if err := d.eachTarget(targets, visit); err != nil {
		return nil, err
	}
	return sortedKeys(seen), nil
}

// UnknownError is a build target that names no package or set.
type UnknownError struct {
	Name  string
	Known []string
}

func (e *UnknownError) Error() string {
	return fmt.Sprintf("unknown package or set %q", e.Name)
}

// CycleError is a dependency cycle; Path starts and ends with the same
// package.
type CycleError struct {
	Path []string
	Pos  string
}

func (e *CycleError) Error() string {
	return fmt.Sprintf("%s: dependency cycle: %s", e.Pos, strings.Join(e.Path, " → "))
}

// checkCycles finds a cycle in the build graph (edges from a package to its
// build inputs).
func (d *Distribution) checkCycles() error {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(n string) error
	visit = func(n string) error {
		color[n] = grey
		stack = append(stack, n)
		edges := append(slices.Clone(d.recipes[n].BuildDeps), d.recipes[n].Deps...)
		for _, m := range edges {
			switch color[m] {
			case grey:
				i := slices.Index(stack, m)
				path := append(slices.Clone(stack[i:]), m)
				return &CycleError{Path: path, Pos: d.recipes[m].Pos("")}
			case white:
				if err := visit(m); err != nil {
					return err
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return nil
	}
	for _, n := range d.Names() {
		if color[n] == white {
			if err := visit(n); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// eachTarget calls visit for every recipe a target names: a recipe itself,
// or each member of a set ("base" or "@base").
func (d *Distribution) eachTarget(targets []string, visit func(string)) error {
	for _, t := range targets {
		t = strings.TrimPrefix(t, "@")
		switch {
		case d.recipes[t] != nil:
			visit(t)
		case d.sets[t] != nil:
			for _, n := range d.sets[t] {
				visit(n)
			}
		default:
			return &UnknownError{Name: t, Known: d.Names()}
		}
	}
	return nil
}
