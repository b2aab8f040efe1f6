package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/internal/textsafe"
)

// Text is the human-readable report: a summary line, then every blocked file
// with the rule and the reason, then a one-line verdict.
type Text struct{ opts Options }

// Render implements Renderer.
func (t *Text) Render(w io.Writer, r *csv.Report) error {
	b := bufio.NewWriter(w)
	if err := render(&textSink{opts: t.opts, w: b}, r); err != nil {
		return err
	}
	return b.Flush()
}

// SummaryLine is the first line of the text report: the policies and the
// counts.
func SummaryLine(r *csv.Report) string {
	suppressed := ""
	if r.Summary.Suppressed > 0 {
		suppressed = fmt.Sprintf(" (%d suppressed)", r.Summary.Suppressed)
	}
	return fmt.Sprintf("csv: %s: %s judged: %d allowed, %d blocked%s; %s skipped, %d excluded",
		policyLine(r), textsafe.Plural(r.Summary.Files, "binary", "binaries"), r.Summary.Allowed, r.Summary.Blocked, suppressed, textsafe.Plural(r.Summary.Skipped, "file", "files"), r.Summary.Excluded)
}

// printable escapes what an untrusted string could use to break a report
// line, reorder it on screen or speak to the CI runner (a file name that
// forges a "result: PASSED" of its own, or starts a workflow command): see
// internal/textsafe, which every text output uses.
func printable(s string) string { return textsafe.Escape(s) }

func label(d cipolicy.Decision) string {
	switch {
	case d.Allowed():
		return "ALLOWED"
	case d.Enforced:
		return "BLOCKED"
	}
	return "WOULD BLOCK"
}

func decisionText(r *csv.Result, manyPolicies bool) string {
	d := r.Decision
	parts := []string{reasonText(r)}
	if manyPolicies {
		parts = append(parts, fmt.Sprintf("[policy %s]", textsafe.Quote(d.Policy)))
	}
	if !d.Allowed() && !d.Enforced {
		parts = append(parts, "(audit mode: not enforced)")
	}
	return strings.Join(parts, " ")
}

func policyLine(r *csv.Report) string {
	var ps []string
	for _, p := range r.Policies {
		v := ""
		if p.Version != "" {
			v = " " + p.Version
		}
		ps = append(ps, fmt.Sprintf("policy %s%s (%s, sha256 %.12s)", textsafe.Quote(p.Ref()), printable(v), p.Mode, p.SHA256Hex()))
	}
	s := strings.Join(ps, ", ")
	if len(r.Policies) > 1 || (len(r.Policies) == 1 && r.Policies[0].Mode != r.Mode) {
		s += fmt.Sprintf(", effective mode %s", r.Mode)
	}
	return s
}

// VerdictLine is the last line of the text report: passed or failed, and why.
func VerdictLine(r *csv.Report, opts Options) string {
	n := 0
	for i := range r.Results {
		if r.Results[i].Fails() {
			n++
		}
	}
	return verdictLine(r, opts, n)
}

// VerdictOf is VerdictLine of a run whose results were not kept (a sink's
// at End): failing is the number of binaries blocked by an enforcing
// policy and covered by no suppression.
func VerdictOf(r *csv.Report, opts Options, failing int) string { return verdictLine(r, opts, failing) }

// verdictLine is VerdictLine of a run in which failing binaries are
// blocked by an enforcing policy (r.Results may be empty: r.Summary
// counts).
func verdictLine(r *csv.Report, opts Options, failing int) string {
	switch {
	case opts.FailedNoTargets:
		return "result: FAILED: no PE or ELF binaries found (--fail-if-no-targets)"
	case failing > 0:
		return fmt.Sprintf("result: FAILED: %d of %s blocked%s", failing, textsafe.Plural(r.Summary.Files, "binary", "binaries"), suppressedNote(r))
	}
	docs := SuppressionDocs(r.Suppressions)
	expired, unused := 0, 0
	for _, d := range docs {
		switch d.Status {
		case StatusExpired:
			expired++
		case StatusUnused:
			unused++
		}
	}
	switch unsuppressed := r.Summary.Blocked - r.Summary.Suppressed; {
	case expired > 0:
		return fmt.Sprintf("result: FAILED: %d suppressions expired", expired)
	case unused > 0 && opts.FailOnUnusedSuppressions:
		return fmt.Sprintf("result: FAILED: %d suppressions matched no finding (--fail-on-unused-suppressions)", unused)
	case unsuppressed > 0:
		return fmt.Sprintf("result: PASSED in audit mode: %d of %s would be blocked under enforcement%s", unsuppressed, textsafe.Plural(r.Summary.Files, "binary", "binaries"), suppressedNote(r))
	case r.Summary.Suppressed > 0:
		return fmt.Sprintf("result: PASSED with suppressions: %d of %s blocked, every one suppressed", r.Summary.Suppressed, textsafe.Plural(r.Summary.Files, "binary", "binaries"))
	}
	if r.Summary.Files == 1 {
		return "result: PASSED: the 1 binary allowed"
	}
	return fmt.Sprintf("result: PASSED: all %d binaries allowed", r.Summary.Files)
}

// suppressedNote adds the suppressed findings to a verdict.
func suppressedNote(r *csv.Report) string {
	if r.Summary.Suppressed == 0 {
		return ""
	}
	return fmt.Sprintf(" (and %d suppressed)", r.Summary.Suppressed)
}
