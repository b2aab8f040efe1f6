package report_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/report"
)

// TestSARIFMemberLocation: a container member's SARIF location is the
// file on disk that holds it, and the message names the member.
func TestSARIFMemberLocation(t *testing.T) {
	rep := &csv.Report{Mode: cipolicy.Enforce, Results: []csv.Result{{Root: "dist", Path: "app.zip!/lib/x.dll", Format: csv.FormatPE,
		Decision: cipolicy.Decision{Verdict: cipolicy.Blocked, Enforced: true, Kind: cipolicy.KindUnsigned, Reason: "unsigned"}}}}
	rep.Summary.Files, rep.Summary.Blocked = 1, 1
	var log struct {
		Runs []struct {
			Results []struct {
				Message   struct{ Text string }
				Locations []struct {
					PhysicalLocation struct{ ArtifactLocation struct{ URI string } }
				}
			}
		}
	}
	if err := json.Unmarshal(render(t, "sarif", report.Options{}, rep), &log); err != nil {
		t.Fatal(err)
	}
	r := log.Runs[0].Results[0]
	if got := r.Locations[0].PhysicalLocation.ArtifactLocation.URI; got != "dist/app.zip" {
		t.Errorf("location %q, want dist/app.zip", got)
	}
	if !strings.HasPrefix(r.Message.Text, "dist/app.zip!/lib/x.dll: ") {
		t.Errorf("message %q", r.Message.Text)
	}
}
