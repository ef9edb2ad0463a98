package bootcheck

import "cmp"

// strverscmp compares versions as systemd-boot sorts entries
// (strverscmp_improved in systemd's src/fundamental/string-util-fundamental.c):
// '~' sorts before anything, '-' separates release, '^' and '.' sort after,
// digit runs compare as numbers, and a longer version is newer. It returns
// -1, 0 or 1.
func strverscmp(a, b string) int {
	if a == "" || b == "" {
		return cmp.Compare(len(a), len(b))
	}
	for {
		a, b = dropInvalid(a), dropInvalid(b)
		if r, ok := prefixed(&a, &b, '~', 1); ok {
			return r
		}
		if a == "" || b == "" {
			return cmp.Compare(a, b)
		}
		for _, p := range []struct {
			c    byte
			sign int
		}{{'-', 1}, {'^', -1}, {'.', -1}} {
			if r, ok := prefixed(&a, &b, p.c, p.sign); ok {
				return r
			}
		}
		var r int
		if r, a, b = segment(a, b); r != 0 {
			return r
		}
	}
}

// prefixed handles a separator c: when exactly one string starts with it,
// the result is decided (sign 1: that one is older); when both do, both
// drop it.
func prefixed(a, b *string, c byte, sign int) (int, bool) {
	ha, hb := *a != "" && (*a)[0] == c, *b != "" && (*b)[0] == c
	if !ha && !hb {
		return 0, false
	}
	if ha != hb {
		if ha {
			return -sign, true
		}
		return sign, true
	}
	*a, *b = (*a)[1:], (*b)[1:]
	return 0, false
}

// segment compares the leading numeric or alphabetic segments and returns
// the rest of both strings.
func segment(a, b string) (int, string, string) {
	if isDigit(first(a)) || isDigit(first(b)) {
		na, nb := span(a, isDigit), span(b, isDigit)
		if r := cmpBool(na > 0, nb > 0); r != 0 {
			return r, a, b
		}
		da, db := trimZeros(a[:na]), trimZeros(b[:nb])
		if r := cmp.Compare(len(da), len(db)); r != 0 {
			return r, a, b
		}
		return cmp.Compare(da, db), a[na:], b[nb:]
	}
	na, nb := span(a, isAlpha), span(b, isAlpha)
	m := min(na, nb)
	if r := cmp.Compare(a[:m], b[:m]); r != 0 {
		return r, a, b
	}
	return cmp.Compare(na, nb), a[na:], b[nb:]
}

func dropInvalid(s string) string {
	for s != "" && !isDigit(s[0]) && !isAlpha(s[0]) && s[0] != '~' && s[0] != '-' && s[0] != '^' && s[0] != '.' {
		s = s[1:]
	}
	return s
}

func span(s string, f func(byte) bool) int {
	i := 0
	for i < len(s) && f(s[i]) {
		i++
	}
	return i
}

func trimZeros(s string) string {
	for s != "" && s[0] == '0' {
		s = s[1:]
	}
	return s
}

func first(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func cmpBool(a, b bool) int {
	return cmp.Compare(btoi(a), btoi(b))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
