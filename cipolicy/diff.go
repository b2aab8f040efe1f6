package cipolicy

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/codesignval/csv/signing"
)

// PolicyDiff is what changed from one policy to another in what they
// judge: settings that affect verdicts, and rules added or removed. Rules
// are compared by what they match, where and with which action, never by
// their ids, lines or comments: renumbering a policy, converting it from
// WDAC XML to YAML or reordering its rules changes nothing.
type PolicyDiff struct {
	Old      DiffSide      `json:"old"`
	New      DiffSide      `json:"new"`
	Settings []FieldChange `json:"settings"`
	Rules    []RuleChange  `json:"rules"`
}

// DiffSide names one of the two policies.
type DiffSide struct {
	Source  string `json:"source"`
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	SHA256  string `json:"sha256"`
}

// FieldChange is a policy setting that differs.
type FieldChange struct {
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
	// Loosens: the change can admit a file the old policy blocked (enforce
	// to audit, a supplemental policy's base changed, a timestamp authority
	// added, ...), or csv cannot tell that it cannot. Why says how.
	Loosens bool   `json:"loosens"`
	Why     string `json:"why,omitempty"`
}

// RuleChange is a rule one policy has and the other does not.
type RuleChange struct {
	Change string `json:"change"` // "added" or "removed"
	Action Action `json:"action"`
	// Rule says what the rule matches and where it applies.
	Rule   string `json:"rule"`
	ID     string `json:"id,omitempty"`
	Source string `json:"source"`
	Line   int    `json:"line,omitempty"`
	// Loosens: an allow rule added or a deny rule removed.
	Loosens bool `json:"loosens"`
}

// Empty reports whether the policies judge alike.
func (d *PolicyDiff) Empty() bool { return len(d.Settings) == 0 && len(d.Rules) == 0 }

// Loosens reports whether any change could admit a file the old policy
// blocked.
func (d *PolicyDiff) Loosens() bool {
	for _, f := range d.Settings {
		if f.Loosens {
			return true
		}
	}
	for _, r := range d.Rules {
		if r.Loosens {
			return true
		}
	}
	return false
}

// Diff compares two policies. Removed rules come first, in the old
// policy's order, then added ones in the new policy's order; a rule that
// appears several times in a policy counts once.
//
// Every setting that decides what a file may run is compared, and counts as
// loosening when the new value can admit a file the old one blocked, or
// when csv cannot tell that it cannot: the mode, the policy type and base,
// a base policy's id (supplemental policies attach by it), WDAC
// compatibility (which ignores expiry), timestamp authorities, accepted
// digests and key types, the certificates the policy puts in reach of chain
// building (a rule of either action naming a certificate in full completes
// chains for every signer rule), whether supplemental policies may extend
// it and user-mode code is enforced, and the WDAC options.
func Diff(old, new *Policy) *PolicyDiff {
	d := &PolicyDiff{Old: side(old), New: side(new), Settings: []FieldChange{}, Rules: []RuleChange{}}
	if old.IPE != nil || new.IPE != nil {
		diffIPE(d, old, new)
		return d
	}
	field := func(name, o, n string, loosens bool, why string) {
		if o != n {
			if !loosens {
				why = ""
			}
			d.Settings = append(d.Settings, FieldChange{Field: name, Old: o, New: n, Loosens: loosens, Why: why})
		}
	}
	field("id", old.ID, new.ID, new.Type == Base,
		"a base policy's id decides which supplemental policies extend it, and csv cannot tell which exist")
	field("name", old.Name, new.Name, false, "")
	field("version", old.Version, new.Version, false, "")
	field("type", string(old.Type), string(new.Type),
		(new.Type == Supplemental && old.Type != Supplemental) || (old.Type == Base && new.Type == AppIDTagging),
		typeWhy(new.Type))
	field("base_id", old.BaseID, new.BaseID, new.Type == Supplemental,
		"the supplemental policy's allow rules now extend another base policy")
	field("mode", string(mode(old)), string(mode(new)), mode(old) == Enforce && mode(new) != Enforce,
		"an auditing policy blocks nothing")
	field("wdac_compatible", strconv.FormatBool(old.WDACCompatible), strconv.FormatBool(new.WDACCompatible), new.WDACCompatible,
		"signer rules then ignore certificate expiry (except for Lifetime Signing)")
	oldTA, newTA := certRefKeyList(old.TimestampAuthorities), certRefKeyList(new.TimestampAuthorities)
	field("timestamp_authorities", sortedJoin(oldTA), sortedJoin(newTA), added(oldTA, newTA) != "",
		"a timestamp from "+added(oldTA, newTA)+" now dates signatures, which can make an expired signer valid")
	oldD, newD := names(old.AcceptedDigests()), names(new.AcceptedDigests())
	field("digest_algorithms", strings.Join(oldD, ", "), strings.Join(newD, ", "), added(oldD, newD) != "",
		"signatures over "+added(oldD, newD)+" digests can now match")
	oldK, newK := names(old.AcceptedKeyTypes()), names(new.AcceptedKeyTypes())
	field("key_types", strings.Join(oldK, ", "), strings.Join(newK, ", "), added(oldK, newK) != "",
		"signatures by "+added(oldK, newK)+" keys can now match")
	oldC, newC := chainCertificates(old), chainCertificates(new)
	field("chain_certificates", strings.Join(oldC, ", "), strings.Join(newC, ", "), added(oldC, newC) != "",
		"certificates the policy names in full complete signature chains for every signer rule, whatever the rule's action: "+added(oldC, newC))
	if old.Type == Base || new.Type == Base {
		o, n := supplementalsAllowed(old), supplementalsAllowed(new)
		field("supplemental_policies", allowedWord(o), allowedWord(n), n && !o,
			"supplemental policies can now add allow rules to it")
		o, n = userModeEnforced(old), userModeEnforced(new)
		field("user_mode", enforcedWord(o), enforcedWord(n), o && !n,
			"without Enabled:UMCI Windows runs all user-mode code (csv still judges it)")
	}
	oo, on := options(old), options(new)
	field("options", sortedJoin(old.Options), sortedJoin(new.Options), optionsLoosen(oo, on) != "", optionsLoosen(oo, on))

	oldKeys, newKeys := ruleKeys(old), ruleKeys(new)
	d.Rules = only(d.Rules, old, oldKeys, newKeys, "removed", Deny)
	d.Rules = only(d.Rules, new, newKeys, oldKeys, "added", Allow)
	return d
}

