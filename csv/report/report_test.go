package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/report"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testenv"
)

// run validates a tree with one allowed, one unsigned, one denied and one
// malformed binary, in the given mode.
func run(t *testing.T, mode cipolicy.Mode) *csv.Report {
	t.Helper()
	dir := t.TempDir()
	allowed := testbin.ELF(testbin.ELFOptions{})
	denied := testbin.ELF(testbin.ELFOptions{Class32: true})
	files := map[string][]byte{
		"bin/ok":              allowed,
		"bin/denied":          denied,
		"win/unsigned.exe":    testbin.PE(testbin.PEOptions{}),
		"win/broken.exe":      testbin.PE(testbin.PEOptions{})[:0x250],
		"docs/with space.txt": []byte("text"),
	}
	for p, b := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, b, 0o644)
	}
	in := csv.InspectFile(context.Background(), filepath.Join(dir, "bin/ok"), nil, csv.InspectOptions{})
	den := csv.InspectFile(context.Background(), filepath.Join(dir, "bin/denied"), nil, csv.InspectOptions{})
	src := fmt.Sprintf("format: csv-policy/v1\nname: report-test\nversion: '7'\nmode: %s\nrules:\n"+
		"  - {id: ok, action: allow, sha256: %x}\n  - {id: no, action: deny, sha256: %x}\n", mode, in.Digests.SHA256, den.Digests.SHA256)
	p, err := cipolicy.Parse([]byte(src), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	if err != nil {
		t.Fatal(err)
	}
	v, err := csv.NewValidator(set, csv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	os.Chdir(dir)
	rep, err := v.Validate(context.Background(), "bin", "win", "docs")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Files != 4 || rep.Summary.Blocked != 3 {
		t.Fatalf("summary %+v", rep.Summary)
	}
	return rep
}

func render(t *testing.T, format string, opts report.Options, rep *csv.Report) []byte {
	t.Helper()
	r, err := report.New(format, opts)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.Render(&b, rep); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestText(t *testing.T) {
	out := string(render(t, "text", report.Options{}, run(t, cipolicy.Enforce)))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], `csv: policy "report-test" 7 (enforce, sha256 `) || !strings.Contains(lines[0], "4 binaries judged: 1 allowed, 3 blocked; 1 files skipped") {
		t.Errorf("summary line: %q", lines[0])
	}
	for _, want := range []string{
		`BLOCKED     bin/denied: denied by rule "no": SHA256 `,
		"BLOCKED     win/broken.exe: malformed PE at offset 0x200: section 0",
		"BLOCKED     win/unsigned.exe: no rule allows it: not signed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "bin/ok") {
		t.Error("allowed file listed without --verbose")
	}
	if last := lines[len(lines)-1]; last != "result: FAILED: 3 of 4 binaries blocked" {
		t.Errorf("verdict line %q", last)
	}
	verbose := string(render(t, "text", report.Options{Verbose: true}, run(t, cipolicy.Enforce)))
	if !strings.Contains(verbose, `ALLOWED     bin/ok: allowed by rule "ok": SHA256 `) || !strings.Contains(verbose, "SKIPPED     docs/with space.txt: not a PE or ELF file") {
		t.Errorf("verbose:\n%s", verbose)
	}
	audit := string(render(t, "text", report.Options{}, run(t, cipolicy.Audit)))
	if !strings.Contains(audit, "WOULD BLOCK win/unsigned.exe") || !strings.Contains(audit, "(audit mode: not enforced)") ||
		!strings.Contains(audit, "result: PASSED in audit mode: 3 of 4 binaries would be blocked") {
		t.Errorf("audit:\n%s", audit)
	}
}

