//go:build vm

package vm_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/casync"
	"github.com/ingot-linux/ingot/diskimage"
	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/oci"
	"github.com/ingot-linux/ingot/vm"
)

// accessLog is a registry's access log, written by a reverse proxy in
// front of it: every request with its range, status and body bytes.
type accessLog struct {
	mu      sync.Mutex
	entries []accessEntry
}

type accessEntry struct {
	Method, Path, Range string
	Status              int
	Bytes               int64
	Start, End          time.Time
}

func (l *accessLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = nil
}

// blobGETs returns the GETs of the blob digest ("sha256:…").
func (l *accessLog) blobGETs(digest string) []accessEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []accessEntry
	for _, e := range l.entries {
		if e.Method == http.MethodGet && strings.HasSuffix(e.Path, "/blobs/"+digest) {
			out = append(out, e)
		}
	}
	return out
}

// blobTraffic sums the body bytes of blob GETs, counts them, and sums
// the time the ranged ones took (request to the response's end: the time
// the machine waited for chunks).
func (l *accessLog) blobTraffic() (bytes int64, requests int, ranged time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.entries {
		if e.Method != http.MethodGet || !strings.Contains(e.Path, "/blobs/") {
			continue
		}
		bytes += e.Bytes
		requests++
		if e.Range != "" {
			ranged += e.End.Sub(e.Start)
		}
	}
	return bytes, requests, ranged
}

