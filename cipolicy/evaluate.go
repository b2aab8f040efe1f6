package cipolicy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// Digests holds the digests established for a subject. A nil field was not
// computed.
type Digests struct {
	SHA256             []byte
	AuthenticodeSHA256 []byte
	AuthenticodeSHA1   []byte
}

// Get returns the digest for algorithm a, or nil.
func (d *Digests) Get(a HashAlgorithm) []byte {
	switch a {
	case SHA256:
		return d.SHA256
	case AuthenticodeSHA256:
		return d.AuthenticodeSHA256
	case AuthenticodeSHA1:
		return d.AuthenticodeSHA1
	}
	return nil
}

// set returns the algorithms whose digests are present.
func (d *Digests) set() DigestSet {
	var s DigestSet
	for _, a := range HashAlgorithms {
		if d.Get(a) != nil {
			s = s.With(a)
		}
	}
	return s
}

// Set stores the digest for algorithm a.
func (d *Digests) Set(a HashAlgorithm, v []byte) {
	switch a {
	case SHA256:
		d.SHA256 = v
	case AuthenticodeSHA256:
		d.AuthenticodeSHA256 = v
	case AuthenticodeSHA1:
		d.AuthenticodeSHA1 = v
	}
}

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
	// Problem, if set, is why the subject could not be inspected (unreadable,
	// truncated, malformed). Such a subject is always blocked.
	Problem error
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
	// KindDenied: a deny rule matched.
	KindDenied ReasonKind = "denied"
	// KindUnsigned: no rule allows the subject and it carries no signature.
	KindUnsigned ReasonKind = "unsigned"
	// KindNotAllowed: the subject is signed but no rule allows it.
	KindNotAllowed ReasonKind = "not-allowed"
	// KindMalformed: the subject could not be read or parsed.
	KindMalformed ReasonKind = "malformed"
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
	Reason string
}

// Allowed reports whether the subject may run.
func (d Decision) Allowed() bool { return d.Verdict == Allowed }

// Fails reports whether the decision should fail a CI job: blocked and
// enforced.
func (d Decision) Fails() bool { return d.Verdict == Blocked && d.Enforced }

// SetOptions configure a Set. The zero value is the policies' own settings.
type SetOptions struct {
	// Mode, if set, overrides every policy's mode.
	Mode Mode
}

// Set is one or more policies that judge together, as Windows combines
// several active policies: every base policy must allow a subject, and each
// supplemental policy adds its allow rules to its base.
type Set struct {
	groups []*group
	opts   SetOptions
}

type group struct {
	base  *Policy
	mode  Mode
	deny  []*compiledRule
	allow []*compiledRule
	// hash indexes rules by (algorithm, digest) for O(1) matching.
	denyHash  map[hashKey][]*compiledRule
	allowHash map[hashKey][]*compiledRule
	// needs holds, per format, the digests that unscoped hash rules
	// compare: every subject of that format needs them.
	needs map[Format]DigestSet
	// scoped holds the hash rules limited to paths or scenarios, whose
	// digests only subjects in scope need.
	scoped []*compiledRule
}

type hashKey struct {
	alg HashAlgorithm
	sum string
}

type compiledRule struct {
	*Rule
	policy *Policy
	order  int
}

// ErrPolicySet is wrapped by errors about how policies combine.
var ErrPolicySet = errors.New("cipolicy: invalid policy set")

