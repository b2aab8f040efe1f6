package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/report"
	"github.com/codesignval/csv/csv/suppress"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testenv"
)

// runSuppressed validates the tree of run (one allowed, one unsigned, one
// denied and one malformed binary) with suppressions: the unsigned PE by
// its Authenticode SHA256 (which the policy, of SHA256 rules, does not
// compare: the run computes it for the suppression), the denied ELF by
// path and SHA256, the malformed PE by path; extra is added to the file.
func runSuppressed(t *testing.T, mode cipolicy.Mode, extra string) *csv.Report {
	t.Helper()
	dir := t.TempDir()
	allowed := testbin.ELF(testbin.ELFOptions{})
	denied := testbin.ELF(testbin.ELFOptions{Class32: true})
	files := map[string][]byte{
		"bin/ok":           allowed,
		"bin/denied":       denied,
		"win/unsigned.exe": testbin.PE(testbin.PEOptions{}),
		"win/broken.exe":   testbin.PE(testbin.PEOptions{})[:0x250],
	}
	for p, b := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, b, 0o644)
	}
	in := csv.InspectFile(context.Background(), filepath.Join(dir, "bin/ok"), nil, csv.InspectOptions{})
	den := csv.InspectFile(context.Background(), filepath.Join(dir, "bin/denied"), nil, csv.InspectOptions{})
	uns := csv.InspectFile(context.Background(), filepath.Join(dir, "win/unsigned.exe"), nil, csv.InspectOptions{})
	src := fmt.Sprintf("format: csv-policy/v1\nname: report-test\nversion: '7'\nmode: %s\nrules:\n"+
		"  - {id: ok, action: allow, sha256: %x}\n  - {id: no, action: deny, sha256: %x}\n", mode, in.Digests.Get(cipolicy.SHA256), den.Digests.Get(cipolicy.SHA256))
	p, err := cipolicy.Parse([]byte(src), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	if err != nil {
		t.Fatal(err)
	}
	sup := fmt.Sprintf(`format: csv-suppressions/v1
suppressions:
  - authenticode_sha256: %x
    rule: CodeSign.MissingSigningCert
    justification: signed at release
    owner: release-team
  - path: denied
    sha256: %x
    rule: CSV.Denied
    justification: a known sample the tests ship
    ticket: SEC-9
  - path: "*.exe"
    rule: malformed
    justification: cut on purpose
    expires: 2999-01-01
`, uns.Digests.Get(cipolicy.AuthenticodeSHA256), den.Digests.Get(cipolicy.SHA256)) + extra
	f, err := suppress.Parse([]byte(sup), "sup.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	v, err := csv.NewValidator(set, csv.Options{Suppressions: suppress.NewSet(now, f), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	os.Chdir(dir)
	rep, err := v.Validate(context.Background(), "bin", "win")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Files != 4 || rep.Summary.Blocked != 3 || rep.Summary.Suppressed != 3 {
		t.Fatalf("summary %+v", rep.Summary)
	}
	for _, r := range rep.Results {
		if r.Decision.Allowed() != (r.Suppressed == nil) || r.Fails() {
			t.Errorf("%s: %s, suppressed by %v", r.Path, r.Decision.Verdict, r.Suppressed)
		}
	}
	return rep
}

const expiredEntry = `  - path: nothing.exe
    rule: unsigned
    justification: until the vendor signs it
    expires: 2026-12-06
`

func TestSuppressedText(t *testing.T) {
	rep := runSuppressed(t, cipolicy.Enforce, "")
	if rep.Failed() {
		t.Error("a run whose every blocked binary is suppressed failed")
	}
	out := string(render(t, "text", report.Options{}, rep))
	for _, want := range []string{
		"4 binaries judged: 1 allowed, 3 blocked (3 suppressed);",
		"\nSUPPRESSED  bin/denied: denied by rule \"no\"",
		`[suppressed by sup.yaml:7: "a known sample the tests ship" (ticket SEC-9)]`,
		"\nSUPPRESSED  win/broken.exe: malformed PE",
		`[suppressed by sup.yaml:12: "cut on purpose" (until 2999-01-01)]`,
		"\nSUPPRESSED  win/unsigned.exe: no rule allows it",
		`[suppressed by sup.yaml:3: "signed at release" (owner release-team)]`,
		"\nresult: PASSED with suppressions: 3 of 4 binaries blocked, every one suppressed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	// An expired entry fails the run, and says which.
	rep = runSuppressed(t, cipolicy.Enforce, expiredEntry)
	if !rep.Failed() {
		t.Error("a run with an expired suppression passed")
	}
	out = string(render(t, "text", report.Options{}, rep))
	for _, want := range []string{
		"\nEXPIRED     suppression sup.yaml:16 (rule unsigned, path nothing.exe) expired on 2026-12-06: it suppresses nothing",
		"\nresult: FAILED: 1 suppressions expired\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	// Audit mode: the suppressed findings are shown, the verdict says so.
	out = string(render(t, "text", report.Options{}, runSuppressed(t, cipolicy.Audit, "")))
	if !strings.Contains(out, "\nresult: PASSED with suppressions: 3 of 4") || !strings.Contains(out, "(audit mode: not enforced) [suppressed by") {
		t.Errorf("audit:\n%s", out)
	}
}

func TestSuppressedJSON(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		passed      bool
	}{{"applied", "", true}, {"expired", expiredEntry, false}} {
		t.Run(tc.name, func(t *testing.T) {
			out := render(t, "json", report.Options{}, runSuppressed(t, cipolicy.Enforce, tc.extra))
			var d report.Document
			if err := json.Unmarshal(out, &d); err != nil {
				t.Fatal(err)
			}
			if d.Passed != tc.passed || d.Summary.Suppressed != 3 {
				t.Errorf("passed %v, summary %+v", d.Passed, d.Summary)
			}
			got := map[string]string{}
			for _, r := range d.Results {
				if r.Suppressed != nil {
					if r.Verdict != cipolicy.Blocked {
						t.Errorf("%s: %s and suppressed", r.Path, r.Verdict)
					}
					got[r.Path] = fmt.Sprintf("%s:%d %s %s", r.Suppressed.Source, r.Suppressed.Line, r.Suppressed.Rule, r.Suppressed.Justification)
				}
			}
			want := map[string]string{
				"unsigned.exe": "sup.yaml:3 CodeSign.MissingSigningCert signed at release",
				"denied":       "sup.yaml:7 CSV.Denied a known sample the tests ship",
				"broken.exe":   "sup.yaml:12 malformed cut on purpose",
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("suppressed: %v, want %v", got, want)
			}
			var statuses []string
			for _, s := range d.Suppressions {
				statuses = append(statuses, fmt.Sprintf("%d:%s:%d", s.Line, s.Status, s.Uses))
			}
			wantStatus := "3:applied:1 7:applied:1 12:applied:1"
			if tc.extra != "" {
				wantStatus += " 16:expired:0"
			}
			if strings.Join(statuses, " ") != wantStatus {
				t.Errorf("suppressions %v, want %s", statuses, wantStatus)
			}
			if d.Suppressions[0].Digests["authenticode_sha256"] == "" {
				t.Errorf("the digest an entry compares is not listed: %+v", d.Suppressions[0])
			}
		})
	}
}

func TestSuppressedSARIF(t *testing.T) {
	schema, err := jsonschema.NewCompiler().Compile(testenv.Shared(t, "testdata/sarif/sarif-schema-2.1.0.json"))
	if err != nil {
		t.Fatalf("compiling the SARIF schema: %v", err)
	}
	out := render(t, "sarif", report.Options{FailOnUnusedSuppressions: true}, runSuppressed(t, cipolicy.Enforce, expiredEntry+`  - path: other.exe
    rule: unsigned
    justification: x
`))
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(inst); err != nil {
		t.Fatalf("not valid SARIF 2.1.0: %v", err)
	}
	var log struct {
		Runs []struct {
			Invocations []struct {
				ToolExecutionNotifications []struct {
					Level   string
					Message struct{ Text string }
				}
			}
			Results []struct {
				RuleID       string
				Level        string
				Suppressions []struct {
					Kind, Status, Justification string
					Properties                  map[string]any
				}
			}
		}
	}
	if err := json.Unmarshal(out, &log); err != nil {
		t.Fatal(err)
	}
	run := log.Runs[0]
	if len(run.Results) != 3 {
		t.Fatalf("%d results", len(run.Results))
	}
	for _, r := range run.Results {
		// Still a finding at its level, marked as accepted.
		if r.Level != "error" || len(r.Suppressions) != 1 || r.Suppressions[0].Kind != "external" || r.Suppressions[0].Status != "accepted" ||
			r.Suppressions[0].Justification == "" || r.Suppressions[0].Properties["source"] != "sup.yaml" {
			t.Errorf("%s: %+v", r.RuleID, r)
		}
	}
	var notes []string
	for _, n := range run.Invocations[0].ToolExecutionNotifications {
		notes = append(notes, n.Level+": "+n.Message.Text)
	}
	if len(notes) != 2 || !strings.HasPrefix(notes[0], "error: suppression sup.yaml:16 (rule unsigned, path nothing.exe) expired on 2026-12-06") ||
		!strings.HasPrefix(notes[1], "error: suppression sup.yaml:20 (rule unsigned, path other.exe) matched no finding") {
		t.Errorf("notifications:\n%s", strings.Join(notes, "\n"))
	}
}

func TestSuppressedJUnit(t *testing.T) {
	out := render(t, "junit", report.Options{}, runSuppressed(t, cipolicy.Enforce, expiredEntry))
	var doc struct {
		Failures int `xml:"failures,attr"`
		Skipped  int `xml:"skipped,attr"`
		Suites   []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
					Type    string `xml:"type,attr"`
				} `xml:"failure"`
				Skipped *struct {
					Message string `xml:"message,attr"`
				} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	// The three suppressed files are skipped with their justification; the
	// expired suppression is a failure.
	if doc.Failures != 1 || doc.Skipped != 3 {
		t.Errorf("%d failures, %d skipped:\n%s", doc.Failures, doc.Skipped, out)
	}
	for _, c := range doc.Suites[0].Cases {
		switch c.Name {
		case "bin/ok":
		case "suppression sup.yaml:16":
			if c.Failure == nil || c.Failure.Type != "suppression-expired" {
				t.Errorf("%s: %+v", c.Name, c.Failure)
			}
		default:
			if c.Skipped == nil || !strings.HasPrefix(c.Skipped.Message, "suppressed: blocked: ") || !strings.Contains(c.Skipped.Message, "[suppressed by sup.yaml:") {
				t.Errorf("%s: %+v", c.Name, c.Skipped)
			}
		}
	}
}
