// Package manifest writes and verifies the signed build manifest: one
// statement, signed with the build certificate, that lists every binary of
// a build with its SHA-256 and says what csv concluded about the build.
//
// # Format
//
// The statement is an in-toto Statement v1 (https://in-toto.io/Statement/v1)
// whose subjects are the binaries ({"name": "bin/app.exe", "digest":
// {"sha256": "<hex>"}}, names being slash-separated paths relative to the
// build root) and whose predicate is a SLSA Verification Summary
// Attestation (https://slsa.dev/verification_summary/v1): the verifier
// (id https://github.com/codesignval/csv and csv's version), when it ran,
// the build it looked at (resourceUri), the policy it applied (its URI or
// name and SHA-256), PASSED or FAILED, and the levels verified. csv's level
// is "CSV_POLICY_<NAME>" ([PolicyLevel]): the VSA lets verifiers define
// their own levels, except under the SLSA_ prefix, and a failed
// verification lists "FAILED".
//
// The statement is the payload of a DSSE envelope (payloadType
// application/vnd.in-toto+json, signature over the DSSE PAE), and the
// envelope is the content of a Sigstore bundle with the certificate chain
// as verification material, written by [bundle.NewDSSE]. DSSE has no place
// for certificates, so a wrapper is needed: a Sigstore bundle is the
// wrapper other tools read (sigstore-go, cosign verify-blob-attestation
// --new-bundle-format), where a home-made JSON wrapper would be read by csv
// alone. The bundle's limits (v0.2 media type, SAN needed by sigstore-go)
// are described in package bundle. sigstore-go also refuses statements of
// more than 1024 subjects; [Verify] accepts up to [MaxSubjects].
//
// # Security
//
// A manifest is untrusted until [Verify] returns: it checks the bundle (see
// [bundle.VerifyDSSE]: size cap, strict decoding, chain to the caller's
// roots at the caller's time or, with TSA roots, at the time of an RFC 3161
// timestamp that verifies over the signature by a TSA chaining to one of
// them, signature), then decodes the statement
// strictly (unknown fields, duplicate keys and trailing data are errors)
// and checks its type, predicate type, subject names and digests. Subject
// names must be local slash paths (io/fs.ValidPath: no "..", no leading
// "/"; and no backslash), so [CheckFiles] never reads outside the root it
// is given, on Windows either (it also checks filepath.IsLocal there).
package manifest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/bundle"
	"github.com/codesignval/csv/signing/timestamp"
)

// Type URIs and media types.
const (
	StatementType = "https://in-toto.io/Statement/v1"
	PayloadType   = "application/vnd.in-toto+json"
	PredicateType = "https://slsa.dev/verification_summary/v1"
	// VerifierID is the VSA verifier id of csv.
	VerifierID = "https://github.com/codesignval/csv"
)

// MaxSubjects caps the subjects of a statement.
const MaxSubjects = 1 << 20

// maxJSONDepth caps the nesting of a statement (real ones are 4 deep).
const maxJSONDepth = 32

// Errors. Test for them with errors.Is. A statement that is not what it
// should be is signing.ErrMalformed, as a malformed bundle is; the bundle's
// errors (signing.ErrSignature, signing.ErrMalformed, bundle.ErrUntrusted,
// ...) come through Verify as they are.
var (
	// ErrInvalid: the statement or predicate given to New is incomplete or
	// malformed.
	ErrInvalid = errors.New("manifest: invalid statement")
)

// ErrMalformed is signing.ErrMalformed, under the name earlier versions of
// this package exported.
//
// Deprecated: test for signing.ErrMalformed.
var ErrMalformed = signing.ErrMalformed

// errMalformed is signing.ErrMalformed in this package's words.
var errMalformed = signing.Errorf(signing.ErrMalformed, "manifest: malformed statement")

// DigestSet maps digest algorithm names ("sha256") to lower-case hex.
type DigestSet map[string]string

