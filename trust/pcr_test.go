package trust_test

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/trust"

	"github.com/ingot-linux/ingot/tpm"
)

// systemdMeasure returns the path and systemd version of systemd-measure.
func systemdMeasure(t *testing.T) (string, int) {
	t.Helper()
	p := requireFile(t, "systemd", "/usr/lib/systemd/systemd-measure", "/lib/systemd/systemd-measure")
	out := string(run(t, p, "--version"))
	m := regexp.MustCompile(`^systemd ([0-9]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-measure --version: %q", out)
	}
	v, _ := strconv.Atoi(m[1])
	return p, v
}

// measureArgs writes the measured sections of the UKI that stub and
// sections make to files and returns systemd-measure's section options.
func measureArgs(t *testing.T, stub []byte, sections []uki.Section, version int) []string {
	t.Helper()
	img, err := uki.Open(bytes.NewReader(stub))
	if err != nil {
		t.Fatal(err)
	}
	measured, err := trust.MeasuredSections(version)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var args []string
	for _, name := range measured {
		var data []byte
		if i := slices.IndexFunc(sections, func(s uki.Section) bool { return s.Name == name }); i >= 0 {
			data = sections[i].Data
		} else if data, err = img.Section(name); err != nil {
			continue
		}
		opt := strings.TrimPrefix(name, ".")
		args = append(args, "--"+opt+"="+writeFile(t, dir, opt, data))
	}
	return args
}

// measureJSON is systemd-measure calculate's output.
type measureJSON struct {
	SHA256 []struct {
		Phase string `json:"phase"`
		PCR   int    `json:"pcr"`
		Hash  string `json:"hash"`
	} `json:"sha256"`
}

func TestPredictPCR11MatchesSystemdMeasure(t *testing.T) {
	measure, version := systemdMeasure(t)
	k := testKeys(t)
	pkey, err := tpm.PCRPubKeyPEM(k.PCR.Public())
	if err != nil {
		t.Fatal(err)
	}
	stub := readStub(t)
	sections := testSections(t, pkey)
	tests := []struct {
		name   string
		phases []string
	}{
		{"default phases", nil},
		{"explicit phases, normalized and sorted", []string{"enter-initrd::foo", ":", "enter-initrd:leave-initrd", "enter-initrd::foo"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"calculate", "--bank=sha256", "--json=short"}, measureArgs(t, stub, sections, version)...)
			for _, p := range tc.phases {
				args = append(args, "--phase="+p)
			}
			var want measureJSON
			if err := json.Unmarshal(run(t, measure, args...), &want); err != nil {
				t.Fatal(err)
			}
			got, err := trust.PredictPCR11(stub, sections, trust.PCROptions{Phases: tc.phases, StubVersion: version})
			if err != nil {
				t.Fatal(err)
			}
			var gotS, wantS []string
			for _, v := range got {
				gotS = append(gotS, v.Phase+"="+hex.EncodeToString(v.PCR11))
			}
			for _, v := range want.SHA256 {
				wantS = append(wantS, v.Phase+"="+v.Hash)
			}
			if !slices.Equal(wantS, gotS) {
				t.Errorf("PCR 11 values differ:\nsystemd-measure %d: %q\nPredictPCR11:        %q", version, wantS, gotS)
			}
		})
	}
}

func TestPCRSigMatchesSystemdMeasure(t *testing.T) {
	measure, version := systemdMeasure(t)
	k := testKeys(t)
	pkey, err := tpm.PCRPubKeyPEM(k.PCR.Public())
	if err != nil {
		t.Fatal(err)
	}
	stub := readStub(t)
	sections := testSections(t, pkey)
	args := []string{"sign", "--bank=sha256", "--json=short",
		"--private-key=" + filepath.Join(testKeyDir, "pcr.key"), "--public-key=" + filepath.Join(testKeyDir, "pcr.pem")}
	if version < 254 {
		// Before 254, systemd-measure computes the policy digest in a
		// TPM trial session.
		args = append(args, "--tpm2-device="+startSwtpm(t))
	}
	args = append(args, measureArgs(t, stub, sections, version)...)
	want := bytes.TrimSpace(run(t, measure, args...))
	got, err := trust.PCRSig(stub, sections, k.PCR, trust.PCROptions{StubVersion: version})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("PCRSig differs from systemd-measure %d sign:\n got %s\nwant %s", version, got, want)
	}
}

// startSwtpm starts a TPM 2.0 simulator on loopback and returns its
// systemd TPM2 device string.
func startSwtpm(t *testing.T) string {
	t.Helper()
	ingottest.LookTool(t, "swtpm", "swtpm")
	requireFile(t, "libtss2-tcti-swtpm0", "/usr/lib/x86_64-linux-gnu/libtss2-tcti-swtpm.so.0")
	requireFile(t, "libtss2-esys-3.0.2-0", "/usr/lib/x86_64-linux-gnu/libtss2-esys.so.0")
	// The swtpm TCTI expects the control port right after the server
	// port.
	var server, ctrl int
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		server = l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", server+1))
		l.Close()
		if err == nil {
			l2.Close()
			ctrl = server + 1
			break
		}
	}
	if ctrl == 0 {
		t.Fatal("found no two free consecutive loopback ports for swtpm")
	}
	cmd := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+t.TempDir(),
		"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", server),
		"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", ctrl),
		"--flags", "not-need-init,startup-clear")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", server)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("swtpm did not listen on %s: %v\n%s", addr, err, out.Bytes())
		}
	}
	return fmt.Sprintf("swtpm:host=127.0.0.1,port=%d", server)
}

func TestPCRSigFormat(t *testing.T) {
	k := testKeys(t)
	pkey, err := tpm.PCRPubKeyPEM(k.PCR.Public())
	if err != nil {
		t.Fatal(err)
	}
	stub := readStub(t)
	sections := testSections(t, pkey)
	sig, err := trust.PCRSig(stub, sections, k.PCR, trust.PCROptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(sig, []byte(`{"sha256":[{"pcrs":[11],"pkfp":"`)) || bytes.ContainsAny(sig, " \n") {
		t.Errorf("not systemd-measure's compact layout: %s", sig)
	}
	var doc map[string][]struct {
		PCRs []int  `json:"pcrs"`
		PKFP string `json:"pkfp"`
		Pol  string `json:"pol"`
		Sig  string `json:"sig"`
	}
	if err := json.Unmarshal(sig, &doc); err != nil {
		t.Fatal(err)
	}
	values, err := trust.PredictPCR11(stub, sections, trust.PCROptions{})
	if err != nil {
		t.Fatal(err)
	}
	entries := doc["sha256"]
	if len(doc) != 1 || len(entries) != len(trust.DefaultPhases()) || len(values) != len(entries) {
		t.Fatalf("want %d sha256 entries, got %s", len(trust.DefaultPhases()), sig)
	}
	fp := sha256.Sum256(x509.MarshalPKCS1PublicKey(k.PCR.Public().(*rsa.PublicKey)))
	for i, e := range entries {
		pol, _ := hex.DecodeString(e.Pol)
		if want := policyPCR(values[i].PCR11); !bytes.Equal(pol, want) {
			t.Errorf("entry %d: pol %x, want %x", i, pol, want)
		}
		if e.PKFP != hex.EncodeToString(fp[:]) || !slices.Equal(e.PCRs, []int{11}) {
			t.Errorf("entry %d: pcrs %v pkfp %s", i, e.PCRs, e.PKFP)
		}
		s, _ := base64.StdEncoding.DecodeString(e.Sig)
		h := sha256.Sum256(pol)
		if err := rsa.VerifyPKCS1v15(k.PCR.Public().(*rsa.PublicKey), crypto.SHA256, h[:], s); err != nil {
			t.Errorf("entry %d: signature: %v", i, err)
		}
	}
}

// policyPCR computes the TPM2 PolicyPCR digest by hand: SHA-256 of the
// zero digest, TPM_CC_PolicyPCR, the TPML_PCR_SELECTION of PCR 11 in the
// SHA-256 bank and SHA-256 of the PCR value.
func policyPCR(pcr11 []byte) []byte {
	h := sha256.New()
	h.Write(make([]byte, 32))
	binary.Write(h, binary.BigEndian, uint32(0x17f))
	h.Write([]byte{0, 0, 0, 1, 0x00, 0x0b, 3, 0x00, 0x08, 0x00})
	d := sha256.Sum256(pcr11)
	h.Write(d[:])
	return h.Sum(nil)
}

func TestPolicyPCRDigest(t *testing.T) {
	for _, pcr := range [][]byte{make([]byte, 32), bytes.Repeat([]byte{0xab}, 32)} {
		got, err := tpm.PolicyPCRDigest(pcr)
		if err != nil {
			t.Fatal(err)
		}
		if want := policyPCR(pcr); !bytes.Equal(got, want) {
			t.Errorf("tpm.PolicyPCRDigest(%x) = %x, want %x", pcr, got, want)
		}
	}
	if _, err := tpm.PolicyPCRDigest([]byte{1}); err == nil {
		t.Error("tpm.PolicyPCRDigest accepts a 1-byte PCR value")
	}
}

func TestMeasuredSections(t *testing.T) {
	v252 := []string{".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey"}
	v254 := []string{".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".uname", ".sbat", ".pcrpkey"}
	v256 := []string{".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb", ".uname", ".sbat", ".pcrpkey"}
	tests := []struct {
		version int
		want    []string
	}{{251, nil}, {252, v252}, {253, v252}, {254, v254}, {255, v254}, {256, v256}, {257, v256}, {262, v256}, {300, v256}}
	for _, tc := range tests {
		got, err := trust.MeasuredSections(tc.version)
		if tc.want == nil {
			if !errors.Is(err, trust.ErrUnsupported) {
				t.Errorf("MeasuredSections(%d) = %v, %v, want ErrUnsupported", tc.version, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(tc.want, got) {
			t.Errorf("MeasuredSections(%d) = %q, %v, want %q", tc.version, got, err, tc.want)
		}
	}
}

func TestPredictPCR11(t *testing.T) {
	stub := readStub(t)
	img, err := uki.Open(bytes.NewReader(stub))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := trust.StubVersion(img); err != nil || v < trust.MinStubVersion {
		t.Fatalf("StubVersion(%s) = %d, %v", hostStub, v, err)
	}
	k := testKeys(t)
	pkey, err := tpm.PCRPubKeyPEM(k.PCR.Public())
	if err != nil {
		t.Fatal(err)
	}
	sections := testSections(t, pkey)
	predict := func(sections []uki.Section, version int) []tpm.PhaseValue {
		t.Helper()
		v, err := trust.PredictPCR11(stub, sections, trust.PCROptions{StubVersion: version})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	with := func(name string, data []byte) []uki.Section {
		s := slices.Clone(sections)
		i := slices.IndexFunc(s, func(s uki.Section) bool { return s.Name == name })
		if i < 0 {
			return append(s, uki.Section{Name: name, Data: data})
		}
		s[i].Data = data
		return s
	}

	t.Run("UKI equals its parts", func(t *testing.T) {
		for _, version := range []int{0, 252, 255, 262} {
			sig, err := trust.PCRSig(stub, sections, k.PCR, trust.PCROptions{StubVersion: version})
			if err != nil {
				t.Fatal(err)
			}
			built := buildUKI(t, stub, with(uki.SectionPCRSig, sig))
			got, err := trust.PredictPCR11UKI(bytes.NewReader(built), trust.PCROptions{StubVersion: version})
			if err != nil {
				t.Fatal(err)
			}
			if want := predict(sections, version); !reflect.DeepEqual(want, got) {
				t.Errorf("version %d: from the UKI %x, from its parts %x", version, got, want)
			}
		}
	})
	t.Run("measured sections by version", func(t *testing.T) {
		tests := []struct {
			section string
			version int
			counts  bool
		}{
			{uki.SectionCmdline, 252, true},
			{uki.SectionPCRPKey, 252, true},
			{uki.SectionUname, 252, false},
			{uki.SectionUname, 254, true},
			{uki.SectionUcode, 255, false},
			{uki.SectionUcode, 256, true},
			{".custom", 262, false},
		}
		for _, tc := range tests {
			changed := !reflect.DeepEqual(predict(sections, tc.version), predict(with(tc.section, []byte("other")), tc.version))
			if changed != tc.counts {
				t.Errorf("systemd %d: changing %s changes PCR 11: %v, want %v", tc.version, tc.section, changed, tc.counts)
			}
		}
	})
	t.Run("rejects", func(t *testing.T) {
		boot, err := os.ReadFile(requireFile(t, "systemd-boot-efi", hostBoot))
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name     string
			stub     []byte
			sections []uki.Section
			o        trust.PCROptions
			target   error
		}{
			{"multi-profile UKI", stub, with(".profile", []byte("ID=debug")), trust.PCROptions{StubVersion: 257}, trust.ErrUnsupported},
			{"section the stub has", stub, with(uki.SectionSBAT, []byte("sbat")), trust.PCROptions{}, trust.ErrMalformed},
			{"not systemd-stub", boot, sections[len(sections)-2:], trust.PCROptions{}, trust.ErrUnsupported},
			{"too old", stub, sections, trust.PCROptions{StubVersion: 251}, trust.ErrUnsupported},
		}
		for _, tc := range tests {
			if _, err := trust.PredictPCR11(tc.stub, tc.sections, tc.o); !errors.Is(err, tc.target) {
				t.Errorf("%s: PredictPCR11 = %v, want %v", tc.name, err, tc.target)
			}
		}
	})
}

func TestPCRPubKeyPEM(t *testing.T) {
	k := testKeys(t)
	got, err := tpm.PCRPubKeyPEM(k.PCR.Public())
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(testKeyDir, "pcr.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("tpm.PCRPubKeyPEM differs from pcr.pem:\n%s", got)
	}
	if _, err := tpm.PCRPubKeyPEM(k.DB.Cert.PublicKey); err != nil {
		t.Errorf("tpm.PCRPubKeyPEM(RSA key): %v", err)
	}
	if _, err := tpm.PCRPubKeyPEM("not a key"); !errors.Is(err, tpm.ErrKeyType) {
		t.Errorf("tpm.PCRPubKeyPEM(string) = %v, want tpm.ErrKeyType", err)
	}
}
