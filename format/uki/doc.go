// Package uki assembles and reads Unified Kernel Images (UKIs) as defined by
// the UAPI Group's Unified Kernel Image specification: a PE/COFF EFI
// application made of a boot stub (systemd-stub, linuxx64.efi.stub) plus
// added sections carrying the kernel (.linux), the initrd (.initrd), the
// kernel command line (.cmdline), os-release data (.osrel) and more.
//
// Building:
//
//	stub, err := os.ReadFile("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
//	if err != nil { ... }
//	kernel, err := os.Open("vmlinuz") // large payloads are streamed
//	if err != nil { ... }
//	fi, err := kernel.Stat()
//	if err != nil { ... }
//	err = uki.Build(out, stub, []uki.Section{
//		{Name: uki.SectionOSRel, Data: osRelease},
//		{Name: uki.SectionCmdline, Data: []byte("console=ttyS0 rw")},
//		{Name: uki.SectionUname, Data: []byte("6.1.0-28-amd64")},
//		{Name: uki.SectionInitrd, Data: initrd},
//		{Name: uki.SectionLinux, Reader: kernel, Size: fi.Size()},
//	})
//
// Reading:
//
//	img, err := uki.Open(f) // any io.ReaderAt
//	if err != nil { ... }
//	cmdline, err := img.Cmdline()
//	osrel, err := img.OSRelease() // map[string]string
//	kernel, err := img.SectionReader(uki.SectionLinux)
//
// # Layout
//
// [Build] keeps every section of the stub byte for byte and appends the new
// sections after them, in the order ukify (systemd 254/255) writes them:
// .osrel, .cmdline, .dtb, .uname, .splash, .pcrpkey, .initrd, .ucode, any
// other section in the caller's order, then .sbat, .pcrsig and finally
// .linux. Each new section starts at the stub's SectionAlignment in memory
// and its FileAlignment in the file; its VirtualSize is the exact data
// length, because systemd-stub measures VirtualSize bytes of each section
// into TPM PCR 11, and its SizeOfRawData is that length rounded up to the
// file alignment with zero padding. New sections are read-only initialized
// data, except .linux, which is marked as code (as ukify does) because
// stubs that boot through the EFI handover protocol run the kernel's entry
// point in place. A section the stub already has (systemd-stub ships its
// own .sbat) cannot be added; ukify would overwrite the stub's copy.
//
// The output is a deterministic function of the inputs: the stub's
// TimeDateStamp is kept as is, nothing else time-dependent is written, and
// the header CheckSum is computed with the standard PE checksum algorithm
// (firmware ignores it, but tools such as osslsigncode compare it). The
// stub's COFF symbol table, which an image should not carry, is dropped:
// PointerToSymbolTable and NumberOfSymbols are cleared, and the table's
// bytes are cut off when they form the tail of the stub file, as ukify does.
//
// If the stub's header area has no room for the new section headers, the
// headers are grown by whole FileAlignment units and the stub's section data
// is moved towards the end of the file by as much; section RVAs, and so the
// loaded image, do not change.
//
// Build accepts PE32+ stubs for x86-64 and AArch64 that are EFI
// applications and not Authenticode-signed (signing happens after the UKI
// is assembled).
//
// # Reading
//
// [Open] is meant for untrusted input such as an update payload: every
// offset and size is checked, buffers grow only as data is actually read,
// and a malformed image yields an error, never a panic. It does not use
// debug/pe, which is not hardened against adversarial inputs. An image with
// two sections of the same name is rejected, since boot stubs and readers
// could disagree about which one counts; this also means multi-profile UKIs
// (systemd 257's repeated sections after .profile) are not supported.
package uki

// Names of the UKI sections defined by the UKI specification.
const (
	SectionLinux   = ".linux"   // kernel image
	SectionOSRel   = ".osrel"   // os-release(5) data of the OS
	SectionCmdline = ".cmdline" // kernel command line
	SectionInitrd  = ".initrd"  // initrd (cpio archive, possibly compressed)
	SectionUcode   = ".ucode"   // microcode initrd, loaded before .initrd
	SectionSplash  = ".splash"  // boot splash image (BMP)
	SectionDTB     = ".dtb"     // devicetree blob
	SectionUname   = ".uname"   // kernel version, as "uname -r" prints it
	SectionSBAT    = ".sbat"    // SBAT revocation metadata
	SectionPCRSig  = ".pcrsig"  // JSON signatures of expected PCR 11 values
	SectionPCRPKey = ".pcrpkey" // PEM public key the .pcrsig signatures verify with
)
