package uki_test

import (
	"flag"
	"testing"

	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/ingottest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenInputs returns the stub and sections of the golden UKI: the
// synthetic stub with a symbol table (which Build drops) and a tiny payload
// for each usual section, given out of order (Build sorts them). Seven
// section headers overflow the stub's one-sector header area, so Build
// also grows the headers and moves the stub's .text.
func goldenInputs() ([]byte, []uki.Section) {
	return makeStub(stubOptions{symtab: true}), []uki.Section{
		{Name: uki.SectionLinux, Data: []byte("MZ fake kernel")},
		{Name: uki.SectionInitrd, Data: []byte("070701 fake cpio")},
		{Name: uki.SectionCmdline, Data: []byte("console=ttyS0 rw")},
		{Name: uki.SectionUname, Data: []byte("6.1.0-28-amd64")},
		{Name: uki.SectionOSRel, Data: []byte("ID=ingot\nVERSION_ID=1\n")},
		{Name: uki.SectionSBAT, Data: []byte("sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n")},
	}
}

// TestGolden pins the bytes Build produces to testdata/uki.golden: PE
// headers with the new section table, size fields and checksum, the stub's
// section and the new sections. The same image goes through objdump,
// sbverify and osslsigncode in tools_test.go (toolCases). Rewrite it with
// go test -run TestGolden -update after an intended change (including to
// makeStub), and review the diff.
func TestGolden(t *testing.T) {
	stub, secs := goldenInputs()
	img := build(t, stub, secs)
	checkUKI(t, img, stub, secs)
	ingottest.SparseGolden(t, "testdata/uki.golden", img, *update)
}
