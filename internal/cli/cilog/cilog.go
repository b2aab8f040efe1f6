// Package cilog writes what a failing command found to the CI job's log,
// in the one way every command shares: a line per failing file on
// standard error (BLOCKED path: reason (rule id)), whatever --format and
// --output say, capped with a count; and under GitHub Actions an error
// annotation per file (workflow commands, escaped as the runner unescapes
// them) and a Markdown job summary ($GITHUB_STEP_SUMMARY).
//
// The lines go to standard error, with the annotations: standard output
// may carry the report itself (JSON, SARIF, JUnit), which a workflow
// command or a log line would corrupt. The GitHub runner reads workflow
// commands from both streams.
package cilog

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/report"
	"github.com/codesignval/csv/internal/textsafe"
)

// MaxLines caps the findings listed on standard error: the rest are
// counted ("... and N more; see REPORT").
const MaxLines = 50

// MaxRows caps the rows of the job summary's table of findings.
const MaxRows = 50

// MaxAnnotations is how many annotations of one level GitHub shows for a
// step: csv writes that many, the last saying how many more there are.
const MaxAnnotations = 10

// Finding is a file that fails a command, or would under enforcement.
type Finding struct {
	// Path names the file as the report does: the path as the run gave
	// it, and a container member's path after "!/" ("dist/a.zip!/x.dll").
	Path string
	// Reason says why, as the report does.
	Reason string
	// RuleID is the report's rule id (report.RuleID): CodeSign.* where
	// Microsoft's CodeSign Validation has one for the finding.
	RuleID string
	// Audit is set when the file is blocked only under enforcement: the
	// policy audits, and the line says WOULD BLOCK.
	Audit bool
	// Mark, when not "", is the line's first word instead of BLOCKED:
	// MALFORMED for csv inspect, which judges nothing.
	Mark string
}

// Of is the finding of a result, and false for an allowed file.
func Of(r *csv.Result) (Finding, bool) {
	d := r.Decision
	if d.Allowed() || r.Suppressed != nil {
		return Finding{}, false // a suppressed finding is the reports' (marked there)
	}
	return Finding{Path: r.DisplayPath(), Reason: d.Reason, RuleID: report.RuleID(d.Kind), Audit: !d.Enforced}, true
}

// OfDoc is the finding of a JSON report's result (csv report merge), and
// false for an allowed file.
func OfDoc(d *report.ResultDoc) (Finding, bool) {
	if d.Verdict != cipolicy.Blocked || d.Suppressed != nil {
		return Finding{}, false
	}
	return Finding{Path: docPath(d.Root, d.Path), Reason: d.Reason, RuleID: report.RuleID(cipolicy.ReasonKind(d.Kind)), Audit: !d.Enforced}, true
}

// docPath is the display path of a JSON result: its root joined with its
// path, or the root alone when the root named the file (its path is then
// the file's base name, a member's path after it). The report does not say
// which: a root whose base name is the path's first element and that is
// not a directory here is taken for a file.
func docPath(root, rel string) string {
	file, member, isMember := strings.Cut(rel, container.Separator)
	if root != "" && path.Base(root) == file {
		if st, err := os.Stat(filepath.FromSlash(root)); err != nil || !st.IsDir() {
			if isMember {
				return root + container.Separator + member
			}
			return root
		}
	}
	return path.Join(root, rel)
}

// Findings gathers a command's findings in the order they come (the walk's
// order: deterministic), keeping the first MaxLines for the lines and the
// summary; memory does not grow with the build.
type Findings struct {
	kept []Finding
	// Blocked counts the files that fail the command; Audit those that
	// would be blocked under enforcement.
	Blocked, Audit int
}

// Add records f.
func (fs *Findings) Add(f Finding) {
	if f.Audit {
		fs.Audit++
	} else {
		fs.Blocked++
	}
	if len(fs.kept) < max(MaxLines, MaxRows, MaxAnnotations) {
		fs.kept = append(fs.kept, f)
	}
}

// AddResult records r if it is blocked.
func (fs *Findings) AddResult(r *csv.Result) {
	if f, ok := Of(r); ok {
		fs.Add(f)
	}
}

// Len is the number of findings.
func (fs *Findings) Len() int { return fs.Blocked + fs.Audit }

// Outcome is what the summary and the lines say besides the findings.
type Outcome struct {
	// Command is the command's name: "csv validate".
	Command string
	// Failed is set when the command fails (exit status 1).
	Failed bool
	// Verdict is the report's verdict line ("result: FAILED: ...").
	Verdict string
	// Files, Allowed, Blocked and Skipped are the report's counts.
	Files, Allowed, Blocked, Skipped int
	// Policies are the policies the files were judged with.
	Policies []Policy
	// Report is where the whole report is ("report.sarif"), or "" when it
	// went to standard output or there is none.
	Report string
}

// Policy is a policy as the summary names it.
type Policy struct {
	Name, Version, Mode, SHA256 string
}

// PoliciesOf are the policies of a run.
func PoliciesOf(ps []*cipolicy.Policy) []Policy {
	var out []Policy
	for _, p := range ps {
		out = append(out, Policy{Name: p.Ref(), Version: p.Version, Mode: string(p.Mode), SHA256: p.SHA256Hex()})
	}
	return out
}

// Writer writes the findings to the CI log.
type Writer struct {
	// ErrOut is standard error.
	ErrOut io.Writer
	// Lines writes a line per finding. A command sets it false where its
	// text report on standard output already lists them (csv validate
	// --format text without --output): they are not printed twice.
	Lines bool
	// GitHub, when not nil, adds annotations and the job summary.
	GitHub *GitHub
}

// Write writes the findings of a command whose outcome is o: the lines,
// then the annotations and the job summary. Only the summary can fail (its
// file cannot be written): the lines are written first.
func (w *Writer) Write(fs *Findings, o Outcome) error {
	if w.Lines {
		w.lines(fs, o)
	}
	if w.GitHub == nil {
		return nil
	}
	w.GitHub.annotate(w.ErrOut, fs, o)
	if err := w.GitHub.summarize(fs, o); err != nil {
		return fmt.Errorf("writing the GitHub job summary %s: %w", w.GitHub.SummaryFile, err)
	}
	return nil
}

// Label is what a finding's line begins with.
func (f Finding) Label() string {
	if f.Mark != "" {
		return f.Mark
	}
	if f.Audit {
		return "WOULD BLOCK"
	}
	return "BLOCKED"
}

// Line is a finding's line, escaped (internal/textsafe): a file name
// cannot end it, forge another or speak to the runner.
func (f Finding) Line() string {
	return textsafe.Escape(fmt.Sprintf("%s %s: %s (%s)", f.Label(), f.Path, f.Reason, f.RuleID))
}

// lines writes the first MaxLines findings, then how many more there are
// and where they are.
func (w *Writer) lines(fs *Findings, o Outcome) {
	n := min(len(fs.kept), MaxLines)
	for _, f := range fs.kept[:n] {
		fmt.Fprintln(w.ErrOut, f.Line())
	}
	if more := fs.Len() - n; more > 0 {
		fmt.Fprintln(w.ErrOut, textsafe.Escape(fmt.Sprintf("... and %d more; see %s", more, o.where())))
	}
}

// where names the whole report for a reader of the log.
func (o Outcome) where() string {
	if o.Report != "" {
		return o.Report
	}
	return "the report"
}
