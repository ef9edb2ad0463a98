package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/casync"
)

// indexSuffix ends the title of a file's chunk index layer.
const indexSuffix = ".caibx"

// minIndexChunk is the smallest minimum chunk size ingot accepts in an
// index; it bounds an index to about 1 % of its file before download.
const minIndexChunk = 4096

// defaultMaxRange is the most one ranged request asks for.
const defaultMaxRange = 8 << 20

// indexedRoles are the files push writes a chunk index for.
var indexedRoles = []string{artifact.RoleUsr, artifact.RoleVerity, artifact.RoleUKI}

// Seed is local data a pull may take chunks from: Size bytes at Offset
// of the file or block device Path (e.g. a /usr partition of the disk).
type Seed struct {
	Name, Path   string
	Offset, Size int64
}

// makeIndexes cuts the artifact's indexed files into chunks and returns
// their casync indexes by role.
func makeIndexes(a *artifact.Artifact) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, role := range indexedRoles {
		f, ok := a.Manifest.File(role)
		if !ok {
			continue
		}
		r, err := os.Open(filepath.Join(a.Dir, f.Name))
		if err != nil {
			return nil, err
		}
		x, err := casync.Make(io.LimitReader(r, f.Size), casync.DefaultParams())
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("chunk index of %s: %w", f.Name, err)
		}
		if x.Size() != f.Size {
			return nil, fmt.Errorf("chunk index of %s: %d bytes, manifest says %d", f.Name, x.Size(), f.Size)
		}
		if out[role], err = x.MarshalBinary(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkIndexLayer checks a chunk index layer's title and size against
// the artifact's files and returns the file it indexes.
func checkIndexLayer(d v1.Descriptor, am *artifact.Manifest) (artifact.File, error) {
	title := d.Annotations[AnnotationTitle]
	name, ok := strings.CutSuffix(title, indexSuffix)
	for _, f := range am.Files {
		if ok && f.Name == name {
			if d.Size <= 0 || d.Size > casync.MaxIndexBytes(f.Size, minIndexChunk) || d.Digest.Algorithm != "sha256" {
				return f, fmt.Errorf("chunk index %s: %d bytes (%s), more than an index of %s can have", title, d.Size, d.Digest, f.Name)
			}
			return f, nil
		}
	}
	return artifact.File{}, fmt.Errorf("chunk index layer %s is titled %q, which indexes no file of the artifact", d.Digest, title)
}

// deltaStats counts where a delta pull took each file's bytes from.
type deltaStats struct {
	Seeded, Cached, Fetched, Index int64
	Requests                       int
}

// fetchIndex downloads and parses the chunk index of the file f.
func (f *fetcher) fetchIndex(ctx context.Context, l Layer, file artifact.File) (*casync.Index, error) {
	h, err := v1.NewHash(l.Digest)
	if err != nil {
		return nil, err
	}
	b, err := fetchSmall(ctx, f.client, f.blobURL, v1.Descriptor{Digest: h, Size: l.Size})
	if err != nil {
		return nil, fmt.Errorf("chunk index of %s: %w", file.Name, err)
	}
	x, err := casync.Parse(b, file.Size)
	if err != nil {
		return nil, fmt.Errorf("chunk index of %s: %w", file.Name, err)
	}
	if x.Params.Min < minIndexChunk {
		return nil, fmt.Errorf("chunk index of %s: minimum chunk size %d, below ingot's %d", file.Name, x.Params.Min, minIndexChunk)
	}
	return x, nil
}

// seedSet cuts the seeds into chunks, once per chunk-size parameters.
type seedSet struct {
	seeds []Seed
	files []*os.File
	byP   map[casync.Params]*casync.Seeds
}

func (s *seedSet) close() {
	for _, f := range s.files {
		f.Close()
	}
}

func (s *seedSet) get(ctx context.Context, p casync.Params) (*casync.Seeds, error) {
	if c, ok := s.byP[p]; ok {
		return c, nil
	}
	c, err := casync.NewSeeds(p)
	if err != nil {
		return nil, err
	}
	if s.files == nil {
		for _, sd := range s.seeds {
			fh, err := os.Open(sd.Path)
			if err != nil {
				s.close()
				return nil, fmt.Errorf("seed %s: %w", sd.Name, err)
			}
			s.files = append(s.files, fh)
		}
	}
	for i, sd := range s.seeds {
		r := io.NewSectionReader(s.files[i], sd.Offset, sd.Size)
		if err := c.Add(ctx, sd.Name, r, sd.Size); err != nil {
			return nil, err
		}
	}
	s.byP[p] = c
	return c, nil
}

// chunkStore keeps fetched chunks as files named by id, so an
// interrupted pull resumes without fetching them again. A chunk read back
// is checked against its id. The zero chunkStore holds nothing.
type chunkStore struct{ dir string }

func (s chunkStore) path(id casync.ID) string {
	h := id.String()
	return filepath.Join(s.dir, h[:3], h)
}

// get reads chunk c into buf, false when absent or not c's bytes.
func (s chunkStore) get(c casync.Chunk, buf []byte) bool {
	if s.dir == "" {
		return false
	}
	fh, err := os.Open(s.path(c.ID))
	if err != nil {
		return false
	}
	defer fh.Close()
	if n, err := io.ReadFull(fh, buf); err != nil || int64(n) != c.Size || casync.Sum(buf) != c.ID {
		os.Remove(s.path(c.ID))
		return false
	}
	return true
}

func (s chunkStore) has(c casync.Chunk) bool {
	if s.dir == "" {
		return false
	}
	fi, err := os.Stat(s.path(c.ID))
	return err == nil && fi.Size() == c.Size
}

// put stores a verified chunk (atomically: a torn file never has the
// chunk's name).
func (s chunkStore) put(id casync.ID, b []byte) error {
	p := s.path(id)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// deltaPlan is the order a file's chunks come from: runs of chunks
// fetched with one ranged request each, the rest from seeds or the store.
type deltaPlan struct {
	x       *casync.Index
	fetch   []bool // chunk i is fetched (its first occurrence among those missing)
	missing int64  // bytes to fetch
}

func planDelta(x *casync.Index, seeds *casync.Seeds, store chunkStore) *deltaPlan {
	p := &deltaPlan{x: x, fetch: make([]bool, len(x.Chunks))}
	planned := map[casync.ID]bool{}
	for i, c := range x.Chunks {
		if planned[c.ID] || seeds.Has(c) || store.has(c) {
			continue
		}
		planned[c.ID] = true
		p.fetch[i] = true
		p.missing += c.Size
	}
	return p
}

// errNoRanges says the registry answered a range request with the whole
// blob.
var errNoRanges = errors.New("the registry does not serve byte ranges of blobs")

// fetchDelta assembles the blob d (the file name) at dst from seeds, the
// chunk store and ranged requests for the chunks missing from both, each
// chunk checked against its id before it is written. The caller checks
// the whole file's digest.
func (f *fetcher) fetchDelta(ctx context.Context, name string, d v1.Descriptor, x *casync.Index, seeds *casync.Seeds, store chunkStore, dst string, st *deltaStats) error {
	plan := planDelta(x, seeds, store)
	f.logger.Debug("delta", "file", name, "chunks", len(x.Chunks), "missing", plan.missing)
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	a := &assembler{f: f, name: name, d: d, seeds: seeds, store: store, out: out, st: st, buf: make([]byte, x.Params.Max)}
	for i := 0; i < len(x.Chunks); {
		j := i + 1
		if plan.fetch[i] {
			for j < len(x.Chunks) && plan.fetch[j] && x.Chunks[j].Offset+x.Chunks[j].Size-x.Chunks[i].Offset <= f.maxRange {
				j++
			}
			err = a.fetchRun(ctx, x.Chunks[i:j])
		} else {
			err = a.local(ctx, x.Chunks[i])
		}
		if err != nil {
			return err
		}
		f.progress.set(name, x.Chunks[j-1].Offset+x.Chunks[j-1].Size)
		i = j
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

// assembler writes one file's chunks in order.
type assembler struct {
	f     *fetcher
	name  string
	d     v1.Descriptor
	seeds *casync.Seeds
	store chunkStore
	out   io.Writer
	st    *deltaStats
	buf   []byte
}

// local writes a chunk from a seed or the store, fetching it when
// neither has it (any more).
func (a *assembler) local(ctx context.Context, c casync.Chunk) error {
	b := a.buf[:c.Size]
	ok, err := a.seeds.Read(c, b)
	if err != nil {
		return err
	}
	switch {
	case ok:
		a.st.Seeded += c.Size
	case a.store.get(c, b):
		a.st.Cached += c.Size
	default:
		return a.fetchRun(ctx, []casync.Chunk{c})
	}
	_, err = a.out.Write(b)
	return err
}

// fetchRun fetches consecutive chunks with ranged requests, retrying
// from the first chunk not yet stored.
func (a *assembler) fetchRun(ctx context.Context, run []casync.Chunk) error {
	var err error
	for attempt := 1; attempt <= maxAttempts && len(run) > 0; attempt++ {
		var n int
		n, err = a.fetchRange(ctx, run)
		run = run[n:]
		var perm permanentError
		if err == nil || errors.As(err, &perm) || ctx.Err() != nil {
			break
		}
		a.f.logger.Debug("retry chunk range", "file", a.name, "attempt", attempt, "err", err)
	}
	if err != nil {
		return fmt.Errorf("download chunks of %s (%s): %w", a.name, a.d.Digest, err)
	}
	return nil
}

// fetchRange requests the bytes of run and writes its chunks, each
// verified; it returns how many it wrote.
func (a *assembler) fetchRange(ctx context.Context, run []casync.Chunk) (int, error) {
	start, end := run[0].Offset, run[len(run)-1].Offset+run[len(run)-1].Size
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.f.blobURL+a.d.Digest.String(), nil)
	if err != nil {
		return 0, permanentError{err}
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, end-1))
	a.st.Requests++
	resp, err := a.f.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent &&
		strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/", start, end-1)):
	case resp.StatusCode == http.StatusOK:
		return 0, permanentError{errNoRanges}
	default:
		err := transport.CheckError(resp, http.StatusPartialContent)
		if resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			err = permanentError{err}
		}
		return 0, err
	}
	for i, c := range run {
		b := a.buf[:c.Size]
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return i, fmt.Errorf("range ended in chunk %d of %d: %w", i+1, len(run), err)
		}
		if got := casync.Sum(b); got != c.ID {
			return i, permanentError{&artifact.MismatchError{File: a.name + " chunk at " + strconv.FormatInt(c.Offset, 10), Field: "digest",
				Want: "sha256:" + c.ID.String(), Got: "sha256:" + got.String()}}
		}
		if err := a.store.put(c.ID, b); err != nil {
			return i, permanentError{fmt.Errorf("chunk cache: %w", err)}
		}
		if _, err := a.out.Write(b); err != nil {
			return i, permanentError{err}
		}
		a.st.Fetched += c.Size
	}
	return len(run), nil
}

