// Package authenticode verifies and makes Windows Authenticode signatures,
// for any file format that carries them. Windows splits Authenticode the
// same way: the PKCS#7 signature, chain, timestamp and nested-signature
// logic is one, and each format supplies a subject interface package (SIP)
// that knows where its signatures are stored, which bytes are hashed and
// which data type the signature names. Here the formats implement
// [Subject] (and [Target] to be signed): signing/authenticode/pe is the
// PE one (executables, DLLs, drivers, UEFI images); scripts, installers,
// cabinets and catalogs follow it.
//
// [Verify] checks every signature a subject stores, and every signature
// nested in them (SPC_NESTED_SIGNATURE, at any depth, bounded), against the
// file's digests, which the caller computes in its one pass over the file
// with the subject's digester; [DigestAlgorithms] says which to compute.
// [Sign] makes a signature over a subject's digest while the subject
// streams the file to its signed copy, and embeds it.
//
// Verify trusts nothing in a signature: it parses it with package
// signing/cms, checks that its digest is the file's, that its signed
// attributes are consistent and that the signer's signature verifies, and
// builds chains from the signature's certificates and the ones the caller
// supplies. It does not decide trust: which chain is acceptable is the
// policy's business (package cipolicy).
//
// # Security
//
// Every signature's problems are reported on that signature; Verify (and
// [CheckStructure], its structural half) fails only when a subject stores
// anything but well-formed Authenticode signatures, because bytes no
// signature covers would otherwise ride along (the CVE-2013-3900 class).
// A subject's digest must leave out no byte of the file but where the
// signatures are stored (each subject's documentation says which).
package authenticode

import (
	"context"
	"crypto"
	"hash"
	"io"
	"strconv"
	"strings"

	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/cms"
)

// Format is the signing.Signature Format of Authenticode signatures.
const Format = "authenticode"

// Subject is one file format's part of Authenticode: where its signatures
// are stored, what they sign, and which of them the hosts that read the
// format count. Its digest (which bytes of the file are hashed, and how)
// is the format's own: the caller computes it in its one pass over the
// file and gives it to [Verify].
type Subject interface {
	// Format names the format in messages, e.g. "PE".
	Format() string
	// Signatures returns the signatures the file stores, in storage
	// order; each is verified with the signatures nested in it.
	Signatures() []Stored
	// IndirectData returns the data a new signature of this format names
	// in its SpcIndirectDataContent besides the digest (PE:
	// SPC_PE_IMAGE_DATAOBJ and an SpcPeImageData).
	IndirectData() IndirectData
	// Judge records on sig (sig.Ignore) which hosts would not count it,
	// and why, from where it is stored (sig.Index, sig.Path), the
	// signature it is nested in (parent, whose checks are done; nil for a
	// stored one) and the data its SpcIndirectDataContent names. Verify
	// calls it once per signature, after the signature's own checks and
	// before those of the signatures nested in it.
	Judge(sig, parent *signing.Signature, data IndirectData)
}

// A subject may name its digest for messages ("image digest": PE's image
// hash) with a method DigestName() string; "file digest" otherwise.

// DigestSizer is a subject whose signed digest is not one hash of the
// file but a structure of hashes with an algorithm (APPX: the "APPX" blob
// of tagged digests): DigestSize is its length for h, which [Verify]
// checks the caller's digest against instead of h's size.
type DigestSizer interface {
	DigestSize(h crypto.Hash) int
}

// Stored is one signature as a subject stores it.
type Stored struct {
	// Name says where it is, for messages: "certificate table entry 0".
	Name string
	// Offset is the file offset of its container (where messages point).
	Offset int64
	// DER is the signature: a ContentInfo, followed by zero padding where
	// ZeroPadding allows it. DEROffset is its file offset.
	DER         []byte
	DEROffset   int64
	ZeroPadding bool
}

// IndirectData is the data an Authenticode signature's
// SpcIndirectDataContent names besides the digest: an
// SpcAttributeTypeAndOptionalValue, its type (an OID element) and value (a
// DER element, nil when absent).
type IndirectData struct {
	Type  cms.OID
	Value []byte
}

// Target is a subject being signed by [Sign]: it streams the file to its
// signed copy and embeds the signature.
type Target interface {
	Subject
	// Stream writes the signed copy's content up to where the
	// signatures go, feeding the bytes its digest covers to h (in order)
	// and, if tee is not nil, the input's bytes as read to tee.
	Stream(ctx context.Context, h hash.Hash, tee io.Writer) error
	// Embed stores the signatures after what Stream wrote: primary
	// first, then, if keep, the file's other stored signatures as they
	// were. It returns the signed copy's size.
	Embed(primary []byte, keep bool) (int64, error)
}

// Errors of this package. They are the signing package's sentinels, kept
// under the names earlier versions exported.
//
// Deprecated: test for the signing sentinels.
var (
	ErrMalformed            = signing.ErrMalformed
	ErrUnsupportedAlgorithm = signing.ErrUnsupportedAlgorithm
	ErrSignerNotFound       = signing.ErrSignerNotFound
	ErrDigestNotComputed    = signing.ErrDigestNotComputed
	ErrDigestMismatch       = signing.ErrDigestMismatch
	ErrSignedAttributes     = signing.ErrSignedAttributes
	ErrTimestamp            = signing.ErrTimestamp
	ErrLimit                = signing.ErrLimit
	ErrInternal             = signing.ErrInternal
	ErrSigner               = signing.ErrSigner
)

// SignatureError is the Problem of a signature or of its timestamp, and
// the cause of a subject's malformed-input error: which signature (stored
// Index and nesting Path) and what failed.
type SignatureError struct {
	Index int
	Path  []int
	Err   error
}

func (e *SignatureError) Error() string { return "authenticode: " + e.Reason() }

// Reason is the error without the package prefix: which signature and
// what is wrong with it.
func (e *SignatureError) Reason() string {
	return signatureName(e.Index, e.Path) + ": " + e.Err.Error()
}

func (e *SignatureError) Unwrap() error { return e.Err }

// signatureName is "signature 0" for a stored signature and "nested
// signature 0.1.0" for one nested in it (the index, then the path).
func signatureName(index int, path []int) string {
	if len(path) == 0 {
		return "signature " + strconv.Itoa(index)
	}
	var b strings.Builder
	b.WriteString("nested signature ")
	b.WriteString(strconv.Itoa(index))
	for _, p := range path {
		b.WriteByte('.')
		b.WriteString(strconv.Itoa(p))
	}
	return b.String()
}
