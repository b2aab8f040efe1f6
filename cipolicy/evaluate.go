package cipolicy

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/codesignval/csv/signing"
)

// Subject is what the policy judges: the facts about one piece of code.
type Subject struct {
	// Path is slash-separated and relative to the validated root; path
	// globs match against it.
	Path     string
	Format   Format
	Scenario Scenario
	Digests  Digests
	// Signed says the file carries a signature (a PE certificate table, an
	// appended ELF signature), whether or not it verifies.
	Signed bool
	// Signatures are the file's signatures as package signing verified
	// them; only Verified ones can match a signer rule. Nil when the caller
	// did not verify signatures (Needs says when it must).
	Signatures []*signing.Signature
	// Attributes are the PE version resource's strings, nil if the file has
	// none or they were not read (Needs says when they must be).
	Attributes *FileAttributes
	// Problem, if set, is why the subject could not be inspected (unreadable,
	// truncated, malformed). Such a subject is always blocked.
	Problem error
	// Partial says the caller established the facts of [Needs] without its
	// Later part (the first read of a two-phase inspection): Evaluate does
	// not fail closed on a deferred fact that is absent, and says, with
	// [Decision.Incomplete], when the subject is blocked but the deferred
	// facts could still admit it. Without Partial every fact a rule in
	// scope needs must be present (Evaluate fails closed on any absent).
	Partial bool
	// Decompressed says the subject is the content of a single compressed
	// file (x.ko.xz's x.ko): the kernel reads a compressed module or
	// firmware file as stored, so IPE's fs-verity properties under the
	// operations that read it so are the compressed file's, which csv does
	// not judge (they are unknown: an allow rule on them admits nothing,
	// a deny rule blocks).
	Decompressed bool
	// Relocatable says the subject is a relocatable ELF file (ET_REL): the
	// kernel executes none (execve takes ET_EXEC and ET_DYN only), and
	// loads one as a kernel module whatever its name, so IPE judges it
	// under KMODULE.
	Relocatable bool
}

// Verdict is the outcome for a subject.
type Verdict string

// Verdicts.
const (
	Allowed Verdict = "allowed"
	Blocked Verdict = "blocked"
)

// ReasonKind classifies a decision; reports map kinds to rule ids.
type ReasonKind string

// Reason kinds.
const (
	// KindAllowedByHash: an allow hash rule matched.
	KindAllowedByHash ReasonKind = "allowed-by-hash"
	// KindAllowedBySigner: an allow signer rule matched a verified signature.
	KindAllowedBySigner ReasonKind = "allowed-by-signer"
	// KindAllowedByFile: an allow file attribute rule matched.
	KindAllowedByFile ReasonKind = "allowed-by-file-attributes"
	// KindDenied: a deny rule matched.
	KindDenied ReasonKind = "denied"
	// KindUnsigned: no rule allows the subject and it carries no signature.
	KindUnsigned ReasonKind = "unsigned"
	// KindNotAllowed: the subject is signed but no rule allows it.
	KindNotAllowed ReasonKind = "not-allowed"
	// KindMalformed: the subject could not be read or parsed.
	KindMalformed ReasonKind = "malformed"
	// KindCatalog: a security catalog whose signature verifies, which
	// hosts do not run and which admits its members (package csv).
	KindCatalog ReasonKind = "catalog"
	// KindAllowedByRule: an IPE rule whose properties are neither a
	// digest nor a signature (op=EXECUTE boot_verified=TRUE) allowed it.
	KindAllowedByRule ReasonKind = "allowed-by-rule"
	// KindAllowedByDefault: no IPE rule matched, and the policy's
	// DEFAULT allows.
	KindAllowedByDefault ReasonKind = "allowed-by-default"
	// KindNotEnforced: the policy does not judge subjects of this kind
	// (a WDAC policy with Disabled:Script Enforcement, a script): allowed.
	KindNotEnforced ReasonKind = "not-enforced"
)

// Decision is the policy's judgement of one subject.
type Decision struct {
	Verdict Verdict
	// Enforced is false when the deciding policy only audits: a blocked
	// verdict is then reported but not enforced.
	Enforced bool
	Kind     ReasonKind
	// Policy is the deciding policy's Ref, Rule the id of the deciding rule
	// ("" when no rule matched).
	Policy string
	Rule   string
	// Signature is the index (into Subject.Signatures) of the signature a
	// signer rule matched, or -1.
	Signature int
	Reason    string
	// Incomplete says the subject (a Partial one) is blocked, by no deny
	// rule, while facts it lacks, which only allow rules compare (Needs'
	// Later part), could still admit it: the caller establishes them and
	// judges the subject again. The decision is then not the verdict.
	Incomplete bool
}

// Allowed reports whether the subject may run.
func (d Decision) Allowed() bool { return d.Verdict == Allowed }

// Fails reports whether the decision should fail a CI job: blocked and
// enforced.
func (d Decision) Fails() bool { return d.Verdict == Blocked && d.Enforced }

