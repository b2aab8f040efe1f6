package report

import (
	"io"
	"net/url"
	"path"
	"strings"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/csv"
)

// SARIF is a SARIF 2.1.0 log with one run: one rule per reason kind and one
// result per blocked file (and per allowed file with Options.SARIFPasses).
// Where Microsoft's CodeSign Validation build task has a rule id for the same
// finding, the same id is used, so pipelines written for that task read this
// report unchanged.
type SARIF struct{ opts Options }

// SARIF rule ids.
const (
	RuleMissingSigningCert = "CodeSign.MissingSigningCert" // unsigned and not allowed (CodeSign Validation's id)
	RuleMatchingPolicy     = "CodeSign.MatchingPolicy"     // allowed (CodeSign Validation's id)
	RuleNotAllowed         = "CSV.NotAllowed"              // signed, but no rule allows it
	RuleDenied             = "CSV.Denied"                  // a deny rule matched
	RuleMalformed          = "CSV.Malformed"               // unreadable, truncated or malformed
)

type sarifRuleDef struct {
	id, name, short, full string
	level                 string
}

var sarifRules = []sarifRuleDef{
	{RuleMissingSigningCert, "MissingSigningCert", "Binary is not signed and no rule allows it",
		"The file carries no signature, and no hash rule of the code integrity policy allows it: a host enforcing the policy would not run it. Sign it with a certificate the policy trusts, or add a hash rule.", "error"},
	{RuleNotAllowed, "NotAllowedByPolicy", "Binary is signed, but no rule allows it",
		"The file is signed, but by no signer the policy allows, and no hash rule allows it: a host enforcing the policy would not run it.", "error"},
	{RuleDenied, "DeniedByPolicy", "A deny rule matches the binary",
		"A deny rule of the code integrity policy matches the file. Deny rules always win: a host enforcing the policy would not run it.", "error"},
	{RuleMalformed, "MalformedBinary", "Binary could not be read or parsed",
		"The file claims to be PE or ELF but is truncated, malformed or unreadable, so it cannot be judged. It is blocked (fail closed).", "error"},
	{RuleMatchingPolicy, "MatchingPolicy", "Binary is allowed by the policy",
		"A rule of the code integrity policy allows the file.", "none"},
}

func sarifRuleID(k cipolicy.ReasonKind) string {
	switch k {
	case cipolicy.KindUnsigned:
		return RuleMissingSigningCert
	case cipolicy.KindNotAllowed:
		return RuleNotAllowed
	case cipolicy.KindDenied:
		return RuleDenied
	case cipolicy.KindMalformed:
		return RuleMalformed
	}
	return RuleMatchingPolicy
}

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
	Properties  map[string]any    `json:"properties,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Version        string      `json:"version,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      sarifText      `json:"fullDescription"`
	Help                 sarifText      `json:"help"`
	DefaultConfiguration map[string]any `json:"defaultConfiguration"`
	Properties           map[string]any `json:"properties,omitempty"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool                `json:"executionSuccessful"`
	StartTimeUTC        string              `json:"startTimeUtc,omitempty"`
	EndTimeUTC          string              `json:"endTimeUtc,omitempty"`
	Notifications       []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level   string    `json:"level"`
	Message sarifText `json:"message"`
}

type sarifResult struct {
	RuleID     string          `json:"ruleId"`
	RuleIndex  int             `json:"ruleIndex"`
	Kind       string          `json:"kind"`
	Level      string          `json:"level"`
	Message    sarifText       `json:"message"`
	Locations  []sarifLocation `json:"locations"`
	Properties map[string]any  `json:"properties,omitempty"`
	// Suppressions mark a suppressed finding (suppress.go).
	Suppressions []sarifSuppression `json:"suppressions,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

// artifactURI turns a slash-separated display path into a URI reference:
// relative paths stay relative (GitHub resolves them against the
// repository), absolute ones become file URIs.
func artifactURI(p string) string {
	p = path.Clean(p)
	u := url.URL{Path: p}
	if strings.HasPrefix(p, "/") {
		u.Scheme = "file"
		return u.String()
	}
	return u.EscapedPath()
}

