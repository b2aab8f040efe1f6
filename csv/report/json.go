package report

import (
	"encoding/hex"
	"io"
	"slices"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/signing"
)

// MediaType identifies the JSON report's schema; it changes only when a
// field is removed or changes meaning.
const MediaType = "application/vnd.codesignval.csv.report.v1+json"

// JSON is the machine-readable report. Field names are stable; see the
// README for the schema.
type JSON struct{ opts Options }

// Document is the JSON report.
type Document struct {
	MediaType string        `json:"mediaType"`
	Tool      Tool          `json:"tool"`
	Policy    PolicyDoc     `json:"policy"`
	Policies  []PolicyDoc   `json:"policies"`
	Mode      cipolicy.Mode `json:"mode"`
	Scenario  string        `json:"scenario"`
	Roots     []string      `json:"roots"`
	// Origins are where the facts judged were recorded, one per facts
	// file (the roots), for csv validate --facts.
	Origins   []string     `json:"origins,omitempty"`
	Started   time.Time    `json:"started"`
	Duration  float64      `json:"duration_seconds"`
	Passed    bool         `json:"passed"`
	Summary   csv.Summary  `json:"summary"`
	Results   []ResultDoc  `json:"results"`
	Skipped   []SkippedDoc `json:"skipped"`
	NoTargets bool         `json:"no_targets_failure,omitempty"`
	// Run is everything that decided which files were judged and how,
	// besides the policies and the tool: csv report merge refuses shards
	// whose runs differ in any of it. Reports of csv before it have none.
	Run *RunDoc `json:"run,omitempty"`
	// Shard is the share of the files judged (csv validate --shard); a
	// merged report lists every shard it combines.
	Shard  *ShardDoc  `json:"shard,omitempty"`
	Shards []ShardDoc `json:"merged_shards,omitempty"`
	// Suppressions are the run's suppressions (csv validate
	// --suppressions) and how many findings each covered; an expired one
	// failed the run.
	Suppressions []SuppressionDoc `json:"suppressions,omitempty"`
}

// RunDoc is a run's selection and judging options.
type RunDoc struct {
	// Roots are the PATH arguments as the build sees them
	// (csv.NormalizeRoot); the top-level roots are as given.
	Roots          []string `json:"roots"`
	Include        []string `json:"include"`
	Exclude        []string `json:"exclude"`
	FollowSymlinks bool     `json:"follow_symlinks"`
	Scenario       string   `json:"scenario"`
	// ModeOverride is --mode ("" when the policies' own modes apply).
	ModeOverride cipolicy.Mode `json:"mode_override"`
	// Certificates are the SHA-256 fingerprints of the --certs
	// certificates, and PolicyCertificates those of the certificates the
	// policies name in full (certificate_file), sorted: the policies'
	// SHA-256 covers the policy files, not the certificate files.
	Certificates       []string `json:"certificates"`
	PolicyCertificates []string `json:"policy_certificates"`
	FailIfNoTargets    bool     `json:"fail_if_no_targets"`
	// Walked identifies every path the run's walk listed, before its
	// shard's cut (csv.Report.Walked): shards that walked other trees
	// (another checkout, a file added or removed between two jobs) could
	// each leave a file to the other.
	Walked *ListingDoc `json:"walked,omitempty"`
}

// ListingDoc is a csv.Listing: the number of paths and the SHA-256 that
// identifies them, hex.
type ListingDoc struct {
	Entries int    `json:"entries"`
	SHA256  string `json:"sha256"`
	// Excluded counts the files the walk left out, before the shard's
	// cut (the summary adds the containers' members left out).
	Excluded int `json:"excluded,omitempty"`
}

// ShardDoc is a shard, i of n.
type ShardDoc struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// Tool names the program that wrote the report.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// PolicyDoc identifies a policy.
type PolicyDoc struct {
	Name    string        `json:"name"`
	ID      string        `json:"id"`
	Version string        `json:"version"`
	SHA256  string        `json:"sha256"`
	Mode    cipolicy.Mode `json:"mode"`
	Type    string        `json:"type"`
	Format  string        `json:"format"`
	Source  string        `json:"source"`
}