// SetOptions configure a Set. The zero value is the policies' own settings,
// judged at the current time.
type SetOptions struct {
	// Mode, if set, overrides every policy's mode.
	Mode Mode
	// Now returns the time signer rules check certificate validity at
	// (default time.Now).
	Now func() time.Time
	// TrustedRoots are root certificates the operator supplies (--certs):
	// the only certificates WDAC well-known root references can match.
	TrustedRoots []*signing.Certificate
	// IPE is what judging with IPE policies needs to know of the host.
	IPE IPEOptions
}

// Set is one or more policies that judge together, as Windows combines
// several active policies: every base policy must allow a subject, and each
// supplemental policy adds its allow rules to its base.
type Set struct {
	groups   []*group
	opts     SetOptions
	policies []*Policy
	trusted  map[[32]byte]bool
	// needs is Needs per format when no rule is scoped (the same for every
	// path and scenario), nil otherwise.
	needs map[Format]Needs
}

func (s *Set) isTrusted(c *signing.Certificate) bool { return s.trusted[c.SHA256] }

type group struct {
	base *Policy
	mode Mode
	// hash indexes hash rules by (algorithm, digest) for O(1) matching;
	// others holds every other rule, scanned in order.
	denyHash, allowHash     map[hashKey][]*compiledRule
	denyOthers, allowOthers []*compiledRule
	// needs holds, per format, what unscoped rules need of every subject of
	// that format; scoped holds the rules (and exceptions) limited to paths
	// or scenarios, whose needs only subjects in scope have.
	needs  map[Format]ruleNeeds
	scoped []*compiledRule
	// ipe judges with the base policy's IPE rules (first match wins)
	// instead of the rules above; nil for other policies.
	ipe *ipeGroup
}

type hashKey struct {
	alg HashAlgorithm
	sum string
}

type compiledRule struct {
	*Rule
	policy *Policy
	order  int
	except []*compiledRule
	// broad: the rule matches at least as much as Windows would (deny
	// rules, and the exceptions of allow rules, which take files away from
	// an allow); otherwise at most as much (allow rules, and the exceptions
	// of deny rules).
	broad bool
	// exception: the rule is one of an allow or deny rule's exceptions.
	exception bool
	// alt is a second digest the rule's hash value is compared with
	// (altDigest), "" if none.
	alt HashAlgorithm
}

// altDigest is the second digest a SiPolicy hash rule is compared with
// when the rule must match at least as much as Windows (broad: deny rules,
// the exceptions of allow rules): the whole-image hash of the same length
// for a rule New-CIPolicy names a first-page hash, the first-page hash of
// the same length for any other. Windows reads no FriendlyName: it
// compares a hash rule's value with whichever hash it computed for the
// file (the first-page hash of a file whose signature carries page hashes,
// the image hash of any other), so a rule named "Hash Page" whose value is
// a file's image hash denies that file, and a rule named otherwise whose
// value is a first-page hash (Microsoft's recommended block list names
// many "Powershell N", of both kinds) denies the file of that first page.
func altDigest(p *Policy, r *Rule, broad bool) HashAlgorithm {
	if !broad || p.Format != "sipolicy" || r.Hash == nil || r.Unsupported != "" {
		return ""
	}
	switch r.Hash.Algorithm {
	case PageSHA256:
		return AuthenticodeSHA256
	case PageSHA1:
		return AuthenticodeSHA1
	case AuthenticodeSHA256:
		return PageSHA256
	case AuthenticodeSHA1:
		return PageSHA1
	}
	return ""
}

// ErrPolicySet is wrapped by errors about how policies combine.
var ErrPolicySet = errors.New("cipolicy: invalid policy set")

