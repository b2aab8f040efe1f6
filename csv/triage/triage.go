package triage

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/manifest"
)

// Class is what triage concludes about an event.
type Class string

// Classes, most severe first.
const (
	// ClassError: the event could not be read; nobody can say what it
	// was.
	ClassError Class = "error"
	// ClassUnknown: neither a build manifest nor the current policy
	// accounts for the file: investigate it as a possible attack.
	ClassUnknown Class = "unknown"
	// ClassOldPolicy: the current policy (--policy) allows the file: the
	// host runs an older policy.
	ClassOldPolicy Class = "old-policy"
	// ClassBuilt: a verified build manifest lists the file's SHA-256:
	// the pipeline built and signed it, and the host's policy is wrong
	// or stale (a false positive).
	ClassBuilt Class = "built"
)

func (c Class) rank() int {
	switch c {
	case ClassError:
		return 0
	case ClassUnknown:
		return 1
	case ClassOldPolicy:
		return 2
	}
	return 3
}

// Evidence says how strong the fact is that a current policy allows the
// file: a hash rule matched the event's hashes (as strong as the host's
// own hashing), or a rule matched what the event reports of the file's
// version resource or signer, which csv could not verify.
type Evidence string

// Evidence kinds.
const (
	EvidenceHash       Evidence = "hash"
	EvidenceAttributes Evidence = "event-attributes"
	EvidenceSigner     Evidence = "event-signer"
)

// Built is a manifest entry for the event's file.
type Built struct {
	Manifest string `json:"manifest"`
	// Name is the file's name in the manifest.
	Name string `json:"name"`
	// Signer is the manifest signer's subject.
	Signer string `json:"signer"`
	// Build is the build the manifest names (its resourceUri).
	Build string `json:"build"`
}

// PolicyMatch compares the policy an event names with one given policy.
type PolicyMatch struct {
	Source  string `json:"source"`
	Name    string `json:"name"`
	ID      string `json:"id"`
	InfoID  string `json:"info_id,omitempty"`
	Version string `json:"version,omitempty"`
	// Match: "same-guid-same-id" (the event's PolicyGUID is the policy's
	// ID and its PolicyID the policy's PolicyInfo Id), "same-guid-other-id"
	// (the same policy, another PolicyInfo Id: another version, where
	// the Id is bumped with each), "same-guid" (the policy sets no
	// PolicyInfo Id), "same-name" (only the name agrees), "none".
	Match string `json:"match"`
}

// Current is what the current policies (--policy) say of the file.
type Current struct {
	Allowed  bool     `json:"allowed"`
	Evidence Evidence `json:"evidence,omitempty"`
	Policy   string   `json:"policy,omitempty"`
	Rule     string   `json:"rule,omitempty"`
	Reason   string   `json:"reason"`
}

// Finding is triage's conclusion about one event.
type Finding struct {
	Class  Class       `json:"class"`
	Reason string      `json:"reason"`
	Event  *Event      `json:"-"`
	Error  *EventError `json:"-"`
	Built  []Built     `json:"built,omitempty"`
	// Policies compares the event's policy with each given policy.
	Policies []PolicyMatch `json:"policies,omitempty"`
	Current  *Current      `json:"current,omitempty"`
	// panicked is the panic Triage recovered from (a bug): the fuzz
	// targets fail on it.
	panicked *panicerr.Error
}

// PolicyFile is a current policy with what triage matches events by.
type PolicyFile struct {
	Policy *cipolicy.Policy
	// InfoID is the policy's PolicyInfo Id setting ([PolicyInfoID]),
	// which events report as PolicyID; "" if it has none.
	InfoID string
}

// Manifest is a build manifest that manifest.Verify returned.
type Manifest struct {
	Source    string
	Statement *manifest.Statement
}

// Options are what a Triager knows. The zero value classifies every
// event as unknown.
type Options struct {
	// Manifests are verified build manifests (manifest.Verify's
	// statements): each must record a PASSED build.
	Manifests []Manifest
	// Policies are the current policies.
	Policies []PolicyFile
	// Now is when signer rules check certificate validity (default
	// time.Now); events give no certificates, so it matters only to
	// cipolicy's checks of the hash path.
	Now func() time.Time
}

// ErrUnverified: a manifest given to New did not come from
// manifest.Verify, or records a build that did not pass.
var ErrUnverified = errors.New("triage: manifest not verified")

// Triager classifies events.
type Triager struct {
	built    map[string][]Built
	set      *cipolicy.Set
	policies []PolicyFile
}

