package diskimage_test

import (
	"archive/tar"
	"encoding/binary"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

var printGolden = flag.Bool("golden-print", false, "print the digests TestGoldenDigests computes")

// staticELF is the smallest x86-64 executable readStatic accepts: an ELF
// header and one PT_LOAD program header, no interpreter. The golden
// image takes it for ingot-init and ingot, so its bytes do not change
// with every change to the code those binaries are built from.
func staticELF(tag byte) []byte {
	b := make([]byte, 64+56+1)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1 // 64-bit, little endian, version 1
	le := binary.LittleEndian
	le.PutUint16(b[16:], 2)    // ET_EXEC
	le.PutUint16(b[18:], 0x3e) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], 0x400000) // entry
	le.PutUint64(b[32:], 64)       // program headers right after the header
	le.PutUint16(b[52:], 64)
	le.PutUint16(b[54:], 56)
	le.PutUint16(b[56:], 1)
	le.PutUint16(b[58:], 64)
	ph := b[64:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 5) // R+X
	le.PutUint64(ph[16:], 0x400000)
	le.PutUint64(ph[24:], 0x400000)
	le.PutUint64(ph[32:], uint64(len(b)))
	le.PutUint64(ph[40:], uint64(len(b)))
	le.PutUint64(ph[48:], 0x1000)
	b[len(b)-1] = tag
	return b
}

// goldenHostEFI are the sha256s of the host's systemd-boot binaries the
// golden digests were made with (Debian 12's systemd-boot-efi 252): the
// image carries them, so other ones give other bytes.
var goldenHostEFI = map[string]string{
	"systemd-bootx64.efi": "10288fece5e90ce3ba3e7160f49695b022d648f7ef41774678db8c77774db167",
	"linuxx64.efi.stub":   "c62ae56ffaf49d1a61de4434f4f531dd1d4ed3b5aee46c934c56e3f809b22cc4",
}

// goldenCase is one set of options the golden digests pin.
type goldenCase struct {
	name string
	mod  func(t *testing.T, o *diskimage.Options)
	unit string // a unit file added to the fixture
	// digests are the sha256s of everything Build writes for the
	// fixture with SOURCE_DATE_EPOCH=epoch. They pin the bytes across
	// refactorings: a change here is a change of the on-disk output and
	// needs a reason in the commit message.
	digests map[string]string
}

var goldenCases = []goldenCase{
	{name: "plain", digests: map[string]string{
		"ingot_1.0.0.raw":                  "1e303cc1cda2585700601db3ff6048f73e164e5cb9fe78b24ee580da2f7ecf04",
		"ingot_1.0.0.update/ingot.efi":     "c48c56b3aa9dadd6c13341312bfdb00f59bf949852821e911956432d5fdd56d3",
		"ingot_1.0.0.update/manifest.json": "4b6bea239e606c5b3fc776467e19e85bf29e0a16d6f637acbe26d5bbb4e236cc",
		"ingot_1.0.0.update/usr.erofs":     "1ca47cedc0cbcb2d768cf15e9fc1e8f1e69ed7ac34d2a25b5e2df7b09cfa942e",
		"ingot_1.0.0.update/usr.verity":    "4d90a1f3e8ad86a46eddcd2d69f069c4c6ac372cf3490679e36778dcaaf55639",
	}},
	{name: "signed-encrypted", mod: func(t *testing.T, o *diskimage.Options) {
		keys, err := trust.LoadKeys("../trust/testdata/keys")
		if err != nil {
			t.Fatal(err)
		}
		o.Keys, o.KeyDir = keys, "../trust/testdata/keys"
		o.EncryptRoot, o.NoRecoveryKey = layout.EncryptTPM, true
		o.Cmdline = []string{"quiet", "ingot.device_timeout=30", `foo="a b"`}
		o.HealthChecks = []string{"fixture-check.service"}
		o.Autologin = true
		o.BootDeadline = 5 * time.Minute
		o.SBOM = []byte("{\"spdxVersion\":\"SPDX-2.3\"}\n")
	}, unit: "fixture-check.service", digests: map[string]string{
		"ingot_1.0.0.raw":                   "8493683164502955f69eac3a3494706a0e83959122ca44a7f5973f87a506fe36",
		"ingot_1.0.0.spdx.json":             "033f748d28edb19db9e73d8b31ea18fe6f08d668ee43c202e1c20fe5ffc2e28f",
		"ingot_1.0.0.update/ingot.efi":      "9110c05cad3996ee3e901d28c1aaf427f10772947251ff97bee171bbda4f43d5",
		"ingot_1.0.0.update/manifest.json":  "4a8cc739ed41524350704b7a96dc503dafc580c62277dc2e8f52564d2c13b43a",
		"ingot_1.0.0.update/usr.erofs":      "9953400795c5109b1ad1c7f6816ae7494fb13994cbaa675892372674648d771e",
		"ingot_1.0.0.update/usr.verity":     "a3f1acab24b77228699052f7f933d908f7c48dd8f2bd7dd85ea5f97c5bc19fc5",
		"ingot_1.0.0.update/usr.verity-sig": "7d725201684c53144eeb21c8a2448467d8598fde72ce22ec2fa75cbd866cbecd",
	}},
}

// TestGoldenDigests builds the fixture with fixed stand-ins for the two
// binaries and compares the sha256 of the disk, each file of the update
// artifact and the SBOM with the golden digests.
func TestGoldenDigests(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) { testGolden(t, tc) })
	}
}

func testGolden(t *testing.T, tc goldenCase) {
	for name, want := range goldenHostEFI {
		got := ingottest.FileSHA256(t, "/usr/lib/systemd/boot/efi/"+name)
		if want != "" && got != want && !*printGolden {
			t.Skipf("the host's %s (sha256 %s) is not the one the golden digests were made with (%s)", name, got, want)
		}
		if *printGolden {
			t.Logf("host %s %s", name, got)
		}
	}
	dir := t.TempDir()
	tarball := filepath.Join(dir, "rootfs.tar")
	entries := fixture(t)
	if tc.unit != "" {
		entries = append(entries, tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/lib/systemd/system/" + tc.unit, Mode: 0o644},
			data: []byte("[Service]\nType=oneshot\nExecStart=/usr/bin/true\n")})
	}
	writeTar(t, tarball, entries)
	initPath, agentPath := filepath.Join(dir, "ingot-init"), filepath.Join(dir, "ingot")
	if err := os.WriteFile(initPath, staticELF(1), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(agentPath, staticELF(2), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	res, err := build(t, tarball, out, func(o *diskimage.Options) {
		o.InitPath, o.AgentPath = initPath, agentPath
		if tc.mod != nil {
			tc.mod(t, o)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	err = filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		got[rel] = ingottest.FileSHA256(t, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if *printGolden {
		var lines []string
		for k, v := range got {
			lines = append(lines, "\t"+`"`+k+`": "`+v+`",`)
		}
		sort.Strings(lines)
		t.Logf("usrhash %s\n%s", res.UsrHash, strings.Join(lines, "\n"))
		return
	}
	for _, name := range sortedKeys(tc.digests, got) {
		if want, have := tc.digests[name], got[name]; want != have {
			t.Errorf("%s changed (-want +got):\n-%s\n+%s", name, want, have)
		}
	}
}

// sortedKeys returns the keys of a and b, sorted, each once.
func sortedKeys(a, b map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]string{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}
