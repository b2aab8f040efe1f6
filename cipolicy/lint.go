package cipolicy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// Severity ranks a lint finding.
type Severity string

// Severities.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Finding is one thing lint says about a policy.
type Finding struct {
	Severity Severity `json:"severity"`
	Source   string   `json:"source"`
	Line     int      `json:"line,omitempty"`
	Rule     string   `json:"rule,omitempty"`
	Message  string   `json:"message"`
}

func (f Finding) String() string {
	loc := f.Source
	if f.Line > 0 {
		loc = fmt.Sprintf("%s:%d", f.Source, f.Line)
	}
	if f.Rule != "" {
		return fmt.Sprintf("%s: %s: rule %q: %s", loc, f.Severity, f.Rule, f.Message)
	}
	return fmt.Sprintf("%s: %s: %s", loc, f.Severity, f.Message)
}

// FindingsFromError turns a LoadError into error findings, so that lint can
// list load errors and warnings together.
func FindingsFromError(e *LoadError) []Finding {
	out := make([]Finding, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = Finding{Severity: SeverityError, Source: e.Source, Line: p.Line, Message: p.Message}
	}
	return out
}

// Lint looks for what is legal but almost certainly wrong in loaded
// policies: rules that can never match, duplicates, a policy that allows
// nothing, and, across the policies given, supplemental policies whose base
// is missing.
func Lint(policies ...*Policy) []Finding {
	var out []Finding
	bases := map[string]bool{}
	for _, p := range policies {
		if p.Type != Supplemental {
			bases[p.ID] = true
		}
	}
	for _, p := range policies {
		if p.IPE != nil {
			out = append(out, lintIPE(p)...)
			continue
		}
		out = append(out, lintPolicy(p)...)
		if p.Type == Supplemental && len(policies) > 1 && !bases[p.BaseID] {
			out = append(out, Finding{Severity: SeverityError, Source: p.Source,
				Message: fmt.Sprintf("supplemental policy extends base %q, which is not among the policies given", p.BaseID)})
		}
	}
	return out
}