// Subject is one file of the build.
type Subject struct {
	// Name is the file's slash-separated path relative to the build root.
	Name   string    `json:"name"`
	Digest DigestSet `json:"digest"`
}

// SHA256Subject returns the subject for a file and its SHA-256.
func SHA256Subject(name string, sum []byte) Subject {
	return Subject{Name: name, Digest: DigestSet{"sha256": hex.EncodeToString(sum)}}
}

// ResourceDescriptor is the part of an in-toto ResourceDescriptor the VSA
// uses for the policy and input attestations.
type ResourceDescriptor struct {
	URI    string    `json:"uri,omitempty"`
	Name   string    `json:"name,omitempty"`
	Digest DigestSet `json:"digest,omitempty"`
}

// Verifier identifies the tool that verified.
type Verifier struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

// Result is a VSA verification result.
type Result string

// Results.
const (
	Passed Result = "PASSED"
	Failed Result = "FAILED"
)

func (r Result) String() string { return string(r) }

// Predicate is a SLSA Verification Summary Attestation v1.
type Predicate struct {
	// Verifier.ID defaults to VerifierID; set Version to {"csv": VERSION}.
	Verifier Verifier `json:"verifier"`
	// TimeVerified is required (no clock is read here); New writes it in
	// UTC, to the second.
	TimeVerified time.Time `json:"timeVerified"`
	// ResourceURI names the build: a CI run URL, or a path.
	ResourceURI string `json:"resourceUri"`
	// Policy names the policy (URI or Name) and gives its file's SHA-256.
	Policy             ResourceDescriptor   `json:"policy"`
	InputAttestations  []ResourceDescriptor `json:"inputAttestations,omitempty"`
	VerificationResult Result               `json:"verificationResult"`
	// VerifiedLevels: for a PASSED result at least one level, such as
	// PolicyLevel(name); for FAILED, New writes ["FAILED"].
	VerifiedLevels   []string          `json:"verifiedLevels"`
	DependencyLevels map[string]uint64 `json:"dependencyLevels,omitempty"`
	SlsaVersion      string            `json:"slsaVersion,omitempty"`
}

// Statement is an in-toto Statement v1 with a VSA predicate.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Predicate `json:"predicate"`

	// Chain is the verified certificate chain, leaf (the signer) first:
	// set by Verify, never encoded.
	Chain []*x509.Certificate `json:"-"`
	// Signed says when the signature was made, as far as Verify knows:
	// set by Verify, never encoded.
	Signed SignedTime `json:"-"`
}

// SignedTime is what Verify learned of when a manifest was signed.
type SignedTime struct {
	// Timestamped: a trusted RFC 3161 timestamp vouches that the signature
	// existed At, and the chain was checked then. Otherwise the chain was
	// checked at VerifyOptions.Now.
	Timestamped bool
	At          time.Time
	// TSA is the certificate of the time-stamping authority, when
	// Timestamped.
	TSA *x509.Certificate
	// Timestamps is how many timestamps the manifest carries (verified or,
	// without VerifyOptions.TSARoots, not).
	Timestamps int
}

// Option configures New.
type Option func(*newOptions)

type newOptions struct{ ts bundle.Timestamper }

// WithTimestamp countersigns the manifest's signature with ts (an RFC 3161
// TSA), so that it verifies after the signing certificate expires.
func WithTimestamp(ts bundle.Timestamper) Option {
	return func(o *newOptions) { o.ts = ts }
}

