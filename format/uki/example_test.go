package uki_test

import (
	"bytes"
	"fmt"
	"log"

	"github.com/ingot-linux/ingot/format/uki"
)

func Example() {
	// A real build reads systemd-stub, e.g. from
	// /usr/lib/systemd/boot/efi/linuxx64.efi.stub; this example uses a tiny
	// synthetic EFI application so that it runs anywhere.
	stub := makeStub(stubOptions{})

	var out bytes.Buffer
	err := uki.Build(&out, stub, []uki.Section{
		{Name: uki.SectionLinux, Data: []byte("kernel image")},
		{Name: uki.SectionCmdline, Data: []byte("console=ttyS0 rw")},
		{Name: uki.SectionOSRel, Data: []byte("ID=ingot\nVERSION_ID=\"1\"\n")},
	})
	if err != nil {
		log.Fatal(err)
	}

	img, err := uki.Open(bytes.NewReader(out.Bytes()))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Sections())
	cmdline, err := img.Cmdline()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cmdline)
	osrel, err := img.OSRelease()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(osrel["ID"], osrel["VERSION_ID"])
	// Output:
	// [.text .osrel .cmdline .linux]
	// console=ttyS0 rw
	// ingot 1
}