// NewSet combines policies. Every supplemental policy must name a base
// policy of the set.
func NewSet(opts SetOptions, policies ...*Policy) (*Set, error) {
	if opts.Mode != "" && opts.Mode != Enforce && opts.Mode != Audit {
		return nil, fmt.Errorf("%w: unknown mode %q", ErrPolicySet, opts.Mode)
	}
	s := &Set{opts: opts}
	byID := map[string]*group{}
	for _, p := range policies {
		if p.Type == Supplemental {
			continue
		}
		if _, dup := byID[p.ID]; dup && p.ID != "" {
			return nil, fmt.Errorf("%w: two base policies have the id %q (%s)", ErrPolicySet, p.ID, p.Source)
		}
		g := &group{base: p, mode: p.Mode, needs: map[Format]DigestSet{},
			denyHash: map[hashKey][]*compiledRule{}, allowHash: map[hashKey][]*compiledRule{}}
		if opts.Mode != "" {
			g.mode = opts.Mode
		}
		byID[p.ID] = g
		s.groups = append(s.groups, g)
	}
	if len(s.groups) == 0 {
		return nil, fmt.Errorf("%w: no base policy (only supplemental policies were given)", ErrPolicySet)
	}
	order := 0
	for _, p := range policies {
		g := byID[p.ID]
		if p.Type == Supplemental {
			g = byID[p.BaseID]
			if g == nil {
				return nil, fmt.Errorf("%w: supplemental policy %q (%s) extends base policy %q, which is not among the policies given",
					ErrPolicySet, p.Ref(), p.Source, p.BaseID)
			}
		}
		for i := range p.Rules {
			r := &p.Rules[i]
			if p.Type == Supplemental && r.Action == Deny {
				// WDAC ignores deny rules in supplemental policies; the
				// loaders refuse them, so this is a programming error.
				return nil, fmt.Errorf("%w: supplemental policy %q has deny rule %q", ErrPolicySet, p.Ref(), r.ID)
			}
			g.add(&compiledRule{Rule: r, policy: p, order: order})
			order++
		}
	}
	return s, nil
}

func (g *group) add(r *compiledRule) {
	if r.Action == Deny {
		g.deny = append(g.deny, r)
	} else {
		g.allow = append(g.allow, r)
	}
	if r.Hash != nil {
		k := hashKey{r.Hash.Algorithm, string(r.Hash.Value)}
		if r.Action == Deny {
			g.denyHash[k] = append(g.denyHash[k], r)
		} else {
			g.allowHash[k] = append(g.allowHash[k], r)
		}
	}
	if r.Hash != nil {
		if len(r.Paths) > 0 || len(r.Scenarios) > 0 {
			g.scoped = append(g.scoped, r)
			return
		}
		for _, f := range []Format{FormatPE, FormatELF} {
			if r.appliesTo(f) {
				g.needs[f] = g.needs[f].With(r.Hash.Algorithm)
			}
		}
	}
}

