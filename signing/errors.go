package signing

import (
	"errors"
	"fmt"
)

// The error vocabulary of the signing packages (signing, signing/cms,
// signing/timestamp, signing/authenticode and its subjects,
// signing/modsig): one sentinel per concept, defined here and wrapped by
// every package that reports it, so that a caller tests for a concept with
// errors.Is whichever format or layer found it.
var (
	// ErrMalformed: input that is not the structure it claims to be (DER,
	// a certificate table, a signature trailer). Every *[MalformedError]
	// is one.
	ErrMalformed = errors.New("signing: malformed input")
	// ErrLimit: input over a cap on sizes, counts, nesting or work (the
	// caps are in internal/limits and in each parser's documentation).
	ErrLimit = errors.New("signing: limit exceeded")
	// ErrUnsupportedAlgorithm: a digest or signature algorithm csv does not
	// accept: an OID it does not know, or MD5, which it refuses in one
	// place (see [DigestAlgorithm]).
	ErrUnsupportedAlgorithm = errors.New("signing: unsupported algorithm")
	// ErrSignerNotFound: no certificate matches a SignerInfo's signer
	// identifier (issuer and serial number, or subject key identifier).
	ErrSignerNotFound = errors.New("signing: signer certificate not found")
	// ErrDigestNotComputed: the caller did not supply the file digest a
	// signature is over (its algorithm, or a digest of the right size).
	ErrDigestNotComputed = errors.New("signing: digest not computed")
	// ErrDigestMismatch: the digest a signature carries is not the file's.
	ErrDigestMismatch = errors.New("signing: digest mismatch")
	// ErrSignedAttributes: signed attributes missing, repeated or
	// inconsistent (contentType, messageDigest).
	ErrSignedAttributes = errors.New("signing: bad signed attributes")
	// ErrSignature: a signature does not verify with the key that should
	// have made it.
	ErrSignature = errors.New("signing: signature does not verify")
	// ErrTimestamp: a timestamp (an RFC 3161 token or a legacy
	// countersignature) does not verify.
	ErrTimestamp = errors.New("signing: timestamp does not verify")
	// ErrNotTimestamping: a certificate that signed a timestamp is not a
	// time-stamping certificate (timestamp.CheckCertificate, the one rule).
	ErrNotTimestamping = errors.New("signing: not a time-stamping certificate")
	// ErrSigner: a key and certificate chain cannot make the signature
	// asked for (no chain, a key that is not the leaf's, a leaf without the
	// usage the format needs).
	ErrSigner = errors.New("signing: unusable signer")
	// ErrInternal: a verifier or parser panicked (a bug); what it was
	// examining is not verified.
	ErrInternal = errors.New("signing: internal error")
)

// MalformedError reports input that is not what its format says it is, or
// that is over a cap: what is malformed (Format, as messages name it: "PE",
// "ELF", "PKCS#7", "appended signature"), where (Offset, from the start of
// the file, or -1 when the problem has no single place) and what is wrong
// (Reason). Err, if not nil, classifies the problem beyond [ErrMalformed],
// which every MalformedError is (errors.Is): [ErrLimit] for a cap, the
// error of a signature whose structure is at fault. It is the one
// malformed-input type of csv's parsers of untrusted bytes.
type MalformedError struct {
	Format string
	Offset int64
	Reason string
	Err    error
}

func (e *MalformedError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("malformed %s: %s", e.Format, e.Reason)
	}
	return fmt.Sprintf("malformed %s at offset %#x: %s", e.Format, e.Offset, e.Reason)
}

// Unwrap returns Err.
func (e *MalformedError) Unwrap() error { return e.Err }

// Is reports that a MalformedError is [ErrMalformed].
func (e *MalformedError) Is(target error) bool { return target == ErrMalformed }

// Errorf formats an error that is kind (errors.Is), one of the sentinels
// above (or another package's sentinel: csv/format's ErrChanged), without repeating kind's own message: the message says what
// happened in the words of the code that found it ("image digest
// mismatch: signed sha256 ...", under the caller's package prefix). %w in
// format wraps as fmt.Errorf does.
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }
