package distro

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ingot-linux/ingot/builder"
	"github.com/ingot-linux/ingot/builder/sbom"
	"github.com/ingot-linux/ingot/builder/store"
	"github.com/ingot-linux/ingot/cookbook"
	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/internal/fileutil"
)

// BaseSet is the set an extension built from packages extends: what it
// holds (with its runtime dependencies) an extension never carries.
const BaseSet = "base"

// ExtensionOptions say what extension Extension makes from packages.
type ExtensionOptions struct {
	// Ext is the extension to make; Contents and Base are filled in (they
	// must be empty), and so is Files (the SBOM).
	Ext diskimage.ExtensionOptions
	// Build builds Packages and the base they extend.
	Build builder.Options
	// Packages are the packages (or sets) the extension carries, with
	// each runtime dependency the base lacks.
	Packages []string
	// Tool names the SBOM's creator, e.g. "ingot-1.2.0".
	Tool string
}

// ExtensionResult is what Extension made.
type ExtensionResult struct {
	*diskimage.ExtensionResult
	// Carried are the packages in the extension, sorted.
	Carried []CarriedPackage `json:"packages"`
	// SBOM is the SPDX document next to the image; the image carries the
	// same bytes at SBOMImagePath.
	SBOM string `json:"sbom"`
}

// CarriedPackage is a package an extension carries; Dependency says it is
// there only because a named package needs it and the base lacks it.
type CarriedPackage struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	Key        string `json:"key"`
	Dependency bool   `json:"dependency,omitempty"`
}

// SBOMImagePath is where an extension named name carries the SPDX SBOM
// of its packages, relative to the image's root.
func SBOMImagePath(name string) string {
	return "usr/share/ingot/sbom/extension-" + name + ".spdx.json"
}

// SBOMFileName is the name of the SBOM next to the extension image.
func SBOMFileName(name, version string) string {
	return strings.TrimSuffix(ext.FileName(name, version), ".raw") + ".spdx.json"
}

// Extension builds the packages and the base (what the store has is not
// rebuilt), assembles the runtime outputs of the packages and of their
// runtime dependencies the base lacks, and makes the extension of them:
// no file may shadow one of the assembled base, which also gives the
// release file's ID. The SPDX SBOM of what it carries goes inside and
// next to the image. On error nothing is left in the output directory.
func Extension(ctx context.Context, o ExtensionOptions) (res *ExtensionResult, err error) {
	if err := checkExtensionOptions(o); err != nil {
		return nil, err
	}
	plan, err := planExtension(ctx, o)
	if err != nil {
		return nil, err
	}
	undo, err := fileutil.MkdirAllUndo(o.Ext.OutputDir, 0o755)
	if err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	defer func() {
		if err != nil {
			undo()
		}
	}()
	work, err := os.MkdirTemp(o.Ext.OutputDir, ".ext-packages-*")
	if err != nil {
		return nil, fmt.Errorf("output directory %s is not writable: %w", o.Ext.OutputDir, err)
	}
	defer os.RemoveAll(work)
	return plan.make(ctx, o, work)
}

// checkExtensionOptions refuses what the caller must not fill in.
func checkExtensionOptions(o ExtensionOptions) error {
	var errs []error
	if len(o.Packages) == 0 {
		errs = append(errs, &diskimage.FieldError{Field: "Packages", Problem: "name at least one package"})
	}
	if o.Ext.Contents != "" {
		errs = append(errs, &diskimage.FieldError{Field: "Contents", Value: o.Ext.Contents,
			Problem: "an extension is made from a directory or from packages, not both"})
	}
	if o.Ext.Base != "" {
		errs = append(errs, &diskimage.FieldError{Field: "Base", Value: o.Ext.Base,
			Problem: "an extension of packages extends the base in the store; give no other base"})
	}
	return errors.Join(errs...)
}

// extPlan is what an extension of packages carries, once built.
type extPlan struct {
	dist    *cookbook.Distribution
	keys    map[string]string
	base    []string // the base's packages
	carried []CarriedPackage
}

// planExtension builds the base and the packages and decides which
// packages the extension carries: the named ones (none of the base's) and
// their runtime dependencies outside the base.
func planExtension(ctx context.Context, o ExtensionOptions) (*extPlan, error) {
	d := o.Build.Distribution
	base, err := d.Shipped([]string{BaseSet})
	if err != nil {
		return nil, err
	}
	want, err := d.Shipped(o.Packages)
	if err != nil {
		return nil, err
	}
	for _, p := range o.Packages {
		if slices.Contains(base, p) {
			return nil, &diskimage.FieldError{Field: "Packages", Value: p,
				Problem: "is part of the base already; an extension carries only what the base lacks"}
		}
	}
	res, err := builder.Build(ctx, append([]string{BaseSet}, o.Packages...), o.Build)
	if err != nil {
		return nil, fmt.Errorf("build %s and the base: %w", strings.Join(o.Packages, " "), err)
	}
	p := &extPlan{dist: d, keys: res.Keys(), base: base}
	named := expandSets(d, o.Packages)
	for _, n := range want {
		if slices.Contains(base, n) {
			continue
		}
		dep := !slices.Contains(named, n)
		p.carried = append(p.carried, CarriedPackage{Name: n, Version: d.Recipe(n).Version, Key: p.keys[n], Dependency: dep})
	}
	if len(p.carried) == 0 {
		return nil, &diskimage.FieldError{Field: "Packages", Value: strings.Join(o.Packages, ","),
			Problem: "the base has all of it already; an extension carries only what the base lacks"}
	}
	return p, nil
}

