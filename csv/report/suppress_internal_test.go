package report

import (
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/suppress"
)

// A suppression names a finding by its reason kind or by the SARIF rule id
// the report gives it: the two tables must agree.
func TestSuppressionRuleIDs(t *testing.T) {
	for _, k := range []cipolicy.ReasonKind{cipolicy.KindUnsigned, cipolicy.KindNotAllowed, cipolicy.KindDenied, cipolicy.KindMalformed} {
		for _, name := range []string{string(k), RuleID(k)} {
			if got, ok := suppress.RuleKind(name); !ok || got != k {
				t.Errorf("suppress.RuleKind(%q) = %q, %v; want %q", name, got, ok, k)
			}
		}
	}
}
