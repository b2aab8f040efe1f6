package report

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/suppress"
	"github.com/codesignval/csv/internal/textsafe"
)

// How reports show suppressions (docs/suppressions.md): a suppressed
// finding stays blocked in every report's facts and is marked with the
// suppression that covers it (JSON "suppressed", SARIF "suppressions",
// JUnit a skipped test case, text a SUPPRESSED line); the run's
// suppressions are listed with their uses at the end (JSON
// "suppressions", SARIF notifications, JUnit test cases, text lines),
// and an expired one fails the run, as an unused one does with
// Options.FailOnUnusedSuppressions.

// SuppressedDoc is the suppression that covers a result's finding.
type SuppressedDoc struct {
	// Source and Line locate the entry; Signature is a Guardian entry's.
	Source        string `json:"source"`
	Line          int    `json:"line,omitempty"`
	Signature     string `json:"signature,omitempty"`
	Rule          string `json:"rule"`
	Path          string `json:"path,omitempty"`
	Justification string `json:"justification"`
	Expires       string `json:"expires,omitempty"`
	Owner         string `json:"owner,omitempty"`
	Ticket        string `json:"ticket,omitempty"`
}

// SuppressionDoc is one of the run's suppressions at its end: Status is
// "applied" (it covered Uses findings), "unused" or "expired".
type SuppressionDoc struct {
	SuppressedDoc
	// Digests are the digests the entry compares, hex, by algorithm.
	Digests map[string]string `json:"digests,omitempty"`
	Uses    int               `json:"uses"`
	Status  string            `json:"status"`
}

// Suppression statuses.
const (
	StatusApplied = "applied"
	StatusUnused  = "unused"
	StatusExpired = "expired"
)

func suppressedDoc(e *suppress.Entry) *SuppressedDoc {
	if e == nil {
		return nil
	}
	d := &SuppressedDoc{Source: e.Source, Line: e.Line, Signature: e.ID, Rule: e.Rule, Path: e.Path,
		Justification: e.Justification, Owner: e.Owner, Ticket: e.Ticket}
	if !e.Expires.IsZero() {
		d.Expires = e.Expires.Format("2006-01-02")
	}
	return d
}

// SuppressionDocs describes a run's suppressions.
func SuppressionDocs(st []suppress.Status) []SuppressionDoc {
	var out []SuppressionDoc
	for _, s := range st {
		d := SuppressionDoc{SuppressedDoc: *suppressedDoc(s.Entry), Uses: s.Uses, Status: statusOf(s.Uses, s.Expired)}
		if len(s.Entry.Digests) > 0 {
			d.Digests = map[string]string{}
			for a, v := range s.Entry.Digests {
				d.Digests[string(a)] = hexOrEmpty(v)
			}
		}
		out = append(out, d)
	}
	return out
}

func statusOf(uses int, expired bool) string {
	switch {
	case expired:
		return StatusExpired
	case uses == 0:
		return StatusUnused
	}
	return StatusApplied
}

// ref names a suppression in messages.
func (d *SuppressedDoc) ref() string {
	switch {
	case d.Line > 0:
		return fmt.Sprintf("%s:%d", d.Source, d.Line)
	case d.Signature != "":
		return fmt.Sprintf("%s: result %.16s", d.Source, d.Signature)
	}
	return d.Source
}

// what says what a suppression covers.
func (d *SuppressionDoc) what() string {
	parts := []string{"rule " + d.Rule}
	if d.Path != "" {
		parts = append(parts, "path "+d.Path)
	}
	for _, a := range sortedKeys(d.Digests) {
		parts = append(parts, a+" "+d.Digests[a])
	}
	return strings.Join(parts, ", ")
}

// suppressionProblem is a suppression that fails the run (expired;
// unused with FailOnUnusedSuppressions) or is worth a warning (unused).
type suppressionProblem struct {
	doc   *SuppressionDoc
	label string // EXPIRED or UNUSED
	level string // error or warning
	text  string
}

func suppressionProblems(docs []SuppressionDoc, failUnused bool) []suppressionProblem {
	var out []suppressionProblem
	for i := range docs {
		d := &docs[i]
		switch d.Status {
		case StatusExpired:
			out = append(out, suppressionProblem{d, "EXPIRED", "error",
				fmt.Sprintf("suppression %s (%s) expired on %s: it suppresses nothing, and fails the run until it is renewed or removed", d.ref(), d.what(), d.Expires)})
		case StatusUnused:
			level := "warning"
			if failUnused {
				level = "error"
			}
			out = append(out, suppressionProblem{d, "UNUSED", level,
				fmt.Sprintf("suppression %s (%s) matched no finding: remove it", d.ref(), d.what())})
		}
	}
	return out
}

