package uki_test

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/format/uki"
)

// checkUKI verifies out, built from stub and secs, with debug/pe and with
// the package's reader: the stub's sections are intact, the new ones hold
// exactly the given data in ukify order with VirtualSize == len(data), all
// alignments and header fields are right, and nothing overlaps.
func checkUKI(t *testing.T, out, stub []byte, secs []uki.Section) {
	t.Helper()
	sf, err := pe.NewFile(bytes.NewReader(stub))
	if err != nil {
		t.Fatalf("parsing stub: %v", err)
	}
	f, err := pe.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("debug/pe cannot parse the UKI: %v", err)
	}
	oh := f.OptionalHeader.(*pe.OptionalHeader64)
	soh := sf.OptionalHeader.(*pe.OptionalHeader64)
	fa, sa := oh.FileAlignment, oh.SectionAlignment

	// File header.
	if got, want := len(f.Sections), len(sf.Sections)+len(secs); got != want {
		t.Fatalf("NumberOfSections = %d, want %d", got, want)
	}
	if f.PointerToSymbolTable != 0 || f.NumberOfSymbols != 0 {
		t.Errorf("symbol table not cleared: ptr %#x, n %d", f.PointerToSymbolTable, f.NumberOfSymbols)
	}
	if f.TimeDateStamp != sf.TimeDateStamp {
		t.Errorf("TimeDateStamp = %#x, want stub's %#x", f.TimeDateStamp, sf.TimeDateStamp)
	}
	if f.Machine != sf.Machine {
		t.Errorf("Machine changed")
	}

	// Optional header: only the fields Build owns may change.
	want := *soh
	got := *oh
	for _, h := range []*pe.OptionalHeader64{&want, &got} {
		h.SizeOfCode, h.SizeOfInitializedData, h.SizeOfImage, h.SizeOfHeaders, h.CheckSum = 0, 0, 0, 0, 0
	}
	if got != want {
		t.Errorf("optional header changed beyond Build's fields:\n got %+v\nwant %+v", got, want)
	}
	if c := peChecksum(out); oh.CheckSum != c {
		t.Errorf("CheckSum = %#x, want %#x", oh.CheckSum, c)
	}
	tabEnd := uint32(binary.LittleEndian.Uint32(out[0x3c:])) + 24 + uint32(f.SizeOfOptionalHeader) + 40*uint32(len(f.Sections))
	if oh.SizeOfHeaders%fa != 0 || oh.SizeOfHeaders < tabEnd {
		t.Errorf("SizeOfHeaders = %#x, section table ends at %#x, FileAlignment %#x", oh.SizeOfHeaders, tabEnd, fa)
	}

	// Stub sections: same headers (but for the raw data pointer), same data.
	for i, ss := range sf.Sections {
		s := f.Sections[i]
		a, b := ss.SectionHeader, s.SectionHeader
		a.Offset, b.Offset = 0, 0
		if a != b {
			t.Errorf("stub section %d header changed:\n got %+v\nwant %+v", i, b, a)
		}
		sd, _ := ss.Data()
		d, _ := s.Data()
		if dd := soh.DataDirectory[6]; dd.Size > 0 && dd.VirtualAddress >= ss.VirtualAddress &&
			dd.VirtualAddress+dd.Size <= ss.VirtualAddress+ss.Size {
			// Debug directory entries hold file offsets, which follow
			// the stub's data when Build moves it.
			shift := f.Sections[0].Offset - sf.Sections[0].Offset
			sd = slices.Clone(sd)
			for e := dd.VirtualAddress - ss.VirtualAddress; e+28 <= dd.VirtualAddress-ss.VirtualAddress+dd.Size; e += 28 {
				p := sd[e+24:]
				binary.LittleEndian.PutUint32(p, binary.LittleEndian.Uint32(p)+shift)
			}
		}
		if !bytes.Equal(sd, d) {
			t.Errorf("stub section %s data changed", ss.Name)
		}
	}

	// New sections.
	order := expectedOrder(secs)
	byName := make(map[string]uki.Section)
	for _, s := range secs {
		byName[s.Name] = s
	}
	var sizeCode, sizeData uint32
	for i, name := range order {
		s := f.Sections[len(sf.Sections)+i]
		if s.Name != name {
			t.Fatalf("section %d is %q, want %q", len(sf.Sections)+i, s.Name, name)
		}
		data := contents(t, byName[name])
		if s.VirtualSize != uint32(len(data)) {
			t.Errorf("%s: VirtualSize = %#x, want exact data length %#x", name, s.VirtualSize, len(data))
		}
		if s.Offset%fa != 0 || s.Size%fa != 0 || s.Size < s.VirtualSize || s.Size-s.VirtualSize >= fa {
			t.Errorf("%s: raw data at %#x+%#x not aligned to %#x / not the data rounded up", name, s.Offset, s.Size, fa)
		}
		if s.VirtualAddress%sa != 0 {
			t.Errorf("%s: VirtualAddress %#x not aligned to %#x", name, s.VirtualAddress, sa)
		}
		raw := out[s.Offset : s.Offset+s.Size]
		if !bytes.Equal(raw[:len(data)], data) {
			t.Errorf("%s: data differs", name)
		}
		if bytes.ContainsFunc(raw[len(data):], func(r rune) bool { return r != 0 }) {
			t.Errorf("%s: padding not zero", name)
		}
		wantChars := uint32(pe.IMAGE_SCN_CNT_INITIALIZED_DATA | pe.IMAGE_SCN_MEM_READ)
		if name == ".linux" {
			wantChars = pe.IMAGE_SCN_CNT_CODE | pe.IMAGE_SCN_MEM_EXECUTE | pe.IMAGE_SCN_MEM_READ
			sizeCode += s.Size
		} else {
			sizeData += s.Size
		}
		if s.Characteristics != wantChars {
			t.Errorf("%s: Characteristics = %#x, want %#x", name, s.Characteristics, wantChars)
		}
	}
	if oh.SizeOfCode != soh.SizeOfCode+sizeCode || oh.SizeOfInitializedData != soh.SizeOfInitializedData+sizeData {
		t.Errorf("SizeOfCode/SizeOfInitializedData = %#x/%#x, want %#x/%#x",
			oh.SizeOfCode, oh.SizeOfInitializedData, soh.SizeOfCode+sizeCode, soh.SizeOfInitializedData+sizeData)
	}

	// No overlaps, in the file or in memory, and SizeOfImage covers all.
	type span struct {
		name       string
		start, end uint64
	}
	var raws, virts []span
	var imageEnd uint64
	for i, s := range f.Sections {
		if s.Size > 0 {
			raws = append(raws, span{s.Name, uint64(s.Offset), uint64(s.Offset) + uint64(s.Size)})
		}
		end := uint64(s.VirtualAddress) + uint64(max(s.VirtualSize, s.Size))
		imageEnd = max(imageEnd, end)
		if i < len(sf.Sections) && s.VirtualSize != 0 {
			end = uint64(s.VirtualAddress) + uint64(s.VirtualSize) // the stub's own layout is its business
		}
		virts = append(virts, span{s.Name, uint64(s.VirtualAddress), end})
		if s.VirtualAddress < oh.SizeOfHeaders {
			t.Errorf("%s: VirtualAddress %#x overlaps headers (SizeOfHeaders %#x)", s.Name, s.VirtualAddress, oh.SizeOfHeaders)
		}
	}
	raws = append(raws, span{"headers", 0, uint64(oh.SizeOfHeaders)})
	for what, spans := range map[string][]span{"file": raws, "memory": virts} {
		sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
		for i := 1; i < len(spans); i++ {
			if spans[i].start < spans[i-1].end {
				t.Errorf("%s overlap: %s [%#x,%#x) and %s [%#x,%#x)", what,
					spans[i-1].name, spans[i-1].start, spans[i-1].end, spans[i].name, spans[i].start, spans[i].end)
			}
		}
		if what == "file" && spans[len(spans)-1].end != uint64(len(out)) {
			t.Errorf("file is %#x bytes, last section ends at %#x", len(out), spans[len(spans)-1].end)
		}
	}
	if want := (imageEnd + uint64(sa) - 1) &^ (uint64(sa) - 1); uint64(oh.SizeOfImage) != want {
		t.Errorf("SizeOfImage = %#x, want %#x", oh.SizeOfImage, want)
	}

	// The package's own reader agrees.
	img, err := uki.Open(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	var names []string
	for _, s := range f.Sections {
		names = append(names, s.Name)
	}
	if got := img.Sections(); !slices.Equal(got, names) {
		t.Errorf("Sections() = %q, want %q", got, names)
	}
	for _, s := range f.Sections {
		got, err := img.Section(s.Name)
		if err != nil {
			t.Fatalf("Section(%q): %v", s.Name, err)
		}
		want, _ := s.Data()
		if s.VirtualSize != 0 && s.VirtualSize < s.Size {
			want = want[:s.VirtualSize]
		}
		if !bytes.Equal(got, want) {
			t.Errorf("Section(%q) differs from debug/pe's data", s.Name)
		}
	}
}