func lintPolicy(p *Policy) []Finding {
	var out []Finding
	add := func(sev Severity, r *Rule, format string, args ...any) {
		f := Finding{Severity: sev, Source: p.Source, Message: fmt.Sprintf(format, args...)}
		if r != nil {
			f.Rule, f.Line = r.ID, r.Line
		}
		out = append(out, f)
	}
	if p.Version == "" {
		add(SeverityWarning, nil, "policy has no version: reports cannot tell its revisions apart")
	}
	if p.Mode == Audit {
		add(SeverityWarning, nil, "policy is in audit mode: it reports what it would block and blocks nothing")
	}
	if slices.Contains(p.DigestAlgorithms, DigestSHA1) {
		add(SeverityWarning, nil, "digest_algorithms accepts sha1: signatures over SHA-1 digests can be forged with chosen-prefix collisions")
	}
	if p.WDACCompatible {
		for _, k := range p.KeyTypes {
			if k != KeyRSA {
				add(SeverityWarning, nil, "key_types lists %s, but under wdac_compatible only RSA signatures match (as on Windows)", k)
			}
		}
	}
	allows, flatForAll := 0, 0
	type seenRule struct {
		r      *Rule
		scoped bool
	}
	denied := map[hashKey]*Rule{} // unscoped deny rules
	first := map[hashKey]seenRule{}
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Action == Allow {
			allows++
		}
		everyPath := false
		for _, pat := range r.Paths {
			if why := neverMatchingGlob(pat); why != "" {
				add(SeverityWarning, r, "path glob %q can never match: %s", pat, why)
			} else if globMatchesEverything(pat) {
				everyPath = true
				add(SeverityWarning, r, "path glob %q matches every path: it does not limit the rule", pat)
			}
		}
		unscoped := (len(r.Paths) == 0 || everyPath) && everyScenario(r.Scenarios)
		switch what := matchesEverything(r); {
		case what == "":
		case r.File != nil && r.Action == Allow:
			add(SeverityWarning, r, "allows %s, whatever its name: a file rule without a name matches by version alone (set name, or use all: true if every file is meant)", what)
		case r.File != nil:
			add(SeverityWarning, r, "denies %s, whatever its name: a file rule without a name matches by version alone", what)
		case r.Action == Allow && unscoped:
			add(SeverityWarning, r, "allows %s: only deny rules block anything", what)
		}
		for i := range r.Except {
			if what := matchesEverything(&r.Except[i]); what != "" && r.Except[i].File == nil {
				add(SeverityWarning, r, "its exception %s matches %s: the rule can never allow anything", r.Except[i].ID, what)
			} else if what != "" {
				add(SeverityWarning, r, "its exception %s matches %s, whatever its name: the rule allows only files outside those versions", r.Except[i].ID, what)
			}
		}
		if r.Hash == nil {
			continue
		}
		if d := r.Hash.Algorithm.Digest(); r.Action == Allow && !slices.Contains(p.AcceptedDigests(), d) {
			add(SeverityWarning, r, "can never allow anything: it compares %s digests, and digest_algorithms accepts %s", d, joinNames(p.AcceptedDigests()))
		}
		for _, f := range r.Formats {
			if !r.Hash.Algorithm.AppliesTo(f) {
				add(SeverityWarning, r, "%s digests exist only for %s files: formats [%s] can never match", r.Hash.Algorithm, r.Hash.Algorithm.only(), f)
			}
		}
		if r.Hash.Algorithm == SHA256 && len(r.Formats) == 0 {
			flatForAll++
		}
		k := hashKey{r.Hash.Algorithm, string(r.Hash.Value)}
		scoped := len(r.Paths) > 0 || len(r.Scenarios) > 0
		if prev, ok := first[k]; ok && prev.r.Action == r.Action && !scoped && !prev.scoped {
			add(SeverityWarning, r, "duplicate hash: rule %q (line %d) already %ss %s", prev.r.ID, prev.r.Line, r.Action, r.Hash)
		} else if !ok {
			first[k] = seenRule{r, scoped}
		}
		if r.Action == Deny && !scoped {
			denied[k] = r
		}
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Action != Allow || r.Hash == nil {
			continue
		}
		if d := denied[hashKey{r.Hash.Algorithm, string(r.Hash.Value)}]; d != nil {
			add(SeverityWarning, r, "can never allow anything: rule %q (line %d) denies the same hash, and deny wins", d.ID, d.Line)
		}
	}
	if flatForAll > 0 && len(p.Rules) > flatForAll {
		add(SeverityWarning, nil, "%d sha256 rules have no formats scope, so every PE file needs a flat SHA256 besides its Authenticode hash: add formats: [elf] (or [pe]) where you can", flatForAll)
	}
	if allows == 0 && p.Type == Base {
		add(SeverityWarning, nil, "policy allows nothing: every binary will be blocked")
	}
	if p.Format == "sipolicy" {
		out = append(out, lintWDAC(p)...)
	}
	return out
}

// matchesEverything says what a rule's matcher matches when it matches
// every file, or every PE file in a version range, whatever its name (a
// YAML file matcher with only version bounds, WDAC's FileName="*" with a
// version); "" otherwise.
func matchesEverything(r *Rule) string {
	switch {
	case r.Unsupported != "":
		return ""
	case r.All:
		return "every file in its scope"
	case r.File != nil && r.File.Name == "":
		if r.File.MinVersion == nil && r.File.MaxVersion == nil {
			return "every PE file"
		}
		return "every PE file with " + r.File.bounds()
	}
	return ""
}

// everyScenario reports whether a scenarios scope admits every scenario
// (none listed, or user, kernel and boot, "build" standing for the first
// two): it does not limit the rule.
func everyScenario(ss []Scenario) bool {
	for _, sc := range []Scenario{ScenarioUser, ScenarioKernel, ScenarioBoot} {
		if len(ss) > 0 && !slices.ContainsFunc(ss, func(s Scenario) bool {
			return s == sc || (s == ScenarioBuild && sc != ScenarioBoot)
		}) {
			return false
		}
	}
	return true
}

// globMatchesEverything reports whether a path glob matches every relative
// path ("**", "**/*"), by trying paths of every shape.
func globMatchesEverything(pat string) bool {
	for _, p := range []string{"a", "a.exe", ".a", "a/b", "a/b/c.exe", "a/.b/c", "x y/z"} {
		if ok, _ := doublestar.Match(pat, p); !ok {
			return false
		}
	}
	return true
}

