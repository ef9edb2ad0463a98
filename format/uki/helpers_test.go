package uki_test

import (
	"bytes"
	"cmp"
	"debug/pe"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/format/uki"

	"github.com/ingot-linux/ingot/ingottest"
)

// realStubPath is where Debian's systemd-boot-efi package installs the
// x86-64 systemd-stub.
const realStubPath = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

// missing skips the test, or fails it if INGOT_REQUIRE_TOOLS=1.
func missing(t *testing.T, what string) {
	t.Helper()
	ingottest.Skip(t, "%s not installed", what)
}

// lookTool returns the path of an external tool, or skips/fails the test.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, name)
	}
	return p
}

// realStub returns the host's systemd-stub, or skips/fails the test
// (install it with "apt-get install systemd-boot-efi").
func realStub(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(realStubPath)
	if os.IsNotExist(err) {
		missing(t, realStubPath+" (package systemd-boot-efi)")
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stubOptions describes a synthetic stub for makeStub.
type stubOptions struct {
	pe32      bool   // PE32 instead of PE32+
	machine   uint16 // default x86-64
	subsystem uint16 // default EFI application
	sections  int    // number of sections, default 1; 4 fills the header
	symtab    bool   // append a COFF symbol and string table
	signed    bool   // add an (empty) attribute certificate table
	debugDir  bool   // add a debug directory whose data is in the last section
	trailer   []byte // bytes appended after everything else
}

// Layout constants of the synthetic stub.
const (
	synthFileAlign = 0x200
	synthSectAlign = 0x1000
	synthOptSize64 = 240
	synthOptSize32 = 224
	synthPEOff     = 0x40
)

// makeStub builds a minimal PE/COFF EFI application: a .text section with
// "xor eax, eax; ret" (return EFI_SUCCESS) and optional data sections.
func makeStub(o stubOptions) []byte {
	if o.machine == 0 {
		o.machine = pe.IMAGE_FILE_MACHINE_AMD64
	}
	if o.subsystem == 0 {
		o.subsystem = pe.IMAGE_SUBSYSTEM_EFI_APPLICATION
	}
	if o.sections == 0 {
		o.sections = 1
	}
	le := binary.LittleEndian
	optSize := synthOptSize64
	if o.pe32 {
		optSize = synthOptSize32
	}
	n := o.sections
	size := synthFileAlign * (n + 1)
	b := make([]byte, size)

	copy(b, "MZ")
	le.PutUint32(b[0x3c:], synthPEOff)
	copy(b[synthPEOff:], "PE\x00\x00")
	coff := b[synthPEOff+4:]
	le.PutUint16(coff[0:], o.machine)
	le.PutUint16(coff[2:], uint16(n))
	le.PutUint32(coff[4:], 0x5eed1234) // TimeDateStamp, must be kept
	le.PutUint16(coff[16:], uint16(optSize))
	le.PutUint16(coff[18:], pe.IMAGE_FILE_EXECUTABLE_IMAGE|pe.IMAGE_FILE_LINE_NUMS_STRIPPED)

	opt := b[synthPEOff+24:]
	var dirs []byte
	if o.pe32 {
		le.PutUint16(opt[0:], 0x10b)
		le.PutUint32(opt[28:], 0) // ImageBase
		le.PutUint32(opt[92:], 16)
		dirs = opt[96:]
	} else {
		le.PutUint16(opt[0:], 0x20b)
		le.PutUint32(opt[108:], 16)
		dirs = opt[112:]
	}
	le.PutUint32(opt[4:], synthFileAlign)                         // SizeOfCode
	le.PutUint32(opt[8:], uint32(synthFileAlign*(n-1)))           // SizeOfInitializedData
	le.PutUint32(opt[16:], synthSectAlign)                        // AddressOfEntryPoint
	le.PutUint32(opt[20:], synthSectAlign)                        // BaseOfCode
	le.PutUint32(opt[32:], synthSectAlign)                        // SectionAlignment
	le.PutUint32(opt[36:], synthFileAlign)                        // FileAlignment
	le.PutUint32(opt[56:], uint32(synthSectAlign*(n+1)))          // SizeOfImage
	le.PutUint32(opt[60:], synthFileAlign)                        // SizeOfHeaders
	le.PutUint16(opt[68:], o.subsystem)                           // Subsystem
	le.PutUint16(opt[70:], pe.IMAGE_DLLCHARACTERISTICS_NX_COMPAT) // DllCharacteristics

	tab := b[synthPEOff+24+optSize:]
	for i := range n {
		sh := tab[i*40:]
		name, chars := fmt.Sprintf(".data%d", i), uint32(0x40000040)
		body := bytes.Repeat([]byte{byte(i + 1)}, 0x10+i)
		if i == 0 {
			name, chars = ".text", 0x60000020
			body = []byte{0x31, 0xc0, 0xc3}
		}
		copy(sh, name)
		le.PutUint32(sh[8:], uint32(len(body)))
		le.PutUint32(sh[12:], uint32(synthSectAlign*(i+1)))
		le.PutUint32(sh[16:], synthFileAlign)
		le.PutUint32(sh[20:], uint32(synthFileAlign*(i+1)))
		le.PutUint32(sh[36:], chars)
		copy(b[synthFileAlign*(i+1):], body)
	}

	if o.debugDir {
		// One CodeView entry at the start of the last section; its data
		// ("RSDS" marker) 0x40 bytes further on.
		last := n - 1
		va, raw := uint32(synthSectAlign*(last+1)), uint32(synthFileAlign*(last+1))
		e := b[raw:]
		le.PutUint32(e[12:], 2)       // Type: CodeView
		le.PutUint32(e[16:], 4)       // SizeOfData
		le.PutUint32(e[20:], va+0x40) // AddressOfRawData
		le.PutUint32(e[24:], raw+0x40)
		copy(b[raw+0x40:], "RSDS")
		le.PutUint32(tab[last*40+8:], 0x44) // VirtualSize covers the data
		le.PutUint32(dirs[6*8:], va)
		le.PutUint32(dirs[6*8+4:], 28)
	}
	if o.symtab {
		le.PutUint32(coff[8:], uint32(len(b)))
		le.PutUint32(coff[12:], 2)
		syms := make([]byte, 2*18)
		copy(syms, "efi_main")
		copy(syms[18:], "_start")
		b = append(b, syms...)
		b = append(b, 10, 0, 0, 0)
		b = append(b, "hello\x00"...)
	}
	if o.signed {
		le.PutUint32(dirs[4*8:], uint32(len(b)))
		le.PutUint32(dirs[4*8+4:], 8)
		b = append(b, 8, 0, 0, 0, 0, 2, 2, 0)
	}
	return append(b, o.trailer...)
}

// peChecksum is a straightforward implementation of the PE checksum, kept
// separate from the package's to cross-check it.
func peChecksum(b []byte) uint32 {
	ck := int(binary.LittleEndian.Uint32(b[0x3c:])) + 24 + 64
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		var w uint32
		if i < ck+4 && i+2 > ck {
			w = 0
		} else if i+1 < len(b) {
			w = uint32(b[i]) | uint32(b[i+1])<<8
		} else {
			w = uint32(b[i])
		}
		sum += w
		sum = sum&0xffff + sum>>16
	}
	return sum + uint32(len(b))
}

// expectedOrder returns the names of secs in the order Build lays them out.
func expectedOrder(secs []uki.Section) []string {
	rank := map[string]int{".osrel": 0, ".cmdline": 1, ".dtb": 2, ".uname": 3, ".splash": 4,
		".pcrpkey": 5, ".initrd": 6, ".ucode": 7, ".sbat": 9, ".pcrsig": 10, ".linux": 11}
	r := func(n string) int {
		if v, ok := rank[n]; ok {
			return v
		}
		return 8
	}
	s := slices.Clone(secs)
	slices.SortStableFunc(s, func(a, b uki.Section) int { return cmp.Compare(r(a.Name), r(b.Name)) })
	names := make([]string, len(s))
	for i := range s {
		names[i] = s[i].Name
	}
	return names
}

// contents returns the data of an input section.
func contents(t *testing.T, s uki.Section) []byte {
	t.Helper()
	if s.Reader == nil {
		return s.Data
	}
	b := make([]byte, s.Size)
	if _, err := s.Reader.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// build runs uki.Build and fails the test on error.
func build(t *testing.T, stub []byte, secs []uki.Section) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := uki.Build(&buf, stub, secs); err != nil {
		t.Fatalf("Build: %v", err)
	}
	return buf.Bytes()
}

// sampleSections returns small fake payloads for the usual UKI sections,
// deliberately not multiples of any alignment.
func sampleSections() []uki.Section {
	kernel := bytes.Repeat([]byte("MZ-fake-kernel\x00"), 3001)
	initrd := bytes.Repeat([]byte("070701fake-cpio"), 777)
	return []uki.Section{
		{Name: uki.SectionLinux, Reader: bytes.NewReader(kernel), Size: int64(len(kernel))},
		{Name: uki.SectionInitrd, Data: initrd},
		{Name: uki.SectionCmdline, Data: []byte("console=ttyS0 root=PARTLABEL=root-x86-64 rw\n")},
		{Name: uki.SectionUname, Data: []byte("6.1.0-28-amd64")},
		{Name: uki.SectionOSRel, Data: []byte("ID=ingot\nNAME=\"Ingot Linux\"\nVERSION_ID=1\n")},
	}
}

// sectionLines returns objdump -h's lines describing sections, by name.
func sectionLines(out string) map[string][]string {
	m := make(map[string][]string)
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) >= 7 && f[0] != "Idx" {
			m[f[1]] = f
		}
	}
	return m
}
