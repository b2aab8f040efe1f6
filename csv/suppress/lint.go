package suppress

import (
	"fmt"
	"time"

	"github.com/codesignval/csv/cipolicy"
)

// ExpiringSoon is how far ahead Lint warns of an entry's expiry.
const ExpiringSoon = 30 * 24 * time.Hour

// Lint reports, as csv policy lint lists them, what is wrong in
// suppressions files: the problems that make a file unusable (bad, from
// Parse), entries that have expired
// at now (errors: they fail every run), entries that repeat one of another
// file (errors), entries that expire within ExpiringSoon and the results
// of a Guardian file csv cannot apply (warnings).
func Lint(files []*File, bad []*LoadError, now time.Time) []cipolicy.Finding {
	var out []cipolicy.Finding
	for _, e := range bad {
		for _, p := range e.Problems {
			out = append(out, cipolicy.Finding{Severity: cipolicy.SeverityError, Source: e.Source, Line: p.Line, Message: p.Message})
		}
	}
	finding := func(sev cipolicy.Severity, e *Entry, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if e.Line == 0 && e.ID != "" {
			msg = fmt.Sprintf("result %.16s: %s", e.ID, msg)
		}
		out = append(out, cipolicy.Finding{Severity: sev, Source: e.Source, Line: e.Line, Message: msg})
	}
	seen := map[string]*Entry{}
	for _, f := range files {
		for _, u := range f.Unmapped {
			out = append(out, cipolicy.Finding{Severity: cipolicy.SeverityWarning, Source: f.Source, Message: u})
		}
		for _, e := range f.Entries {
			switch {
			case e.ExpiredAt(now):
				finding(cipolicy.SeverityError, e, "suppression (%s) expired on %s: it fails every run until it is renewed or removed", e.What(), e.Expires.Format(time.DateOnly))
			case e.ExpiredAt(now.Add(ExpiringSoon)):
				finding(cipolicy.SeverityWarning, e, "suppression (%s) expires on %s", e.What(), e.Expires.Format(time.DateOnly))
			}
			k := e.key()
			if first, dup := seen[k]; dup && first.Source != e.Source {
				finding(cipolicy.SeverityError, e, "suppression (%s) repeats the one at %s", e.What(), first.Ref())
				continue
			}
			seen[k] = e
		}
	}
	return out
}