// neverMatchingGlob says why a path glob cannot match a subject path
// (relative, slash-separated, clean), or "".
func neverMatchingGlob(pat string) string {
	switch {
	case strings.HasPrefix(pat, "/"):
		return "paths are relative to the validated root"
	case strings.Contains(pat, `\`):
		return `paths are slash-separated (and \ escapes the next character in a glob)`
	case strings.HasSuffix(pat, "/"):
		return "paths name files, never end in /"
	}
	for _, el := range strings.Split(pat, "/") {
		if el == "." || el == ".." || el == "" {
			return "paths are clean: no ., .. or empty elements"
		}
	}
	return ""
}

// wdacOptionEffects says, for each WDAC option that changes what Windows
// allows and that csv does not apply, what it means.
var wdacOptionEffects = map[string]string{
	"enabled:revoked expired as unsigned":              "Windows treats files signed with revoked certificates, or with expired certificates that carry the Lifetime Signing EKU, as unsigned; csv checks no revocation (it does refuse a Lifetime Signing leaf that is not valid now)",
	"required:whql":                                    "Windows requires every kernel driver to be WHQL-signed; csv applies only the policy's own signer rules",
	"enabled:intelligent security graph authorization": "Windows also allows files that Microsoft's Intelligent Security Graph rates as good; csv cannot consult the ISG and blocks what no rule allows",
	"enabled:managed installer":                        "Windows also allows files a managed installer installed; csv cannot know how a file was installed and blocks what no rule allows",
	"enabled:invalidate eas on reboot":                 "Windows periodically re-checks files the ISG allowed; csv does not use the ISG",
	"disabled:flight signing":                          "Windows does not trust flight-signed code; csv treats allow rules for the flight root (well-known 0E) as unsupported",
	"required:ev signers":                              "Microsoft documents this option as not supported; csv ignores it",
	"enabled:developer mode dynamic code trust":        "Windows trusts UWP apps debugged in Visual Studio when Developer Mode is on; csv does not",
	"disabled:runtime filepath rule protection":        "it changes how Windows applies FilePath rules, which csv cannot judge anyway",
}

// wdacKnownOptions are the options cipolicy.xsd and Microsoft's
// documentation define (lower case).
var wdacKnownOptions = []string{
	"enabled:umci", "enabled:boot menu protection", "enabled:intelligent security graph authorization",
	"enabled:invalidate eas on reboot", "enabled:windows lockdown trial mode", "required:whql",
	"enabled:developer mode dynamic code trust", "enabled:allow supplemental policies",
	"disabled:runtime filepath rule protection", "enabled:revoked expired as unsigned", "enabled:audit mode",
	"disabled:flight signing", "enabled:inherit default policy", "enabled:unsigned system integrity policy",
	"enabled:dynamic code security", "required:ev signers", "enabled:boot audit on failure",
	"enabled:advanced boot options menu", "disabled:script enforcement", "required:enforce store applications",
	"enabled:secure setting policy", "enabled:managed installer", "enabled:update policy no reboot",
	"enabled:conditional windows lockdown policy", "allowed:debug policy augmented",
}

// lintWDAC adds what matters about a policy read from SiPolicy XML: rules
// csv cannot judge, signers that need roots supplied, options csv does not
// apply, and what the loader dropped. It says at most one thing per rule and
// groups what would otherwise fill screens (the block list's page hashes).
func lintWDAC(p *Policy) []Finding {
	var out []Finding
	add := func(line int, rule, format string, args ...any) {
		out = append(out, Finding{Severity: SeverityWarning, Source: p.Source, Line: line, Rule: rule, Message: fmt.Sprintf(format, args...)})
	}
	var pageAllows []*Rule
	unsupported := map[string][]*Rule{} // by kind of reason
	var kinds []string
	wellKnown := map[string][]*Rule{}
	var roots []string
	var typo []*Rule
	const typoVersion = "65355.65355.65355.65355"
	for i := range p.Rules {
		r := &p.Rules[i]
		switch {
		case r.Hash != nil && r.Action == Allow && r.Unsupported == "" && r.Hash.Algorithm.FirstPage():
			pageAllows = append(pageAllows, r)
		case r.Unsupported != "":
			k := unsupportedKind(r.Unsupported)
			if unsupported[k] == nil {
				kinds = append(kinds, k)
			}
			unsupported[k] = append(unsupported[k], r)
		case r.Signer != nil && r.Signer.OEMID != "":
			add(r.Line, r.ID, "signer rule sets CertOemID %q, which cannot be judged from a file: it never matches", r.Signer.OEMID)
		case r.Signer != nil && r.Signer.Cert.WellKnown != "":
			id := r.Signer.Cert.WellKnown
			if wellKnown[id] == nil {
				roots = append(roots, id)
			}
			wellKnown[id] = append(wellKnown[id], r)
		case r.Action == Deny && slices.ContainsFunc(r.Except, func(x Rule) bool { return x.Unsupported != "" }):
			x := r.Except[slices.IndexFunc(r.Except, func(x Rule) bool { return x.Unsupported != "" })]
			add(r.Line, r.ID, "its exception %s cannot be judged (%s): the deny applies even to files Windows exempts", x.ID, x.Unsupported)
		case r.File != nil && r.Action == Deny && (versionIs(r.File.MinVersion, typoVersion) || versionIs(r.File.MaxVersion, typoVersion)):
			typo = append(typo, r)
		}
	}
	if len(pageAllows) > 0 {
		add(pageAllows[0].Line, "", "%s only files whose verified signature, chained to a root supplied as trusted (--certs), carries page hashes (a page-hash table csv checks against every page): "+
			"Windows compares first-page hashes only for such files, and the first page does not cover the rest of another file; the whole-image hash rules admit the others: %s",
			plural(len(pageAllows), "allow page-hash rule admits", "allow page-hash rules admit"), ruleIDs(pageAllows))
	}
	for _, k := range kinds {
		rs := unsupported[k]
		if len(rs) <= 5 {
			for _, r := range rs {
				add(r.Line, r.ID, "cannot be judged offline: %s — it never matches%s", r.Unsupported, consequence(r))
			}
			continue
		}
		add(rs[0].Line, "", "%d rules cannot be judged offline (%s, for instance: %s) — they never match: %s", len(rs), k, rs[0].Unsupported, ruleIDs(rs))
	}
	for _, id := range roots {
		rs := wellKnown[id]
		doc, _, _ := wellKnownRoot(id)
		add(rs[0].Line, "", "%s to well-known root %s (%s, certificate %q): judging needs that root certificate supplied with --certs, and without it no such rule matches: %s",
			plural(len(rs), "signer rule chains", "signer rules chain"), id, doc, rs[0].Signer.Cert.WellKnownName, ruleIDs(rs))
	}
	if len(typo) > 0 {
		add(typo[0].Line, "", "%d deny rules stop at version %s (65535.65535.65535.65535 was probably meant): as on Windows, files with a higher version are not denied: %s",
			len(typo), typoVersion, ruleIDs(typo))
	}
	umci := false
	for _, o := range p.Options {
		lo := strings.ToLower(strings.TrimSpace(o))
		if lo == "enabled:umci" {
			umci = true
		}
		if effect, ok := wdacOptionEffects[lo]; ok {
			add(0, "", "option %q: %s", o, effect)
		} else if !slices.Contains(wdacKnownOptions, lo) {
			add(0, "", "unknown option %q: csv does not know what it changes", o)
		}
	}
	if !umci && p.Type == Base {
		add(0, "", "option \"Enabled:UMCI\" is not set: Windows enforces this policy for kernel-mode code only and lets all user-mode code run; csv still judges user-mode files by the user-mode rules")
	}
	for _, n := range p.Notes {
		add(n.Line, n.Rule, "%s", n.Message)
	}
	return out
}

// plural returns "1 one" or "n many".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func versionIs(v *Version, s string) bool { return v != nil && v.String() == s }

// unsupportedKind groups unsupported reasons: the text before the first
// parenthesis or colon.
func unsupportedKind(reason string) string {
	if i := strings.IndexAny(reason, "(:"); i > 0 {
		return strings.TrimSpace(reason[:i])
	}
	return reason
}

func consequence(r *Rule) string {
	switch r.Action {
	case Allow:
		return " (csv blocks what only this rule would allow)"
	case Deny:
		return " (csv does not block what only this rule would deny)"
	}
	return ""
}

func ruleIDs(rs []*Rule) string {
	const show = 8
	ids := make([]string, 0, show)
	for i, r := range rs {
		if i == show {
			return strings.Join(ids, ", ") + fmt.Sprintf(" and %d more", len(rs)-show)
		}
		ids = append(ids, r.ID)
	}
	return strings.Join(ids, ", ")
}
