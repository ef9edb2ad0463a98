// Package sbom writes SPDX 2.3 JSON software bills of materials for ingot
// packages: each package with its version, licence, upstream source URLs
// and sha256, and the dependency edges between them.
//
//	pkgs, err := sbom.FromDistribution(dist, []string{"base"}, keys)
//	doc := sbom.New(pkgs, sbom.Options{Name: "ingot-1.0.0", Created: time.Unix(epoch, 0)})
//	err = doc.Write(w)
//
// The output is deterministic: same packages and options, same bytes.
package sbom

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ingot-linux/ingot/cookbook"
)

// Package is one package of the bill.
type Package struct {
	Name        string
	Version     string
	Licence     string // SPDX expression
	Homepage    string
	Description string
	Sources     []Source
	// Deps are runtime dependencies and BuildDeps build dependencies (by
	// name); edges to packages not in the bill are left out.
	Deps      []string
	BuildDeps []string
	// Key is the store key the package was built as ("" if unknown).
	Key string
	// Shipped says the package is in the image (not only needed to build).
	Shipped bool
	// Why says why a package not shipped is in the bill (default:
	// "needed to build, not shipped").
	Why string
}

// Source is an upstream file.
type Source struct {
	URL    string
	SHA256 string
}

// FromDistribution returns the packages that targets (package or set
// names) need, built or shipped, in build order. Targets and their runtime
// dependencies are marked Shipped; keys (may be nil) gives store keys.
func FromDistribution(d *cookbook.Distribution, targets []string, keys map[string]string) ([]Package, error) {
	order, err := d.Resolve(targets)
	if err != nil {
		return nil, err
	}
	ship, err := d.Shipped(targets)
	if err != nil {
		return nil, err
	}
	shipped := map[string]bool{}
	for _, n := range ship {
		shipped[n] = true
	}
	var pkgs []Package
	for _, n := range order {
		r := d.Recipe(n)
		p := Package{Name: n, Version: r.Version, Licence: r.Licence, Homepage: r.Homepage,
			Description: r.Description, Deps: r.Deps, BuildDeps: r.BuildDeps, Key: keys[n], Shipped: shipped[n]}
		for _, s := range r.Sources {
			p.Sources = append(p.Sources, Source{URL: s.URL, SHA256: s.SHA256})
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// Options describe the document.
type Options struct {
	// Name is the document's name, e.g. the image name and version.
	Name string
	// Created is the creation time written (use SOURCE_DATE_EPOCH).
	Created time.Time
	// Tool names the creating tool and its version (default "ingot").
	Tool string
}

// Document is an SPDX 2.3 document (JSON field names per the SPDX schema).
type Document struct {
	SPDXVersion       string          `json:"spdxVersion"`
	DataLicense       string          `json:"dataLicense"`
	SPDXID            string          `json:"SPDXID"`
	Name              string          `json:"name"`
	DocumentNamespace string          `json:"documentNamespace"`
	CreationInfo      CreationInfo    `json:"creationInfo"`
	Packages          []SPDXPackage   `json:"packages"`
	Relationships     []Relationship  `json:"relationships"`
	ExtractedLicences []ExtractedInfo `json:"hasExtractedLicensingInfos,omitempty"`
}

// CreationInfo says who made the document and when.
type CreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

// SPDXPackage is an SPDX package.
type SPDXPackage struct {
	SPDXID           string     `json:"SPDXID"`
	Name             string     `json:"name"`
	VersionInfo      string     `json:"versionInfo,omitempty"`
	DownloadLocation string     `json:"downloadLocation"`
	FilesAnalyzed    bool       `json:"filesAnalyzed"`
	Checksums        []Checksum `json:"checksums,omitempty"`
	Homepage         string     `json:"homepage,omitempty"`
	Summary          string     `json:"summary,omitempty"`
	LicenseConcluded string     `json:"licenseConcluded"`
	LicenseDeclared  string     `json:"licenseDeclared"`
	CopyrightText    string     `json:"copyrightText"`
	Supplier         string     `json:"supplier,omitempty"`
	Comment          string     `json:"comment,omitempty"`
}

// Checksum is a package file's digest.
type Checksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

// Relationship is an edge between SPDX elements.
type Relationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// ExtractedInfo declares a LicenseRef- licence.
type ExtractedInfo struct {
	LicenseID     string `json:"licenseId"`
	ExtractedText string `json:"extractedText"`
	Name          string `json:"name"`
}

var (
	idUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]`)
	licRef   = regexp.MustCompile(`LicenseRef-[A-Za-z0-9.-]+`)
)

// New makes the document for pkgs.
func New(pkgs []Package, o Options) *Document {
	tool := o.Tool
	if tool == "" {
		tool = "ingot"
	}
	doc := &Document{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT", Name: o.Name,
		CreationInfo:  CreationInfo{Created: o.Created.UTC().Format(time.RFC3339), Creators: []string{"Tool: " + tool}},
		Packages:      []SPDXPackage{},
		Relationships: []Relationship{},
	}
	ids := map[string]string{}
	used := map[string]bool{}
	id := func(kind, name string) string {
		base := "SPDXRef-" + kind + "-" + idUnsafe.ReplaceAllString(name, "-")
		s := base
		for i := 2; used[s]; i++ {
			s = fmt.Sprintf("%s-%d", base, i)
		}
		used[s] = true
		return s
	}
	sorted := append([]Package{}, pkgs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, p := range sorted {
		ids[p.Name] = id("Package", p.Name)
	}
	refs := map[string]bool{}
	digest := sha256.New()
	for _, p := range sorted {
		fmt.Fprintf(digest, "%d:%s %d:%s %d:%s\n", len(p.Name), p.Name, len(p.Version), p.Version, len(p.Key), p.Key)
		sp := SPDXPackage{SPDXID: ids[p.Name], Name: p.Name, VersionInfo: p.Version, DownloadLocation: "NOASSERTION",
			Homepage: p.Homepage, Summary: p.Description, LicenseConcluded: p.Licence, LicenseDeclared: p.Licence,
			CopyrightText: "NOASSERTION", Supplier: "NOASSERTION"}
		var comment []string
		if p.Key != "" {
			comment = append(comment, "ingot store key "+p.Key)
		}
		switch {
		case !p.Shipped && p.Why != "":
			comment = append(comment, p.Why)
		case !p.Shipped:
			comment = append(comment, "needed to build, not shipped")
		}
		sp.Comment = strings.Join(comment, "; ")
		for _, m := range licRef.FindAllString(p.Licence, -1) {
			refs[m] = true
		}
		for i, s := range p.Sources {
			if i == 0 {
				sp.DownloadLocation = s.URL
				sp.Checksums = []Checksum{{Algorithm: "SHA256", ChecksumValue: s.SHA256}}
				continue
			}
			// Further sources are packages the package is generated from.
			src := SPDXPackage{SPDXID: id("Source", fmt.Sprintf("%s-%d", p.Name, i)), Name: fmt.Sprintf("%s source %d", p.Name, i),
				DownloadLocation: s.URL, Checksums: []Checksum{{Algorithm: "SHA256", ChecksumValue: s.SHA256}},
				LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION", CopyrightText: "NOASSERTION"}
			doc.Packages = append(doc.Packages, src)
			doc.Relationships = append(doc.Relationships, Relationship{sp.SPDXID, "GENERATED_FROM", src.SPDXID})
		}
		doc.Packages = append(doc.Packages, sp)
		if p.Shipped {
			doc.Relationships = append(doc.Relationships, Relationship{"SPDXRef-DOCUMENT", "DESCRIBES", sp.SPDXID})
		}
		for _, d := range sortedCopy(p.Deps) {
			if ids[d] != "" {
				doc.Relationships = append(doc.Relationships, Relationship{sp.SPDXID, "DEPENDS_ON", ids[d]})
			}
		}
		for _, d := range sortedCopy(p.BuildDeps) {
			if ids[d] != "" {
				doc.Relationships = append(doc.Relationships, Relationship{ids[d], "BUILD_DEPENDENCY_OF", sp.SPDXID})
			}
		}
	}
	for _, r := range sortedKeys(refs) {
		doc.ExtractedLicences = append(doc.ExtractedLicences, ExtractedInfo{LicenseID: r, ExtractedText: "See the package's sources.", Name: strings.TrimPrefix(r, "LicenseRef-")})
	}
	fmt.Fprintf(digest, "%d:%s %s\n", len(o.Name), o.Name, doc.CreationInfo.Created)
	doc.DocumentNamespace = "urn:ingot:sbom:" + idUnsafe.ReplaceAllString(o.Name, "-") + ":" + hex.EncodeToString(digest.Sum(nil))[:32]
	sort.SliceStable(doc.Packages, func(i, j int) bool { return doc.Packages[i].SPDXID < doc.Packages[j].SPDXID })
	return doc
}

// Write writes the document as indented JSON.
func (d *Document) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return fmt.Errorf("write SPDX document: %w", err)
	}
	return nil
}

func sortedCopy(s []string) []string {
	c := append([]string{}, s...)
	sort.Strings(c)
	return c
}

func sortedKeys(m map[string]bool) []string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}
