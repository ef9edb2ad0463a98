package trust_test

import (
	"bytes"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/trust"
)

var updateKeys = flag.Bool("update-keys", false, "regenerate the throwaway test keys in testdata/keys")

// testKeyDir holds throwaway keys made with -update-keys (TestMain); see
// testdata/README.md.
const testKeyDir = "testdata/keys"

// testKeyOptions are the options the committed test keys were made with.
func testKeyOptions() trust.KeyOptions {
	return trust.KeyOptions{
		Name:      "ingot test",
		NotBefore: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		Validity:  50 * 365 * 24 * time.Hour,
		Seed:      []byte("ingot throwaway test keys"),
	}
}

// testTime is when tests check certificate validity.
func testTime() time.Time { return time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) }

// TestMain rewrites testdata/keys first when given -update-keys (RSA key
// generation is not deterministic, so there is nothing to compare without
// it).
func TestMain(m *testing.M) {
	flag.Parse()
	if *updateKeys {
		if err := regenerateTestKeys(); err != nil {
			fmt.Fprintln(os.Stderr, "regenerate test keys:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

func regenerateTestKeys() error {
	for _, f := range trust.KeyFiles(testKeyDir) {
		os.Remove(f)
	}
	_, err := trust.InitKeys(testKeyDir, testKeyOptions())
	return err
}

// testKeys loads the committed test keys.
func testKeys(t testing.TB) *trust.Keys {
	t.Helper()
	k, err := trust.LoadKeys(testKeyDir, trust.WithTime(testTime()))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// copyKeys copies the committed test keys to a new temporary directory.
func copyKeys(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range trust.KeyFiles(testKeyDir) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// requireFile returns path if it exists, and otherwise skips naming the
// Debian package, or fails under INGOT_REQUIRE_TOOLS=1.
func requireFile(t testing.TB, pkg string, paths ...string) string {
	t.Helper()
	return ingottest.LookFile(t, pkg, paths...)
}

// run runs a command and returns its standard output; a failure fails the
// test with its output.
func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}

// runFails runs a command that must fail and returns its combined output.
func runFails(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err == nil {
		t.Fatalf("%s %s succeeded, want failure:\n%s", name, strings.Join(args, " "), out)
	}
	return string(out)
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	hostStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
	hostBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
)

// readStub returns the host's systemd-stub.
func readStub(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(requireFile(t, "systemd-boot-efi", hostStub))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testSections are small UKI sections; the kernel is random bytes, which
// is all measuring and signing need.
func testSections(t testing.TB, pcrpkey []byte) []uki.Section {
	t.Helper()
	s := []uki.Section{
		{Name: uki.SectionOSRel, Data: []byte("ID=ingot\nIMAGE_VERSION=1.0.0\n")},
		{Name: uki.SectionCmdline, Data: []byte("usrhash=00112233 console=ttyS0 panic=10")},
		{Name: uki.SectionUname, Data: []byte("6.1.0-28-amd64")},
		{Name: uki.SectionInitrd, Data: randomBytes(t, 3000)},
		{Name: uki.SectionLinux, Data: randomBytes(t, 10000)},
	}
	if pcrpkey != nil {
		s = append(s, uki.Section{Name: uki.SectionPCRPKey, Data: pcrpkey})
	}
	return s
}

// buildUKI assembles a UKI from the host stub.
func buildUKI(t testing.TB, stub []byte, sections []uki.Section) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := uki.Build(&buf, stub, sections); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
