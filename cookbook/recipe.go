// Package cookbook holds the types users write and ingot serialises — recipes
// and the distribution they form — with their validation. It does no I/O:
// callers read the bytes and hand them to [ParseRecipe] and [ParseSets].
//
//	r, err := spec.ParseRecipe("recipes/hello/recipe.yaml", data)
//	if err != nil {
//		return err // "recipes/hello/recipe.yaml:4: sources[0].sha256: …"
//	}
package cookbook

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Recipe describes how to build one package from pinned upstream source.
type Recipe struct {
	// Name is the package name; it equals the recipe's directory name.
	Name string `yaml:"name" json:"name"`
	// Version is the upstream version.
	Version string `yaml:"version" json:"version"`
	// Licence is an SPDX licence expression, e.g. "MIT" or
	// "GPL-2.0-only WITH Linux-syscall-note".
	Licence string `yaml:"licence" json:"licence"`
	// Description is one line about the package.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Homepage is the upstream project's address.
	Homepage string `yaml:"homepage,omitempty" json:"homepage,omitempty"`
	// Sources are the upstream files, each pinned by sha256. Archives are
	// unpacked into the source tree (a single top-level directory is
	// stripped); other files are copied.
	Sources []Source `yaml:"sources" json:"sources"`
	// Patches are files in the recipe's directory applied in order with
	// patch -p1 to the source tree.
	Patches []string `yaml:"patches,omitempty" json:"patches,omitempty"`
	// Files are further files of the recipe's directory the build reads
	// (config fragments, scripts); they appear under /build/recipe.
	Files []string `yaml:"files,omitempty" json:"files,omitempty"`
	// BuildDeps are packages whose runtime and dev outputs (and those of
	// their runtime dependencies) are visible under /sysroot during the build.
	BuildDeps []string `yaml:"build-deps,omitempty" json:"build-deps,omitempty"`
	// Deps are the packages needed at run time.
	Deps []string `yaml:"deps,omitempty" json:"deps,omitempty"`
	// Tools are host programs the build runs beyond the base toolchain
	// (e.g. meson, ninja, perl); their identity is part of the cache key.
	Tools []string `yaml:"tools,omitempty" json:"tools,omitempty"`
	// Builder says how to build.
	Builder Builder `yaml:"builder" json:"builder"`
	// Outputs says how the installed files split into runtime, dev and doc.
	Outputs Outputs `yaml:"outputs,omitempty" json:"outputs,omitempty"`

	file  string         // where the recipe was read from, for messages
	lines map[string]int // field path → line, for messages
}

// Source is one upstream file.
type Source struct {
	// URL is where upstream publishes the file (https, http or file).
	URL string `yaml:"url" json:"url"`
	// SHA256 is the file's hex sha256; it is checked before anything uses it.
	SHA256 string `yaml:"sha256" json:"sha256"`
	// Mirrors are tried after URL: other URLs, or "debian:PKG=VERSION" for
	// the *.orig.tar.* of a Debian source package, fetched through apt.
	Mirrors []string `yaml:"mirrors,omitempty" json:"mirrors,omitempty"`
	// Dest is the directory under the source tree the file goes to ("" is
	// the top).
	Dest string `yaml:"dest,omitempty" json:"dest,omitempty"`
}

// Builder types.
const (
	Autotools = "autotools"
	Meson     = "meson"
	CMake     = "cmake"
	Make      = "make"
	Kernel    = "kernel"
	Steps     = "steps"
)

var builderTypes = []string{Autotools, Meson, CMake, Make, Kernel, Steps}