func TestBuildSynthetic(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts stubOptions
	}{
		{"basic", stubOptions{}},
		{"three-sections", stubOptions{sections: 3}},
		{"symtab", stubOptions{sections: 2, symtab: true}},
		{"trailer", stubOptions{trailer: []byte("not a symbol table")}},
		{"full-header", stubOptions{sections: 4}},
		{"full-header-symtab-debugdir", stubOptions{sections: 4, symtab: true, debugDir: true}},
		{"arm64", stubOptions{machine: pe.IMAGE_FILE_MACHINE_ARM64}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stub := makeStub(tc.opts)
			secs := sampleSections()
			out := build(t, stub, secs)
			checkUKI(t, out, stub, secs)
		})
	}
}

func TestBuildStripsTrailingSymbolTable(t *testing.T) {
	stub := makeStub(stubOptions{symtab: true})
	plain := makeStub(stubOptions{})
	secs := []uki.Section{{Name: ".cmdline", Data: []byte("quiet")}}
	a, b := build(t, stub, secs), build(t, plain, secs)
	if len(a) != len(b) {
		t.Errorf("UKI from stub with symbol table is %d bytes, without %d: table not dropped", len(a), len(b))
	}
	f, err := pe.NewFile(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if f.Characteristics&pe.IMAGE_FILE_LOCAL_SYMS_STRIPPED == 0 {
		t.Error("IMAGE_FILE_LOCAL_SYMS_STRIPPED not set after dropping the symbol table")
	}
	// Trailing data that is not a symbol table is kept.
	tr := makeStub(stubOptions{trailer: []byte("keep me")})
	if out := build(t, tr, secs); !bytes.Contains(out, []byte("keep me")) {
		t.Error("trailing stub data dropped")
	}
}

func TestBuildGrowsHeaders(t *testing.T) {
	stub := makeStub(stubOptions{sections: 4, debugDir: true})
	out := build(t, stub, sampleSections())
	f, err := pe.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	oh := f.OptionalHeader.(*pe.OptionalHeader64)
	if oh.SizeOfHeaders != 0x400 || f.Sections[0].Offset != 0x400 {
		t.Errorf("SizeOfHeaders %#x, first section at %#x; want both 0x400", oh.SizeOfHeaders, f.Sections[0].Offset)
	}
	// The debug directory's file pointer must follow the moved data.
	last := f.Sections[3]
	entry := out[last.Offset:]
	ptr := binary.LittleEndian.Uint32(entry[24:])
	if ptr != last.Offset+0x40 || string(out[ptr:ptr+4]) != "RSDS" {
		t.Errorf("debug entry PointerToRawData = %#x, want %#x (RSDS marker)", ptr, last.Offset+0x40)
	}
}

func TestBuildRealStub(t *testing.T) {
	stub := realStub(t)
	t.Run("typical", func(t *testing.T) {
		secs := sampleSections()
		checkUKI(t, build(t, stub, secs), stub, secs)
	})
	t.Run("grown-headers", func(t *testing.T) {
		// The bookworm stub has room for 7 more section headers; 10 forces
		// Build to move the stub's data.
		secs := append(sampleSections(),
			uki.Section{Name: uki.SectionDTB, Data: []byte{0xd0, 0x0d, 0xfe, 0xed}},
			uki.Section{Name: uki.SectionSplash, Data: []byte("BM fake bitmap")},
			uki.Section{Name: uki.SectionPCRPKey, Data: []byte("-----BEGIN PUBLIC KEY-----\n")},
			uki.Section{Name: uki.SectionPCRSig, Data: []byte(`{"sha256":[]}`)},
			uki.Section{Name: uki.SectionUcode, Data: []byte("ucode")},
		)
		checkUKI(t, build(t, stub, secs), stub, secs)
	})
}

func TestBuildOrder(t *testing.T) {
	secs := []uki.Section{
		{Name: ".linux", Data: []byte("k")},
		{Name: ".pcrsig", Data: []byte("{}")},
		{Name: ".extra2", Data: []byte("x2")},
		{Name: ".initrd", Data: []byte("i")},
		{Name: ".sbat", Data: []byte("sbat,1\n")},
		{Name: ".extra1", Data: []byte("x1")},
		{Name: ".osrel", Data: []byte("ID=x")},
		{Name: ".ucode", Data: []byte("u")},
		{Name: ".pcrpkey", Data: []byte("p")},
		{Name: ".uname", Data: []byte("6")},
		{Name: ".splash", Data: []byte("BM")},
		{Name: ".dtb", Data: []byte("d")},
		{Name: ".cmdline", Data: []byte("c")},
	}
	stub := makeStub(stubOptions{})
	out := build(t, stub, secs)
	img, err := uki.Open(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".text", ".osrel", ".cmdline", ".dtb", ".uname", ".splash", ".pcrpkey", ".initrd", ".ucode",
		".extra2", ".extra1", ".sbat", ".pcrsig", ".linux"}
	if got := img.Sections(); !slices.Equal(got, want) {
		t.Errorf("order = %q\nwant %q", got, want)
	}
	checkUKI(t, out, stub, secs)
}

func TestBuildDeterministic(t *testing.T) {
	stub := makeStub(stubOptions{symtab: true})
	a := build(t, stub, sampleSections())
	b := build(t, stub, sampleSections())
	if !bytes.Equal(a, b) {
		t.Fatal("two builds from the same inputs differ")
	}
	// Data and Reader sections with the same bytes give the same image,
	// and so does another input order.
	secs := sampleSections()
	for i := range secs {
		secs[i] = uki.Section{Name: secs[i].Name, Data: contents(t, secs[i])}
	}
	slices.Reverse(secs)
	if c := build(t, stub, secs); !bytes.Equal(a, c) {
		t.Fatal("Data vs Reader or input order changed the output")
	}
}

// shortReader claims to be n bytes long but holds fewer.
type shortReader struct{ data []byte }

func (r shortReader) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(r.data).ReadAt(p, off)
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after < len(p) {
		return 0, errors.New("disk full")
	}
	w.after -= len(p)
	return len(p), nil
}

