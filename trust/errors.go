package trust

import "errors"

// Errors that callers may act on; the errors returned wrap them.
var (
	// ErrKeyType means a key is not of the type its role needs (RSA, at
	// least 2048 bits).
	ErrKeyType = errors.New("unsupported key type")
	// ErrKeyMismatch means a private key does not belong to the
	// certificate or public key it is paired with.
	ErrKeyMismatch = errors.New("key does not match certificate")
	// ErrCertExpired means a certificate is not valid at the time of use
	// (expired or not yet valid).
	ErrCertExpired = errors.New("certificate not valid at this time")
	// ErrNoSignature means a PE image carries no Authenticode signature.
	ErrNoSignature = errors.New("no signature")
	// ErrBadSignature means a signature does not match the signed data:
	// the data or the signature was changed.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrUntrusted means a signature verifies but its signer is not one of
	// the trusted certificates and does not chain to one.
	ErrUntrusted = errors.New("signer not trusted")
	// ErrMalformed means input that should hold a signature or a PE image
	// cannot be parsed.
	ErrMalformed = errors.New("malformed input")
	// ErrUnsupported means well-formed input uses a feature this package
	// does not implement.
	ErrUnsupported = errors.New("unsupported")
)