// VerifyOptions say what Verify trusts.
type VerifyOptions struct {
	// Roots are the trusted roots of the signer's chain.
	Roots []*x509.Certificate
	// TSARoots are the trusted roots of time-stamping authorities. With
	// them, every RFC 3161 timestamp the manifest carries must verify over
	// its signature, by a TSA certificate with the timeStamping EKU that
	// chains to one of them (at the timestamp's time), and state a time no
	// later than Now; the signer's chain is checked at the first
	// timestamp's time. Without them, timestamps are not read and the
	// chain is checked at Now.
	TSARoots []*x509.Certificate
	// Now is the time to check the chain at without a trusted timestamp.
	Now time.Time
	// Signers pin the signer: its certificate must be one of these
	// identities ([MatchSigner]: cn:NAME, dns:NAME, email:ADDRESS, uri:URI
	// or sha256:FINGERPRINT). Empty, any signer whose chain verifies to
	// Roots will do; pin one, since a CA issues many certificates.
	Signers []string
}

// PolicyLevel is the VSA level csv writes for a policy that passed:
// "CSV_POLICY_" and the policy name in upper case, with every character
// other than A-Z and 0-9 turned into "_" ("release-x64" gives
// "CSV_POLICY_RELEASE_X64").
func PolicyLevel(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return "CSV_POLICY_" + string(b)
}

// New returns a Sigstore bundle (JSON) holding the DSSE-signed statement of
// subjects and pred. Subjects are sorted by name; each needs a valid name
// (unique, io/fs.ValidPath) and a hex SHA-256. The predicate needs
// TimeVerified, ResourceURI, a policy URI or name with a SHA-256, and a
// result of PASSED (with levels) or FAILED. signer's key must be chain[0]'s.
func New(subjects []Subject, pred Predicate, signer crypto.Signer, chain []*x509.Certificate, opts ...Option) ([]byte, error) {
	var o newOptions
	for _, f := range opts {
		f(&o)
	}
	st := Statement{
		Type:          StatementType,
		Subject:       slices.Clone(subjects),
		PredicateType: PredicateType,
		Predicate:     pred,
	}
	slices.SortFunc(st.Subject, func(a, b Subject) int { return strings.Compare(a.Name, b.Name) })
	p := &st.Predicate
	if p.Verifier.ID == "" {
		p.Verifier.ID = VerifierID
	}
	p.TimeVerified = p.TimeVerified.UTC().Truncate(time.Second)
	if p.VerificationResult == Failed && len(p.VerifiedLevels) == 0 {
		p.VerifiedLevels = []string{string(Failed)}
	}
	if err := st.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	payload, err := json.Marshal(&st)
	if err != nil {
		return nil, fmt.Errorf("manifest: encoding: %w", err)
	}
	out, err := bundle.NewDSSE(PayloadType, payload, signer, chain, o.ts)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return out, nil
}