// Builder says how a package is configured, built and installed. Every type
// installs into $DESTDIR (/build/out) with prefix /usr.
type Builder struct {
	// Type is autotools, meson, cmake, make, kernel or steps.
	Type string `yaml:"type" json:"type"`
	// Dir is the directory under the source tree to build in.
	Dir string `yaml:"dir,omitempty" json:"dir,omitempty"`
	// Env are extra KEY=VALUE settings, applied in order.
	Env []string `yaml:"env,omitempty" json:"env,omitempty"`
	// Prepare are shell commands run in the source tree before configuring.
	Prepare []string `yaml:"prepare,omitempty" json:"prepare,omitempty"`
	// ConfigureArgs are extra arguments to configure, meson setup or cmake.
	ConfigureArgs []string `yaml:"configure-args,omitempty" json:"configure-args,omitempty"`
	// MakeArgs are extra arguments to the build (make or ninja).
	MakeArgs []string `yaml:"make-args,omitempty" json:"make-args,omitempty"`
	// InstallArgs are extra arguments to the install step.
	InstallArgs []string `yaml:"install-args,omitempty" json:"install-args,omitempty"`
	// Config is the kernel's base configuration target (e.g. tinyconfig);
	// kernel only, default defconfig.
	Config string `yaml:"config,omitempty" json:"config,omitempty"`
	// Fragments are kernel config fragments (recipe files) merged onto Config;
	// every line must survive olddefconfig.
	Fragments []string `yaml:"fragments,omitempty" json:"fragments,omitempty"`
	// Steps are the shell commands of a steps builder.
	Steps []string `yaml:"steps,omitempty" json:"steps,omitempty"`
	// PostInstall are shell commands run in $DESTDIR after installing.
	PostInstall []string `yaml:"post-install,omitempty" json:"post-install,omitempty"`
}

// Outputs split installed files by glob patterns over paths relative to the
// install root ("**" matches any number of directories). A path matching
// Runtime stays in the runtime output; otherwise Dev and then Doc are tried
// (each defaulting to DefaultDev and DefaultDoc when empty), and the rest is
// runtime. Symbolic links named usr/lib/*.so are dev.
type Outputs struct {
	Runtime []string `yaml:"runtime,omitempty" json:"runtime,omitempty"`
	Dev     []string `yaml:"dev,omitempty" json:"dev,omitempty"`
	Doc     []string `yaml:"doc,omitempty" json:"doc,omitempty"`
}

// Default output patterns.
var (
	DefaultDev = []string{"usr/include/**", "usr/lib/*.a", "usr/lib/*.la", "usr/lib/*.o",
		"usr/lib/pkgconfig/**", "usr/share/pkgconfig/**", "usr/share/aclocal/**", "usr/lib/cmake/**"}
	DefaultDoc = []string{"usr/share/man/**", "usr/share/doc/**", "usr/share/info/**", "usr/share/gtk-doc/**"}
)

// Output names.
const (
	Runtime = "runtime"
	Dev     = "dev"
	Doc     = "doc"
)

// Split returns the output (Runtime, Dev or Doc) a path belongs to; symlink
// says whether the path is a symbolic link.
func (o Outputs) Split(p string, symlink bool) string {
	if matchAny(o.Runtime, p) {
		return Runtime
	}
	dev := o.Dev
	if len(dev) == 0 {
		dev = DefaultDev
	}
	if matchAny(dev, p) || symlink && Match("usr/lib/*.so", p) {
		return Dev
	}
	doc := o.Doc
	if len(doc) == 0 {
		doc = DefaultDoc
	}
	if matchAny(doc, p) {
		return Doc
	}
	return Runtime
}

func matchAny(patterns []string, p string) bool {
	for _, pat := range patterns {
		if Match(pat, p) {
			return true
		}
	}
	return false
}

// File is where the recipe was read from ("" when built in code).
func (r *Recipe) File() string { return r.file }

