package bootcheck_test

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/artifact/artifacttest"
	"github.com/ingot-linux/ingot/format/fat"
	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/layout"
)

// A synthetic ingot disk: ESP, two slots, room for the root partition.
const (
	diskBytes = 320 << 20
	espBytes  = 34 << 20
	slotBytes = 1 << 20
)

var diskGUID = gpt.MustParseGUID("5a1e0000-0000-4000-8000-000000000001")

// version is one built version: its /usr, verity tree and UKI.
type version struct {
	name        string
	usr, verity []byte
	rootHash    []byte
	uki         []byte
}

func buildVersion(t testing.TB, name string) *version {
	t.Helper()
	usrPath, verPath, root := artifacttest.Usr(t, t.TempDir(), "seed "+name)
	v := &version{name: name, rootHash: root, usr: readFile(t, usrPath), verity: readFile(t, verPath)}
	var b bytes.Buffer
	err := uki.Build(&b, artifacttest.Stub(t), []uki.Section{
		{Name: uki.SectionOSRel, Data: []byte("ID=ingot\nIMAGE_ID=ingot\nIMAGE_VERSION=" + name + "\n")},
		{Name: uki.SectionCmdline, Data: []byte("usrhash=" + hex.EncodeToString(root) + " console=ttyS0")},
		{Name: uki.SectionLinux, Data: bytes.Repeat([]byte("kernel of "+name+" "), 20000)},
	})
	if err != nil {
		t.Fatal(err)
	}
	v.uki = b.Bytes()
	return v
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// layoutTable makes the partition table of the synthetic disk with slot a
// holding v.
func layoutTable(t testing.TB, v *version) *gpt.Table {
	t.Helper()
	tab, err := gpt.New(diskBytes, 512, diskGUID)
	if err != nil {
		t.Fatal(err)
	}
	parts := []struct {
		typ  gpt.GUID
		name string
		size int64
	}{
		{layout.TypeESP, "esp", espBytes},
		{layout.TypeUsr, layout.UsrLabel(v.name), slotBytes}, {layout.TypeUsrVerity, layout.VerityLabel(v.name), slotBytes}, {layout.TypeUsrVeritySig, layout.EmptyLabel, slotBytes},
		{layout.TypeUsr, layout.EmptyLabel, slotBytes}, {layout.TypeUsrVerity, layout.EmptyLabel, slotBytes}, {layout.TypeUsrVeritySig, layout.EmptyLabel, slotBytes},
	}
	usrA, verA := layout.UsrPartUUIDs(v.rootHash)
	for i, p := range parts {
		u := gpt.GUIDFromBytes([16]byte{byte(i + 1), 0xee, 6: 0x40, 8: 0x80})
		switch i {
		case 1:
			u = usrA
		case 2:
			u = verA
		}
		if _, err := tab.Append(gpt.Partition{Index: i + 1, Type: p.typ, UUID: u, Name: p.name}, p.size, 0); err != nil {
			t.Fatal(err)
		}
	}
	return tab
}

// espVolume makes the ESP holding the UKIs of vs, in order, and
// loader.conf unless it is empty.
func espVolume(t testing.TB, loaderConf string, vs ...*version) []byte {
	t.Helper()
	w, err := fat.NewWriter(fat.Options{SizeBytes: espBytes, Label: "ESP", VolumeID: 1, Time: time.Unix(1700000000, 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	add := func(p string, b []byte) {
		if err := w.AddFile(p, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	add(layout.BootLoaderPath, []byte("systemd-boot"))
	if loaderConf != "" {
		add(layout.LoaderConfPath, []byte(loaderConf))
	}
	for _, v := range vs {
		add(layout.UKIDir+"/"+layout.UKIName(v.name, 3), v.uki)
	}
	var out ingottest.MemFile
	if err := w.Write(&out); err != nil {
		t.Fatal(err)
	}
	return append(out.B, make([]byte, espBytes-len(out.B))...)
}

// writeDisk writes the installed disk of v to a sparse file.
func writeDisk(t testing.TB, v *version, loaderConf string) (string, *gpt.Table) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(diskBytes); err != nil {
		t.Fatal(err)
	}
	tab := layoutTable(t, v)
	if err := tab.Write(f, diskBytes); err != nil {
		t.Fatal(err)
	}
	ps := tab.Partitions
	for _, w := range []struct {
		p    gpt.Partition
		data []byte
	}{{ps[0], espVolume(t, loaderConf, v)}, {ps[1], v.usr}, {ps[2], v.verity}} {
		if _, err := f.WriteAt(w.data, w.p.Offset(512)); err != nil {
			t.Fatal(err)
		}
	}
	return p, tab
}