// Render implements Renderer.
func (s *SARIF) Render(w io.Writer, r *csv.Report) error {
	return render(&sarifSink{opts: s.opts, w: w}, r)
}

// sarifRuleIndex is each rule's index in sarifRules.
var sarifRuleIndex = func() map[string]int {
	index := map[string]int{}
	for i, d := range sarifRules {
		index[d.id] = i
	}
	return index
}()

// sarifHead is the SARIF run of a report, without its results.
func sarifHead(r *csv.Report, opts Options) sarifRun {
	run := sarifRun{
		Tool: sarifTool{Driver: sarifDriver{Name: "csv", InformationURI: "https://github.com/codesignval/csv",
			Version: opts.ToolVersion}},
		Results: []sarifResult{},
	}
	for _, d := range sarifRules {
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID: d.id, Name: d.name, ShortDescription: sarifText{d.short}, FullDescription: sarifText{d.full},
			Help:                 sarifText{d.full},
			DefaultConfiguration: map[string]any{"level": d.level},
			Properties:           map[string]any{"tags": []string{"security", "code-signing"}},
		})
	}
	inv := sarifInvocation{ExecutionSuccessful: true,
		StartTimeUTC: r.Started.UTC().Format("2006-01-02T15:04:05.000Z"),
		EndTimeUTC:   r.Started.Add(r.Duration).UTC().Format("2006-01-02T15:04:05.000Z")}
	if opts.FailedNoTargets {
		inv.Notifications = append(inv.Notifications, sarifNotification{Level: "error",
			Message: sarifText{"no PE or ELF binaries found under " + strings.Join(r.Roots, ", ") + " (--fail-if-no-targets)"}})
	}
	inv.Notifications = append(inv.Notifications, sarifSuppressionNotifications(r, opts)...)
	run.Invocations = []sarifInvocation{inv}
	var policies []map[string]any
	for _, p := range r.Policies {
		policies = append(policies, map[string]any{"name": p.Name, "id": p.ID, "version": p.Version, "sha256": p.SHA256Hex(), "mode": p.Mode})
	}
	run.Properties = map[string]any{"policies": policies, "mode": r.Mode, "scenario": r.Scenario, "summary": r.Summary}
	if docs := SuppressionDocs(r.Suppressions); len(docs) > 0 {
		run.Properties["suppressions"] = docs
	}
	return run
}

// sarifResultOf is the SARIF result of a judged binary (false for an
// allowed one, unless opts.SARIFPasses).
func sarifResultOf(res *csv.Result, opts Options) (sarifResult, bool) {
	d := res.Decision
	if d.Allowed() && !opts.SARIFPasses {
		return sarifResult{}, false
	}
	id := sarifRuleID(d.Kind)
	out := sarifResult{RuleID: id, RuleIndex: sarifRuleIndex[id], Kind: "fail", Level: "error"}
	msg := res.DisplayPath() + ": " + reasonText(res)
	switch {
	case d.Allowed():
		out.Kind, out.Level = "pass", "none"
	case !d.Enforced:
		out.Level = "warning"
		msg += " (audit mode: would be blocked under enforcement)"
	}
	out.Message = sarifText{msg}
	// A member's location is the file on disk that holds it (code
	// scanning shows files of the repository); the message names the member.
	file, _, _ := strings.Cut(res.DisplayPath(), container.Separator)
	out.Locations = []sarifLocation{{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: artifactURI(file)}}}}
	props := map[string]any{"verdict": d.Verdict, "enforced": d.Enforced, "policy": d.Policy, "format": res.Format}
	if d.Rule != "" {
		props["policyRule"] = d.Rule
	}
	res.Digests.Each(func(a cipolicy.HashAlgorithm, v []byte) { props[string(a)] = hexOrEmpty(v) })
	out.Properties = props
	out.Suppressions = sarifSuppressionsOf(res)
	return out, true
}