func typeWhy(t PolicyType) string {
	if t == Supplemental {
		return "a supplemental policy's allow rules admit files its base blocks, and it need not allow what the base allows"
	}
	return "an AppID tagging policy blocks nothing"
}

func allowedWord(b bool) string {
	if b {
		return "allowed"
	}
	return "not allowed"
}

func enforcedWord(b bool) string {
	if b {
		return "enforced"
	}
	return "not enforced"
}

// added lists, quoted, what n has and o lacks ("" if nothing).
func added(o, n []string) string {
	var out []string
	for _, x := range n {
		if !slices.Contains(o, x) {
			out = append(out, strconv.Quote(x))
		}
	}
	return strings.Join(out, ", ")
}

// supplementalsAllowed: a YAML base always takes supplemental policies; a
// SiPolicy base only with Enabled:Allow Supplemental Policies.
func supplementalsAllowed(p *Policy) bool {
	return p.Type == Base && (p.Format != "sipolicy" || p.HasOption(OptionAllowSupplemental))
}

// userModeEnforced: WDAC enforces a policy on user-mode code only with
// Enabled:UMCI; csv judges user-mode code by every policy.
func userModeEnforced(p *Policy) bool {
	return p.Format != "sipolicy" || p.HasOption(OptionUMCI)
}

