package cipolicy

import (
	"fmt"
	"strings"
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
		for _, pat := range r.Paths {
			if why := neverMatchingGlob(pat); why != "" {
				add(SeverityWarning, r, "path glob %q can never match: %s", pat, why)
			}
		}
		if r.Hash == nil {
			continue
		}
		for _, f := range r.Formats {
			if !r.Hash.Algorithm.AppliesTo(f) {
				add(SeverityWarning, r, "%s digests exist only for PE files: formats [%s] can never match", r.Hash.Algorithm, f)
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
	if allows == 0 && p.Type != Supplemental {
		add(SeverityWarning, nil, "policy allows nothing: every binary will be blocked")
	}
	return out
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