// Verify checks a manifest bundle offline, in this order: the bundle (see
// [bundle.VerifyDSSE] for its checks, in order: the signature, the chain to
// opts.Roots, the timestamps with opts.TSARoots); the statement, decoded
// strictly, its type, predicate type, subjects (at most MaxSubjects, valid
// unique names, a hex SHA-256 each) and predicate; then the signer, which
// must be one of opts.Signers when they are given ([ErrSigner]). It
// returns the statement, with the verified chain and when it was signed;
// the caller checks the files with [CheckFiles] (and [ExtraFiles]) and
// has [Verdict] say what the files and the recorded result amount to.
func Verify(data []byte, opts VerifyOptions) (*Statement, error) {
	var signed SignedTime
	bopts := bundle.VerifyOptions{Roots: opts.Roots, Now: opts.Now}
	if len(opts.TSARoots) > 0 {
		bopts.VerifyTimestamp = func(resp, sig []byte) (time.Time, error) {
			tok, err := timestamp.VerifyResponse(resp, sig)
			if err != nil {
				return time.Time{}, err
			}
			if err := tok.VerifyTSA(opts.TSARoots); err != nil {
				return time.Time{}, err
			}
			if signed.TSA == nil {
				signed.TSA = tok.Signer
			}
			return tok.Time, nil
		}
	}
	env, err := bundle.VerifyDSSE(data, PayloadType, bopts)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	signed.Timestamped, signed.At, signed.Timestamps = env.Timestamped, env.At, env.Timestamps
	if err := checkJSON(env.Payload); err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	var st Statement
	dec := json.NewDecoder(bytes.NewReader(env.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data after the statement", errMalformed)
	}
	if err := st.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	var leaf *x509.Certificate
	if len(env.Chain) > 0 {
		leaf = env.Chain[0]
	}
	if err := MatchSigner(leaf, opts.Signers); err != nil {
		return nil, err
	}
	st.Chain, st.Signed = env.Chain, signed
	return &st, nil
}

// check validates a statement (New's input, Verify's output).
func (st *Statement) check() error {
	if st.Type != StatementType {
		return fmt.Errorf("_type %q (want %s)", st.Type, StatementType)
	}
	if st.PredicateType != PredicateType {
		return fmt.Errorf("predicateType %q (want %s)", st.PredicateType, PredicateType)
	}
	if len(st.Subject) == 0 {
		return errors.New("no subjects")
	}
	if len(st.Subject) > MaxSubjects {
		return fmt.Errorf("%d subjects (at most %d)", len(st.Subject), MaxSubjects)
	}
	seen := make(map[string]bool, len(st.Subject))
	for i, s := range st.Subject {
		if !validName(s.Name) {
			return fmt.Errorf("subject #%d: name %q is not a relative slash path", i+1, s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("subject %q listed twice", s.Name)
		}
		seen[s.Name] = true
		if _, err := sha256Of(s); err != nil {
			return fmt.Errorf("subject %q: %w", s.Name, err)
		}
	}
	p := &st.Predicate
	switch {
	case p.Verifier.ID == "":
		return errors.New("predicate: no verifier id")
	case p.TimeVerified.IsZero():
		return errors.New("predicate: no timeVerified")
	case p.ResourceURI == "":
		return errors.New("predicate: no resourceUri")
	case p.Policy.URI == "" && p.Policy.Name == "":
		return errors.New("predicate: policy has neither uri nor name")
	}
	if d, err := hex.DecodeString(p.Policy.Digest["sha256"]); err != nil || len(d) != sha256.Size {
		return errors.New("predicate: policy digest has no valid sha256")
	}
	switch p.VerificationResult {
	case Passed:
		if len(p.VerifiedLevels) == 0 || slices.Contains(p.VerifiedLevels, string(Failed)) {
			return errors.New("predicate: a PASSED result needs verifiedLevels, and not FAILED")
		}
	case Failed:
		if !slices.Equal(p.VerifiedLevels, []string{string(Failed)}) {
			return errors.New(`predicate: a FAILED result has verifiedLevels ["FAILED"]`)
		}
	default:
		return fmt.Errorf("predicate: verificationResult %q (PASSED or FAILED)", p.VerificationResult)
	}
	return nil
}

// validName accepts local slash paths: io/fs.ValidPath (no "..", "." or
// empty elements, no leading or trailing "/"), no backslash (a separator on
// Windows) and no NUL.
func validName(name string) bool {
	return fs.ValidPath(name) && name != "." && !strings.ContainsAny(name, "\\\x00")
}

// sha256Of returns a subject's SHA-256.
func sha256Of(s Subject) ([]byte, error) {
	h, ok := s.Digest["sha256"]
	if !ok {
		return nil, errors.New("no sha256 digest")
	}
	d, err := hex.DecodeString(h)
	if err != nil || len(d) != sha256.Size || h != strings.ToLower(h) {
		return nil, fmt.Errorf("sha256 %q is not 64 lower-case hex digits", h)
	}
	return d, nil
}

// checkJSON rejects duplicate object keys (encoding/json keeps the last
// one silently, another parser may keep the first), keys that differ only
// in case, and keys that spell a statement field in another case, and
// nesting deeper than maxJSONDepth. encoding/json matches a key to a field
// case-insensitively (with Unicode simple folding: "ſubject" and
// "SUBJECT" are both the subject), so a statement holding "subject" and
// "SUBJECT" would be read by csv from one and by a case-sensitive verifier
// from the other; and a lone "Subject" is a subject to csv and nothing to
// such a verifier. Every key is compared as encoding/json folds it.
func checkJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var walk func(depth int) error
	walk = func(depth int) error {
		if depth > maxJSONDepth {
			return fmt.Errorf("nested deeper than %d", maxJSONDepth)
		}
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			keys := map[string]string{} // folded key -> key as written
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				f := foldKey(key)
				if prev, ok := keys[f]; ok {
					if prev == key {
						return fmt.Errorf("duplicate key %q", key)
					}
					return fmt.Errorf("keys %q and %q differ only in case (encoding/json reads them as one)", prev, key)
				}
				if field, ok := statementFields[f]; ok && field != key {
					return fmt.Errorf("key %q is %q in another case", key, field)
				}
				keys[f] = key
				if err := walk(depth + 1); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(depth + 1); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	return walk(0)
}

// foldKey folds a key as encoding/json does when it matches a key to a
// field: each rune to upper case of its lower case.
func foldKey(k string) string {
	return strings.Map(func(r rune) rune { return unicode.ToUpper(unicode.ToLower(r)) }, k)
}

// statementFields are the JSON names of the statement's fields (of every
// struct it holds), by their folded form.
var statementFields = func() map[string]string {
	m := map[string]string{}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			add(t.Elem())
		case reflect.Struct:
			if t == reflect.TypeFor[time.Time]() {
				return
			}
			for i := range t.NumField() {
				f := t.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name == "-" || !f.IsExported() {
					continue
				}
				if name == "" {
					name = f.Name
				}
				m[foldKey(name)] = name
				add(f.Type)
			}
		}
	}
	add(reflect.TypeFor[Statement]())
	return m
}()

