package oci

import (
	"errors"
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
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{
		transport: http.DefaultTransport,
		keychain:  anonymous{},
		arch:      artifact.ArchX86_64,
		logger:    slog.New(slog.DiscardHandler),
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
