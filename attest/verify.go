// Package attest verifies a host's measured boot: it replays the TCG event
// log (package attest/eventlog), verifies TPM2 quotes over the replayed PCRs
// with the host's attestation key, extracts the boot state from the events
// the quotes cover (Secure Boot and its keys, the boot components and the
// authorities that admitted them, debugging, Windows' boot configuration,
// the kernel command line), and judges it with an attestation [Policy]
// whose boot components are judged by a code integrity policy
// (package cipolicy), exactly as a build's binaries are.
//
// The steps are separate: [Verify] checks the evidence and returns a
// [*Verified] (which nothing else can build); [Evaluate] judges a Verified
// with a Policy and returns a [*Result] with the verdict, every check, the
// claims and the workarounds used. [NewEAR] states a Result as an IETF
// RATS attestation result (EAR) for relying parties. [Inspect] parses a
// log without a quote, for people: nothing it says is verified.
//
// # Security
//
// Everything the host sends is untrusted: the event log, the quotes and
// their signatures, the PCR values. The verifier trusts the attestation key
// the caller gives (or, for an AK certificate, the roots the caller gives),
// and the nonce it chose. Only events of PCRs that a verified quote covers
// and that the log replays to are used for any decision; of those, only
// events whose data the digest binds (variables, actions, separators,
// tagged events) are read for their data. An event's type is bound by
// nothing either: a host can relabel any event (but EV_NO_ACTION, which
// the replay skips) without changing a PCR. So no decision rests on an
// event being absent because no event of some type was found: every event
// of PCRs 2 and 4 is a boot component unless its digest is that of a
// separator or a known action, whatever its type; every event of PCRs 12
// and 13 (and 14, for Windows) must be a readable WBCL event; PCR 7 admits
// only the types the specification allows, each read strictly. Boot
// components are identified by their Authenticode digest (the event's
// digest) and by their position in PCR 2 or 4, never by the device path
// the log gives, which nothing binds.
// Every parser is capped, bounds-checked, and recovers from panics into
// errors. Whatever cannot be established is a failed check, with the reason.
// SHA-1 quotes and banks, and quotes without a nonce, are refused unless
// the caller opts in (VerifyOptions.AllowSHA1Unsafe,
// AllowEmptyNonceUnsafe).
package attest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/signing"
)

// Evidence is what a host sends to prove its boot.
type Evidence struct {
	// EventLog is the raw TCG event log.
	EventLog []byte
	// Quotes are one or more TPM2 quotes (one per bank, say) over the PCRs.
	Quotes []Quote
	// PCRs, optional, are the PCR values read from the TPM with the quotes.
	// The quotes' PCR digests bind them. Without them, the quoted PCRs must
	// all be replayable from the log; with them, a quoted PCR no event of
	// the log extends (the IMA PCR 10, say) may hold any value.
	PCRs eventlog.PCRs
}

// VerifyOptions configure Verify. The zero value verifies nothing: AK and
// Nonce are required.
type VerifyOptions struct {
	// AK is the attestation key the quotes must be signed with.
	AK *AK
	// Nonce is what the verifier asked the host to put in its quotes.
	Nonce []byte
	// Roots are the trusted CA certificates an AK certificate must chain
	// to, through Intermediates.
	Roots, Intermediates []*signing.Certificate
	// Now returns the time the AK certificate chain must be valid at
	// (default time.Now).
	Now func() time.Time
	// AllowSHA1Unsafe accepts quotes signed with SHA-1 and quotes of the
	// SHA1 bank (TPMs and Windows versions that only have SHA1). SHA-1
	// collisions are practical: a host that can choose what it measures
	// can make two measurements look alike.
	AllowSHA1Unsafe bool
	// AllowEmptyNonceUnsafe accepts an empty Nonce: a quote without one can
	// be replayed by anyone who saw it.
	AllowEmptyNonceUnsafe bool
}

// Check is one check and its outcome.
type Check struct {
	// Name identifies the check ("quote[1].signature", "policy.secure-boot").
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	// Detail says what was found: why it failed, or what passed.
	Detail string `json:"detail"`
}

func (c Check) String() string {
	s := "pass"
	if !c.Passed {
		s = "FAIL"
	}
	return fmt.Sprintf("%s %s: %s", s, c.Name, c.Detail)
}

