package builder

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"

	"github.com/ingot-linux/ingot/cookbook"
)

// LoadDistribution reads every <name>/recipe.yaml and the optional
// sets.yaml of fsys and validates them together: schema, file references,
// dependencies and cycles. label prefixes file names in messages (e.g. the
// --recipes directory).
func LoadDistribution(fsys fs.FS, label string) (*cookbook.Distribution, error) {
	show := func(p string) string {
		if label == "" {
			return p
		}
		return path.Join(label, p)
	}
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read recipes %s: %w", label, err)
	}
	var recipes []*cookbook.Recipe
	var errs []error
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		file := path.Join(e.Name(), "recipe.yaml")
		data, err := fs.ReadFile(fsys, file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", show(file), err))
			continue
		}
		r, err := cookbook.ParseRecipe(show(file), data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r.Name != e.Name() {
			errs = append(errs, &cookbook.FieldError{Pos: r.Pos("name"), Field: "name", Msg: fmt.Sprintf("%q differs from the directory name %q", r.Name, e.Name())})
			continue
		}
		errs = append(errs, checkFiles(fsys, r)...)
		recipes = append(recipes, r)
	}
	sets := cookbook.Sets{}
	var setPos map[string]string
	if data, err := fs.ReadFile(fsys, "sets.yaml"); err == nil {
		if sets, setPos, err = cookbook.ParseSets(show("sets.yaml"), data); err != nil {
			errs = append(errs, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(recipes, func(i, j int) bool { return recipes[i].Name < recipes[j].Name })
	return cookbook.NewDistribution(recipes, sets, setPos)
}

// recipeFiles lists the recipe-directory files a build reads, with the
// field that names each.
func recipeFiles(r *cookbook.Recipe) (names, fields []string) {
	for _, l := range []struct {
		field string
		names []string
	}{{"patches", r.Patches}, {"files", r.Files}, {"builder.fragments", r.Builder.Fragments}} {
		for i, n := range l.names {
			names = append(names, n)
			fields = append(fields, fmt.Sprintf("%s[%d]", l.field, i))
		}
	}
	return names, fields
}

func checkFiles(fsys fs.FS, r *cookbook.Recipe) []error {
	var errs []error
	names, fields := recipeFiles(r)
	for i, n := range names {
		fi, err := fs.Stat(fsys, path.Join(r.Name, n))
		if err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("not a regular file")
		}
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			errs = append(errs, &cookbook.FieldError{Pos: r.Pos(fields[i]), Field: fields[i], Msg: fmt.Sprintf("%s: %v", n, err)})
		}
	}
	return errs
}