// New returns a Triager. Manifests must be verified (their statement has
// the chain manifest.Verify sets) and PASSED; policies must form a valid
// set (cipolicy.NewSet).
func New(opts Options) (*Triager, error) {
	t := &Triager{built: map[string][]Built{}, policies: opts.Policies}
	for _, m := range opts.Manifests {
		st := m.Statement
		if st == nil || len(st.Chain) == 0 {
			return nil, fmt.Errorf("%w: %s: not verified", ErrUnverified, m.Source)
		}
		if st.Predicate.VerificationResult != manifest.Passed {
			return nil, fmt.Errorf("%w: %s records a build that did not pass (%s): its files are not vouched for", ErrUnverified, m.Source, st.Predicate.VerificationResult)
		}
		signer := signing.NameString(st.Chain[0].Subject)
		for _, s := range st.Subject {
			h := strings.ToLower(s.Digest["sha256"])
			t.built[h] = append(t.built[h], Built{Manifest: m.Source, Name: s.Name, Signer: signer, Build: st.Predicate.ResourceURI})
		}
	}
	if len(opts.Policies) > 0 {
		ps := make([]*cipolicy.Policy, len(opts.Policies))
		for i, p := range opts.Policies {
			ps[i] = p.Policy
		}
		set, err := cipolicy.NewSet(cipolicy.SetOptions{Now: opts.Now}, ps...)
		if err != nil {
			return nil, err
		}
		t.set = set
	}
	return t, nil
}

// TriageLog classifies every event and error of a log, most severe
// first: errors, unknown, old policy, built; blocks before audits; then
// by time and position.
func (t *Triager) TriageLog(l *Log) []Finding {
	var out []Finding
	for _, e := range l.Errors {
		out = append(out, Finding{Class: ClassError, Error: e, Reason: "it cannot be read, so nothing says what ran: look at the host's log"})
	}
	for _, e := range l.Events {
		out = append(out, t.Triage(e))
	}
	slices.SortStableFunc(out, func(a, b Finding) int {
		if c := cmp.Compare(a.Class.rank(), b.Class.rank()); c != 0 {
			return c
		}
		if a.Event == nil || b.Event == nil {
			return 0
		}
		if a.Event.Enforced() != b.Event.Enforced() {
			if a.Event.Enforced() {
				return -1
			}
			return 1
		}
		return cmp.Or(a.Event.Time.Compare(b.Event.Time), strings.Compare(a.Event.Source, b.Event.Source), cmp.Compare(a.Event.Index, b.Event.Index))
	})
	return out
}

// Triage classifies one event: built (a verified manifest lists its
// SHA256 Flat Hash), else old policy (a current policy allows it), else
// unknown.
func (t *Triager) Triage(e *Event) (f Finding) {
	defer func() {
		if r := recover(); r != nil {
			p := panicerr.New(r)
			f = Finding{Class: ClassError, Event: e, Reason: fmt.Sprintf("internal error judging the event: %v", p), panicked: p}
		}
	}()
	f = Finding{Event: e}
	for _, p := range t.policies {
		f.Policies = append(f.Policies, matchPolicy(e, p))
	}
	if t.set != nil {
		f.Current = t.judge(e)
	}
	if e.SHA256FlatHash != nil {
		f.Built = t.built[hex.EncodeToString(e.SHA256FlatHash)]
	}
	switch {
	case len(f.Built) > 0:
		f.Class = ClassBuilt
		b := f.Built[0]
		f.Reason = fmt.Sprintf("built by the pipeline: %s lists it as %s (build %s, signed by %s); policy %s on the host %s it: that policy is wrong or stale",
			b.Manifest, b.Name, b.Build, b.Signer, describePolicy(e), verb(e))
		if namesOtherPolicy(e, f.Policies) {
			f.Reason += " (it is none of the given policies)"
		}
		if f.Current != nil {
			if f.Current.Allowed {
				f.Reason += "; the current policy allows it (" + string(f.Current.Evidence) + "): deploy the current policy to the host"
			} else {
				f.Reason += "; the current policy does not allow it either: fix the policy"
			}
		}
	case f.Current != nil && f.Current.Allowed && !namesOtherPolicy(e, f.Policies):
		f.Class = ClassOldPolicy
		f.Reason = fmt.Sprintf("the current policy allows it (%s): the host runs an older policy than the current one; policy %s on the host %s it",
			f.Current.Reason, describePolicy(e), verb(e))
		if f.Current.Evidence != EvidenceHash {
			f.Reason += "; this match rests on what the event reports, not on a signature or file csv verified"
		}
	default:
		f.Class = ClassUnknown
		var why []string
		switch {
		case e.SHA256FlatHash == nil:
			why = append(why, "the event has no SHA256 Flat Hash, which build manifests list")
		case len(t.built) == 0:
			why = append(why, "no build manifest was given")
		default:
			why = append(why, "no build manifest lists its SHA256 Flat Hash")
		}
		switch {
		case f.Current != nil && f.Current.Allowed:
			why = append(why, fmt.Sprintf("the given policies allow it (%s), but policy %s, which is none of them, %s it: a policy csv was not given (such as Microsoft's block lists) judged it", f.Current.Reason, describePolicy(e), verb(e)))
		case f.Current != nil:
			why = append(why, "the current policy does not allow it: "+f.Current.Reason)
		default:
			why = append(why, "no current policy was given")
		}
		f.Reason = "unknown: " + strings.Join(why, "; ") + ": investigate it as a possible attack"
	}
	return f
}