// Transfer says where a pull took its files' bytes from.
type Transfer struct {
	// Downloaded is what came over the network: whole blobs, chunk
	// ranges and chunk indexes.
	Downloaded int64 `json:"downloaded"`
	// Seeded is what came from chunks found in the seeds, Cached from
	// chunks an earlier, interrupted pull had fetched.
	Seeded int64 `json:"seeded"`
	Cached int64 `json:"cached"`
	// RangeRequests counts the ranged requests for chunks.
	RangeRequests int `json:"rangeRequests"`
	// Whole names the files downloaded as whole blobs.
	Whole []string `json:"whole,omitempty"`
}

// deltaPull fetches an artifact's files, by chunks where it can.
type deltaPull struct {
	o     *options
	info  *Info
	seeds *seedSet
	store chunkStore
	st    deltaStats
	whole []string
	// wholeBytes counts whole blobs downloaded.
	wholeBytes int64
	noRanges   bool // the registry answered a range with a whole blob
}

func newDeltaPull(o *options, info *Info, tmp string) *deltaPull {
	dir := filepath.Join(filepath.Dir(tmp), "."+filepath.Base(tmp)+".chunks")
	if o.cacheDir != "" {
		dir = filepath.Join(o.cacheDir, "chunks")
	}
	return &deltaPull{o: o, info: info, seeds: &seedSet{seeds: o.seeds, byP: map[casync.Params]*casync.Seeds{}}, store: chunkStore{dir: dir}}
}

