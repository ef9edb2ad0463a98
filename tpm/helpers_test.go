package tpm

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/ingot-linux/ingot/ingottest"
)

// swtpm is a software TPM 2.0 (swtpm) that needs no TPM2_Startup.
type swtpm struct {
	TPM    transport.TPMCloser
	Dir    string // state directory
	Device string // systemd's TPM2 device string, when on TCP
	cmd    *exec.Cmd
}

// startSwtpm starts swtpm on state directory dir (a new one if "") and
// connects to it, over a Unix socket, or over loopback TCP (which the
// TCTI systemd uses needs) if tcp is set. Starting it again on the same
// directory after Stop is a TPM restart: PCRs are reset, the owner seed
// and so the storage primary key stay.
func startSwtpm(t *testing.T, dir string, tcp bool) *swtpm {
	t.Helper()
	bin := ingottest.LookTool(t, "swtpm", "swtpm")
	if dir == "" {
		dir = t.TempDir()
	}
	sim := &swtpm{Dir: dir}
	network, addr := "unix", filepath.Join(dir, fmt.Sprintf("tpm-%d.sock", time.Now().UnixNano()))
	server := "type=unixio,path=" + addr
	ctrl := "type=unixio,path=" + addr + ".ctrl"
	if tcp {
		port := freePortPair(t)
		network, addr = "tcp", fmt.Sprintf("127.0.0.1:%d", port)
		server = fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port)
		// The swtpm TCTI expects the control port right after the
		// server port.
		ctrl = fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1)
		sim.Device = fmt.Sprintf("swtpm:host=127.0.0.1,port=%d", port)
	}
	sim.cmd = exec.Command(bin, "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--server", server, "--ctrl", ctrl, "--flags", "not-need-init,startup-clear")
	if err := sim.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Stop)
	if !tcp {
		sim.TPM = sim.connect(t, network, addr)
	} else {
		// Check that it listens, but leave the TPM to whoever connects
		// first: swtpm serves one connection at a time.
		sim.connect(t, network, addr).Close()
		sim.TPM = lazyTPM(func() transport.TPMCloser { return sim.connect(t, network, addr) })
	}
	return sim
}

func (s *swtpm) connect(t *testing.T, network, addr string) transport.TPMCloser {
	t.Helper()
	var conn net.Conn
	var err error
	for i := 0; ; i++ {
		if conn, err = net.Dial(network, addr); err == nil {
			break
		}
		if i == 200 {
			t.Fatalf("swtpm did not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return transport.FromReadWriteCloser(conn)
}

// Stop closes the connection and stops swtpm, which saves its state.
func (s *swtpm) Stop() {
	if s.cmd == nil {
		return
	}
	if s.TPM != nil {
		s.TPM.Close()
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// lazyTPM connects on first use, and again after Close.
type lazyTPMConn struct {
	connect func() transport.TPMCloser
	tpm     transport.TPMCloser
}

func lazyTPM(connect func() transport.TPMCloser) transport.TPMCloser {
	return &lazyTPMConn{connect: connect}
}

func (l *lazyTPMConn) Send(cmd []byte) ([]byte, error) {
	if l.tpm == nil {
		l.tpm = l.connect()
	}
	return l.tpm.Send(cmd)
}

func (l *lazyTPMConn) Close() error {
	if l.tpm == nil {
		return nil
	}
	err := l.tpm.Close()
	l.tpm = nil
	return err
}

// freePortPair returns a loopback TCP port p such that p and p+1 are
// free.
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+1))
		l.Close()
		if err == nil {
			l2.Close()
			return port
		}
	}
	t.Fatal("found no two free consecutive loopback ports for swtpm")
	return 0
}

var (
	keysOnce sync.Once
	keys     [2]*rsa.PrivateKey
)

// testKeys returns two RSA-2048 PCR keys, made once per test binary.
func testKeys(t testing.TB) (a, b *rsa.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		for i := range keys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keys[i] = k
		}
	})
	return keys[0], keys[1]
}

// extend extends PCR 11 of tpm with each word, as systemd-pcrphase does
// (on a TPM whose PCR 11 nothing measured yet, only the SHA-256 bank),
// and returns the value it must have now, computed by pcrValue from
// old.
func extend(t *testing.T, tpm transport.TPM, old []byte, words ...string) []byte {
	t.Helper()
	for _, w := range words {
		banks, err := ExtendPCR(tpm, PCRKernelBoot, []byte(w))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(banks, "sha256") {
			t.Fatalf("extended banks %v, not sha256", banks)
		}
	}
	return pcrValue(old, words...)
}

// pcrValue returns the value of a SHA-256 PCR holding old after
// extending it with each word: new = SHA-256(old || SHA-256(word)).
func pcrValue(old []byte, words ...string) []byte {
	v := slices.Clone(old)
	for _, w := range words {
		d := sha256.Sum256([]byte(w))
		n := sha256.Sum256(append(v, d[:]...))
		v = n[:]
	}
	return v
}

// pcr11 returns the TPM's PCR 11 (SHA-256 bank).
func pcr11(t *testing.T, tpm transport.TPM) []byte {
	t.Helper()
	v, err := ReadPCR(tpm, "sha256", PCRKernelBoot)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// pcrsig returns a .pcrsig document signed by key for PCR 11 values.
func pcrsig(t *testing.T, key *rsa.PrivateKey, values ...[]byte) []byte {
	t.Helper()
	var pv []PhaseValue
	for i, v := range values {
		pv = append(pv, PhaseValue{Phase: fmt.Sprint("phase", i), PCR11: v})
	}
	sig, err := SignPCRValues(pv, key)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}