// Policies returns the base policies of the set, in order.
func (s *Set) Policies() []*Policy {
	ps := make([]*Policy, len(s.groups))
	for i, g := range s.groups {
		ps[i] = g.base
	}
	return ps
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

// Needs returns the digests that judging a subject with this path, format
// and scenario requires: exactly those some applicable hash rule compares.
// Computing fewer would make rules miss; computing more is wasted work.
func (s *Set) Needs(path string, f Format, sc Scenario) DigestSet {
	var d DigestSet
	if f != FormatPE && f != FormatELF {
		return 0
	}
	for _, g := range s.groups {
		d |= g.needs[f]
		for _, r := range g.scoped {
			if r.appliesTo(f) && !d.Has(r.Hash.Algorithm) && r.inScope(path, sc) {
				d = d.With(r.Hash.Algorithm)
			}
		}
	}
	return d
}

// appliesTo reports whether the rule can match subjects of format f: its
// matcher's digest exists for f, and its formats scope admits f.
func (r *compiledRule) appliesTo(f Format) bool {
	if r.Hash != nil && !r.Hash.Algorithm.AppliesTo(f) {
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

// errMissingDigest is a programming error: a rule needed a digest that the
// caller did not compute. The subject is blocked rather than let a deny rule
// miss.
var errMissingDigest = errors.New("digest not computed")

// match returns the first rule (in policy order) of the index that matches
// s. It fails closed: if a rule in scope compares a digest that the caller did
// not compute, it returns an error rather than a miss.
func (g *group) match(s *Subject, idx map[hashKey][]*compiledRule) (*compiledRule, error) {
	have := s.Digests.set()
	if missing := g.needs[s.Format] &^ have; missing != 0 {
		return nil, fmt.Errorf("%w: the policy compares %s digests, %s were computed for %s", errMissingDigest, g.needs[s.Format], have, s.Path)
	}
	for _, r := range g.scoped {
		if r.appliesTo(s.Format) && !have.Has(r.Hash.Algorithm) && r.inScope(s.Path, s.Scenario) {
			return nil, fmt.Errorf("%w: rule %q compares the %s, which was not computed for %s", errMissingDigest, r.ID, r.Hash.Algorithm.Label(), s.Path)
		}
	}
	var best *compiledRule
	for _, a := range HashAlgorithms {
		v := s.Digests.Get(a)
		if v == nil || !a.AppliesTo(s.Format) {
			continue
		}
		for _, r := range idx[hashKey{a, string(v)}] { // ascending order
			if r.appliesTo(s.Format) && r.inScope(s.Path, s.Scenario) {
				if best == nil || r.order < best.order {
					best = r
				}
				break
			}
		}
	}
	return best, nil
}

// Evaluate judges a subject. Checks, in order, for each base policy (with its
// supplemental policies):
//
//  1. A subject with a Problem is blocked (malformed).
//  2. A matching deny rule blocks it.
//  3. A matching allow rule allows it; the first in policy order is reported.
//  4. Otherwise it is blocked (unsigned, or signed but not allowed).
//
// The subject is allowed only if every base policy allows it. When several
// block it, the report names an enforcing one over an auditing one, and a
// deny over a missing allow.
func (s *Set) Evaluate(sub Subject) Decision {
	var decisions []Decision
	for _, g := range s.groups {
		decisions = append(decisions, g.evaluate(&sub))
	}
	var pick *Decision
	for i := range decisions {
		d := &decisions[i]
		if d.Verdict == Allowed {
			continue
		}
		if pick == nil || better(d, pick) {
			pick = d
		}
	}
	if pick == nil {
		return decisions[0]
	}
	return *pick
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

func (g *group) evaluate(s *Subject) Decision {
	d := Decision{Policy: g.base.Ref(), Enforced: g.mode == Enforce}
	if s.Problem != nil {
		d.Verdict, d.Kind, d.Reason = Blocked, KindMalformed, s.Problem.Error()
		return d
	}
	deny, err := g.match(s, g.denyHash)
	if err == nil && deny == nil {
		var allow *compiledRule
		allow, err = g.match(s, g.allowHash)
		if err == nil && allow != nil {
			d.Verdict, d.Kind, d.Rule = Allowed, KindAllowedByHash, allow.ID
			d.Policy = allow.policy.Ref()
			d.Reason = fmt.Sprintf("%s %x is allowed by rule %q", allow.Hash.Algorithm.Label(), allow.Hash.Value, allow.ID)
			return d
		}
	}
	d.Verdict = Blocked
	switch {
	case err != nil:
		d.Kind, d.Reason = KindMalformed, err.Error()
	case deny != nil:
		d.Kind, d.Rule = KindDenied, deny.ID
		d.Policy = deny.policy.Ref()
		d.Reason = fmt.Sprintf("%s %x is denied by rule %q", deny.Hash.Algorithm.Label(), deny.Hash.Value, deny.ID)
		if deny.Description != "" {
			d.Reason += " (" + deny.Description + ")"
		}
	default:
		d.Kind = KindNotAllowed
		if !s.Signed {
			d.Kind = KindUnsigned
		}
		d.Reason = "no rule allows it: " + describe(s)
	}
	return d
}

// describe lists the subject's facts that rules could have matched.
func describe(s *Subject) string {
	var parts []string
	if s.Signed {
		parts = append(parts, "signed, but no signer rule admits it")
	} else {
		parts = append(parts, "not signed")
	}
	for _, a := range HashAlgorithms {
		if v := s.Digests.Get(a); v != nil {
			parts = append(parts, fmt.Sprintf("%s %x", a.Label(), v))
		}
	}
	return strings.Join(parts, ", ")
}