// indexOf returns the chunk index layer of the file l, if any.
func (d *deltaPull) indexOf(l Layer) (Layer, bool) {
	for _, x := range d.info.ChunkIndexes {
		if x.Name == l.Name+indexSuffix {
			return x, true
		}
	}
	return Layer{}, false
}

// fetch downloads the file l to dst: from chunks when the registry has
// its index and there are seeds, else (or when the registry serves no
// ranges) as a whole blob.
func (d *deltaPull) fetch(ctx context.Context, f *fetcher, l Layer, dst string) error {
	h, err := v1.NewHash(l.Digest)
	if err != nil {
		return err
	}
	desc := v1.Descriptor{Digest: h, Size: l.Size}
	if il, ok := d.indexOf(l); ok && len(d.o.seeds) > 0 && !d.noRanges {
		st := d.st
		err := d.fetchChunks(ctx, f, l, il, desc, dst)
		if !errors.Is(err, errNoRanges) {
			return err
		}
		f.logger.Debug("no ranges: whole blobs", "file", l.Name)
		d.noRanges, d.st = true, st
		os.Remove(dst)
	}
	d.whole = append(d.whole, l.Name)
	d.wholeBytes += l.Size
	return f.fetch(ctx, l.Name, desc, dst)
}

func (d *deltaPull) fetchChunks(ctx context.Context, f *fetcher, l, il Layer, desc v1.Descriptor, dst string) error {
	file, _ := d.info.Manifest.File(l.Role)
	x, err := f.fetchIndex(ctx, il, file)
	if err != nil {
		return err
	}
	d.st.Index += il.Size
	seeds, err := d.seeds.get(ctx, x.Params)
	if err != nil {
		return err
	}
	return f.fetchDelta(ctx, l.Name, desc, x, seeds, d.store, dst, &d.st)
}

