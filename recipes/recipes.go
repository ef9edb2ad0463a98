// Package recipes is ingot's default distribution, embedded in the ingot
// binary: one directory per package holding its recipe.yaml (and patches
// or other files it names), and sets.yaml naming groups of packages — the
// "base" set is what `ingot build` builds by default.
package recipes

import (
	"embed"
	"io/fs"
)

//go:embed sets.yaml */*
var files embed.FS

// FS returns the recipe tree.
func FS() fs.FS { return files }