// NewSet combines policies. Every supplemental policy must name a base
// policy of the set.
func NewSet(opts SetOptions, policies ...*Policy) (*Set, error) {
	if opts.Mode != "" && opts.Mode != Enforce && opts.Mode != Audit {
		return nil, fmt.Errorf("%w: unknown mode %q", ErrPolicySet, opts.Mode)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Set{opts: opts, policies: policies, trusted: map[[32]byte]bool{}}
	for _, c := range opts.TrustedRoots {
		s.trusted[c.SHA256] = true
	}
	byID := map[string]*group{}
	for _, p := range policies {
		if p.Type == Supplemental || p.Type == AppIDTagging {
			continue
		}
		if _, dup := byID[p.ID]; dup {
			return nil, fmt.Errorf("%w: two base policies have the id %q (%s)", ErrPolicySet, p.ID, p.Source)
		}
		g := &group{base: p, mode: p.Mode, needs: map[Format]ruleNeeds{},
			denyHash: map[hashKey][]*compiledRule{}, allowHash: map[hashKey][]*compiledRule{}}
		if opts.Mode != "" {
			g.mode = opts.Mode
		}
		if p.IPE != nil {
			if line := p.IPE.ReadsBootVerified(); line > 0 && opts.IPE.BootVerified == nil {
				return nil, fmt.Errorf("%w (%s:%d): whether the host reads a file from the initramfs its boot loader verified cannot be told from the file; say it with csv validate --ipe-boot-verified=true or false",
					ErrIPEBootVerified, p.Source, line)
			}
			g.ipe = newIPEGroup(p.IPE)
			for _, f := range Formats {
				g.needs[f] = g.ipe.needs(f)
			}
		}
		byID[p.ID] = g
		s.groups = append(s.groups, g)
	}
	if len(s.groups) == 0 {
		if slices.ContainsFunc(policies, func(p *Policy) bool { return p.Type == AppIDTagging }) {
			return nil, fmt.Errorf("%w: no base policy (only supplemental policies and AppID tagging policies, which judge nothing, were given)", ErrPolicySet)
		}
		return nil, fmt.Errorf("%w: no base policy (only supplemental policies were given)", ErrPolicySet)
	}
	order := 0
	for _, p := range policies {
		if p.Type == AppIDTagging {
			continue // tags authorize nothing
		}
		g := byID[p.ID]
		if p.IPE != nil && p.Type == Supplemental {
			return nil, fmt.Errorf("%w: IPE policy %q (%s) cannot be supplemental", ErrPolicySet, p.Ref(), p.Source)
		}
		if p.Type == Supplemental {
			g = byID[p.BaseID]
			if g != nil && g.ipe != nil {
				return nil, fmt.Errorf("%w: supplemental policy %q (%s) extends IPE policy %q (%s): IPE has no supplemental policies",
					ErrPolicySet, p.Ref(), p.Source, g.base.Ref(), g.base.Source)
			}
			if g == nil {
				return nil, fmt.Errorf("%w: supplemental policy %q (%s) extends base policy %q, which is not among the policies given",
					ErrPolicySet, p.Ref(), p.Source, p.BaseID)
			}
			if !supplementalsAllowed(g.base) {
				// Windows applies no supplemental policy to such a base:
				// its allow rules must not admit anything here either.
				return nil, fmt.Errorf("%w: supplemental policy %q (%s) extends base policy %q (%s), which does not set option %q: Windows does not apply it",
					ErrPolicySet, p.Ref(), p.Source, g.base.Ref(), g.base.Source, OptionAllowSupplemental)
			}
		}
		for i := range p.Rules {
			r := &p.Rules[i]
			if p.Type == Supplemental && r.Action == Deny {
				// Windows ignores deny rules in supplemental policies; the
				// loaders refuse them, so this is a programming error.
				return nil, fmt.Errorf("%w: supplemental policy %q has deny rule %q", ErrPolicySet, p.Ref(), r.ID)
			}
			cr := &compiledRule{Rule: r, policy: p, order: order, broad: r.Action == Deny}
			cr.alt = altDigest(p, r, cr.broad)
			for j := range r.Except {
				x := &compiledRule{Rule: &r.Except[j], policy: p, order: order, broad: r.Action != Deny, exception: true}
				x.alt = altDigest(p, x.Rule, x.broad)
				cr.except = append(cr.except, x)
			}
			g.add(cr)
			order++
		}
	}
	if !slices.ContainsFunc(s.groups, func(g *group) bool { return len(g.scoped) > 0 }) {
		s.needs = map[Format]Needs{}
		for _, f := range Formats {
			s.needs[f] = s.ruleNeeds("", f, "").split()
		}
	}
	return s, nil
}

func (g *group) add(r *compiledRule) {
	if r.Hash != nil && r.Unsupported == "" {
		k := hashKey{r.Hash.Algorithm, string(r.Hash.Value)}
		if r.Action == Deny {
			g.denyHash[k] = append(g.denyHash[k], r)
			if r.alt != "" {
				ka := hashKey{r.alt, string(r.Hash.Value)}
				g.denyHash[ka] = append(g.denyHash[ka], r)
			}
		} else {
			g.allowHash[k] = append(g.allowHash[k], r)
		}
	} else if r.Action == Deny {
		g.denyOthers = append(g.denyOthers, r)
	} else {
		g.allowOthers = append(g.allowOthers, r)
	}
	for _, x := range append([]*compiledRule{r}, r.except...) {
		if len(x.Paths) > 0 || len(x.Scenarios) > 0 || len(r.Paths) > 0 || len(r.Scenarios) > 0 {
			g.scoped = append(g.scoped, x)
			continue
		}
		for _, f := range Formats {
			if x.appliesTo(f) {
				g.needs[f] = g.needs[f].union(x.ruleNeeds(f, ""))
			}
		}
	}
}

// Needs says what facts judging a subject requires: Digests, Signatures
// and Attributes on the first read of the file, Later only for a subject
// that the first read's facts leave blocked (see [Set.Needs]).
type Needs struct {
	Digests DigestSet
	// Signatures: verify the subject's signatures.
	Signatures bool
	// Attributes: read the PE version resource.
	Attributes bool
	// Later holds what only allow rules compare and the first read may
	// leave out: a subject judged without it (Subject.Partial) that no
	// other allow rule admits is judged again with it
	// (Decision.Incomplete). Zero when nothing is deferred.
	Later Deferred
}

// Deferred is what judging a subject may establish later (Needs.Later).
type Deferred struct {
	// Digests only allow hash rules compare.
	Digests DigestSet
	// Signatures: only those allow rules need the verified signatures
	// (first-page hash rules, which admit a page-signed file only).
	Signatures bool
}

// IsZero reports whether nothing is deferred.
func (d Deferred) IsZero() bool { return d.Digests.Len() == 0 && !d.Signatures }

func (n Needs) union(m Needs) Needs {
	u := Needs{Digests: n.Digests.Union(m.Digests), Signatures: n.Signatures || m.Signatures, Attributes: n.Attributes || m.Attributes}
	u.Later = Deferred{Digests: n.Later.Digests.Union(m.Later.Digests).Missing(u.Digests),
		Signatures: (n.Later.Signatures || m.Later.Signatures) && !u.Signatures}
	return u
}

// IsZero reports whether nothing is needed, now or later.
func (n Needs) IsZero() bool {
	return n.Digests.Len() == 0 && !n.Signatures && !n.Attributes && n.Later.IsZero()
}

// Full returns every fact n asks for, deferred or not, with nothing
// deferred: the needs of a second read, or of a caller that reads once.
func (n Needs) Full() Needs {
	return Needs{Digests: n.Digests.Union(n.Later.Digests), Signatures: n.Signatures || n.Later.Signatures, Attributes: n.Attributes}
}

// ruleNeeds is what rules need of a subject, by what kind of rule needs
// it: what decides which digests a first read may defer (split).
type ruleNeeds struct {
	// all is everything the rules need.
	all Needs
	// fixed are the digests deny rules and every exception compare
	// (the second digests of SiPolicy rules too): never deferred, as a
	// deny rule that misses, or an exception that misses and so lets
	// its rule apply, would decide otherwise than with the digest.
	fixed DigestSet
	// allow are the digests allow hash rules compare.
	allow DigestSet
	// otherSigs says a rule other than an allow rule of a first-page
	// hash needs the signatures (a signer rule, allow or deny).
	otherSigs bool
}

func (n ruleNeeds) union(m ruleNeeds) ruleNeeds {
	return ruleNeeds{all: n.all.union(m.all), fixed: n.fixed.Union(m.fixed), allow: n.allow.Union(m.allow),
		otherSigs: n.otherSigs || m.otherSigs}
}

// deferrable lists the digests a first read may leave out, each when no
// deny rule and no exception in scope compares it and the first read
// computes the Authenticode SHA256, which allow hash rules of the format
// compare: the SHA-1 image hash and the first-page hashes, which csv
// policy new writes beside the Authenticode SHA256 of every PE file (as
// New-CIPolicy does) and which therefore admit, in a policy that lists
// files by their Authenticode SHA256 too, almost only files that rule
// admits already. A policy that lists files by SHA-1 (or first-page hash)
// only computes it on the first read, so such files are not read twice.
var deferrable = []HashAlgorithm{AuthenticodeSHA1, PageSHA256, PageSHA1}

// split is the needs of a subject the rules in scope need n of: what
// the first read computes and what it defers (Needs.Later): the digests
// of deferrable, and the signatures when only allow rules of first-page
// hashes need them (such a rule admits a page-signed file only: without
// the signatures it admits nothing, and the decision is Incomplete).
func (n ruleNeeds) split() Needs {
	out := n.all
	if !n.allow.Has(AuthenticodeSHA256) {
		return out
	}
	var later DigestSet
	for _, a := range deferrable {
		if out.Digests.Has(a) && !n.fixed.Has(a) {
			later = later.With(a)
		}
	}
	out.Digests = out.Digests.Missing(later)
	out.Later = Deferred{Digests: later, Signatures: out.Signatures && !n.otherSigs}
	out.Signatures = out.Signatures && n.otherSigs
	return out
}

// AllNeeds is every fact.
func AllNeeds() Needs { return Needs{Digests: AllDigests(), Signatures: true, Attributes: true} }

// ruleNeeds is what matching the rule (or exception) requires of a
// subject of format f in scenario sc ("" for any), by kind of rule (see
// ruleNeeds).
func (x *compiledRule) ruleNeeds(f Format, sc Scenario) ruleNeeds {
	n := ruleNeeds{all: x.needs(f, sc)}
	switch {
	case !x.exception && x.Action != Deny && x.Hash != nil && x.Unsupported == "":
		n.allow = n.all.Digests
	default:
		n.fixed = n.all.Digests
		n.otherSigs = n.all.Signatures
	}
	return n
}

// needs is what matching this rule requires of a subject of format f in
// scenario sc ("" for any).
func (r *compiledRule) needs(f Format, sc Scenario) Needs {
	var n Needs
	switch {
	case r.Unsupported != "":
	case r.Hash != nil:
		n.Digests = n.Digests.With(r.Hash.Algorithm)
		// The second digest where the subject has it: boot components
		// are judged from event logs, which carry whole-image digests
		// only (as page-hash rules do not apply to them, see wdac.go).
		if r.alt != "" && r.alt.AppliesTo(f) && !(r.alt.FirstPage() && sc == ScenarioBoot) {
			n.Digests = n.Digests.With(r.alt)
		}
		// An allow of a first-page hash admits only a file whose
		// signature carries a page-hash table checked against it
		// (pageSigned): without the signatures it never matches.
		if !r.broad && r.Hash.Algorithm.FirstPage() {
			n.Signatures = true
		}
	case r.Signer != nil:
		n.Signatures = true
		n.Attributes = len(r.Signer.Files) > 0
	case r.File != nil:
		n.Attributes = true
	}
	return n
}

// Policies returns the policies of the set (base and supplemental), in order.
func (s *Set) Policies() []*Policy { return slices.Clone(s.policies) }

// Certificates returns every certificate the policies name in full.
func (s *Set) Certificates() []*signing.Certificate {
	var out []*signing.Certificate
	for _, p := range s.policies {
		out = append(out, p.Certificates()...)
	}
	return signing.Dedup(out)
}

// Mode returns the effective mode: enforce if any base policy enforces.
func (s *Set) Mode() Mode {
	for _, g := range s.groups {
		if g.mode == Enforce {
			return Enforce
		}
	}
	return Audit
}

// Needs returns what judging a subject with this path, format and scenario
// requires: exactly the digests some applicable hash rule compares, whether
// some signer rule applies (or an allow rule of a first-page hash, which
// admits page-signed files only), whether some rule reads file attributes.
// Computing less would make rules miss; computing more is wasted work.
//
// What only allow hash rules compare is split off into Needs.Later where
// the first read computes the Authenticode SHA256 that allow hash rules
// compare: the Authenticode SHA1 and the first-page hashes (and the
// signatures, if only first-page allow rules need them), each unless a
// deny rule or an exception in scope compares it (see deferrable). A
// caller computes Needs without Later, judges the subject as Partial, and
// computes Needs.Full and judges again only when the decision is
// Incomplete: the verdict is the same as with every fact, and a policy
// that lists each file by all four of its hashes (csv policy new,
// New-CIPolicy) costs one SHA-256 image hash per allowed file, not a
// SHA-1 and the signatures' verification besides. Needs.Full is what one
// read must compute to judge the subject at once.
func (s *Set) Needs(path string, f Format, sc Scenario) Needs {
	if n, ok := s.needs[f]; ok {
		return n
	}
	return s.ruleNeeds(path, f, sc).split()
}

// ruleNeeds is what the rules in scope of a subject need of it.
func (s *Set) ruleNeeds(path string, f Format, sc Scenario) ruleNeeds {
	sc = scenarioOf(f, sc)
	var n ruleNeeds
	if formatOf(f) == nil {
		return n
	}
	for _, g := range s.groups {
		n = n.union(g.needs[f])
		for _, r := range g.scoped {
			if r.appliesTo(f) && r.inScope(path, sc) {
				n = n.union(r.ruleNeeds(f, sc))
			}
		}
	}
	return n
}

// appliesTo reports whether the rule can match subjects of format f: its
// matcher's facts exist for f, and its formats scope admits f.
func (r *compiledRule) appliesTo(f Format) bool {
	if r.Hash != nil && !r.Hash.Algorithm.AppliesTo(f) {
		return false
	}
	if r.File != nil && !f.HasAttributes() {
		return false
	}
	return len(r.Formats) == 0 || slices.Contains(r.Formats, f)
}

// inScope reports whether the rule's path and scenario scopes admit a
// subject (the format is checked by appliesTo).
func (r *compiledRule) inScope(path string, sc Scenario) bool {
	if len(r.Scenarios) > 0 {
		ok := false
		for _, s := range r.Scenarios {
			if s == sc || (s == ScenarioBuild && (sc == ScenarioUser || sc == ScenarioKernel)) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(r.Paths) > 0 {
		ok := false
		for _, p := range r.Paths {
			// Patterns are validated when a policy is loaded.
			if m, _ := doublestar.Match(p, path); m {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// errMissingFacts is a programming error: a rule needed a digest (or
// signatures) that the caller did not establish. The subject is blocked
// rather than let a deny rule miss.
var errMissingFacts = errors.New("not computed")

// checkFacts fails closed when a subject lacks facts that the rules in scope
// need, but those of later, which the caller deferred (Subject.Partial).
func (g *group) checkFacts(s *Subject, later Deferred) error {
	need := g.needs[s.Format].all
	for _, r := range g.scoped {
		if r.appliesTo(s.Format) && r.inScope(s.Path, s.Scenario) {
			need = need.union(r.needs(s.Format, s.Scenario))
		}
	}
	have := s.Digests.Algorithms()
	if missing := need.Digests.Missing(have).Missing(later.Digests); missing.Len() != 0 {
		return fmt.Errorf("internal error: the policy compares %s digests, but only %s were %w for %s", need.Digests, have, errMissingFacts, s.Path)
	}
	if need.Signatures && !later.Signatures && s.Signed && s.Signatures == nil {
		return fmt.Errorf("internal error: the policy has signer rules, but signatures were %w for %s", errMissingFacts, s.Path)
	}
	return nil
}

// match is one rule matching a subject.
type match struct {
	rule   *compiledRule
	signer *signerOutcome
	// note says how a file attribute rule matched, when the readings of
	// the file's version resources made the difference.
	note string
}

// matches reports whether r matches s, ignoring exceptions.
func (r *compiledRule) matches(s *Subject, now time.Time, trusted func(*signing.Certificate) bool) (*match, string) {
	if r.Unsupported != "" || !r.appliesTo(s.Format) || !r.inScope(s.Path, s.Scenario) {
		return nil, ""
	}
	switch {
	case r.Hash != nil:
		if r.alt != "" {
			if v := s.Digests.Get(r.alt); v != nil && string(v) == string(r.Hash.Value) {
				return &match{rule: r, note: fmt.Sprintf("its %s is the value of this %s rule (Windows reads no FriendlyName)", r.alt.Label(), r.Hash.Algorithm.Label())}, ""
			}
		}
		if v := s.Digests.Get(r.Hash.Algorithm); v != nil && string(v) == string(r.Hash.Value) {
			if d := r.Hash.Algorithm.Digest(); !r.broad && !slices.Contains(r.policy.AcceptedDigests(), d) {
				return nil, fmt.Sprintf("its %s digest matches, but the policy accepts digest algorithms %s", r.Hash.Algorithm, joinNames(r.policy.AcceptedDigests()))
			}
			if !r.broad && r.Hash.Algorithm.FirstPage() && !pageSigned(s, trusted) {
				return nil, fmt.Sprintf("its %s digest matches, but no verified signature the host counts, chained to a root supplied as trusted (--certs), carries a page-hash table checked against the file: "+
					"Windows compares first-page hashes only for files whose signature it trusts carries page hashes, and the first page does not cover the rest of the file", r.Hash.Algorithm)
			}
			return &match{rule: r}, ""
		}
	case r.File != nil:
		ok, why := r.File.Match(s.Attributes, r.broad)
		if ok {
			return &match{rule: r, note: why}, ""
		}
		return nil, why
	case r.All:
		return &match{rule: r}, ""
	case r.Signer != nil:
		o, why := matchSigner(r, s, now, trusted)
		if o != nil {
			return &match{rule: r, signer: o}, ""
		}
		return nil, why
	}
	return nil, ""
}

// excepted reports whether one of an allow rule's exceptions matches s.
func (r *compiledRule) excepted(s *Subject, now time.Time, trusted func(*signing.Certificate) bool) *compiledRule {
	for _, x := range r.except {
		if m, _ := x.matches(s, now, trusted); m != nil {
			return x
		}
	}
	return nil
}

// find returns the first rule (in policy order) of an action that matches
// s, and for a miss the most telling reason a signer rule did not match.
// An allow hash rule that needs a fact deferred for s (Needs.Later: its
// digest, or the signatures a first-page rule needs) comes after every
// other allow rule: which rule admits a file does not depend on whether
// the deferred facts were established (a policy New-CIPolicy writes lists
// a file's SHA-1 rule before its SHA256 one, and the file is reported
// allowed by the SHA256 one with or without its SHA-1).
func (g *group) find(s *Subject, action Action, now time.Time, trusted func(*signing.Certificate) bool, deferred Deferred) (*match, []string) {
	idx, others := g.allowHash, g.allowOthers
	if action == Deny {
		idx, others = g.denyHash, g.denyOthers
	}
	late := func(r *compiledRule) bool {
		return action == Allow && r.Hash != nil &&
			(deferred.Digests.Has(r.Hash.Algorithm) || deferred.Signatures && r.Hash.Algorithm.FirstPage())
	}
	var best *match
	var notes []string
	consider := func(r *compiledRule) {
		if best != nil {
			if lr, lb := late(r), late(best.rule); lr != lb && lr || lr == lb && r.order > best.rule.order {
				return
			}
		}
		m, why := r.matches(s, now, trusted)
		if m == nil {
			if why != "" {
				notes = append(notes, fmt.Sprintf("rule %q: %s", r.ID, why))
			}
			return
		}
		if x := r.excepted(s, now, trusted); x != nil {
			notes = append(notes, fmt.Sprintf("rule %q does not apply: exception %s matches", r.ID, x.Describe()))
			return
		}
		best = m
	}
	// Rules compare only the algorithms of the table (a policy names no
	// other).
	for _, a := range HashAlgorithms {
		if v := s.Digests.Get(a); v != nil {
			for _, r := range idx[hashKey{a, string(v)}] {
				consider(r)
			}
		}
	}
	for _, r := range others {
		consider(r)
	}
	return best, notes
}

// Evaluate judges a subject. Checks, in order, for each base policy (with its
// supplemental policies):
//
//  1. A subject with a Problem is blocked (malformed).
//  2. A subject missing facts a rule in scope needs is blocked (fail
//     closed), but for a Partial subject the facts Needs defers.
//  3. A matching deny rule blocks it.
//  4. A matching allow rule allows it, unless one of the rule's exceptions
//     matches; the first in policy order is reported, an allow hash rule
//     of a digest Needs defers after every other.
//  5. Otherwise it is blocked (unsigned, or signed but not allowed).
//
// The subject is allowed only if every base policy allows it. When several
// block it, the report names an enforcing one over an auditing one, and a
// deny over a missing allow.
//
// A Partial subject that lacks deferred facts (Needs.Later) and that some
// base policy blocks for want of an allow rule is Incomplete: with those
// facts, that policy's allow rules could admit it, and the decision
// (which policy blocks, or whether any does) could change. Deny rules and
// exceptions compare no deferred fact, so a deny is final.
func (s *Set) Evaluate(sub Subject) Decision {
	sub.Scenario = scenarioOf(sub.Format, sub.Scenario)
	now := s.opts.Now()
	need := s.Needs(sub.Path, sub.Format, sub.Scenario)
	var later Deferred
	if sub.Partial && sub.Problem == nil {
		later.Digests = need.Later.Digests.Missing(sub.Digests.Algorithms())
		later.Signatures = need.Later.Signatures && sub.Signed && sub.Signatures == nil
	}
	var pick *Decision
	var first Decision
	incomplete := false
	for i, g := range s.groups {
		d := g.evaluate(&sub, now, s.isTrusted, later, need.Later, s.opts.IPE)
		if i == 0 {
			first = d
		}
		incomplete = incomplete || d.Incomplete
		if d.Verdict == Blocked && (pick == nil || better(&d, pick)) {
			pick = &d
		}
	}
	if pick == nil {
		return first
	}
	pick.Incomplete = incomplete
	return *pick
}

// isScript reports whether files of format f are scripts, which WDAC's
// script enforcement governs.
func isScript(f Format) bool { return f == FormatPowerShell || f == FormatWSH }

// scenarioOf is the scenario a subject of format f runs in when the run
// judges scenario sc: scripts run in user mode (WDAC judges them with the
// user-mode signing scenario's rules), whatever the binaries around them.
func scenarioOf(f Format, sc Scenario) Scenario {
	if isScript(f) && sc == ScenarioKernel {
		return ScenarioUser
	}
	return sc
}

func better(a, b *Decision) bool {
	if a.Enforced != b.Enforced {
		return a.Enforced
	}
	rank := func(k ReasonKind) int {
		switch k {
		case KindMalformed:
			return 3
		case KindDenied:
			return 2
		}
		return 1
	}
	return rank(a.Kind) > rank(b.Kind)
}

// evaluate judges s by the group's rules; later are the facts the caller
// deferred and s lacks (Subject.Partial), deferred the facts Needs
// defers for s, whether s has them or not.
func (g *group) evaluate(s *Subject, now time.Time, trusted func(*signing.Certificate) bool, later, deferred Deferred, ipeOpts IPEOptions) Decision {
	d := Decision{Policy: g.base.Ref(), Enforced: g.mode == Enforce, Signature: -1, Verdict: Blocked}
	if s.Problem != nil {
		d.Kind, d.Reason = KindMalformed, s.Problem.Error()
		return d
	}
	if g.ipe != nil {
		if err := g.checkFacts(s, later); err != nil {
			d.Kind, d.Reason = KindMalformed, err.Error()
			return d
		}
		return g.ipe.evaluate(s, d, ipeOpts, trusted)
	}
	if isScript(s.Format) && g.base.HasOption(OptionDisabledScriptEnforcement) {
		// Windows does not judge scripts under this policy: neither do
		// its deny rules.
		d.Verdict, d.Kind = Allowed, KindNotEnforced
		d.Reason = "not judged: the policy sets " + OptionDisabledScriptEnforcement + ", so Windows does not enforce it on scripts"
		return d
	}
	if err := g.checkFacts(s, later); err != nil {
		d.Kind, d.Reason = KindMalformed, err.Error()
		return d
	}
	if m, _ := g.find(s, Deny, now, trusted, deferred); m != nil {
		d.Kind, d.Rule, d.Policy = KindDenied, m.rule.ID, m.rule.policy.Ref()
		d.Reason = "denied by rule " + strconv.Quote(m.rule.ID) + ": " + explain(m, s)
		if m.rule.Description != "" {
			d.Reason += " (" + m.rule.Description + ")"
		}
		if m.signer != nil {
			d.Signature = m.signer.sig
		}
		return d
	}
	m, notes := g.find(s, Allow, now, trusted, deferred)
	if m != nil {
		d.Verdict, d.Rule, d.Policy = Allowed, m.rule.ID, m.rule.policy.Ref()
		switch {
		case m.signer != nil:
			d.Kind, d.Signature = KindAllowedBySigner, m.signer.sig
		case m.rule.File != nil || m.rule.All:
			d.Kind = KindAllowedByFile
		default:
			d.Kind = KindAllowedByHash
		}
		d.Reason = "allowed by rule " + strconv.Quote(m.rule.ID) + ": " + explain(m, s)
		return d
	}
	d.Kind = KindNotAllowed
	if !s.Signed {
		d.Kind = KindUnsigned
	}
	d.Incomplete = !later.IsZero()
	d.Reason = "no rule allows it: " + describe(s, notes)
	return d
}

// explain says what a match matched.
func explain(m *match, s *Subject) string {
	r := m.rule
	if m.signer == nil {
		if m.note != "" {
			return r.Describe() + " (" + m.note + ")"
		}
		return r.Describe()
	}
	sig := s.Signatures[m.signer.sig]
	leaf := m.signer.chain[0]
	// Concatenated rather than formatted: this is every allowed file's
	// reason (fmt was a tenth of judging a recorded file).
	where := "signature " + strconv.Itoa(m.signer.sig)
	if sig.Nested() {
		where += " (nested)"
	}
	alg := sig.SignatureAlgorithm
	if sig.DigestAlgorithm != 0 {
		// A boot component's signature carries none (crypto.Hash(0)
		// prints "unknown hash value 0").
		alg += ", " + sig.DigestAlgorithm.String()
	}
	return where + " (" + alg + ") by " + strconv.Quote(leaf.CommonName()) + " chains to " + strconv.Quote(m.signer.cert.CommonName()) +
		" (TBS " + strings.ToUpper(hex.EncodeToString(m.signer.cert.TBSHash)) + ") at level " + string(r.Signer.Level)
}

// describe lists the subject's facts that rules could have matched, and why
// signer rules did not.
func describe(s *Subject, notes []string) string {
	var parts []string
	switch {
	case !s.Signed:
		parts = append(parts, "not signed")
	case s.Signatures != nil:
		verified := 0
		for _, sig := range s.Signatures {
			if sig.Verified() {
				verified++
			}
		}
		parts = append(parts, fmt.Sprintf("%s (%d verified), none by a signer a rule allows", plural(len(s.Signatures), "signature", "signatures"), verified))
		for i, sig := range s.Signatures {
			if !sig.Verified() && sig.Problem != nil {
				parts = append(parts, fmt.Sprintf("signature %d does not verify: %v%s", i, sig.Problem, SignerNotFoundHint(sig.Problem)))
			}
		}
	default:
		parts = append(parts, "signed, but the policy has no signer rules")
	}
	s.Digests.Each(func(a HashAlgorithm, v []byte) { parts = append(parts, fmt.Sprintf("%s %x", a.Label(), v)) })
	const maxNotes = 3
	if len(notes) > maxNotes {
		notes = append(notes[:maxNotes:maxNotes], fmt.Sprintf("and %d more", len(notes)-maxNotes))
	}
	parts = append(parts, notes...)
	return strings.Join(parts, "; ")
}

// pageSigned reports whether a verified signature that the hosts of the
// subject's scenario count carries a page-hash table checked against the
// file (signing.Signature.PageHashes), and chains to a certificate the
// operator supplied as trusted: the files Windows judges by their
// first-page hash, the rest of their pages vouched for by the table. The
// table vouches for the pages only as far as its signer is trusted: anyone
// can sign a file whose headers are an allowed file's and whose code is
// another with a table of its own pages, and Windows takes the page hashes
// of a signature it validates only (one that chains to a root it trusts;
// others are judged by their whole-image hash).
func pageSigned(s *Subject, trusted func(*signing.Certificate) bool) bool {
	for _, sig := range s.Signatures {
		if !sig.Verified() || sig.PageHashes == 0 {
			continue
		}
		if h, _ := ignoredIn(s.Scenario, sig); h != "" {
			continue
		}
		for _, chain := range sig.Chains {
			if len(chain) > 0 && trusted != nil && trusted(chain[len(chain)-1]) {
				return true
			}
		}
	}
	return false
}

// SignerNotFoundHint is what a message about a signature whose signer's
// certificate was not found (signing.ErrSignerNotFound: a kernel module
// signature names its signer by issuer and serial number, or key
// identifier, and carries no certificate) adds: how to supply it. It is
// "" for any other problem.
func SignerNotFoundHint(problem error) string {
	if !errors.Is(problem, signing.ErrSignerNotFound) {
		return ""
	}
	return ": give that certificate with --certs FILE"
}