// MismatchKind says how a file differs from the manifest.
type MismatchKind string

// Mismatch kinds.
const (
	// Missing: listed, but not there.
	Missing MismatchKind = "missing"
	// Changed: there, with another SHA-256.
	Changed MismatchKind = "changed"
	// Unreadable: there, but hashing it failed.
	Unreadable MismatchKind = "unreadable"
	// Extra: there, but not listed.
	Extra MismatchKind = "extra"
)

// Mismatch is one file that does not match the manifest.
type Mismatch struct {
	// Name is the slash path relative to the root.
	Name string
	Kind MismatchKind
	// Want is the manifest's SHA-256 and Got the file's (hex), where known.
	Want, Got string
	// Err is the hashing error (Missing, Unreadable).
	Err error
}

func (m Mismatch) String() string {
	switch m.Kind {
	case Changed:
		return fmt.Sprintf("%s: changed (sha256 %s, manifest %s)", m.Name, m.Got, m.Want)
	case Unreadable:
		return fmt.Sprintf("%s: unreadable: %v", m.Name, m.Err)
	}
	return fmt.Sprintf("%s: %s", m.Name, m.Kind)
}

// fileSHA256 returns the SHA-256 of the regular file name under r,
// streamed, checking ctx between chunks. r refuses a path that leaves the
// root, symbolic links included; the file is opened without blocking, so a
// FIFO in its place is refused, not waited on.
func fileSHA256(ctx context.Context, r *os.Root, name string, buf []byte) ([]byte, error) {
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", st.Mode().Type())
	}
	h := sha256.New()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			return h.Sum(nil), nil
		} else if err != nil {
			return nil, err
		}
	}
}

// resolveWithin resolves the symbolic links of name under root and returns
// the path it names relative to root, if it lies under root.
func resolveWithin(root, name string) (string, bool) {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", false
	}
	target, err := filepath.EvalSymlinks(filepath.Join(root, name))
	if err != nil {
		return "", false
	}
	rel, err := filepath.Rel(realRoot, target)
	if err != nil || !filepath.IsLocal(rel) {
		return "", false
	}
	return rel, true
}

