package report

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
)

// SARIF is a SARIF 2.1.0 log with one run: one rule per reason kind and one
// result per blocked file (and per allowed file with Options.SARIFPasses).
// Where Microsoft's CodeSign Validation build task has a rule id for the same
// finding, the same id is used, so pipelines written for that task read this
// report unchanged.
type SARIF struct{ opts Options }

// SARIF rule ids: Microsoft's CodeSign Validation ids where that gate
// reports the same finding (pipelines and suppressions are keyed on them),
// CSV.* where it has none.
const (
	RuleMissingSigningCert = "CodeSign.MissingSigningCert" // unsigned and not allowed (CodeSign Validation's id)
	RuleNoMatchingPolicy   = "CodeSign.NoMatchingPolicy"   // signed, but no rule allows it (CodeSign Validation's id)
	RuleMatchingPolicy     = "CodeSign.MatchingPolicy"     // allowed (CodeSign Validation's id)
	RuleDenied             = "CSV.Denied"                  // a deny rule matched
	RuleMalformed          = "CSV.Malformed"               // unreadable, truncated or malformed
)

// RuleNotAllowed is the rule id csv gave a signed file that no rule
// allows before it used Microsoft's: it is listed as a deprecated id of
// RuleNoMatchingPolicy in SARIF logs, so that suppressions keyed on it
// still find the rule.
//
// Deprecated: use RuleNoMatchingPolicy.
const RuleNotAllowed = "CSV.NotAllowed"

type sarifRuleDef struct {
	id, name, short, full string
	level                 string
	deprecated            []string
}

var sarifRules = []sarifRuleDef{
	{RuleMissingSigningCert, "MissingSigningCert", "Binary is not signed and no rule allows it",
		"The file carries no signature, and no hash rule of the code integrity policy allows it: a host enforcing the policy would not run it. Sign it with a certificate the policy trusts, or add a hash rule.", "error", nil},
	{RuleNoMatchingPolicy, "NoMatchingPolicy", "Binary is signed, but no rule allows it",
		"The file is signed, but by no signer the policy allows, and no hash rule allows it: a host enforcing the policy would not run it.", "error",
		[]string{RuleNotAllowed}},
	{RuleDenied, "DeniedByPolicy", "A deny rule matches the binary",
		"A deny rule of the code integrity policy matches the file. Deny rules always win: a host enforcing the policy would not run it.", "error", nil},
	{RuleMalformed, "MalformedBinary", "Binary could not be read or parsed",
		"The file claims to be PE or ELF but is truncated, malformed or unreadable, so it cannot be judged. It is blocked (fail closed).", "error", nil},
	{RuleMatchingPolicy, "MatchingPolicy", "Binary is allowed by the policy",
		"A rule of the code integrity policy allows the file.", "none", nil},
}

// RuleID is the rule id of a decision of kind k in every report (SARIF
// ruleId, the JUnit detail, the lines csv writes to the CI log): a
// CodeSign Validation id where that gate has one for the same finding.
func RuleID(k cipolicy.ReasonKind) string {
	switch k {
	case cipolicy.KindUnsigned:
		return RuleMissingSigningCert
	case cipolicy.KindNotAllowed:
		return RuleNoMatchingPolicy
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
	// OriginalURIBaseIDs says where %SRCROOT% lies (Options.SARIFRoot).
	OriginalURIBaseIDs map[string]sarifArtifact `json:"originalUriBaseIds,omitempty"`
	Results            []sarifResult            `json:"results"`
	Properties         map[string]any           `json:"properties,omitempty"`
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
	DeprecatedIDs        []string       `json:"deprecatedIds,omitempty"`
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
	RuleID    string          `json:"ruleId"`
	RuleIndex int             `json:"ruleIndex"`
	Kind      string          `json:"kind"`
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations"`
	// PartialFingerprints identify the finding across runs (code
	// scanning matches alerts by them): see fingerprint.
	PartialFingerprints map[string]string `json:"partialFingerprints,omitempty"`
	Properties          map[string]any    `json:"properties,omitempty"`
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
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId,omitempty"`
}

// SARIFRootBase is the uriBaseId of locations under Options.SARIFRoot, the
// name SARIF reserves for the root of the sources.
const SARIFRootBase = "%SRCROOT%"

// FingerprintKey is the key of csv's partialFingerprints: a SHA-256 of the
// rule id and the file's stable path (see fingerprint).
const FingerprintKey = "csvFinding/v1"

// sarifPaths places files for SARIF locations: relative to root
// (absolute, "" when not given) through %SRCROOT%, the working directory
// cwd resolving relative display paths.
type sarifPaths struct{ root, cwd string }

func newSARIFPaths(opts Options) sarifPaths {
	if opts.SARIFRoot == "" {
		return sarifPaths{}
	}
	root, err := filepath.Abs(opts.SARIFRoot)
	if err != nil {
		return sarifPaths{}
	}
	cwd, _ := os.Getwd()
	return sarifPaths{root: root, cwd: cwd}
}

// locate returns the artifact location of the file on disk whose display
// path is file (slash-separated), and the path its fingerprint takes:
// relative to the SARIF root when it lies under it, the display path
// otherwise.
func (p sarifPaths) locate(file string) (sarifArtifact, string) {
	if p.root != "" {
		abs := filepath.FromSlash(file)
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(p.cwd, abs)
		}
		if rel, err := filepath.Rel(p.root, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel) {
			rel = filepath.ToSlash(rel)
			return sarifArtifact{URI: ArtifactURI(rel), URIBaseID: SARIFRootBase}, rel
		}
	}
	return sarifArtifact{URI: ArtifactURI(file)}, path.Clean(file)
}

// fingerprint is a finding's partialFingerprints value: a SHA-256 of the
// rule id and the file's stable path (relative to the SARIF root, or as
// the run named it), with a container member's path, so that a finding
// keeps its fingerprint from build to build however its digests change,
// and two files, or two findings of one file, never share one.
func fingerprint(ruleID, stable, member string) string {
	h := sha256.New()
	for _, s := range []string{ruleID, stable, member} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ArtifactURI turns a slash-separated display path into a URI reference:
// relative paths stay relative (GitHub resolves them against the
// repository), absolute ones become file URIs.
func ArtifactURI(p string) string {
	p = path.Clean(p)
	if len(p) > 1 && p[1] == ':' {
		p = "/" + p // a Windows drive: file:///C:/...
	}
	u := url.URL{Path: p}
	if strings.HasPrefix(p, "/") {
		u.Scheme = "file"
		return u.String()
	}
	return u.EscapedPath()
}

// Render implements Renderer.
func (s *SARIF) Render(w io.Writer, r *csv.Report) error {
	return render(&sarifSink{opts: s.opts, w: w, paths: newSARIFPaths(s.opts)}, r)
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
			DeprecatedIDs:        d.deprecated,
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
	if p := newSARIFPaths(opts); p.root != "" {
		run.OriginalURIBaseIDs = map[string]sarifArtifact{SARIFRootBase: {URI: ArtifactURI(filepath.ToSlash(p.root)) + "/"}}
	}
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

// originPrefix is what DisplayPath puts before the path of a result
// judged from facts recorded at origin.
func originPrefix(origin string) string {
	if origin == "" {
		return ""
	}
	return origin + ":"
}