func TestJSON(t *testing.T) {
	rep := run(t, cipolicy.Enforce)
	var doc map[string]any
	if err := json.Unmarshal(render(t, "json", report.Options{ToolVersion: "v9"}, rep), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["mediaType"] != report.MediaType || doc["passed"] != false {
		t.Errorf("header: %v %v", doc["mediaType"], doc["passed"])
	}
	pol := doc["policy"].(map[string]any)
	if pol["name"] != "report-test" || pol["version"] != "7" || pol["mode"] != "enforce" || len(pol["sha256"].(string)) != 64 {
		t.Errorf("policy %v", pol)
	}
	sum := doc["summary"].(map[string]any)
	if sum["files"] != 4.0 || sum["allowed"] != 1.0 || sum["blocked"] != 3.0 || sum["skipped"] != 1.0 {
		t.Errorf("summary %v", sum)
	}
	results := doc["results"].([]any)
	first := results[0].(map[string]any)
	for _, k := range []string{"path", "format", "size", "sha256", "verdict", "rule", "reason", "root"} {
		if _, ok := first[k]; !ok {
			t.Errorf("result lacks %q: %v", k, first)
		}
	}
	byPath := map[string]map[string]any{}
	for _, r := range results {
		m := r.(map[string]any)
		byPath[m["root"].(string)+"/"+m["path"].(string)] = m
	}
	if r := byPath["bin/ok"]; r["verdict"] != "allowed" || r["rule"] != "ok" {
		t.Errorf("bin/ok: %v", r)
	}
	if r := byPath["win/unsigned.exe"]; r["verdict"] != "blocked" || r["kind"] != "unsigned" || r["format"] != "pe" {
		t.Errorf("win/unsigned.exe: %v", r)
	}
	audit := render(t, "json", report.Options{}, run(t, cipolicy.Audit))
	if !bytes.Contains(audit, []byte(`"passed": true`)) || !bytes.Contains(audit, []byte(`"enforced": false`)) {
		t.Errorf("audit JSON does not say blocked-but-not-enforced")
	}
}

func TestSARIF(t *testing.T) {
	schemaPath := testenv.Shared(t, "testdata/sarif/sarif-schema-2.1.0.json")
	c := jsonschema.NewCompiler()
	schema, err := c.Compile(schemaPath)
	if err != nil {
		t.Fatalf("compiling the SARIF schema: %v", err)
	}
	// The schema check can fail: a log with a result that has no message.
	bad, _ := jsonschema.UnmarshalJSON(strings.NewReader(`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"ruleId":"a"}]}]}`))
	if schema.Validate(bad) == nil {
		t.Fatal("the schema accepts a result without a message")
	}
	for _, tc := range []struct {
		name  string
		mode  cipolicy.Mode
		opts  report.Options
		count int
	}{
		{"enforce", cipolicy.Enforce, report.Options{}, 3},
		{"audit", cipolicy.Audit, report.Options{}, 3},
		{"passes", cipolicy.Enforce, report.Options{SARIFPasses: true}, 4},
		{"no targets", cipolicy.Enforce, report.Options{FailedNoTargets: true}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := render(t, "sarif", tc.opts, run(t, tc.mode))
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(inst); err != nil {
				t.Fatalf("not valid SARIF 2.1.0: %v", err)
			}
			var log struct {
				Version string
				Runs    []struct {
					Tool struct {
						Driver struct {
							Name  string
							Rules []struct{ ID string }
						}
					}
					Invocations []struct {
						ToolExecutionNotifications []any
					}
					Results []struct {
						RuleID    string
						Level     string
						Kind      string
						Message   struct{ Text string }
						Locations []struct {
							PhysicalLocation struct {
								ArtifactLocation struct{ URI string }
							}
						}
					}
				}
			}
			if err := json.Unmarshal(out, &log); err != nil {
				t.Fatal(err)
			}
			run := log.Runs[0]
			ids := map[string]bool{}
			for _, r := range run.Tool.Driver.Rules {
				ids[r.ID] = true
			}
			if len(run.Results) != tc.count {
				t.Fatalf("%d results, want %d", len(run.Results), tc.count)
			}
			byURI := map[string]string{}
			for _, r := range run.Results {
				// What GitHub code scanning requires of a result.
				if r.RuleID == "" || r.Message.Text == "" || len(r.Locations) != 1 || r.Locations[0].PhysicalLocation.ArtifactLocation.URI == "" || !ids[r.RuleID] {
					t.Errorf("result %+v lacks what code scanning needs", r)
				}
				byURI[r.Locations[0].PhysicalLocation.ArtifactLocation.URI] = r.RuleID + "/" + r.Level
			}
			level := "error"
			if tc.mode == cipolicy.Audit {
				level = "warning"
			}
			if byURI["win/unsigned.exe"] != report.RuleMissingSigningCert+"/"+level {
				t.Errorf("unsigned: %v", byURI)
			}
			if byURI["bin/denied"] != report.RuleDenied+"/"+level || byURI["win/broken.exe"] != report.RuleMalformed+"/"+level {
				t.Errorf("denied/malformed: %v", byURI)
			}
			if tc.opts.SARIFPasses && byURI["bin/ok"] != report.RuleMatchingPolicy+"/none" {
				t.Errorf("pass: %v", byURI)
			}
			if got := len(run.Invocations[0].ToolExecutionNotifications); (got > 0) != tc.opts.FailedNoTargets {
				t.Errorf("%d notifications", got)
			}
		})
	}
}