// Pos returns "file:line" for a field path such as "sources[0].sha256",
// falling back to the nearest enclosing field, then to the file alone.
func (r *Recipe) Pos(field string) string {
	for f := field; ; {
		if n, ok := r.lines[f]; ok {
			return fmt.Sprintf("%s:%d", r.file, n)
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	if n, ok := r.lines[""]; ok {
		return fmt.Sprintf("%s:%d", r.file, n)
	}
	return r.file
}

// FieldError is a problem with one field of a recipe.
type FieldError struct {
	// Pos is "file:line" when known.
	Pos string
	// Field is the field's path, e.g. "sources[0].sha256".
	Field string
	// Msg says what is wrong.
	Msg string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Pos != "" {
		b.WriteString(e.Pos + ": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9+._-]*$`)
	versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+~_-]*$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	debianRE  = regexp.MustCompile(`^debian:([a-z0-9][a-z0-9+.-]+)=([0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~-]*$`)
	envRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
	toolRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._-]*$`)
)

// ValidName reports whether s is a valid package name.
func ValidName(s string) bool { return len(s) <= 64 && nameRE.MatchString(s) }

// Validate checks the recipe on its own (not its dependencies' existence,
// which [Distribution.Validate] checks). Errors are *FieldError values
// joined with errors.Join, each naming the file and line when known.
func (r *Recipe) Validate() error {
	v := &validator{r: r}
	if r.Name == "" {
		v.add("name", "missing")
	} else if !ValidName(r.Name) {
		v.add("name", "%q is not a package name (lowercase letters, digits, + . _ -)", r.Name)
	}
	if r.Version == "" {
		v.add("version", "missing")
	} else if !versionRE.MatchString(r.Version) {
		v.add("version", "%q is not a version (letters, digits, . + ~ _ -)", r.Version)
	}
	if err := CheckLicence(r.Licence); err != nil {
		v.add("licence", "%v", err)
	}
	if len(r.Sources) == 0 && r.Builder.Type != Steps {
		v.add("sources", "missing (only a steps builder may have no sources)")
	}
	seen := map[string]bool{}
	for i, s := range r.Sources {
		f := fmt.Sprintf("sources[%d]", i)
		if err := checkURL(s.URL); err != nil {
			v.add(f+".url", "%v", err)
		} else if k := path.Join(s.Dest, path.Base(s.URL)); seen[k] {
			v.add(f+".url", "another source also goes to %s", k)
		} else {
			seen[k] = true
		}
		if s.SHA256 == "" {
			v.add(f+".sha256", "missing: pin every source by its sha256")
		} else if !sha256RE.MatchString(s.SHA256) {
			v.add(f+".sha256", "%q is not 64 lowercase hex digits", s.SHA256)
		}
		for j, m := range s.Mirrors {
			if err := checkMirror(m); err != nil {
				v.add(fmt.Sprintf("%s.mirrors[%d]", f, j), "%v", err)
			}
		}
		if s.Dest != "" && !localPath(s.Dest) {
			v.add(f+".dest", "%q must be a relative path inside the source tree", s.Dest)
		}
	}
	v.files("patches", r.Patches)
	v.files("files", r.Files)
	v.names("build-deps", r.BuildDeps)
	v.names("deps", r.Deps)
	for i, t := range r.Tools {
		if !toolRE.MatchString(t) {
			v.add(fmt.Sprintf("tools[%d]", i), "%q is not a program name", t)
		}
	}
	v.builder(&r.Builder)
	for _, o := range []struct {
		field string
		pats  []string
	}{{"outputs.runtime", r.Outputs.Runtime}, {"outputs.dev", r.Outputs.Dev}, {"outputs.doc", r.Outputs.Doc}} {
		for i, p := range o.pats {
			if err := CheckPattern(p); err != nil {
				v.add(fmt.Sprintf("%s[%d]", o.field, i), "%v", err)
			}
		}
	}
	return v.err()
}

func (v *validator) builder(b *Builder) {
	if b.Type == "" {
		v.add("builder.type", "missing: one of %s", strings.Join(builderTypes, ", "))
		return
	}
	known := false
	for _, t := range builderTypes {
		known = known || t == b.Type
	}
	if !known {
		v.add("builder.type", "%q is not one of %s", b.Type, strings.Join(builderTypes, ", "))
	}
	if b.Dir != "" && !localPath(b.Dir) {
		v.add("builder.dir", "%q must be a relative path inside the source tree", b.Dir)
	}
	for i, e := range b.Env {
		if !envRE.MatchString(e) {
			v.add(fmt.Sprintf("builder.env[%d]", i), "%q is not KEY=VALUE", e)
		}
	}
	if b.Type == Steps && len(b.Steps) == 0 {
		v.add("builder.steps", "missing: a steps builder needs steps")
	}
	if b.Type != Steps && len(b.Steps) > 0 {
		v.add("builder.steps", "only a steps builder takes steps (use prepare or post-install)")
	}
	if b.Type != Kernel && (b.Config != "" || len(b.Fragments) > 0) {
		v.add("builder.config", "config and fragments are for the kernel builder")
	}
	if b.Config != "" && !toolRE.MatchString(b.Config) {
		v.add("builder.config", "%q is not a make target", b.Config)
	}
	v.files("builder.fragments", b.Fragments)
}

type validator struct {
	r    *Recipe
	errs []error
}

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Pos: v.r.Pos(field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) err() error {
	switch len(v.errs) {
	case 0:
		return nil
	case 1:
		return v.errs[0]
	}
	return errors.Join(v.errs...)
}

func (v *validator) files(field string, files []string) {
	seen := map[string]bool{}
	for i, f := range files {
		switch {
		case !localPath(f):
			v.add(fmt.Sprintf("%s[%d]", field, i), "%q must be a relative path inside the recipe directory", f)
		case f == "recipe.yaml":
			v.add(fmt.Sprintf("%s[%d]", field, i), "recipe.yaml is not a build input")
		case seen[f]:
			v.add(fmt.Sprintf("%s[%d]", field, i), "%q is listed twice", f)
		}
		seen[f] = true
	}
}

func (v *validator) names(field string, names []string) {
	seen := map[string]bool{}
	for i, n := range names {
		switch {
		case !ValidName(n):
			v.add(fmt.Sprintf("%s[%d]", field, i), "%q is not a package name", n)
		case n == v.r.Name:
			v.add(fmt.Sprintf("%s[%d]", field, i), "a package cannot depend on itself")
		case seen[n]:
			v.add(fmt.Sprintf("%s[%d]", field, i), "%q is listed twice", n)
		}
		seen[n] = true
	}
}

// localPath reports whether p is a clean relative path that stays inside
// its directory.
func localPath(p string) bool {
	return p != "" && p != "." && path.Clean(p) == p && !path.IsAbs(p) &&
		p != ".." && !strings.HasPrefix(p, "../") && !strings.ContainsAny(p, "\\\x00\n")
}

func checkURL(u string) error {
	switch {
	case u == "":
		return fmt.Errorf("missing")
	case strings.ContainsAny(u, " \t\n\x00"):
		return fmt.Errorf("%q contains white space", u)
	case strings.HasPrefix(u, "https://"), strings.HasPrefix(u, "http://"):
		if len(u) <= len("https://") || strings.HasSuffix(u, "/") {
			return fmt.Errorf("%q does not name a file", u)
		}
	case strings.HasPrefix(u, "file://"):
		if !strings.HasPrefix(u, "file:///") || strings.HasSuffix(u, "/") {
			return fmt.Errorf("%q must be file:///absolute/path/to/file", u)
		}
	default:
		return fmt.Errorf("%q: want an https, http or file URL", u)
	}
	if b := path.Base(u); b == "." || b == ".." {
		return fmt.Errorf("%q does not name a file", u)
	}
	return nil
}

func checkMirror(m string) error {
	if strings.HasPrefix(m, "debian:") {
		if !debianRE.MatchString(m) {
			return fmt.Errorf("%q: want debian:SOURCEPACKAGE=VERSION", m)
		}
		return nil
	}
	return checkURL(m)
}

// DebianMirror splits a "debian:PKG=VERSION" mirror; ok is false for other
// mirrors.
func DebianMirror(m string) (pkg, version string, ok bool) {
	if !debianRE.MatchString(m) {
		return "", "", false
	}
	pkg, version, _ = strings.Cut(strings.TrimPrefix(m, "debian:"), "=")
	return pkg, version, true
}