// expandSets is targets with each set replaced by its packages.
func expandSets(d *cookbook.Distribution, targets []string) []string {
	var out []string
	for _, t := range targets {
		if members, ok := d.Set(t); ok {
			out = append(out, members...)
		} else {
			out = append(out, t)
		}
	}
	return out
}

// names are the carried packages' names.
func (p *extPlan) names() []string {
	var n []string
	for _, c := range p.carried {
		n = append(n, c.Name)
	}
	return n
}

// make assembles the base and the carried packages in work, checks them
// and writes the extension and its SBOM.
func (p *extPlan) make(ctx context.Context, o ExtensionOptions, work string) (*ExtensionResult, error) {
	baseDir, contents := filepath.Join(work, "base"), filepath.Join(work, "contents")
	if err := builder.Assemble(o.Build.Store, p.keys, p.base, baseDir); err != nil {
		return nil, fmt.Errorf("assemble the base: %w", err)
	}
	if err := p.checkPackages(o.Ext.Kind, o.Build.Store, baseDir); err != nil {
		return nil, err
	}
	if err := builder.Assemble(o.Build.Store, p.keys, p.names(), contents); err != nil {
		return nil, err
	}
	doc, err := p.sbom(o)
	if err != nil {
		return nil, err
	}
	e := o.Ext
	e.Contents, e.Base = contents, baseDir
	e.Files = append(append([]diskimage.ExtraFile{}, e.Files...), diskimage.ExtraFile{Path: SBOMImagePath(e.Name), Data: doc})
	made, err := diskimage.BuildExtension(ctx, e)
	if err != nil {
		return nil, err
	}
	out := &ExtensionResult{ExtensionResult: made, Carried: p.carried,
		SBOM: filepath.Join(e.OutputDir, SBOMFileName(e.Name, e.Version))}
	if err := fileutil.WriteAtomic(out.SBOM, doc, 0o644); err != nil {
		os.Remove(made.Path)
		return nil, fmt.Errorf("write SBOM %s: %w", out.SBOM, err)
	}
	return out, nil
}

// checkPackages refuses, naming the package, a file outside what an
// extension of kind k may hold and one that would shadow the base's.
func (p *extPlan) checkPackages(k ext.Kind, storeDir, baseDir string) error {
	st, err := store.Open(storeDir)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range p.carried {
		tree := filepath.Join(st.Path(c.Key), cookbook.Runtime)
		err := filepath.WalkDir(tree, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(tree, path)
			switch {
			case rel == ".":
			case ext.IsReserved(rel):
				errs = append(errs, fmt.Errorf("package %s ships /%s: only the image may hold it (%s)", c.Name, rel, strings.Join(ext.Reserved, ", ")))
				return fs.SkipDir
			case !k.Allows(rel):
				errs = append(errs, fmt.Errorf("package %s ships /%s: a %s may only hold /%s", c.Name, rel, k, strings.Join(k.Tops(), " and /")))
				return fs.SkipDir
			case !d.IsDir() && exists(filepath.Join(baseDir, rel)):
				errs = append(errs, fmt.Errorf("package %s ships /%s, which would shadow /%s of the base", c.Name, rel, rel))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("package %s: %w", c.Name, err)
		}
	}
	return errors.Join(errs...)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// sbom is the SPDX document of the carried packages: each with its
// sources, and what they need from the base or to build (not shipped).
func (p *extPlan) sbom(o ExtensionOptions) ([]byte, error) {
	pkgs, err := sbom.FromDistribution(p.dist, p.names(), p.keys)
	if err != nil {
		return nil, err
	}
	carried := p.names()
	for i := range pkgs {
		pkgs[i].Shipped = slices.Contains(carried, pkgs[i].Name)
		if slices.Contains(p.base, pkgs[i].Name) {
			pkgs[i].Why = "part of the base the extension extends, not shipped in it"
		}
	}
	created := o.Ext.Epoch
	if created == diskimage.EpochFromContent {
		if created = o.Build.Epoch; created == 0 {
			created = builder.DefaultEpoch
		}
	}
	name := fmt.Sprintf("ingot %s %s %s", o.Ext.Kind, o.Ext.Name, o.Ext.Version)
	var buf strings.Builder
	if err := sbom.New(pkgs, sbom.Options{Name: name, Created: time.Unix(created, 0).UTC(), Tool: o.Tool}).Write(&buf); err != nil {
		return nil, err
	}
	return []byte(buf.String()), nil
}