// ResultDoc is one judged binary. Its JSON has a field per digest, named as
// cipolicy names the algorithm, and the format's facts under the format's
// name (see DigestDocs and Facts), between the fields around them here.
type ResultDoc struct {
	// Origin is where the facts judged were recorded (csv validate
	// --facts).
	Origin string          `json:"origin,omitempty"`
	Root   string          `json:"root"`
	Path   string          `json:"path"`
	Format cipolicy.Format `json:"format"`
	Size   int64           `json:"size"`
	// Digests are the digests computed, hex, by algorithm: "sha256",
	// "authenticode_sha256", ... (written after size).
	Digests    DigestDocs     `json:"-"`
	Signed     bool           `json:"signed"`
	Signatures []SignatureDoc `json:"signatures,omitempty"`
	// Facts are the format's own facts (written after the signatures,
	// under the format's name: "pe", "elf").
	Facts    *Facts           `json:"-"`
	Verdict  cipolicy.Verdict `json:"verdict"`
	Enforced bool             `json:"enforced"`
	Kind     string           `json:"kind"`
	Policy   string           `json:"policy"`
	Rule     string           `json:"rule"`
	// Signature is the index in Signatures of the signature a signer rule
	// matched, or -1.
	Signature int    `json:"signature"`
	Reason    string `json:"reason"`
	// Suppressed is the suppression that covers a blocked file's finding
	// (the verdict stays blocked; the run does not fail for it).
	Suppressed *SuppressedDoc `json:"suppressed,omitempty"`
	// Walk is the file's place in the walk, in a shard's report only
	// (see WalkDoc).
	Walk WalkDoc `json:"walk,omitempty"`
}

// WalkDoc is a file's place in the walk of a run (csv.Walk), written in
// the reports of shards (csv validate --shard) for csv report merge: the
// listed entry's number, the place after it of an entry passed for its
// members alone, and a member's place in its container, [entry, after,
// member]. It is nil elsewhere (a merged report lists its files in the
// walk's order).
type WalkDoc []int

// walkDoc is w's WalkDoc, nil unless shard.
func walkDoc(w csv.Walk, shard bool) WalkDoc {
	if !shard {
		return nil
	}
	return WalkDoc{w.Entry, w.After, w.Member}
}

// The parts of a ResultDoc's JSON around its digests and facts.
type (
	resultHead struct {
		Origin string          `json:"origin,omitempty"`
		Root   string          `json:"root"`
		Path   string          `json:"path"`
		Format cipolicy.Format `json:"format"`
		Size   int64           `json:"size"`
	}
	resultMid struct {
		Signed     bool           `json:"signed"`
		Signatures []SignatureDoc `json:"signatures,omitempty"`
	}
	resultTail struct {
		Verdict    cipolicy.Verdict `json:"verdict"`
		Enforced   bool             `json:"enforced"`
		Kind       string           `json:"kind"`
		Policy     string           `json:"policy"`
		Rule       string           `json:"rule"`
		Signature  int              `json:"signature"`
		Reason     string           `json:"reason"`
		Suppressed *SuppressedDoc   `json:"suppressed,omitempty"`
		Walk       WalkDoc          `json:"walk,omitempty"`
	}
	// resultFields is every field but the digests and facts, to read.
	resultFields struct {
		resultHead
		resultMid
		resultTail
	}
)

// MarshalJSON writes the result with its digests and facts in place.
func (r ResultDoc) MarshalJSON() ([]byte, error) {
	return ObjectWithFacts(resultHead{r.Origin, r.Root, r.Path, r.Format, r.Size}, r.Digests,
		resultMid{r.Signed, r.Signatures}, r.Facts,
		resultTail{r.Verdict, r.Enforced, r.Kind, r.Policy, r.Rule, r.Signature, r.Reason, r.Suppressed, r.Walk})
}

// UnmarshalJSON reads a result csv wrote, refusing fields it does not
// know.
func (r *ResultDoc) UnmarshalJSON(data []byte) error {
	var f resultFields
	var d DigestDocs
	var facts *Facts
	if err := splitFacts(data, &d, &facts, &f); err != nil {
		return err
	}
	*r = ResultDoc{Origin: f.Origin, Root: f.Root, Path: f.Path, Format: f.Format, Size: f.Size, Digests: d,
		Signed: f.Signed, Signatures: f.Signatures, Facts: facts,
		Verdict: f.Verdict, Enforced: f.Enforced, Kind: f.Kind, Policy: f.Policy, Rule: f.Rule, Signature: f.Signature, Reason: f.Reason, Suppressed: f.Suppressed, Walk: f.Walk}
	return nil
}