// ErrInvalidEvidence is wrapped by errors about evidence that cannot be
// read at all: a log that does not parse, a quote that is not a
// TPMS_ATTEST.
var ErrInvalidEvidence = errors.New("attest: invalid evidence")

// ErrNotVerified is matched by a *VerificationError.
var ErrNotVerified = errors.New("attest: evidence not verified")

// VerificationError is returned when a check fails. Checks lists every
// check made, passed and failed.
type VerificationError struct {
	Checks []Check
	// Workarounds are those the replay applied before a check failed.
	Workarounds []eventlog.Applied
}

func (e *VerificationError) Error() string {
	var failed []string
	for _, c := range e.Checks {
		if !c.Passed {
			failed = append(failed, c.Name+": "+c.Detail)
		}
	}
	return "attest: evidence not verified: " + strings.Join(failed, "; ")
}

// Is makes errors.Is(err, ErrNotVerified) true.
func (e *VerificationError) Is(target error) bool { return target == ErrNotVerified }

// Verified is evidence whose checks all passed. Only Verify makes one.
type Verified struct {
	log        *eventlog.Log
	replay     *eventlog.Replay
	matched    *eventlog.Matched
	quoted     eventlog.PCRs
	quotes     []QuoteInfo
	checks     []Check
	akChain    []*signing.Certificate
	boot       *BootState
	workaround []eventlog.Applied
	// at is when the evidence was verified (VerifyOptions.Now): dated
	// policy requirements (CertRef.From) are judged at this time.
	at time.Time
}

// Time returns when the evidence was verified (VerifyOptions.Now, else the
// clock): the time Evaluate judges dated policy requirements at.
func (v *Verified) Time() time.Time { return v.at }

// Checks returns the checks Verify made, all passed.
func (v *Verified) Checks() []Check { return append([]Check(nil), v.checks...) }

// Quotes returns what the verified quotes say.
func (v *Verified) Quotes() []QuoteInfo { return append([]QuoteInfo(nil), v.quotes...) }

// PCRs returns the quoted PCR values the log accounts for, per bank.
func (v *Verified) PCRs() eventlog.PCRs { return v.matched.PCRs }

// QuotedPCRs returns every quoted PCR value, per bank, including those of
// Unlogged PCRs.
func (v *Verified) QuotedPCRs() eventlog.PCRs { return v.quoted }

// Unlogged returns the quoted PCRs that hold measurements the log does not
// show.
func (v *Verified) Unlogged() []eventlog.PCRRef {
	return append([]eventlog.PCRRef(nil), v.matched.Unlogged...)
}

// BootState returns the boot state established from the covered events.
func (v *Verified) BootState() *BootState { return v.boot }

// Workarounds returns the workarounds used, by the replay and the boot
// state extraction.
func (v *Verified) Workarounds() []eventlog.Applied {
	return append([]eventlog.Applied(nil), v.workaround...)
}

// AKChain returns the AK certificate's chain to its root, if the AK is a
// certificate.
func (v *Verified) AKChain() []*signing.Certificate { return v.akChain }

// Log returns the parsed log. Its events are claims: use
// [Verified.EventBanks] to tell which a quote covers.
func (v *Verified) Log() *eventlog.Log { return v.log }

// EventBanks returns the banks through which a verified quote covers the
// event: banks whose PCR the log replays to and in which the event has a
// digest. Empty for an event no quote covers.
func (v *Verified) EventBanks(e *eventlog.Event) []eventlog.HashAlg {
	return coveringBanks(v.log, v.matched, e)
}

func coveringBanks(l *eventlog.Log, m *eventlog.Matched, e *eventlog.Event) []eventlog.HashAlg {
	if !e.Extended() {
		return nil
	}
	var out []eventlog.HashAlg
	for _, a := range l.Algs {
		if m.Verified(a, int(e.PCR)) && e.Digest(a) != nil {
			out = append(out, a)
		}
	}
	return out
}

