package oci

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/ingot-linux/ingot/artifact"
)

// Option configures Push, Pull and Inspect.
type Option func(*options) error

type options struct {
	insecure  bool
	progress  func(done, total int64)
	transport http.RoundTripper
	keychain  authn.Keychain
	cacheDir  string
	arch      string
	limits    artifact.Limits
	logger    *slog.Logger
	noIndex   bool
	seeds     []Seed
	maxRange  int64
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{
		transport: http.DefaultTransport,
		keychain:  anonymous{},
		arch:      artifact.ArchX86_64,
		logger:    slog.New(slog.DiscardHandler),
		maxRange:  defaultMaxRange,
	}
	var errs []error
	for _, opt := range opts {
		errs = append(errs, opt(o))
	}
	return o, errors.Join(errs...)
}

// WithInsecure allows plain HTTP to registries that are not on a loopback
// or private address.
func WithInsecure(insecure bool) Option {
	return func(o *options) error { o.insecure = insecure; return nil }
}

// WithProgress has fn told, from one goroutine, how many of the total bytes
// have been uploaded or downloaded. Bytes a registry already has, or a
// resumed download already had, count as done.
func WithProgress(fn func(done, total int64)) Option {
	return func(o *options) error { o.progress = fn; return nil }
}

// WithTransport sets the HTTP transport (e.g. for custom TLS roots); the
// default is http.DefaultTransport.
func WithTransport(t http.RoundTripper) Option {
	return func(o *options) error {
		if t == nil {
			return errors.New("nil transport")
		}
		o.transport = t
		return nil
	}
}

// WithKeychain sets where registry credentials come from, e.g.
// authn.DefaultKeychain for the Docker config; the default is anonymous
// access.
func WithKeychain(k authn.Keychain) Option {
	return func(o *options) error {
		if k == nil {
			return errors.New("nil keychain")
		}
		o.keychain = k
		return nil
	}
}

// WithCacheDir keeps partial downloads under dir, so an interrupted Pull can
// be resumed by the next one; "" (the default) keeps none.
func WithCacheDir(dir string) Option {
	return func(o *options) error { o.cacheDir = dir; return nil }
}

// WithArch sets the architecture Pull requires; the default is
// artifact.ArchX86_64. Push pushes any architecture.
func WithArch(arch string) Option {
	return func(o *options) error {
		if arch == "" {
			return errors.New("empty architecture")
		}
		o.arch = arch
		return nil
	}
}

// WithLimits bounds the artifact's files (e.g. by the partitions they will
// be written to): Pull refuses a manifest declaring a larger file before
// it downloads anything.
func WithLimits(l artifact.Limits) Option {
	return func(o *options) error { o.limits = l; return nil }
}

// WithLogger sets the logger for details (requests, blobs, retries); the
// default discards them.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.logger = l
		return nil
	}
}

// anonymous is a keychain without credentials.
type anonymous struct{}

func (anonymous) Resolve(authn.Resource) (authn.Authenticator, error) { return authn.Anonymous, nil }

// WithChunkIndex(false) has Push leave out the chunk indexes (for
// machines whose ingot predates them: they refuse an artifact with more
// layers than files). By default Push writes, for /usr, its verity tree
// and the UKI, a casync chunk index as an extra layer.
func WithChunkIndex(on bool) Option {
	return func(o *options) error { o.noIndex = !on; return nil }
}

// WithSeeds has Pull (and Plan) take the chunks of files that have a
// chunk index from the seeds where they hold them, and fetch only the
// others, with ranged requests of the file's blob. Every chunk is checked
// against its id before it is used. Without seeds, or for a file without
// an index, Pull downloads whole blobs.
func WithSeeds(seeds ...Seed) Option {
	return func(o *options) error {
		for _, s := range seeds {
			if s.Path == "" || s.Offset < 0 || s.Size < 0 {
				return fmt.Errorf("seed %q: path %q, offset %d, size %d", s.Name, s.Path, s.Offset, s.Size)
			}
		}
		o.seeds = append(o.seeds, seeds...)
		return nil
	}
}

// WithMaxRange bounds how many bytes one ranged request of a delta pull
// asks for (default 8 MiB); consecutive missing chunks share a request up
// to it. A bound below the chunk size makes one request per chunk.
func WithMaxRange(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("range bound %d: must be positive", n)
		}
		o.maxRange = n
		return nil
	}
}