// CheckFiles hashes every subject of st under root and returns the files
// that do not match, in subject order: a file that does not exist is
// Missing; one that cannot be read, is not a regular file (a FIFO, a
// directory), or lies outside root (through a symbolic link; a link that
// stays under root is followed, absolute or not) is
// Unreadable; a different digest is Changed. st should come from Verify.
// Files under root that the manifest does not list are reported by
// [ExtraFiles]. When ctx is done, the files left are Unreadable with its
// error.
func CheckFiles(ctx context.Context, st *Statement, root string) []Mismatch {
	var out []Mismatch
	buf := make([]byte, 256<<10) // one for all the files
	r, rootErr := os.OpenRoot(root)
	if rootErr == nil {
		defer r.Close()
	}
	for _, s := range st.Subject {
		want, err := sha256Of(s)
		if err != nil || !validName(s.Name) || !filepath.IsLocal(filepath.FromSlash(s.Name)) {
			// Verify rules these out; a hand-made Statement may not.
			out = append(out, Mismatch{Name: s.Name, Kind: Unreadable, Err: fmt.Errorf("%w: bad subject", errMalformed)})
			continue
		}
		var got []byte
		if err = rootErr; err == nil {
			got, err = fileSHA256(ctx, r, filepath.FromSlash(s.Name), buf)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				// os.Root refuses an absolute link even into the root (a
				// link csv sign followed): resolve it, and if it stays
				// under the root, open what it names through the root.
				if rel, ok := resolveWithin(root, filepath.FromSlash(s.Name)); ok {
					got, err = fileSHA256(ctx, r, rel, buf)
				}
			}
		}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, Mismatch{Name: s.Name, Kind: Missing, Want: hex.EncodeToString(want), Err: err})
		case err != nil:
			out = append(out, Mismatch{Name: s.Name, Kind: Unreadable, Want: hex.EncodeToString(want), Err: err})
		case !bytes.Equal(got, want):
			out = append(out, Mismatch{Name: s.Name, Kind: Changed, Want: hex.EncodeToString(want), Got: hex.EncodeToString(got)})
		}
	}
	return out
}

// ExtraFiles returns, as Extra mismatches, the names in present (slash paths
// relative to the root: the binaries found there now) that st does not
// list, in the order given.
func ExtraFiles(st *Statement, present []string) []Mismatch {
	listed := make(map[string]bool, len(st.Subject))
	for _, s := range st.Subject {
		listed[s.Name] = true
	}
	var out []Mismatch
	for _, name := range present {
		if !listed[name] {
			out = append(out, Mismatch{Name: name, Kind: Extra})
		}
	}
	return out
}

// The verdicts of [Verdict] other than a pass.
var (
	// ErrMismatch: files do not match the manifest (missing, changed,
	// unreadable, or not listed).
	ErrMismatch = errors.New("manifest: files do not match the manifest")
	// ErrNotPassed: the manifest records a build that did not pass its
	// policy.
	ErrNotPassed = errors.New("manifest: the manifest records a build that did not pass")
)

// Verdict says what a verified statement and the mismatches of its files
// ([CheckFiles], [ExtraFiles]) amount to, as csv verify-manifest reports
// it: files that do not match, whatever result the statement records
// ([ErrMismatch], saying how many of the statement's files); else a
// statement that records a build that did not pass ([ErrNotPassed]);
// else nil: every file matches a build that passed.
func Verdict(st *Statement, bad []Mismatch) error {
	if len(bad) > 0 {
		return fmt.Errorf("%w: %d of %d files do not match", ErrMismatch, len(bad), len(st.Subject))
	}
	if st.Predicate.VerificationResult != Passed {
		return ErrNotPassed
	}
	return nil
}

// ErrSigner: the manifest verifies, but its signer is none of the
// identities the caller pinned. (Not signing.ErrSigner, a key and chain
// that cannot make a signature: this one is about who made it.)
var ErrSigner = errors.New("manifest: signed by another signer")

