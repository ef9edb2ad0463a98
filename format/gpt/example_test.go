package gpt_test

import (
	"crypto/sha256"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/ingot-linux/ingot/format/gpt"
)

// Example lays out a disk image, writes it, reads it back and finds the
// /usr partition by type.
func Example() {
	dir, err := os.MkdirTemp("", "gpt-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "disk.img"))
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	const size = 64 << 20
	t, err := gpt.New(size, 512, gpt.MustParseGUID("11111111-2222-3333-4444-555555555555"))
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range []struct {
		part gpt.Partition
		size int64
	}{
		{gpt.Partition{Type: gpt.TypeESP, UUID: gpt.MustParseGUID("c0ffee00-0000-4000-8000-000000000001"), Name: "esp"}, 16 << 20},
		{gpt.Partition{Type: gpt.TypeUsrAMD64, UUID: gpt.MustParseGUID("01020304-0506-0708-090a-0b0c0d0e0f10"), Name: "usr"}, 32 << 20},
	} {
		if _, err := t.Append(p.part, p.size, 0); err != nil {
			log.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		log.Fatal(err)
	}
	if err := t.Write(f, size); err != nil {
		log.Fatal(err)
	}

	read, err := gpt.Read(f, size, 512)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("source:", read.Source, "usable:", read.FirstUsableLBA, read.LastUsableLBA)
	for _, p := range read.Partitions {
		fmt.Printf("%d %-3s %s %d-%d\n", p.Index, p.Name, p.UUID, p.FirstLBA, p.LastLBA)
	}
	usr := read.ByType(gpt.TypeUsrAMD64)[0]
	fmt.Println("usr at byte", usr.Offset(read.SectorSize), "size", usr.Size(read.SectorSize))
	free, _ := read.LargestFree(0)
	fmt.Println("largest free:", free.FirstLBA, free.LastLBA)
	// Output:
	// source: primary usable: 34 131038
	// 1 esp c0ffee00-0000-4000-8000-000000000001 2048-34815
	// 2 usr 01020304-0506-0708-090a-0b0c0d0e0f10 34816-100351
	// usr at byte 17825792 size 33554432
	// largest free: 100352 131038
}

// ExampleGUIDFromBytes derives the PARTUUIDs of a /usr partition and its
// verity partition from the dm-verity root hash.
func ExampleGUIDFromBytes() {
	rootHash := sha256.Sum256([]byte("example"))
	usr := gpt.GUIDFromBytes([16]byte(rootHash[:16]))
	verity := gpt.GUIDFromBytes([16]byte(rootHash[16:]))
	fmt.Printf("%x\n%s\n%s\n", rootHash, usr, verity)
	// Output:
	// 50d858e0985ecc7f60418aaf0cc5ab587f42c2570a884095a9e8ccacd0f6545c
	// 50d858e0-985e-cc7f-6041-8aaf0cc5ab58
	// 7f42c257-0a88-4095-a9e8-ccacd0f6545c
}