func TestJUnit(t *testing.T) {
	for _, mode := range []cipolicy.Mode{cipolicy.Enforce, cipolicy.Audit} {
		out := render(t, "junit", report.Options{}, run(t, mode))
		var doc struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Skipped  int `xml:"skipped,attr"`
			Suites   []struct {
				Cases []struct {
					Name    string    `xml:"name,attr"`
					Failure *struct{} `xml:"failure"`
					Skipped *struct {
						Message string `xml:"message,attr"`
					} `xml:"skipped"`
				} `xml:"testcase"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal(out, &doc); err != nil {
			t.Fatalf("%s: not XML: %v\n%s", mode, err, out)
		}
		wantFail, wantSkip := 3, 0
		if mode == cipolicy.Audit {
			wantFail, wantSkip = 0, 3
		}
		if doc.Tests != 4 || doc.Failures != wantFail || doc.Skipped != wantSkip || len(doc.Suites[0].Cases) != 4 {
			t.Errorf("%s: tests %d failures %d skipped %d", mode, doc.Tests, doc.Failures, doc.Skipped)
		}
		for _, c := range doc.Suites[0].Cases {
			blocked := c.Name != "bin/ok"
			if mode == cipolicy.Enforce && (c.Failure != nil) != blocked {
				t.Errorf("%s: failure=%v", c.Name, c.Failure != nil)
			}
			if mode == cipolicy.Audit && blocked && (c.Skipped == nil || !strings.Contains(c.Skipped.Message, "would be blocked")) {
				t.Errorf("%s: audit case not marked", c.Name)
			}
		}
	}
}

func TestUnknownFormat(t *testing.T) {
	if _, err := report.New("html", report.Options{}); err == nil {
		t.Error("no error")
	}
}

func TestMerge(t *testing.T) {
	dir := t.TempDir()
	for i := range 30 {
		p := filepath.Join(dir, fmt.Sprintf("f%02d.exe", i))
		os.WriteFile(p, testbin.PE(testbin.PEOptions{Overlay: []byte{byte(i)}}), 0o644)
	}
	src := "format: csv-policy/v1\nname: merge\nversion: '1'\nrules:\n  - {id: all, action: allow, all: true}\n"
	p, _ := cipolicy.Parse([]byte(src), "m.yaml")
	set, _ := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	doc := func(shard *csv.Shard) *report.Document {
		v, _ := csv.NewValidator(set, csv.Options{Shard: shard})
		rep, err := v.Validate(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		return report.NewDocument(rep, report.Options{})
	}
	whole := doc(nil)
	parts := []*report.Document{doc(&csv.Shard{Index: 3, Count: 3}), doc(&csv.Shard{Index: 1, Count: 3}), doc(&csv.Shard{Index: 2, Count: 3})}
	merged, err := report.Merge(parts)
	if err != nil {
		t.Fatal(err)
	}
	if merged.Summary != whole.Summary || !merged.Passed || len(merged.Shards) != 3 {
		t.Errorf("merged summary %+v (passed %v), whole %+v", merged.Summary, merged.Passed, whole.Summary)
	}
	for i := range whole.Results {
		if merged.Results[i].Path != whole.Results[i].Path || merged.Results[i].Verdict != whole.Results[i].Verdict {
			t.Fatalf("result %d: %s, whole run %s", i, merged.Results[i].Path, whole.Results[i].Path)
		}
	}
	if _, err := report.Merge(parts[:2]); !errors.Is(err, report.ErrMerge) || !strings.Contains(err.Error(), "shards 2/3 are missing") {
		t.Errorf("missing shard: %v", err)
	}
	if _, err := report.Merge([]*report.Document{parts[0], parts[0], parts[1]}); !errors.Is(err, report.ErrMerge) {
		t.Errorf("repeated shard: %v", err)
	}
	other := *parts[2]
	other.Policies = append([]report.PolicyDoc(nil), other.Policies...)
	other.Policies[0].SHA256 = strings.Repeat("0", 64)
	if _, err := report.Merge([]*report.Document{parts[0], parts[1], &other}); !errors.Is(err, report.ErrMerge) {
		t.Errorf("other policy: %v", err)
	}
	if _, err := report.Merge([]*report.Document{whole}); !errors.Is(err, report.ErrMerge) {
		t.Errorf("not a shard: %v", err)
	}
}

// TestTextEscapesControlCharacters: a file name cannot forge report lines.
func TestTextEscapesControlCharacters(t *testing.T) {
	dir := t.TempDir()
	name := "evil.exe\nresult: PASSED: all 9 binaries allowed"
	os.WriteFile(filepath.Join(dir, name), testbin.PE(testbin.PEOptions{}), 0o644)
	p, _ := cipolicy.Parse([]byte("format: csv-policy/v1\nname: x\nrules: []\n"), "x.yaml")
	set, _ := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	v, _ := csv.NewValidator(set, csv.Options{})
	rep, err := v.Validate(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	out := string(render(t, "text", report.Options{}, rep))
	if strings.Contains(out, "\nresult: PASSED") || !strings.Contains(out, `evil.exe\x0aresult: PASSED`) {
		t.Errorf("report:\n%s", out)
	}
}