// SkippedDoc is a file that was not judged.
type SkippedDoc struct {
	Origin string `json:"origin,omitempty"`
	Root   string `json:"root"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
	// Walk is the file's place in the walk, in a shard's report only.
	Walk WalkDoc `json:"walk,omitempty"`
}

// NewSkippedDoc describes a file that was not judged; with its place in
// the walk if shard.
func NewSkippedDoc(s *csv.SkippedFile, shard bool) SkippedDoc {
	return SkippedDoc{Origin: s.Origin, Root: s.Root, Path: s.Path, Reason: s.Reason, Walk: walkDoc(s.Walk, shard)}
}

func policyDoc(p *cipolicy.Policy) PolicyDoc {
	return PolicyDoc{Name: p.Name, ID: p.ID, Version: p.Version, SHA256: p.SHA256Hex(), Mode: p.Mode,
		Type: string(p.Type), Format: p.Format, Source: p.Source}
}

// fingerprints are the certificates' SHA-256, hex, sorted, without
// repeats.
func fingerprints(certs []*signing.Certificate) []string {
	out := []string{}
	for _, c := range certs {
		out = append(out, hex.EncodeToString(c.SHA256[:]))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func hexOrEmpty(b []byte) string {
	if b == nil {
		return ""
	}
	return hex.EncodeToString(b)
}

// NewDocument builds the JSON document for a report.
func NewDocument(r *csv.Report, opts Options) *Document {
	d := &Document{
		MediaType: MediaType,
		Tool:      Tool{Name: "csv", Version: opts.ToolVersion},
		Mode:      r.Mode,
		Scenario:  string(r.Scenario),
		Roots:     r.Roots,
		Origins:   r.Origins,
		Started:   r.Started.UTC(),
		Duration:  r.Duration.Seconds(),
		Passed:    !r.Failed() && !opts.FailedNoTargets,
		Summary:   r.Summary,
		Results:   []ResultDoc{},
		Skipped:   []SkippedDoc{},
		NoTargets: opts.FailedNoTargets,
	}
	if r.Shard != nil {
		d.Shard = &ShardDoc{Index: r.Shard.Index, Count: r.Shard.Count}
	}
	d.Run = &RunDoc{Roots: nonNil(r.NormalizedRoots), Include: nonNil(r.Include), Exclude: nonNil(r.Exclude),
		FollowSymlinks: r.FollowSymlinks, Scenario: string(r.Scenario), ModeOverride: opts.ModeOverride,
		Certificates: fingerprints(r.Certificates), PolicyCertificates: []string{}, FailIfNoTargets: opts.FailIfNoTargets,
		Walked: &ListingDoc{Entries: r.Walked.Entries, SHA256: hex.EncodeToString(r.Walked.SHA256), Excluded: r.Walked.Excluded}}
	var named []*signing.Certificate
	for _, p := range r.Policies {
		d.Policies = append(d.Policies, policyDoc(p))
		named = append(named, p.Certificates()...)
	}
	d.Run.PolicyCertificates = fingerprints(named)
	// An unused suppression fails with --fail-on-unused-suppressions.
	d.Suppressions = SuppressionDocs(r.Suppressions)
	d.Passed = d.Passed && !suppressionsFail(d.Suppressions, opts)
	if len(d.Policies) > 0 {
		d.Policy = d.Policies[0]
	}
	for i := range r.Results {
		res := &r.Results[i]
		rd := NewResultDoc(res)
		rd.Walk = walkDoc(res.Walk, r.Shard != nil)
		d.Results = append(d.Results, rd)
	}
	for i := range r.Skipped {
		d.Skipped = append(d.Skipped, NewSkippedDoc(&r.Skipped[i], r.Shard != nil))
	}
	return d
}

// NewResultDoc describes one judged binary.
func NewResultDoc(res *csv.Result) ResultDoc {
	d := ResultDoc{
		Origin: res.Origin, Root: res.Root, Path: res.Path, Format: res.Format, Size: res.Size,
		Digests: DigestDocsOf(res.Digests), Signed: res.Signed,
		Verdict: res.Decision.Verdict, Enforced: res.Decision.Enforced, Kind: string(res.Decision.Kind),
		Policy: res.Decision.Policy, Rule: res.Decision.Rule, Signature: res.Decision.Signature, Reason: reasonText(res),
		Suppressed: suppressedDoc(res.Suppressed),
	}
	if res.Info != nil {
		d.Facts = &Facts{Format: res.Format, Value: res.Info}
	}
	if res.Signatures != nil {
		d.Signatures = SignatureDocs(res.Signatures)
	}
	return d
}

// Render implements Renderer.
// Like every JSON csv writes, it holds no CI log command and no character
// that is not graphic unescaped (textsafe.InertJSON): it may be printed to
// a CI job's log.
func (j *JSON) Render(w io.Writer, r *csv.Report) error {
	return render(&jsonSink{opts: j.opts, w: w}, r)
}