// Verify checks evidence. Checks, in order:
//
//  1. ak: an AK certificate chains to one of opts.Roots, every certificate
//     valid at opts.Now (a TPMT_PUBLIC or public key AK is trusted as
//     given; ParseAK already refused a TPM key that is not a restricted
//     signing key).
//  2. For each quote N, from 1:
//     quote[N].signature: the TPMT_SIGNATURE is RSASSA, RSAPSS or ECDSA
//     with SHA-256, SHA-384 or SHA-512 (SHA-1 with AllowSHA1Unsafe), the
//     scheme the AK allows, and verifies over the TPMS_ATTEST with the AK;
//     quote[N].attest: the TPMS_ATTEST's magic is TPM_GENERATED_VALUE and
//     its type TPM_ST_ATTEST_QUOTE;
//     quote[N].nonce: its extraData equals opts.Nonce;
//     quote[N].pcrs: its PCR selection names known banks and PCRs 0-23, and
//     its PCR digest, hashed with the signing hash whatever the bank,
//     equals the digest of the PCR values given in the evidence, or else of
//     replayed values of the log (trying the workarounds where the strict
//     replay does not give it). Without AllowSHA1Unsafe a SHA1 bank is
//     checked but vouches for no event.
//  3. replay: every quoted PCR that the log extends replays to its quoted
//     value (eventlog.Replay.Match); quoted PCRs the log does not extend
//     are either at their initial value or reported unlogged.
//
// Evidence that cannot be read (a log that does not parse, a quote or
// signature that does not decode, no quote) is an error wrapping
// ErrInvalidEvidence; missing options are errors too. A failed check is a
// *VerificationError listing every check. Otherwise Verify extracts the
// boot state from the covered events and returns the Verified.
//
// Every step is linear in the evidence (the log is capped by
// package eventlog, the quotes by the caller). Verify checks ctx between
// the steps and returns its error (wrapped) once it is done.
func Verify(ctx context.Context, ev *Evidence, opts VerifyOptions) (v *Verified, err error) {
	defer func() {
		// Every parser is bounds-checked; this turns a bug into a refusal,
		// not a crash of the verifier.
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("%w: internal error while verifying: %w", ErrInvalidEvidence, panicerr.New(r))
		}
	}()
	switch {
	case opts.AK == nil:
		return nil, errors.New("attest: no attestation key given")
	case len(opts.Nonce) == 0 && !opts.AllowEmptyNonceUnsafe:
		return nil, errors.New("attest: no nonce given: a quote without a fresh nonce proves nothing about now (AllowEmptyNonceUnsafe accepts it)")
	case ev == nil || len(ev.Quotes) == 0:
		return nil, fmt.Errorf("%w: no quote", ErrInvalidEvidence)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	stopped := func() error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("attest: verification stopped: %w", err)
		}
		return nil
	}
	if err := stopped(); err != nil {
		return nil, err
	}
	log, perr := eventlog.Parse(ev.EventLog)
	if err = perr; err != nil {
		return nil, fmt.Errorf("%w: event log: %w", ErrInvalidEvidence, err)
	}
	if err := stopped(); err != nil {
		return nil, err
	}
	parsed := make([]*parsedQuote, len(ev.Quotes))
	for i, q := range ev.Quotes {
		if parsed[i], err = parseQuote(q); err != nil {
			return nil, fmt.Errorf("%w: quote %d: %v", ErrInvalidEvidence, i+1, err)
		}
	}
	v = &Verified{log: log, replay: log.Replay(), at: now()}
	if err := stopped(); err != nil {
		return nil, err
	}
	add := func(name string, err error, ok string) bool {
		c := Check{Name: name, Passed: err == nil, Detail: ok}
		if err != nil {
			c.Detail = err.Error()
		}
		v.checks = append(v.checks, c)
		return err == nil
	}
	// 1. The AK.
	switch ak := opts.AK; ak.Source {
	case AKFromCertificate:
		chain, err := ak.verifyChain(opts.Roots, opts.Intermediates, now())
		if add("ak", err, fmt.Sprintf("AK certificate %q chains to trusted root %q", ak.Certificate.CommonName(), lastName(chain))) {
			v.akChain = chain
		}
	default:
		add("ak", nil, fmt.Sprintf("AK given as %s (%s), trusted as given", ak.Source, keyDesc(ak.Public)))
	}
	// 2. Each quote.
	want := eventlog.PCRs{}
	for i, p := range parsed {
		name := fmt.Sprintf("quote[%d]", i+1)
		if !add(name+".signature", p.checkSignature(ev.Quotes[i].Attest, opts.AK, opts.AllowSHA1Unsafe),
			"signature verifies with the AK") {
			continue
		}
		v.checks[len(v.checks)-1].Detail = fmt.Sprintf("%s-%s signature verifies with the AK", p.scheme, p.hash)
		if !add(name+".attest", p.checkStructure(), "TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE") {
			continue
		}
		add(name+".nonce", p.checkNonce(opts.Nonce), fmt.Sprintf("extraData is the nonce (%d bytes)", len(opts.Nonce)))
		sels, err := p.selections()
		detail := ""
		if err == nil {
			var vals eventlog.PCRs
			if vals, err = p.matchDigest(sels, ev.PCRs, v.replay); err == nil {
				detail = fmt.Sprintf("PCR digest (%s) matches %s", p.hash, selList(sels))
				if vals[eventlog.SHA1] != nil && !opts.AllowSHA1Unsafe {
					// Consistent, but SHA-1 PCRs vouch for nothing.
					delete(vals, eventlog.SHA1)
					detail += "; the SHA1 bank is not used (AllowSHA1Unsafe not set)"
				}
				if err = mergeWant(want, vals); err == nil {
					v.quotes = append(v.quotes, p.quoteInfo(sels))
				}
			}
		}
		add(name+".pcrs", err, detail)
	}
	// 3. The replay of every quoted PCR.
	if err := stopped(); err != nil {
		return nil, err
	}
	m, err := v.replay.Match(want)
	v.matched, v.quoted = m, want
	v.workaround = m.Applied
	detail := fmt.Sprintf("the log replays to %d quoted PCR values", countPCRs(m.PCRs))
	if len(m.Unlogged) > 0 {
		detail += fmt.Sprintf("; %d quoted PCRs hold measurements the log does not show (%s): nothing of theirs is used", len(m.Unlogged), refList(m.Unlogged))
	}
	add("replay", err, detail)
	for _, c := range v.checks {
		if !c.Passed {
			return nil, &VerificationError{Checks: v.checks, Workarounds: v.workaround}
		}
	}
	if err := stopped(); err != nil {
		return nil, err
	}
	v.boot = extractBootState(&view{log: log, matched: m})
	v.workaround = append(v.workaround, v.boot.Workarounds...)
	if err := stopped(); err != nil {
		return nil, err
	}
	return v, nil
}

