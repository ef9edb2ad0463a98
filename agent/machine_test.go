package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/artifact/artifacttest"
	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/layout"
)

// machine is a running ingot system in a temporary directory: a disk
// image with the partition table of the contract (slot a booted with
// version 1.0.0, slot b empty), its sysfs entries, the boot record, the
// running /usr's os-release, and the ESP as a directory that the fake
// Mounter leaves in place.
type machine struct {
	root, disk, esp string
	info            layout.BootInfo
	bootedHash      []byte
}

const (
	mib       = 1 << 20
	diskBytes = 16 * mib
	// afterSlotsLBA is the first sector after slot b: the tests fill it
	// with a pattern that no update may change.
	afterSlotsLBA = 12 * mib / 512
)

// partitions of the test disk: index, type, first and last MiB (end
// exclusive).
var testPartitions = []struct {
	index      int
	typ        gpt.GUID
	start, end int64
}{
	{layout.ESPIndex, layout.TypeESP, 1, 2},
	{layout.UsrAIndex, layout.TypeUsr, 2, 5},
	{layout.UsrVerityAIndex, layout.TypeUsrVerity, 5, 6},
	{layout.UsrVeritySigIndex, layout.TypeUsrVeritySig, 6, 7},
	{layout.UsrBIndex, layout.TypeUsr, 7, 10},
	{layout.UsrVerityBIndex, layout.TypeUsrVerity, 10, 11},
	{layout.UsrVeritySigB, layout.TypeUsrVeritySig, 11, 12},
}

func newMachine(t *testing.T, running string) *machine {
	return newMachineRoot(t, running, nil)
}

// newMachineRoot is newMachine with the root partition's content.
func newMachineRoot(t *testing.T, running string, rootPart []byte) *machine {
	t.Helper()
	m := &machine{root: t.TempDir()}
	m.disk = filepath.Join(m.root, "dev/vda")
	m.esp = filepath.Join(m.root, "run/ingot/esp")
	h := sha256.Sum256([]byte("booted /usr"))
	m.bootedHash = h[:]
	m.info = layout.BootInfo{UsrHash: hex.EncodeToString(m.bootedHash), Slot: "a", Disk: "/dev/vda", RootPart: "/dev/vda8"}
	m.writeDisk(t, running)
	m.writeSys(t)
	mustWrite(t, filepath.Join(m.root, "run/ingot/boot.json"), mustJSON(t, m.info))
	mustWrite(t, filepath.Join(m.root, "usr/lib/os-release"), []byte("ID=ingot\nIMAGE_VERSION="+running+"\n"))
	if rootPart == nil {
		rootPart = make([]byte, 1<<20) // a plain root partition
	}
	mustWrite(t, filepath.Join(m.root, "dev/vda8"), rootPart)
	booted := artifacttest.VersionedUKI(t, running, "usrhash="+m.info.UsrHash)
	mustWrite(t, filepath.Join(m.esp, layout.UKIDir, layout.UKIName(running, 0)), booted)
	return m
}

func (m *machine) writeDisk(t *testing.T, running string) {
	t.Helper()
	tab, err := gpt.New(diskBytes, 512, gpt.MustParseGUID("8a3b7c1e-2f4d-4e5a-9b6c-7d8e9fa0b1c2"))
	if err != nil {
		t.Fatal(err)
	}
	usr, ver := layout.UsrPartUUIDs(m.bootedHash)
	for _, p := range testPartitions {
		part := gpt.Partition{Index: p.index, Type: p.typ, FirstLBA: uint64(p.start * mib / 512), LastLBA: uint64(p.end*mib/512 - 1), Name: layout.EmptyLabel}
		part.UUID = gpt.GUIDFromBytes([16]byte{byte(p.index), 1})
		switch p.index {
		case layout.ESPIndex:
			part.Name = "esp"
		case layout.UsrAIndex:
			part.UUID, part.Name = usr, layout.UsrLabel(running)
		case layout.UsrVerityAIndex:
			part.UUID, part.Name = ver, layout.VerityLabel(running)
		}
		tab.Partitions = append(tab.Partitions, part)
	}
	img := bytes.Repeat([]byte{0xab}, diskBytes)
	mustWrite(t, m.disk, img)
	f, err := os.OpenFile(m.disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tab.Write(f, diskBytes); err != nil {
		t.Fatal(err)
	}
}

func (m *machine) writeSys(t *testing.T) {
	t.Helper()
	dir := filepath.Join(m.root, "sys/class/block/vda")
	mustWrite(t, filepath.Join(dir, "size"), []byte(strconv.Itoa(diskBytes/512)+"\n"))
	for _, p := range testPartitions {
		mustWrite(t, filepath.Join(dir, "vda"+strconv.Itoa(p.index), "partition"), []byte(strconv.Itoa(p.index)+"\n"))
	}
}

// agent returns an Agent on the machine whose Progress calls onStep.
func (m *machine) agent(onStep func(step string)) *Agent {
	return New(Config{Root: m.root, Mounter: fakeMounter{}, Progress: onStep})
}

// artifact writes an artifact of version for the machine and returns its
// directory; uki, if set, makes the UKI from the usrhash instead.
func (m *machine) artifact(t *testing.T, version string, uki func(usrhash string) []byte) string {
	t.Helper()
	in := artifacttest.Inputs(t, t.TempDir(), version, "update "+version)
	if uki != nil {
		in.UKI = uki(hex.EncodeToString(in.UsrHash))
	}
	dir := filepath.Join(t.TempDir(), artifact.DirName(version))
	if _, err := artifact.Write(dir, in); err != nil {
		t.Fatal(err)
	}
	return dir
}

// state is what an update may change: the disk image, the ESP and the
// EFI variables.
type state struct {
	disk []byte
	esp  map[string]string
	vars map[string]string
}

func (m *machine) state(t *testing.T) state {
	t.Helper()
	b, err := os.ReadFile(m.disk)
	if err != nil {
		t.Fatal(err)
	}
	return state{disk: b, esp: tree(t, m.esp), vars: tree(t, filepath.Join(m.root, layout.EFIVarsDir))}
}

// unchanged fails the test when the machine's state differs from before.
func (m *machine) unchanged(t *testing.T, before state) {
	t.Helper()
	after := m.state(t)
	if !bytes.Equal(before.disk, after.disk) {
		t.Error("the disk image changed")
	}
	if !sameMap(before.esp, after.esp) {
		t.Errorf("the ESP changed: %v, was %v", keys(after.esp), keys(before.esp))
	}
	if !sameMap(before.vars, after.vars) {
		t.Errorf("the EFI variables changed: %v, was %v", keys(after.vars), keys(before.vars))
	}
}

// table reads the disk's partition table.
func (m *machine) table(t *testing.T) *gpt.Table {
	t.Helper()
	f, err := os.Open(m.disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := gpt.Read(f, diskBytes, 512)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if os.IsNotExist(err) {
			return fs.SkipAll
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, filepath.Base(k))
	}
	return out
}

type fakeMounter struct{}

func (fakeMounter) Mount(source, target, fstype string, flags uintptr, data string) error { return nil }
func (fakeMounter) Unmount(target string) error                                           { return nil }

func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