// countingWriter records a response's status and body bytes.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }
func (w *countingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// loggedRegistry starts the real registry behind a logging reverse proxy
// on loopback and returns the proxy's address, the registry's storage
// and the log.
func loggedRegistry(t testing.TB) (host, root string, log *accessLog) {
	t.Helper()
	reg, root := ingottest.DockerRegistry(t)
	target, err := url.Parse("http://" + reg)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	log = &accessLog{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		start := time.Now()
		rp.ServeHTTP(cw, r)
		log.mu.Lock()
		log.entries = append(log.entries, accessEntry{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"),
			Status: cw.status, Bytes: cw.n, Start: start, End: time.Now()})
		log.mu.Unlock()
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String(), root, log
}

// baseRootfsChanged is the base with one file set changed, as a rebuilt
// package changes it: n files of size bytes under usr/lib/name, their
// content derived from seed.
func baseRootfsChanged(t testing.TB, name string, seed uint64, n, size int) string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	files := map[string]string{}
	for i := range n {
		b := make([]byte, size)
		for j := range b {
			b[j] = "abcdefghijklmnopqrstuvwxyz \n"[r.IntN(28)]
		}
		files[fmt.Sprintf("usr/lib/%s/file%d", name, i)] = string(b)
	}
	return baseRootfsWith(t, files)
}

// missingChunk returns the last chunk of the file at path that the seed
// files do not hold (as the machine, holding seedDir's version, would
// fetch it).
func missingChunk(t *testing.T, path string, seedDir string) casync.Chunk {
	t.Helper()
	s, err := casync.NewSeeds(casync.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{artifact.FileUsr, artifact.FileVerity, artifact.FileUKI} {
		f, err := os.Open(filepath.Join(seedDir, name))
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		if err := s.Add(context.Background(), name, f, fi.Size()); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	x, err := casync.Make(f, casync.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	for i := len(x.Chunks) - 1; i >= 0; i-- {
		if !s.Has(x.Chunks[i]) {
			return x.Chunks[i]
		}
	}
	t.Fatalf("every chunk of %s is in %s", path, seedDir)
	return casync.Chunk{}
}

// flipBlobByte flips one byte of a blob in the registry's storage.
func flipBlobByte(t *testing.T, root, sha string, off int64) {
	t.Helper()
	p := filepath.Join(root, "docker/registry/v2/blobs/sha256", sha[:2], sha, "data")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// availability is `ingot update --check --json`.
type availability struct {
	Available bool   `json:"available"`
	Version   string `json:"version"`
	Download  int64  `json:"downloadBytes"`
	Total     int64  `json:"totalBytes"`
}

var downloadedRE = regexp.MustCompile(`downloaded (\d+) bytes \((\d+) from local chunks, (\d+) from cached ones\)`)

// downloaded parses the update's "downloaded N bytes (S from local
// chunks, C from cached ones)".
func downloaded(t testing.TB, out string) (n, seeded, cached int64) {
	t.Helper()
	m := downloadedRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the update does not say what it downloaded:\n%s", out)
	}
	n, _ = strconv.ParseInt(m[1], 10, 64)
	seeded, _ = strconv.ParseInt(m[2], 10, 64)
	cached, _ = strconv.ParseInt(m[3], 10, 64)
	return n, seeded, cached
}

// TestDeltaUpdate updates a machine of the musl base from v1 to a v2
// with one file set changed, from a real registry that holds v2's chunk
// indexes: a chunk tampered in the registry's storage is refused and the
// slot stays as it was; restored, the update fetches only ranges of the
// blobs (no whole usr.erofs), and the machine boots v2.
func TestDeltaUpdate(t *testing.T) {
	t.Parallel()
	v1 := baseVersion(t, "1.0.0")
	v2 := baseVersionWith(t, "2.0.0", func(o *diskimage.Options) { o.RootFS = baseRootfsChanged(t, "delta-a", 1, 4, 256<<10) })
	host, root, alog := loggedRegistry(t)
	pushed, err := oci.Push(context.Background(), v2.UpdateDir, "oci://"+host+"/ingot:2.0.0")
	if err != nil {
		t.Fatalf("push v2: %v", err)
	}
	if len(pushed.ChunkIndexes) != 3 {
		t.Fatalf("push stored chunk indexes %+v", pushed.ChunkIndexes)
	}
	usr, _ := pushed.Manifest.File(artifact.RoleUsr)
	bad := missingChunk(t, filepath.Join(v2.UpdateDir, artifact.FileUsr), v1.UpdateDir)
	flipBlobByte(t, root, usr.SHA256, bad.Offset+bad.Size/2)
	const src = "oci://10.0.2.100:5000/ingot:2.0.0"

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	m := startVM(ctx, t, vm.Config{Image: v1.DiskPath, DiskSizeBytes: v1.DiskBytes + 1<<30,
		UserNet: &vm.UserNet{GuestForwards: []vm.GuestForward{{GuestAddr: "10.0.2.100", GuestPort: 5000, Target: host}}}})
	expectMarker(t, booted(ctx, t, m), "1.0.0", "a")
	waitForAddress(ctx, t, m)

	// The tampered chunk: refused before the slot is touched.
	before := status(ctx, t, m)
	out, code, err := m.Run(ctx, "ingot update "+src, 20*time.Minute)
	if err != nil || code == 0 || !strings.Contains(out, "usr.erofs chunk at "+strconv.FormatInt(bad.Offset, 10)) {
		t.Fatalf("update with a tampered chunk: exit %d, %v:\n%s", code, err, out)
	}
	if st := status(ctx, t, m); st.OtherSlotVersion != before.OtherSlotVersion || st.Pending != "" {
		t.Errorf("status after the refused update: %+v, before %+v", st, before)
	}
	t.Logf("tampered chunk refused: %s", lastLine(out))

	// Restored: --check says what it would download; the update fetches
	// ranges only, resuming with the chunks the refused one kept.
	flipBlobByte(t, root, usr.SHA256, bad.Offset+bad.Size/2)
	var avail availability
	runJSON(ctx, t, m, "ingot update --check --json "+src, &avail)
	if !avail.Available || avail.Download <= 0 || avail.Download > avail.Total/10 {
		t.Errorf("--check: %+v, want at most a tenth of the artifact", avail)
	}
	alog.reset()
	out = runFor(ctx, t, m, "ingot update "+src+" 2>&1", 20*time.Minute)
	n, seeded, cached := downloaded(t, out)
	if cached == 0 || n > avail.Download {
		t.Errorf("downloaded %d bytes (%d cached), --check said %d", n, cached, avail.Download)
	}
	gets := alog.blobGETs("sha256:" + usr.SHA256)
	if len(gets) == 0 {
		t.Error("no request for usr.erofs chunks")
	}
	for _, g := range gets {
		if g.Range == "" || g.Status != http.StatusPartialContent {
			t.Errorf("usr.erofs fetched whole: %+v", g)
		}
	}
	bytes, requests, _ := alog.blobTraffic()
	t.Logf("delta update: %d of %d bytes downloaded (%d seeded, %d cached) in %d blob requests, %d bytes on the wire; --check said %d",
		n, avail.Total, seeded, cached, requests, bytes, avail.Download)
	if bytes > avail.Total/10 {
		t.Errorf("%d blob bytes crossed the network, more than a tenth of %d", bytes, avail.Total)
	}

	m.Send("systemctl reboot\n")
	expectMarker(t, booted(ctx, t, m), "2.0.0", "b")
	if got := run(ctx, t, m, "wc -c < /usr/lib/delta-a/file3"); strings.TrimSpace(got) != strconv.Itoa(256<<10) {
		t.Errorf("v2's changed files: %q", got)
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}
