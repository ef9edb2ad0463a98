package cookbook

import (
	"fmt"
	"path"
	"strings"
)

// Match reports whether the slash-separated path p matches pattern, where
// each segment is a path.Match pattern and "**" matches any number of
// segments (including none).
func Match(pattern, p string) bool {
	return matchSegs(strings.Split(pattern, "/"), strings.Split(p, "/"))
}

func matchSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(segs); i++ {
				if matchSegs(pat[1:], segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], segs[0]); !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}

// CheckPattern checks an output pattern.
func CheckPattern(pattern string) error {
	if pattern == "" || strings.HasPrefix(pattern, "/") || strings.HasSuffix(pattern, "/") {
		return fmt.Errorf("%q: want a relative pattern like usr/include/**", pattern)
	}
	for _, s := range strings.Split(pattern, "/") {
		if s == "" || s == "." || s == ".." {
			return fmt.Errorf("%q: empty, . or .. segment", pattern)
		}
		if _, err := path.Match(s, ""); err != nil {
			return fmt.Errorf("%q: %w", pattern, err)
		}
	}
	return nil
}
