package uki_test

import (
	"bytes"
	"debug/pe"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/format/uki"

	"github.com/ingot-linux/ingot/ingottest"
)

// toolCases returns UKIs to feed to external validators: from the real
// stub when installed (typical and grown-header layouts), and from
// synthetic stubs, including the one pinned by TestGolden.
func toolCases(t *testing.T) map[string][]byte {
	t.Helper()
	goldenStub, goldenSecs := goldenInputs()
	cases := map[string][]byte{
		"synthetic":             build(t, makeStub(stubOptions{symtab: true}), sampleSections()),
		"synthetic-full-header": build(t, makeStub(stubOptions{sections: 4}), sampleSections()),
		"golden":                build(t, goldenStub, goldenSecs),
	}
	if stub, err := os.ReadFile(realStubPath); err == nil {
		cases["real"] = build(t, stub, sampleSections())
		cases["real-grown"] = build(t, stub, append(sampleSections(),
			uki.Section{Name: uki.SectionDTB, Data: []byte("dtb")},
			uki.Section{Name: uki.SectionSplash, Data: []byte("BM")},
			uki.Section{Name: uki.SectionPCRPKey, Data: []byte("key")},
			uki.Section{Name: uki.SectionPCRSig, Data: []byte("{}")},
			uki.Section{Name: ".extra", Data: []byte("x")},
		))
	} else if ingottest.RequireTools() {
		t.Fatalf("%s: %v (INGOT_REQUIRE_TOOLS=1)", realStubPath, err)
	} else {
		t.Logf("%s not installed; validating synthetic stubs only", realStubPath)
	}
	return cases
}

// writeTemp writes b to a file in a per-test directory.
func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestObjdump checks that binutils lists every section with the expected
// name, size (VirtualSize), address and file offset.
func TestObjdump(t *testing.T) {
	objdump := lookTool(t, "objdump")
	for name, img := range toolCases(t) {
		t.Run(name, func(t *testing.T) {
			path := writeTemp(t, "uki.efi", img)
			out, err := exec.Command(objdump, "-h", path).CombinedOutput()
			if err != nil {
				t.Fatalf("objdump -h: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "file format pei-") {
				t.Fatalf("objdump does not see a PE image:\n%s", out)
			}
			lines := sectionLines(string(out))
			f, err := pe.NewFile(bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range f.Sections {
				l, ok := lines[s.Name]
				if !ok {
					t.Errorf("objdump does not list %s:\n%s", s.Name, out)
					continue
				}
				size, _ := strconv.ParseUint(l[2], 16, 32)
				vma, _ := strconv.ParseUint(l[3], 16, 64)
				off, _ := strconv.ParseUint(l[5], 16, 32)
				if size != uint64(s.VirtualSize) || vma != uint64(s.VirtualAddress) || off != uint64(s.Offset) {
					t.Errorf("objdump: %s size %#x vma %#x off %#x; want %#x %#x %#x",
						s.Name, size, vma, off, s.VirtualSize, s.VirtualAddress, s.Offset)
				}
			}
			if strings.Contains(strings.ToLower(string(out)), "warning") {
				t.Errorf("objdump warns:\n%s", out)
			}
		})
	}
}

// TestSbverify checks that sbsigntool parses the image and finds no
// signature, without parse errors or warnings about unhashed gaps.
func TestSbverify(t *testing.T) {
	sbverify := lookTool(t, "sbverify")
	for name, img := range toolCases(t) {
		t.Run(name, func(t *testing.T) {
			path := writeTemp(t, "uki.efi", img)
			out, err := exec.Command(sbverify, "--list", path).CombinedOutput()
			if err != nil {
				t.Fatalf("sbverify --list: %v\n%s", err, out)
			}
			if strings.TrimSpace(string(out)) != "No signature table present" {
				t.Errorf("sbverify --list output:\n%s\nwant just \"No signature table present\"", out)
			}
		})
	}
}

// TestOsslsigncode checks that osslsigncode parses the image, agrees with
// its PE checksum, and reports only the missing signature.
func TestOsslsigncode(t *testing.T) {
	ossl := lookTool(t, "osslsigncode")
	for name, img := range toolCases(t) {
		t.Run(name, func(t *testing.T) {
			path := writeTemp(t, "uki.efi", img)
			// Exits 1 on an unsigned file; the output tells the rest.
			out, _ := exec.Command(ossl, "verify", "-in", path).CombinedOutput()
			s := string(out)
			ck := fmt.Sprintf("%08X", peChecksum(img))
			// A matching checksum is printed once; a mismatch as "Current"
			// and "Calculated" lines plus a warning.
			if !strings.Contains(s, "\nPE checksum   : "+ck+"\n") {
				t.Errorf("osslsigncode does not confirm checksum %s:\n%s", ck, s)
			}
			if !strings.Contains(s, "No signature found") {
				t.Errorf("osslsigncode did not get as far as the signature:\n%s", s)
			}
			for _, bad := range []string{"invalid", "Corrupt", "Unsupported", "unsupported", "error", "Warning"} {
				if strings.Contains(s, bad) {
					t.Errorf("osslsigncode reports %q:\n%s", bad, s)
				}
			}
		})
	}
}

// TestSbsignRoundTrip signs a UKI with a throwaway key and verifies the
// signature: the Authenticode hash must cover the layout Build produces.
func TestSbsignRoundTrip(t *testing.T) {
	openssl := lookTool(t, "openssl")
	sbsign := lookTool(t, "sbsign")
	sbverify := lookTool(t, "sbverify")
	dir := t.TempDir()
	key, cert := filepath.Join(dir, "db.key"), filepath.Join(dir, "db.crt")
	if out, err := exec.Command(openssl, "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
		"-subj", "/CN=ingot uki test", "-keyout", key, "-out", cert).CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	for name, img := range toolCases(t) {
		t.Run(name, func(t *testing.T) {
			in := writeTemp(t, "uki.efi", img)
			signed := in + ".signed"
			if out, err := exec.Command(sbsign, "--key", key, "--cert", cert, "--output", signed, in).CombinedOutput(); err != nil {
				t.Fatalf("sbsign: %v\n%s", err, out)
			}
			out, err := exec.Command(sbverify, "--cert", cert, signed).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Signature verification OK") {
				t.Fatalf("sbverify --cert: %v\n%s", err, out)
			}
			if strings.Contains(string(out), "warning") {
				t.Errorf("sbverify warns:\n%s", out)
			}
		})
	}
}