func (d *deltaPull) transfer() *Transfer {
	return &Transfer{
		Downloaded: d.wholeBytes + d.st.Fetched + d.st.Index, Seeded: d.st.Seeded, Cached: d.st.Cached,
		RangeRequests: d.st.Requests, Whole: d.whole,
	}
}

// cleanup removes the fetched chunks once the files they made are in place.
func (d *deltaPull) cleanup() { os.RemoveAll(d.store.dir) }

// close closes the seeds and removes a chunk store outside the cache
// directory: without one, a pull does not resume.
func (d *deltaPull) close() {
	d.seeds.close()
	if d.o.cacheDir == "" {
		os.RemoveAll(d.store.dir)
	}
}

// Plan is what a Pull with the same options would download.
type Plan struct {
	// Total is the size of the artifact's files.
	Total int64 `json:"total"`
	// Download is what would come over the network: whole files, the
	// chunks no seed or cached chunk has, and the chunk indexes.
	Download int64 `json:"download"`
	// Files are the per-file figures.
	Files []PlanFile `json:"files"`
}

// PlanFile is one file's part of a Plan.
type PlanFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Download is the bytes of missing chunks (plus the index), or Size
	// for a file fetched whole.
	Download int64 `json:"download"`
	// Chunks and Missing count the file's chunks and those to fetch; 0
	// for a file fetched whole.
	Chunks  int `json:"chunks"`
	Missing int `json:"missing"`
}

// PlanPull reads the artifact's manifest and chunk indexes and cuts the
// seeds (WithSeeds) into chunks, and returns what Pull would download. It
// downloads no files.
func PlanPull(ctx context.Context, ref string, opts ...Option) (*Plan, error) {
	p, err := planPull(ctx, ref, opts)
	if err != nil {
		return nil, fmt.Errorf("plan pull of %s: %w", ref, err)
	}
	return p, nil
}

func planPull(ctx context.Context, ref string, opts []Option) (*Plan, error) {
	o, r, scheme, err := optionsFor(ref, opts)
	if err != nil {
		return nil, err
	}
	res, err := resolve(ctx, o, r, scheme)
	if err != nil {
		return nil, err
	}
	f := &fetcher{client: res.client, blobURL: res.blobURL, logger: o.logger, progress: newTracker(nil, 0)}
	d := newDeltaPull(o, res.info, "")
	defer d.seeds.close()
	if o.cacheDir == "" {
		d.store = chunkStore{} // no cache: nothing fetched before
	}
	plan := &Plan{}
	for _, l := range res.info.Layers {
		pf := PlanFile{Name: l.Name, Size: l.Size, Download: l.Size}
		if il, ok := d.indexOf(l); ok && len(o.seeds) > 0 {
			file, _ := res.info.Manifest.File(l.Role)
			x, err := f.fetchIndex(ctx, il, file)
			if err != nil {
				return nil, err
			}
			seeds, err := d.seeds.get(ctx, x.Params)
			if err != nil {
				return nil, err
			}
			dp := planDelta(x, seeds, d.store)
			pf.Download, pf.Chunks = dp.missing+il.Size, len(x.Chunks)
			for _, fetch := range dp.fetch {
				if fetch {
					pf.Missing++
				}
			}
		}
		plan.Total += pf.Size
		plan.Download += pf.Download
		plan.Files = append(plan.Files, pf)
	}
	return plan, nil
}