func TestBuildErrors(t *testing.T) {
	good := makeStub(stubOptions{})
	cmdline := []uki.Section{{Name: ".cmdline", Data: []byte("quiet")}}
	for _, tc := range []struct {
		name string
		stub []byte
		secs []uki.Section
		want string
	}{
		{"not-pe", []byte("#!/bin/sh\necho not a PE\n"), cmdline, "stub"},
		{"empty-stub", nil, cmdline, "stub"},
		{"truncated-stub", good[:0x300], cmdline, "stub"},
		{"pe32", makeStub(stubOptions{pe32: true}), cmdline, "PE32+"},
		{"i386", makeStub(stubOptions{pe32: true, machine: pe.IMAGE_FILE_MACHINE_I386}), cmdline, "machine"},
		{"riscv", makeStub(stubOptions{machine: pe.IMAGE_FILE_MACHINE_RISCV64}), cmdline, "machine"},
		{"not-efi", makeStub(stubOptions{subsystem: pe.IMAGE_SUBSYSTEM_WINDOWS_CUI}), cmdline, "EFI application"},
		{"signed", makeStub(stubOptions{signed: true}), cmdline, "signed"},
		{"empty-name", good, []uki.Section{{Name: "", Data: []byte("x")}}, "empty section name"},
		{"long-name", good, []uki.Section{{Name: ".cmdline2", Data: []byte("x")}}, "longer than 8"},
		{"space-name", good, []uki.Section{{Name: ".a b", Data: []byte("x")}}, "printable"},
		{"nul-name", good, []uki.Section{{Name: ".a\x00", Data: []byte("x")}}, "printable"},
		{"slash-name", good, []uki.Section{{Name: "/4", Data: []byte("x")}}, "'/'"},
		{"duplicate", good, []uki.Section{{Name: ".initrd", Data: []byte("a")}, {Name: ".initrd", Data: []byte("b")}}, "duplicate"},
		{"duplicate-stub", good, []uki.Section{{Name: ".text", Data: []byte("a")}}, "duplicate"},
		{"empty-data", good, []uki.Section{{Name: ".cmdline"}}, "empty"},
		{"both", good, []uki.Section{{Name: ".cmdline", Data: []byte("a"), Reader: bytes.NewReader(nil), Size: 1}}, "both"},
		{"negative-size", good, []uki.Section{{Name: ".linux", Reader: bytes.NewReader(nil), Size: -1}}, "negative"},
		{"short-reader", good, []uki.Section{{Name: ".linux", Reader: shortReader{[]byte("abc")}, Size: 10}}, "got 3 bytes, want 10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := uki.Build(&buf, tc.stub, tc.secs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build error = %v, want one containing %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "uki: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if buf.Len() != 0 {
				t.Errorf("Build wrote %d bytes before failing", buf.Len())
			}
		})
	}

	t.Run("real-stub-sbat", func(t *testing.T) {
		err := uki.Build(io.Discard, realStub(t), []uki.Section{{Name: ".sbat", Data: []byte("sbat,1\n")}})
		if err == nil || !strings.Contains(err.Error(), "duplicate") {
			t.Fatalf("Build error = %v, want duplicate .sbat (the stub has one)", err)
		}
	})
	t.Run("write-error", func(t *testing.T) {
		for _, after := range []int{0, 0x200, 0x900} {
			err := uki.Build(&failWriter{after: after}, good, sampleSections())
			if err == nil || !strings.Contains(err.Error(), "disk full") {
				t.Errorf("after %#x bytes: Build error = %v, want the write error", after, err)
			}
		}
	})
}