// The kinds of signer identity MatchSigner takes: a name of one type, or
// the certificate's fingerprint. Each names its type, so that a pinned
// email address is not met by a certificate whose free-form common name
// happens to read the same.
var signerKinds = []string{"cn", "dns", "email", "uri", "sha256"}

// CheckSignerID reports whether id is a signer identity MatchSigner takes:
// "cn:NAME" (the subject common name), "dns:NAME", "email:ADDRESS",
// "uri:URI" (subject alternative names), or "sha256:" and the
// certificate's 64-hex-digit SHA-256 fingerprint. The kind is case
// insensitive; the value is compared exactly (the fingerprint's hex in any
// case).
func CheckSignerID(id string) error {
	kind, val, ok := strings.Cut(id, ":")
	kind = strings.ToLower(kind)
	switch {
	case !ok || !slices.Contains(signerKinds, kind):
		return fmt.Errorf("signer %q: want cn:NAME, dns:NAME, email:ADDRESS, uri:URI or sha256:FINGERPRINT", id)
	case val == "":
		return fmt.Errorf("signer %q: empty %s", id, kind)
	case kind == "sha256":
		if b, err := hex.DecodeString(val); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("signer %q: a SHA-256 fingerprint is 64 hex digits", id)
		}
	}
	return nil
}

// MatchSigner checks that leaf, the manifest's verified signer certificate,
// is one of ids (see [CheckSignerID]). A chain to a trusted root says the
// signer is someone the CA vouched for; this says which one (a corporate CA
// issues many certificates). With no ids, any signer matches.
func MatchSigner(leaf *x509.Certificate, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if leaf == nil {
		return fmt.Errorf("%w: no signer certificate", ErrSigner)
	}
	fp := sha256.Sum256(leaf.Raw)
	cns := commonNames(leaf)
	for _, id := range ids {
		if err := CheckSignerID(id); err != nil {
			return fmt.Errorf("%w: %w", ErrSigner, err)
		}
		kind, val, _ := strings.Cut(id, ":")
		var names []string
		switch strings.ToLower(kind) {
		case "sha256":
			if strings.EqualFold(val, hex.EncodeToString(fp[:])) {
				return nil
			}
		case "cn":
			// crypto/x509 keeps the last of several CNs: a subject
			// "CN=Evil, CN=Build Signing" would meet cn:Build Signing.
			// A cn: pin names one common name, so the subject must hold
			// exactly one.
			if len(cns) == 1 {
				names = cns
			}
		case "dns":
			names = leaf.DNSNames
		case "email":
			names = leaf.EmailAddresses
		case "uri":
			for _, u := range leaf.URIs {
				names = append(names, u.String())
			}
		}
		if slices.Contains(names, val) {
			return nil
		}
	}
	if len(cns) > 1 {
		return fmt.Errorf("%w: the signer certificate (sha256:%x) has %d common names %q: a cn: pin cannot tell which one is meant (pin its sha256 fingerprint); it is none of %q",
			ErrSigner, fp, len(cns), cns, ids)
	}
	return fmt.Errorf("%w: %q (sha256:%x) is none of %q", ErrSigner, leaf.Subject.CommonName, fp, ids)
}

// oidCommonName is id-at-commonName.
var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// commonNames returns every common name of a certificate's subject, in
// order (crypto/x509's Subject.CommonName is only the last).
func commonNames(c *x509.Certificate) []string {
	var out []string
	for _, a := range c.Subject.Names {
		if a.Type.Equal(oidCommonName) {
			v, _ := a.Value.(string)
			out = append(out, v)
		}
	}
	if len(out) == 0 && c.Subject.CommonName != "" {
		// A certificate built in memory, not parsed: Names is empty.
		out = append(out, c.Subject.CommonName)
	}
	return out
}