// mergeWant adds a quote's values, refusing two quotes that disagree.
func mergeWant(want, vals eventlog.PCRs) error {
	for a, bank := range vals {
		for p, v := range bank {
			if v == nil {
				continue
			}
			if old := want.Get(a, p); old != nil && string(old) != string(v) {
				return fmt.Errorf("two quotes disagree on %s PCR %d", a, p)
			}
			want.Set(a, p, v)
		}
	}
	return nil
}

func lastName(chain []*signing.Certificate) string {
	if len(chain) == 0 {
		return ""
	}
	return chain[len(chain)-1].CommonName()
}

func countPCRs(p eventlog.PCRs) int {
	n := 0
	for _, b := range p {
		for _, v := range b {
			if v != nil {
				n++
			}
		}
	}
	return n
}

func selList(sels []Selection) string {
	if len(sels) == 0 {
		return "no PCRs"
	}
	var parts []string
	for _, s := range sels {
		parts = append(parts, s.String())
	}
	return strings.Join(parts, ", ")
}

func refList(refs []eventlog.PCRRef) string {
	var parts []string
	for _, r := range refs {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ", ")
}

// pcrList writes PCR indexes compactly: "0-9, 14".
func pcrList(pcrs []int) string {
	p := append([]int(nil), pcrs...)
	sort.Ints(p)
	var parts []string
	for i := 0; i < len(p); {
		j := i
		for j+1 < len(p) && p[j+1] == p[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", p[i], p[j]))
		} else {
			parts = append(parts, fmt.Sprint(p[i]))
		}
		i = j + 1
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// keyDesc describes a public key: "RSA-2048", "ECC P-256".
func keyDesc(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECC " + k.Curve.Params().Name
	}
	return fmt.Sprintf("%T", pub)
}
