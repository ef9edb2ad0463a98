package cookbook

import (
	"fmt"
	"regexp"
	"strings"
)

// spdxIDs are the SPDX licence identifiers recipes may use; others are
// written as LicenseRef-….
var spdxIDs = map[string]bool{
	"0BSD": true, "AFL-2.1": true, "Apache-2.0": true, "Artistic-1.0-Perl": true, "Artistic-2.0": true,
	"BSD-1-Clause": true, "BSD-2-Clause": true, "BSD-2-Clause-Patent": true, "BSD-3-Clause": true,
	"BSD-4-Clause": true, "BSL-1.0": true, "bzip2-1.0.6": true, "CC0-1.0": true, "curl": true,
	"FSFAP": true, "FSFUL": true, "FSFULLR": true, "GPL-1.0-or-later": true,
	"GPL-2.0-only": true, "GPL-2.0-or-later": true, "GPL-3.0-only": true, "GPL-3.0-or-later": true,
	"HPND": true, "ISC": true, "LGPL-2.0-only": true, "LGPL-2.0-or-later": true,
	"LGPL-2.1-only": true, "LGPL-2.1-or-later": true, "LGPL-3.0-only": true, "LGPL-3.0-or-later": true,
	"Libpng": true, "libpng-2.0": true, "MIT": true, "MIT-0": true, "MPL-2.0": true, "NTP": true,
	"OpenSSL": true, "PSF-2.0": true, "Python-2.0": true, "Ruby": true, "Unicode-DFS-2016": true,
	"Unicode-3.0": true, "Unlicense": true, "X11": true, "Zlib": true, "zlib-acknowledgement": true,
}

// spdxExceptions are the SPDX exception identifiers allowed after WITH.
var spdxExceptions = map[string]bool{
	"Autoconf-exception-2.0": true, "Autoconf-exception-3.0": true, "Bison-exception-2.2": true,
	"Classpath-exception-2.0": true, "GCC-exception-2.0": true, "GCC-exception-3.1": true,
	"Libtool-exception": true, "Linux-syscall-note": true, "LLVM-exception": true,
	"OpenSSL-exception": true,
}

var licenceRefRE = regexp.MustCompile(`^(DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+$`)

// CheckLicence checks an SPDX licence expression: identifiers joined by AND
// and OR, with WITH exceptions and parentheses.
func CheckLicence(expr string) error {
	if strings.TrimSpace(expr) == "" {
		return fmt.Errorf("missing: an SPDX licence expression such as MIT or GPL-2.0-only")
	}
	toks := strings.Fields(strings.NewReplacer("(", " ( ", ")", " ) ").Replace(expr))
	p := &licenceParser{toks: toks}
	if err := p.expr(); err != nil {
		return err
	}
	if p.i < len(toks) {
		return fmt.Errorf("%q: unexpected %q", expr, toks[p.i])
	}
	return nil
}

type licenceParser struct {
	toks []string
	i    int
}

func (p *licenceParser) next() string {
	if p.i >= len(p.toks) {
		return ""
	}
	p.i++
	return p.toks[p.i-1]
}

func (p *licenceParser) peek() string {
	if p.i >= len(p.toks) {
		return ""
	}
	return p.toks[p.i]
}

// expr = term { (AND|OR) term }
func (p *licenceParser) expr() error {
	for {
		if err := p.term(); err != nil {
			return err
		}
		if op := p.peek(); op != "AND" && op != "OR" {
			return nil
		}
		p.next()
	}
}

// term = "(" expr ")" | id [ WITH exception ]
func (p *licenceParser) term() error {
	switch t := p.next(); {
	case t == "":
		return fmt.Errorf("licence expression ends early")
	case t == "(":
		if err := p.expr(); err != nil {
			return err
		}
		if c := p.next(); c != ")" {
			return fmt.Errorf("missing ) in licence expression")
		}
		return nil
	case t == "AND" || t == "OR" || t == "WITH" || t == ")":
		return fmt.Errorf("unexpected %q in licence expression", t)
	default:
		id := strings.TrimSuffix(t, "+")
		if !spdxIDs[id] && !licenceRefRE.MatchString(t) {
			return fmt.Errorf("%q is not a known SPDX licence id (write LicenseRef-%s for others)", t, t)
		}
		if p.peek() == "WITH" {
			p.next()
			if e := p.next(); !spdxExceptions[e] {
				return fmt.Errorf("%q is not a known SPDX licence exception", e)
			}
		}
		return nil
	}
}