// chainCertificates names (CN and TBS hash) the certificates the policy
// gives chain building.
func chainCertificates(p *Policy) []string {
	var out []string
	for _, c := range signing.Dedup(p.Certificates()) {
		k := fmt.Sprintf("%s (TBS %X)", c.CommonName(), c.TBSHash)
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// optionEffect says which change of a WDAC option can admit more: "added",
// "removed", or "" when neither (the option's effect is judged by another
// setting: mode, user_mode, supplemental_policies). Options not listed are
// unknown to csv: any change of them counts as loosening.
var optionEffect = map[string]string{
	"enabled:audit mode":                               "",
	"enabled:umci":                                     "",
	"enabled:allow supplemental policies":              "",
	"enabled:boot menu protection":                     "removed",
	"enabled:intelligent security graph authorization": "added",
	"enabled:invalidate eas on reboot":                 "removed",
	"enabled:windows lockdown trial mode":              "added",
	"required:whql":                                    "removed",
	"enabled:developer mode dynamic code trust":        "added",
	"disabled:runtime filepath rule protection":        "added",
	"enabled:revoked expired as unsigned":              "removed",
	"disabled:flight signing":                          "removed",
	"enabled:inherit default policy":                   "added",
	"enabled:unsigned system integrity policy":         "added",
	"enabled:dynamic code security":                    "removed",
	"required:ev signers":                              "removed",
	"enabled:boot audit on failure":                    "added",
	"enabled:advanced boot options menu":               "added",
	"disabled:script enforcement":                      "added",
	"required:enforce store applications":              "removed",
	"enabled:managed installer":                        "added",
	"enabled:update policy no reboot":                  "added",
	"enabled:conditional windows lockdown policy":      "added",
	"allowed:debug policy augmented":                   "added",
}

// options returns a policy's options, lower case and trimmed (Windows
// compares them so; so does lint).
func options(p *Policy) []string {
	var out []string
	for _, o := range p.Options {
		out = append(out, strings.ToLower(strings.TrimSpace(o)))
	}
	return out
}

// optionsLoosen says which option changes can admit more ("" if none).
func optionsLoosen(o, n []string) string {
	var why []string
	for _, x := range n {
		if e, known := optionEffect[x]; !slices.Contains(o, x) && (!known || e == "added") {
			why = append(why, fmt.Sprintf("%q added", x))
		}
	}
	for _, x := range o {
		if e, known := optionEffect[x]; !slices.Contains(n, x) && (!known || e == "removed") {
			why = append(why, fmt.Sprintf("%q removed", x))
		}
	}
	if len(why) == 0 {
		return ""
	}
	return "these option changes can let Windows run more, or are unknown to csv: " + strings.Join(why, ", ")
}

// only appends p's rules (keys: their ruleKeys, in order) that other
// lacks, each once, as changes that loosen the policy when their action
// is loosening.
func only(out []RuleChange, p *Policy, keys []string, other []string, what string, loosening Action) []RuleChange {
	in := make(map[string]bool, len(other))
	for _, k := range other {
		in[k] = true
	}
	seen := map[string]bool{}
	for i, k := range keys {
		r := &p.Rules[i]
		if !in[k] && !seen[k] {
			seen[k] = true
			out = append(out, RuleChange{Change: what, Action: r.Action, Rule: ruleText(r), ID: r.ID, Source: p.Source,
				Line: r.Line, Loosens: r.Action == loosening})
		}
	}
	return out
}

func side(p *Policy) DiffSide {
	return DiffSide{Source: p.Source, Name: p.Name, Version: p.Version, SHA256: hex.EncodeToString(p.SHA256[:])}
}

func mode(p *Policy) Mode {
	if p.Mode == "" {
		return Enforce
	}
	return p.Mode
}

// ruleKeys returns the key of each of p's rules, computed once.
func ruleKeys(p *Policy) []string {
	keys := make([]string, len(p.Rules))
	for i := range p.Rules {
		keys[i] = ruleKey(&p.Rules[i])
	}
	return keys
}

// ruleKey is everything about a rule that affects a verdict, canonical
// (sets sorted, case folded where matching folds it).
func ruleKey(r *Rule) string {
	var b strings.Builder
	b.WriteString(string(r.Action))
	b.WriteByte(' ')
	b.WriteString(matcherKey(r))
	if len(r.Except) > 0 {
		var ex []string
		for i := range r.Except {
			// An exception's own scope limits what it takes away.
			ex = append(ex, matcherKey(&r.Except[i])+scopeKey(&r.Except[i]))
		}
		slices.Sort(ex)
		ex = slices.Compact(ex)
		fmt.Fprintf(&b, " except [%s]", strings.Join(ex, "; "))
	}
	b.WriteString(scopeKey(r))
	return b.String()
}

// scopeKey is scopeText with the formats a rule can match in place of the
// formats it lists: a file rule scoped to [pe] and one with no formats
// match the same files (version resources are PE only).
func scopeKey(r *Rule) string {
	cr := &compiledRule{Rule: r}
	var fs []string
	for _, f := range Formats {
		if cr.appliesTo(f) {
			fs = append(fs, string(f))
		}
	}
	rr := *r
	rr.Formats = nil
	k := scopeText(&rr)
	if len(fs) < len(Formats) {
		k += " formats [" + sortedJoin(fs) + "]"
	}
	return k
}

func matcherKey(r *Rule) string {
	switch {
	case r.Unsupported != "":
		return "unsupported " + r.Unsupported
	case r.Hash != nil:
		return r.Hash.String()
	case r.Signer != nil:
		s := r.Signer
		k := fmt.Sprintf("signer %s level %s", certRefKey(&s.Cert), s.Level)
		if s.Publisher != "" {
			k += fmt.Sprintf(" publisher %q", s.Publisher)
		}
		if s.IssuerName != "" {
			k += fmt.Sprintf(" issuer %q", s.IssuerName)
		}
		if len(s.EKUs) > 0 {
			k += " ekus [" + sortedJoin(s.EKUs) + "]"
		}
		if len(s.SignatureFormats) > 0 {
			k += " signature_formats [" + sortedJoin(s.SignatureFormats) + "]"
		}
		if s.OEMID != "" {
			k += fmt.Sprintf(" oem_id %q", s.OEMID)
		}
		if len(s.Files) > 0 {
			var fs []string
			for i := range s.Files {
				fs = append(fs, fileKey(&s.Files[i]))
			}
			k += " files [" + sortedJoin(fs) + "]"
		}
		return k
	case r.File != nil:
		return "file " + fileKey(r.File)
	case r.All:
		return "all"
	}
	return "nothing"
}

// certRefKey identifies a certificate reference by what it matches: a
// certificate and its TBS hash match the same certificates.
func certRefKey(c *CertRef) string {
	if c.WellKnown != "" {
		return "well-known:" + c.WellKnown
	}
	tbs := c.TBSHash
	if c.Certificate != nil {
		tbs = c.Certificate.TBSHash
	}
	return "tbs:" + strings.ToUpper(hex.EncodeToString(tbs))
}

func certRefKeyList(cs []CertRef) []string {
	var ks []string
	for i := range cs {
		ks = append(ks, certRefKey(&cs[i]))
	}
	return ks
}

func fileKey(f *FileAttrMatch) string {
	field := f.Field
	if field == "" {
		field = OriginalFileName
	}
	// Names equal but for ASCII letter case match alike (sameName); other
	// case differences change what an allow rule matches. strings.ToLower
	// would merge "İ" and "I", which no comparison of sameName does.
	k := fmt.Sprintf("%s=%q", field, asciiLower(f.Name))
	if f.MinVersion != nil {
		k += " >=" + f.MinVersion.String()
	}
	if f.MaxVersion != nil {
		k += " <=" + f.MaxVersion.String()
	}
	return k
}

func scopeText(r *Rule) string {
	var b strings.Builder
	if len(r.Paths) > 0 {
		b.WriteString(" paths [" + sortedJoin(r.Paths) + "]")
	}
	if len(r.Scenarios) > 0 {
		var ss []string
		for _, s := range r.Scenarios {
			ss = append(ss, string(s))
		}
		b.WriteString(" scenarios [" + sortedJoin(ss) + "]")
	}
	if len(r.Formats) > 0 {
		var fs []string
		for _, f := range r.Formats {
			fs = append(fs, string(f))
		}
		b.WriteString(" formats [" + sortedJoin(fs) + "]")
	}
	return b.String()
}

// ruleText is a rule for people: what Describe says, the signer's other
// constraints, the exceptions and the scope.
func ruleText(r *Rule) string {
	s := r.Describe()
	if r.Signer != nil {
		if r.Signer.IssuerName != "" {
			s += fmt.Sprintf(", issuer %q", r.Signer.IssuerName)
		}
		if len(r.Signer.EKUs) > 0 {
			s += ", EKUs " + sortedJoin(r.Signer.EKUs)
		}
		if r.Signer.OEMID != "" {
			s += fmt.Sprintf(", OEM ID %q", r.Signer.OEMID)
		}
		for i := range r.Signer.Files {
			s += ", file " + r.Signer.Files[i].String()
		}
	}
	for i := range r.Except {
		s += ", except " + r.Except[i].Describe()
	}
	if scope := scopeText(r); scope != "" {
		s += "," + scope
	}
	return s
}

// sortedJoin lists a set: sorted, without duplicates, each element quoted
// (so that no two sets list alike).
func sortedJoin(ss []string) string {
	ss = slices.Clone(ss)
	slices.Sort(ss)
	ss = slices.Compact(ss)
	for i, s := range ss {
		ss[i] = strconv.Quote(s)
	}
	return strings.Join(ss, ", ")
}
