package sbom

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/cookbook"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func dist(t *testing.T) *cookbook.Distribution {
	t.Helper()
	var rs []*cookbook.Recipe
	for name, src := range map[string]string{
		"musl": "licence: MIT\nsources: [{url: 'https://example.org/musl-1.2.6.tar.gz', sha256: '" + hex64("a") + "'}]\n",
		"zlib": "licence: Zlib\nbuild-deps: [musl]\ndeps: [musl]\nsources: [{url: 'https://example.org/zlib-1.3.tar.gz', sha256: '" + hex64("b") + "'}]\n",
		"tool": "licence: GPL-2.0-only WITH Linux-syscall-note OR LicenseRef-ingot-tool\nbuild-deps: [zlib, hdrs]\ndeps: [zlib]\n" +
			"sources: [{url: 'https://example.org/tool-2.tar.xz', sha256: '" + hex64("c") + "'}, {url: 'file:///srv/extra.txt', sha256: '" + hex64("d") + "'}]\n",
		"hdrs": "licence: MIT\nsources: [{url: 'https://example.org/hdrs-1.tar.gz', sha256: '" + hex64("e") + "'}]\n",
	} {
		r, err := cookbook.ParseRecipe(name+"/recipe.yaml", []byte("name: "+name+"\nversion: '1'\nbuilder: {type: make}\n"+src))
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	d, err := cookbook.NewDistribution(rs, cookbook.Sets{"base": {"tool"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func hex64(c string) string { return strings.Repeat(c, 64) }

func TestSBOM(t *testing.T) {
	pkgs, err := FromDistribution(dist(t), []string{"base"}, map[string]string{"musl": hex64("f")})
	if err != nil {
		t.Fatal(err)
	}
	doc := New(pkgs, Options{Name: "ingot-test 1.0", Created: time.Unix(315532800, 0), Tool: "ingot-test"})
	var buf bytes.Buffer
	if err := doc.Write(&buf); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "sbom.json")
	if *update {
		os.WriteFile(golden, buf.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("SBOM differs from %s (run with -update after checking):\n%s", golden, buf.Bytes())
	}
	checkSPDX(t, buf.Bytes())
	// hdrs is only needed to build tool: present, not described as shipped.
	var got Document
	json.Unmarshal(buf.Bytes(), &got)
	described := map[string]bool{}
	for _, r := range got.Relationships {
		if r.Type == "DESCRIBES" {
			described[r.Related] = true
		}
	}
	if described["SPDXRef-Package-hdrs"] || !described["SPDXRef-Package-tool"] || !described["SPDXRef-Package-musl"] {
		t.Errorf("described: %v", described)
	}
}

// checkSPDX checks the SPDX 2.3 rules a consumer relies on: required
// fields, unique identifiers, relationships between existing elements,
// declared LicenseRefs.
func checkSPDX(t *testing.T, data []byte) {
	t.Helper()
	var d Document
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if d.SPDXVersion != "SPDX-2.3" || d.DataLicense != "CC0-1.0" || d.SPDXID != "SPDXRef-DOCUMENT" || d.Name == "" ||
		d.DocumentNamespace == "" || d.CreationInfo.Created == "" || len(d.CreationInfo.Creators) == 0 {
		t.Errorf("document header: %+v", d)
	}
	ids := map[string]bool{"SPDXRef-DOCUMENT": true}
	for _, p := range d.Packages {
		if ids[p.SPDXID] || !idRE.MatchString(p.SPDXID) {
			t.Errorf("bad or duplicate SPDXID %q", p.SPDXID)
		}
		ids[p.SPDXID] = true
		if p.Name == "" || p.DownloadLocation == "" || p.LicenseConcluded == "" || p.LicenseDeclared == "" || p.CopyrightText == "" {
			t.Errorf("package lacks a required field: %+v", p)
		}
		if p.LicenseDeclared != "NOASSERTION" {
			if err := cookbook.CheckLicence(p.LicenseDeclared); err != nil {
				t.Errorf("%s: %v", p.Name, err)
			}
		}
	}
	for _, r := range d.Relationships {
		if !ids[r.Element] || !ids[r.Related] {
			t.Errorf("relationship %+v names an unknown element", r)
		}
	}
	if len(d.ExtractedLicences) != 1 || d.ExtractedLicences[0].LicenseID != "LicenseRef-ingot-tool" {
		t.Errorf("extracted licences: %+v", d.ExtractedLicences)
	}
}

var idRE = regexp.MustCompile(`^SPDXRef-[A-Za-z0-9.-]+$`)
