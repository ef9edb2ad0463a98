// Package artifacttest makes small, real update artifacts for tests: an
// EROFS /usr of a few files, its dm-verity hash tree made the way the image
// stage makes it, and a UKI built on the host's systemd-stub whose command
// line pins that /usr.
//
//	in := artifacttest.Inputs(t, t.TempDir(), "1.0.0", "seed")
//	m, err := artifact.Write(filepath.Join(t.TempDir(), artifact.DirName("1.0.0")), in)
//
// Without the stub (Debian package systemd-boot-efi) the test is skipped,
// or failed when INGOT_REQUIRE_TOOLS=1.
package artifacttest

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/go-dmverity/pkg/verity"
	erofs "github.com/erofs/go-erofs"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/tpm"
	"github.com/ingot-linux/ingot/trust"
)

// StubPath is where Debian's systemd-boot-efi installs the x86-64 stub.
const StubPath = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

// Stub returns the host's systemd-stub, or skips the test (fails it under
// INGOT_REQUIRE_TOOLS=1).
func Stub(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(StubPath)
	if os.IsNotExist(err) {
		ingottest.Skip(t, "%s not installed (Debian package systemd-boot-efi)", StubPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Usr writes an EROFS image holding a few files derived from seed to
// dir/usr.erofs, padded to 4096 bytes, and its hash tree to dir/usr.verity
// with the image stage's parameters, and returns the root hash.
func Usr(t testing.TB, dir, seed string) (usrPath, verityPath string, rootHash []byte) {
	t.Helper()
	usrPath, verityPath = filepath.Join(dir, "usr.erofs"), filepath.Join(dir, "usr.verity")
	f, err := os.Create(usrPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := erofs.Create(f, erofs.WithBuildTime(1700000000, 0), erofs.WithTempDir(dir))
	must(t, w.Mkdir("/", 0o755))
	must(t, w.Mkdir("/lib", 0o755))
	for i, name := range []string{"/lib/os-release", "/lib/seed", "/lib/big"} {
		c, err := w.Create(name)
		must(t, err)
		content := []byte(fmt.Sprintf("%s %d\n", seed, i))
		if name == "/lib/big" { // a few blocks, so the tree has real work
			content = bytes.Repeat(content, 40000/len(content))
		}
		_, err = c.Write(content)
		must(t, err)
		must(t, c.Close())
	}
	must(t, w.Close())
	size, err := f.Seek(0, io.SeekEnd)
	must(t, err)
	if pad := size % 4096; pad != 0 {
		size += 4096 - pad
		must(t, f.Truncate(size))
	}
	must(t, f.Close())
	rootHash = hashTree(t, usrPath, verityPath, size, seed)
	return usrPath, verityPath, rootHash
}

// hashTree writes the hash tree of the size bytes of usrPath to
// verityPath with the image stage's parameters, salted from seed.
func hashTree(t testing.TB, usrPath, verityPath string, size int64, seed string) []byte {
	t.Helper()
	params := verity.DefaultParams()
	params.DataBlockSize, params.HashBlockSize = 4096, 4096
	params.DataBlocks = uint64(size / 4096)
	salt := sha256.Sum256([]byte("salt " + seed))
	params.Salt, params.SaltSize = salt[:], uint16(len(salt))
	uuid := sha256.Sum256([]byte("uuid " + seed))
	copy(params.UUID[:], uuid[:16])
	params.UUID[6] = params.UUID[6]&0x0f | 0x40
	params.UUID[8] = params.UUID[8]&0x3f | 0x80
	params.HashAreaOffset = 4096
	rootHash, err := verity.Create(&params, usrPath, verityPath)
	must(t, err)
	return rootHash
}

// InputsFromUsr makes artifact.Inputs in dir of version whose /usr is
// the bytes usr (padded to whole blocks; not EROFS: for tests of how
// artifacts move, not of what they hold). The verity salt is fixed, so
// two versions share the hash blocks of the data they share.
func InputsFromUsr(t testing.TB, dir, version string, usr []byte) artifact.Inputs {
	t.Helper()
	usrPath, verityPath := filepath.Join(dir, "usr.erofs"), filepath.Join(dir, "usr.verity")
	if pad := len(usr) % 4096; pad != 0 {
		usr = append(usr, make([]byte, 4096-pad)...)
	}
	must(t, os.WriteFile(usrPath, usr, 0o644))
	root := hashTree(t, usrPath, verityPath, int64(len(usr)), "fixed")
	return artifact.Inputs{
		Version:    version,
		Arch:       artifact.ArchX86_64,
		UsrHash:    root,
		UsrPath:    usrPath,
		VerityPath: verityPath,
		UKI:        VersionedUKI(t, version, "usrhash="+hex.EncodeToString(root)+" console=ttyS0"),
	}
}

// UKI builds a small UKI on the host's stub with the given command line, a
// dummy kernel and IMAGE_VERSION=test.
func UKI(t testing.TB, cmdline string) []byte {
	t.Helper()
	return VersionedUKI(t, "test", cmdline)
}

// VersionedUKI builds a small UKI like UKI whose .osrel names version.
func VersionedUKI(t testing.TB, version, cmdline string, extra ...uki.Section) []byte {
	t.Helper()
	var b bytes.Buffer
	must(t, uki.Build(&b, Stub(t), ukiSections(version, cmdline, extra)))
	return b.Bytes()
}

func ukiSections(version, cmdline string, extra []uki.Section) []uki.Section {
	return append([]uki.Section{
		{Name: uki.SectionOSRel, Data: []byte("ID=ingot\nIMAGE_ID=ingot\nIMAGE_VERSION=" + version + "\n")},
		{Name: uki.SectionCmdline, Data: []byte(cmdline)},
		{Name: uki.SectionUname, Data: []byte("0.0.0-test")},
		{Name: uki.SectionLinux, Data: bytes.Repeat([]byte("not a kernel "), 100)},
	}, extra...)
}

// PCRSignedUKI builds a UKI like VersionedUKI with the PCR public key of
// pcrKey in .pcrpkey and, in .pcrsig, pcrKey's signature of the PCR 11
// policy the UKI gives in the enter-initrd phase, as ingot image --keys
// makes them.
func PCRSignedUKI(t testing.TB, version, cmdline string, pcrKey crypto.Signer) []byte {
	t.Helper()
	pub, err := tpm.PCRPubKeyPEM(pcrKey.Public())
	must(t, err)
	stub := Stub(t)
	sections := ukiSections(version, cmdline, []uki.Section{{Name: uki.SectionPCRPKey, Data: pub}})
	sig, err := trust.PCRSig(stub, sections, pcrKey, trust.PCROptions{Phases: []string{"enter-initrd"}})
	must(t, err)
	var b bytes.Buffer
	must(t, uki.Build(&b, stub, append(sections, uki.Section{Name: uki.SectionPCRSig, Data: sig})))
	return b.Bytes()
}

// Inputs makes a consistent artifact.Inputs in dir: /usr from seed, and a
// UKI whose command line pins its root hash.
func Inputs(t testing.TB, dir, version, seed string) artifact.Inputs {
	t.Helper()
	usr, ver, root := Usr(t, dir, seed)
	return artifact.Inputs{
		Version:    version,
		Arch:       artifact.ArchX86_64,
		UsrHash:    root,
		UsrPath:    usr,
		VerityPath: ver,
		UKI:        VersionedUKI(t, version, "usrhash="+hex.EncodeToString(root)+" console=ttyS0"),
	}
}

// Write makes an artifact of version from seed at dir and returns it.
func Write(t testing.TB, dir, version, seed string) *artifact.Artifact {
	t.Helper()
	m, err := artifact.Write(dir, Inputs(t, t.TempDir(), version, seed))
	must(t, err)
	return &artifact.Artifact{Dir: dir, Manifest: m}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
