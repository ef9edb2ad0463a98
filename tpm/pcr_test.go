package tpm

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"net"
	"slices"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/ingot-linux/ingot/ingottest"
)

// swtpmConn starts a software TPM 2.0 (ingottest.Swtpm) and returns a connection to it.
func swtpmConn(t *testing.T) transport.TPM {
	t.Helper()
	conn, err := net.Dial("unix", ingottest.Swtpm(t))
	if err != nil {
		t.Fatal(err)
	}
	tpm := transport.FromReadWriteCloser(conn.(*net.UnixConn))
	t.Cleanup(func() { tpm.Close() })
	return tpm
}

func extendSHA256(old []byte, data []byte) []byte {
	d := sha256.Sum256(data)
	v := sha256.Sum256(append(slices.Clone(old), d[:]...))
	return v[:]
}

func extendSHA1(old []byte, data []byte) []byte {
	d := sha1.Sum(data)
	v := sha1.Sum(append(slices.Clone(old), d[:]...))
	return v[:]
}

func TestExtendPCR(t *testing.T) {
	tpm := swtpmConn(t)
	read := func(alg string) []byte {
		t.Helper()
		v, err := ReadPCR(tpm, alg, 11)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	sha1Before := read("sha1")
	if !allOf(sha1Before, 0) || !allOf(read("sha256"), 0) {
		ingottest.Skip(t, "swtpm's PCR 11 is not zero after startup")
	}

	if _, good, err := pcrBanksOf(tpm, 11); err != nil || len(good) != 0 {
		t.Fatalf("fresh PCR 11 in use: good banks %v, %v", good, err)
	}
	// Nothing measured yet: every bank is zero, so only SHA-256 is
	// extended, as systemd falls back to.
	banks, err := ExtendPCR(tpm, 11, []byte("enter-initrd"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(banks, []string{"sha256"}) {
		t.Errorf("extended banks %v, want [sha256]", banks)
	}
	want256 := extendSHA256(make([]byte, 32), []byte("enter-initrd"))
	if got := read("sha256"); !bytes.Equal(got, want256) {
		t.Fatalf("sha256 PCR 11 = %x, want %x", got, want256)
	}
	if got := read("sha1"); !allOf(got, 0) {
		t.Errorf("sha1 bank extended without being in use: %x", got)
	}
	if _, good, err := pcrBanksOf(tpm, 11); err != nil || !slices.Equal(good, []tpm2.TPMAlgID{tpm2.TPMAlgSHA256}) {
		t.Errorf("good banks after one extend: %v, %v", good, err)
	}

	// A stub that measured into SHA-1 too: both banks are good now, and
	// each gets the digest in its own algorithm.
	stub := []byte("a section")
	d1, d256 := sha1.Sum(stub), sha256.Sum256(stub)
	if _, err := (tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: 11, Auth: tpm2.PasswordAuth(nil)},
		Digests: tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{
			{HashAlg: tpm2.TPMAlgSHA1, Digest: d1[:]}, {HashAlg: tpm2.TPMAlgSHA256, Digest: d256[:]},
		}},
	}).Execute(tpm); err != nil {
		ingottest.Skip(t, "swtpm has no SHA-1 bank: %v", err)
	}
	v1, v256 := read("sha1"), read("sha256")
	banks, err = ExtendPCR(tpm, 11, []byte("leave-initrd"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(banks, "sha1") || !slices.Contains(banks, "sha256") {
		t.Errorf("extended banks %v, want sha1 and sha256", banks)
	}
	if got, want := read("sha1"), extendSHA1(v1, []byte("leave-initrd")); !bytes.Equal(got, want) {
		t.Errorf("sha1 PCR 11 = %x, want %x", got, want)
	}
	if got, want := read("sha256"), extendSHA256(v256, []byte("leave-initrd")); !bytes.Equal(got, want) {
		t.Errorf("sha256 PCR 11 = %x, want %x", got, want)
	}

	if _, err := ExtendPCR(tpm, 24, nil); err == nil {
		t.Error("PCR 24 accepted")
	}
}