// Fails reports whether a run fails: failing binaries blocked by an
// enforcing policy and not suppressed, no binaries with
// --fail-if-no-targets (opts.FailedNoTargets), an expired suppression,
// or an unused one with opts.FailOnUnusedSuppressions.
func Fails(r *csv.Report, opts Options, failing int) bool {
	return failing > 0 || opts.FailedNoTargets || suppressionsFail(SuppressionDocs(r.Suppressions), opts)
}

func suppressionsFail(docs []SuppressionDoc, opts Options) bool {
	for _, d := range docs {
		if d.Status == StatusExpired || (d.Status == StatusUnused && opts.FailOnUnusedSuppressions) {
			return true
		}
	}
	return false
}

// suppressedText is what the text and JUnit reports say of a suppressed
// finding.
func suppressedText(e *suppress.Entry) string {
	d := suppressedDoc(e)
	s := fmt.Sprintf("suppressed by %s: %s", d.ref(), textsafe.Quote(d.Justification))
	var extra []string
	if d.Owner != "" {
		extra = append(extra, "owner "+d.Owner)
	}
	if d.Ticket != "" {
		extra = append(extra, "ticket "+d.Ticket)
	}
	if d.Expires != "" {
		extra = append(extra, "until "+d.Expires)
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// writeSuppressionLines writes the text report's lines of the expired and
// unused suppressions.
func writeSuppressionLines(w io.Writer, r *csv.Report, opts Options) error {
	for _, p := range suppressionProblems(SuppressionDocs(r.Suppressions), opts.FailOnUnusedSuppressions) {
		if _, err := fmt.Fprintf(w, "%-11s %s\n", p.label, printable(p.text)); err != nil {
			return err
		}
	}
	return nil
}

// sarifSuppression is a SARIF suppression object (SARIF 2.1.0 §3.35):
// the finding is accepted by an entry of a suppressions file, outside the
// source ("external").
type sarifSuppression struct {
	Kind          string         `json:"kind"`
	Status        string         `json:"status"`
	Justification string         `json:"justification"`
	Properties    map[string]any `json:"properties,omitempty"`
}

// sarifSuppressionsOf marks a suppressed result (nil for others).
func sarifSuppressionsOf(res *csv.Result) []sarifSuppression {
	if res.Suppressed == nil {
		return nil
	}
	d := suppressedDoc(res.Suppressed)
	props := map[string]any{"source": d.Source, "rule": d.Rule}
	for k, v := range map[string]string{"path": d.Path, "signature": d.Signature, "expires": d.Expires, "owner": d.Owner, "ticket": d.Ticket} {
		if v != "" {
			props[k] = v
		}
	}
	if d.Line > 0 {
		props["line"] = d.Line
	}
	return []sarifSuppression{{Kind: "external", Status: "accepted", Justification: d.Justification, Properties: props}}
}

// sarifSuppressionNotifications are the run's expired and unused
// suppressions, as tool execution notifications.
func sarifSuppressionNotifications(r *csv.Report, opts Options) []sarifNotification {
	var out []sarifNotification
	for _, p := range suppressionProblems(SuppressionDocs(r.Suppressions), opts.FailOnUnusedSuppressions) {
		out = append(out, sarifNotification{Level: p.level, Message: sarifText{p.text}})
	}
	return out
}

// junitSuppressionCases adds a test case for each expired suppression (a
// failure) and each unused one (a failure with
// FailOnUnusedSuppressions, skipped otherwise).
func junitSuppressionCases(suite *junitSuite, r *csv.Report, opts Options) {
	for _, p := range suppressionProblems(SuppressionDocs(r.Suppressions), opts.FailOnUnusedSuppressions) {
		c := junitCase{Name: "suppression " + p.doc.ref(), Classname: "csv.suppressions", Time: "0"}
		m := &junitMessage{Message: p.text, Type: "suppression-" + strings.ToLower(p.label)}
		if p.level == "error" {
			c.Failure = m
			suite.Failures++
		} else {
			c.Skipped = m
			suite.Skipped++
		}
		suite.Cases = append(suite.Cases, c)
	}
}

// WriteSuppressionDiagnostics writes to w (standard error) a line for each
// expired suppression ("csv: error: ...") and each unused one ("csv:
// warning: ...", an error with FailOnUnusedSuppressions).
func WriteSuppressionDiagnostics(w io.Writer, r *csv.Report, opts Options) {
	for _, p := range suppressionProblems(SuppressionDocs(r.Suppressions), opts.FailOnUnusedSuppressions) {
		textsafe.Linef(w, "csv: %s: %s", p.level, p.text)
	}
}

// String names the suppression and what it covers: "suppression
// sup.yaml:3 (rule unsigned, path new.exe)".
func (d *SuppressionDoc) String() string {
	return fmt.Sprintf("suppression %s (%s)", d.ref(), d.what())
}