// namesOtherPolicy reports whether the event names its policy and no
// given policy is that one (by GUID or name): then the given policies
// allowing the file does not explain the block.
func namesOtherPolicy(e *Event, ms []PolicyMatch) bool {
	if len(ms) == 0 || (e.PolicyGUID == "" && e.PolicyName == "") {
		return false
	}
	for _, m := range ms {
		if m.Match != "none" {
			return false
		}
	}
	return true
}

func verb(e *Event) string {
	if e.Enforced() {
		return "blocked"
	}
	return "would block (audit mode)"
}

func describePolicy(e *Event) string {
	var parts []string
	if e.PolicyName != "" {
		parts = append(parts, fmt.Sprintf("%q", e.PolicyName))
	}
	if e.PolicyID != "" {
		parts = append(parts, "id "+e.PolicyID)
	}
	if e.PolicyGUID != "" {
		parts = append(parts, "guid {"+e.PolicyGUID+"}")
	}
	if e.PolicyHash != nil {
		parts = append(parts, fmt.Sprintf("hash %X", e.PolicyHash))
	}
	if len(parts) == 0 {
		return "(unnamed)"
	}
	return strings.Join(parts, ", ")
}

// matchPolicy compares the event's policy with a given one. The event's
// PolicyHash is a hash of the binary policy the host loaded; csv reads
// the policy's XML or YAML, not the binary, so the hash cannot be
// compared (and is reported as it is).
func matchPolicy(e *Event, p PolicyFile) PolicyMatch {
	m := PolicyMatch{Source: p.Policy.Source, Name: p.Policy.Name, ID: p.Policy.ID, InfoID: p.InfoID, Version: p.Policy.Version, Match: "none"}
	switch {
	case e.PolicyGUID != "" && NormalizeGUID(p.Policy.ID) == e.PolicyGUID:
		switch {
		case p.InfoID == "":
			m.Match = "same-guid"
		case p.InfoID == e.PolicyID:
			m.Match = "same-guid-same-id"
		default:
			m.Match = "same-guid-other-id"
		}
	case e.PolicyName != "" && strings.EqualFold(e.PolicyName, p.Policy.Name):
		m.Match = "same-name"
	}
	return m
}

// judge evaluates the event's file against the current policies: the
// hashes through cipolicy (deny rules first, as always), then, for a
// file no rule allows, the signer the 3089 events report against the
// signer rules.
func (t *Triager) judge(e *Event) *Current {
	sub := subjectOf(e)
	d := t.set.Evaluate(sub)
	switch {
	case d.Kind == cipolicy.KindMalformed:
		return &Current{Reason: "the event's facts do not suffice to judge it: " + d.Reason}
	case d.Kind == cipolicy.KindDenied:
		return &Current{Policy: d.Policy, Rule: d.Rule, Reason: d.Reason}
	case d.Allowed():
		ev := EvidenceHash
		if d.Kind != cipolicy.KindAllowedByHash {
			ev = EvidenceAttributes
		}
		return &Current{Allowed: true, Evidence: ev, Policy: d.Policy, Rule: d.Rule, Reason: d.Reason}
	}
	// No hash or attribute rule allows it: the signer the event reports.
	if m := t.claimedSigner(e, sub.Scenario, cipolicy.Deny); m != nil {
		return &Current{Policy: m.policy, Rule: m.rule, Reason: "denied by rule " + fmt.Sprintf("%q", m.rule) + " by the signer the event reports: " + m.why}
	}
	if m := t.claimedSigner(e, sub.Scenario, cipolicy.Allow); m != nil {
		return &Current{Allowed: true, Evidence: EvidenceSigner, Policy: m.policy, Rule: m.rule,
			Reason: fmt.Sprintf("allowed by rule %q: %s (as the event's 3089 signature information reports it, which csv did not verify: weaker than a verified signature)", m.rule, m.why)}
	}
	reason := d.Reason
	if len(e.Signatures) == 0 {
		reason += "; the export holds no 3089 signature event for it"
	}
	for _, s := range e.Signatures {
		if !s.Sound() {
			reason += fmt.Sprintf("; signature #%d did not verify on the host (VerificationError %d): its signer is no evidence", s.Number, s.VerificationError)
		}
	}
	return &Current{Reason: reason}
}

