// Package report renders a validation report ([csv.Report]) for people and
// for CI systems: text for logs, JSON for scripts, SARIF 2.1.0 for code
// scanning UIs (GitHub, Azure DevOps), and JUnit XML for Jenkins and GitLab.
// Each format has its own renderer behind the one [Renderer] interface.
package report

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
)

// Renderer writes a report in one format.
type Renderer interface {
	Render(w io.Writer, r *csv.Report) error
}

// Options tune the renderers. The zero value is the default output.
type Options struct {
	// Verbose lists every judged file in text reports, not only the
	// blocked ones, and the skipped files.
	Verbose bool
	// SARIFPasses adds a result for every allowed file to SARIF reports
	// (rule CodeSign.MatchingPolicy), as Microsoft's CodeSign Validation
	// task can.
	SARIFPasses bool
	// ToolVersion is the csv version reports name.
	ToolVersion string
	// FailedNoTargets records that the run failed because it found no
	// binaries (--fail-if-no-targets).
	FailedNoTargets bool
	// FailIfNoTargets and ModeOverride record the run's --fail-if-no-targets
	// and --mode in the JSON report's run metadata, so that csv report
	// merge can tell whether shards ran alike.
	FailIfNoTargets bool
	ModeOverride    cipolicy.Mode
	// SARIFRoot is the directory SARIF locations are relative to (uriBaseId
	// %SRCROOT%, whose place the log states): the repository's checkout,
	// so that code scanning can show the files. Files outside it, and
	// every file when it is "", are located by the path the run gave them.
	SARIFRoot string
	// FailOnUnusedSuppressions fails the run when a suppression matched
	// no finding (--fail-on-unused-suppressions); it is a warning
	// otherwise.
	FailOnUnusedSuppressions bool
}

// Formats lists the report formats.
var Formats = []string{"text", "json", "sarif", "junit"}

// New returns the renderer for format.
func New(format string, opts Options) (Renderer, error) {
	switch format {
	case "text":
		return &Text{opts}, nil
	case "json":
		return &JSON{opts}, nil
	case "sarif":
		return &SARIF{opts}, nil
	case "junit":
		return &JUnit{opts}, nil
	}
	return nil, fmt.Errorf("report: unknown format %q (want %s)", format, strings.Join(Formats, ", "))
}

// IsFormat reports whether format names a renderer.
func IsFormat(format string) bool { return slices.Contains(Formats, format) }

// reasonText is a result's reason, with the inspection error when there is
// one.
func reasonText(r *csv.Result) string {
	return r.Decision.Reason
}