func subjectOf(e *Event) cipolicy.Subject {
	sc := cipolicy.ScenarioUser
	if e.Scenario == 0 {
		sc = cipolicy.ScenarioKernel
	}
	sub := cipolicy.Subject{Path: slashPath(e), Format: cipolicy.FormatPE, Scenario: sc, Partial: true,
		// Empty, not nil: the signatures were not verified, and no signer
		// rule may match through Evaluate (claimedSigner judges them).
		Signatures: []*signing.Signature{}}
	for _, s := range e.Signatures {
		sub.Signed = sub.Signed || s.SignatureType != 0 || s.TotalSignatureCount > 0
	}
	if e.SHA256Hash != nil {
		sub.Digests.Set(cipolicy.AuthenticodeSHA256, e.SHA256Hash)
	}
	if e.SHA1Hash != nil {
		sub.Digests.Set(cipolicy.AuthenticodeSHA1, e.SHA1Hash)
	}
	if e.SHA256FlatHash != nil {
		sub.Digests.Set(cipolicy.SHA256, e.SHA256FlatHash)
	}
	if a := attributesOf(e); a != nil {
		sub.Attributes = a
	}
	return sub
}

func attributesOf(e *Event) *cipolicy.FileAttributes {
	if e.OriginalFileName == "" && e.InternalName == "" && e.FileDescription == "" && e.ProductName == "" && e.FileVersion == "" {
		return nil
	}
	a := &cipolicy.FileAttributes{OriginalFileName: e.OriginalFileName, InternalName: e.InternalName,
		FileDescription: e.FileDescription, ProductName: e.ProductName}
	if v, err := cipolicy.ParseVersion(strings.TrimSpace(e.FileVersion)); err == nil && e.FileVersion != "" {
		a.FileVersion = &v
	}
	return a
}

type signerHit struct{ policy, rule, why string }

// claimedSigner looks for a signer rule of the action that the event's
// 3089 signatures match by what they report: the publisher (leaf) and
// issuer TBS hashes, the publisher and issuer names. A rule at the root
// level, one naming a well-known root, requiring EKUs or an OEM ID, or
// limited to non-Authenticode signatures cannot be judged from the
// event and never matches.
func (t *Triager) claimedSigner(e *Event, sc cipolicy.Scenario, action cipolicy.Action) *signerHit {
	attrs := attributesOf(e)
	for _, p := range t.set.Policies() {
		if p.Type == cipolicy.AppIDTagging {
			continue
		}
		for i := range p.Rules {
			r := &p.Rules[i]
			m := r.Signer
			if r.Action != action || m == nil || r.Unsupported != "" || !inScenario(r, sc) {
				continue
			}
			// A path-scoped allow rule would admit the file by where the
			// event says it was: never by the path alone.
			if m.Cert.WellKnown != "" || len(m.Cert.TBSHash) == 0 || len(m.EKUs) > 0 || m.OEMID != "" || (action == cipolicy.Allow && len(r.Paths) > 0) {
				continue
			}
			if len(m.SignatureFormats) > 0 && !slices.Contains(m.SignatureFormats, "authenticode") {
				continue
			}
			if len(m.Files) > 0 {
				ok := false
				for j := range m.Files {
					ok = ok || (attrs != nil && m.Files[j].Matches(attrs))
				}
				if !ok {
					continue
				}
			}
			for _, s := range e.Signatures {
				// An allow needs a signature the host verified: one
				// that failed (a changed file keeps its certificates)
				// proves nothing of its signer. A deny counts any.
				if action == cipolicy.Allow && !s.Sound() {
					continue
				}
				var at string
				switch {
				case (m.Level == cipolicy.LevelLeaf || m.Level == cipolicy.LevelAny) && bytes.Equal(m.Cert.TBSHash, s.PublisherTBSHash):
					at = "publisher"
				case (m.Level == cipolicy.LevelIssuer || m.Level == cipolicy.LevelAny) && bytes.Equal(m.Cert.TBSHash, s.IssuerTBSHash):
					at = "issuer"
				default:
					continue
				}
				if m.Publisher != "" && m.Publisher != s.PublisherName {
					continue
				}
				if m.IssuerName != "" && m.IssuerName != s.IssuerName {
					continue
				}
				why := fmt.Sprintf("signature %d's %s TBS hash %X", s.Number, at, m.Cert.TBSHash)
				if m.Publisher != "" {
					why += fmt.Sprintf(", publisher %q", m.Publisher)
				}
				return &signerHit{policy: p.Ref(), rule: r.ID, why: why}
			}
		}
	}
	return nil
}

func inScenario(r *cipolicy.Rule, sc cipolicy.Scenario) bool {
	if len(r.Scenarios) == 0 {
		return true
	}
	return slices.Contains(r.Scenarios, sc) || slices.Contains(r.Scenarios, cipolicy.ScenarioBuild)
}
