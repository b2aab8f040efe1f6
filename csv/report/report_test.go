package report_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/report"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

// run validates a tree with one allowed, one unsigned, one denied and one
// malformed binary, in the given mode.
func run(t testing.TB, mode cipolicy.Mode) *csv.Report {
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
		"  - {id: ok, action: allow, sha256: %x}\n  - {id: no, action: deny, sha256: %x}\n", mode, in.Digests.Get(cipolicy.SHA256), den.Digests.Get(cipolicy.SHA256))
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
	if !strings.HasPrefix(lines[0], `csv: policy "report-test" 7 (enforce, sha256 `) || !strings.Contains(lines[0], "4 binaries judged: 1 allowed, 3 blocked; 1 file skipped") {
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

// shardRun validates dir/build from the working directory wd, with the
// root spelled as given, and returns the JSON document of the run.
func shardRun(t *testing.T, wd, root string, set *cipolicy.Set, opts csv.Options, ropts report.Options) *report.Document {
	t.Helper()
	old, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(old) })
	if err := os.Chdir(wd); err != nil {
		t.Fatal(err)
	}
	v, err := csv.NewValidator(set, opts)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := v.Validate(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	os.Chdir(old)
	if ropts.ToolVersion == "" {
		ropts.ToolVersion = "v1.2.3"
	}
	// Through JSON, as csv report merge reads it.
	d := report.NewDocument(rep, ropts)
	raw, _ := json.Marshal(d)
	var back report.Document
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatal(err)
	}
	return &back
}

// TestMergeOneCutOfOneBuild: the shards of a build merge into the report of
// the whole build however each job spelled the root (build/, ./build, an
// absolute path, another workspace directory); runs that could have judged
// other files or judged them otherwise are refused; shard indexes must be
// in range and given once; the verdict and summary are recomputed from the
// results, never taken from the reports.
func TestMergeOneCutOfOneBuild(t *testing.T) {
	// ws3 is another checkout, without the blocked file.
	ws1, ws2, ws3 := t.TempDir(), t.TempDir(), t.TempDir()
	var blocked string
	for i := range 16 {
		img := testbin.PE(testbin.PEOptions{Overlay: []byte{byte(i)}})
		name := fmt.Sprintf("build/d%d/f%02d.exe", i%4, i)
		wss := []string{ws1, ws2, ws3}
		if i == 11 {
			img = testbin.PE(testbin.PEOptions{PE32: true})
			blocked = name
			wss = wss[:2]
		}
		for _, ws := range wss {
			os.MkdirAll(filepath.Join(ws, filepath.Dir(name)), 0o755)
			os.WriteFile(filepath.Join(ws, name), img, 0o644)
		}
	}
	src := "format: csv-policy/v1\nname: merge\nversion: '1'\nrules:\n  - {id: pe, action: allow, formats: [pe], paths: ['d*/f0*', 'd*/f1[02-9]*'], all: true}\n"
	p, err := cipolicy.Parse([]byte(src), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, _ := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	whole := shardRun(t, ws1, "build", set, csv.Options{}, report.Options{})
	if whole.Passed || whole.Summary.Files != 16 || whole.Summary.Blocked != 1 {
		t.Fatalf("whole run: %+v", whole.Summary)
	}
	shard := func(ws, root string, i, n int, opts csv.Options, ropts report.Options) *report.Document {
		opts.Shard = &csv.Shard{Index: i, Count: n}
		return shardRun(t, ws, root, set, opts, ropts)
	}
	abs1 := filepath.Join(ws1, "build")
	spellings := [][]string{
		{"build/", "build", "build"},
		{"./build", "build/", abs1},
		{abs1 + "/", "build", "./build/"},
	}
	for _, sp := range spellings {
		var docs []*report.Document
		for i, root := range sp {
			ws := ws1
			if i == 1 {
				ws = ws2 // another runner, another workspace directory
			}
			if root == abs1 || root == abs1+"/" {
				ws = ws1
			}
			docs = append(docs, shard(ws, root, i+1, len(sp), csv.Options{}, report.Options{}))
		}
		merged, err := report.Merge(docs)
		if err != nil {
			t.Fatalf("roots %q: %v", sp, err)
		}
		if merged.Summary != whole.Summary || merged.Passed || len(merged.Results) != 16 {
			t.Errorf("roots %q: merged %+v (passed %v), whole %+v", sp, merged.Summary, merged.Passed, whole.Summary)
		}
		found := false
		for _, r := range merged.Results {
			found = found || ("build/"+r.Path == blocked && r.Verdict == cipolicy.Blocked)
		}
		if !found {
			t.Errorf("roots %q: %s is not blocked in the merged report", sp, blocked)
		}
	}

	good := func() []*report.Document {
		return []*report.Document{shard(ws1, "build", 1, 3, csv.Options{}, report.Options{}),
			shard(ws1, "build", 2, 3, csv.Options{}, report.Options{}), shard(ws1, "build", 3, 3, csv.Options{}, report.Options{})}
	}
	if _, err := report.Merge(good()); err != nil {
		t.Fatal(err)
	}
	other, _ := cipolicy.Parse([]byte(strings.Replace(src, "version: '1'", "version: '2'", 1)), "m.yaml")
	otherSet, _ := cipolicy.NewSet(cipolicy.SetOptions{}, other)
	sc, err := signing.ParseCertificate(testca.New(t).Root.Cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]func(d []*report.Document) []*report.Document{
		"an extra --exclude": func(d []*report.Document) []*report.Document {
			d[1] = shard(ws1, "build", 2, 3, csv.Options{Exclude: []string{"d1/**"}}, report.Options{})
			return d
		},
		"another --include": func(d []*report.Document) []*report.Document {
			d[2] = shard(ws1, "build", 3, 3, csv.Options{Include: []string{"**"}}, report.Options{})
			return d
		},
		"--follow-symlinks": func(d []*report.Document) []*report.Document {
			d[0] = shard(ws1, "build", 1, 3, csv.Options{FollowSymlinks: true}, report.Options{})
			return d
		},
		"another scenario": func(d []*report.Document) []*report.Document {
			d[0] = shard(ws1, "build", 1, 3, csv.Options{Scenario: cipolicy.ScenarioKernel}, report.Options{})
			return d
		},
		"a mode override": func(d []*report.Document) []*report.Document {
			d[0] = shard(ws1, "build", 1, 3, csv.Options{}, report.Options{ModeOverride: cipolicy.Enforce})
			return d
		},
		"--certs": func(d []*report.Document) []*report.Document {
			d[0] = shard(ws1, "build", 1, 3, csv.Options{Certificates: []*signing.Certificate{sc}}, report.Options{})
			return d
		},
		"another tool version": func(d []*report.Document) []*report.Document {
			d[0] = shard(ws1, "build", 1, 3, csv.Options{}, report.Options{ToolVersion: "v1.2.4"})
			return d
		},
		"--fail-if-no-targets": func(d []*report.Document) []*report.Document {
			d[0] = shard(ws1, "build", 1, 3, csv.Options{}, report.Options{FailIfNoTargets: true})
			return d
		},
		"another policy": func(d []*report.Document) []*report.Document {
			o := csv.Options{Shard: &csv.Shard{Index: 2, Count: 3}}
			d[1] = shardRun(t, ws1, "build", otherSet, o, report.Options{})
			return d
		},
		"another root": func(d []*report.Document) []*report.Document {
			d[1] = shard(ws1, "build/d1", 2, 3, csv.Options{}, report.Options{})
			return d
		},
		"an index out of range": func(d []*report.Document) []*report.Document {
			d[2].Shard.Index = 4
			return d
		},
		"an index given twice": func(d []*report.Document) []*report.Document {
			return append(d, d[0])
		},
		"a missing shard": func(d []*report.Document) []*report.Document {
			return d[:2]
		},
		"a huge count": func(d []*report.Document) []*report.Document {
			for _, x := range d {
				x.Shard.Count = 1 << 62
			}
			return d
		},
		"a count of zero": func(d []*report.Document) []*report.Document {
			for _, x := range d {
				x.Shard.Count = 0
			}
			return d
		},
		"results of another cut": func(d []*report.Document) []*report.Document {
			d[0].Results, d[1].Results = d[1].Results, d[0].Results
			d[0].Summary, d[1].Summary = d[1].Summary, d[0].Summary
			return d
		},
		// A shard that leaves a file out, its summary counting what it
		// lists: the shards list fewer paths than they walked.
		"a file left out": func(d []*report.Document) []*report.Document {
			for _, x := range d {
				for i, r := range x.Results {
					if "build/"+r.Path == blocked {
						x.Results = slices.Delete(x.Results, i, i+1)
						x.Summary.Files--
						x.Summary.Blocked--
						return d
					}
				}
			}
			t.Fatal("no shard judged the blocked file")
			return d
		},
		"a summary that does not count the results": func(d []*report.Document) []*report.Document {
			d[0].Results = d[0].Results[:len(d[0].Results)-1]
			return d
		},
		// The blocked file's shard ran where it was not: every shard
		// passes, and the file was judged by none.
		"another tree": func(d []*report.Document) []*report.Document {
			i := csv.ShardOf(strings.TrimPrefix(blocked, "build/"), 3)
			d[i-1] = shard(ws3, "build", i, 3, csv.Options{}, report.Options{})
			return d
		},
		"no run metadata (an older csv)": func(d []*report.Document) []*report.Document {
			d[1].Run = nil
			return d
		},
	}
	for name, change := range refused {
		_, err := report.Merge(change(good()))
		if !errors.Is(err, report.ErrMerge) {
			t.Errorf("%s: merged (err %v)", name, err)
		}
		t.Logf("%s: %v", name, err)
	}

	// "passed" and the summary are recomputed, not believed.
	docs := good()
	for _, d := range docs {
		d.Passed = true
	}
	merged, err := report.Merge(docs)
	if err != nil {
		t.Fatal(err)
	}
	if merged.Passed || merged.Summary.Blocked != 1 || merged.Summary.Excluded != 0 {
		t.Errorf("merged: passed %v, summary %+v", merged.Passed, merged.Summary)
	}
}

// FuzzMerge: merging hostile shard reports (any bytes) never panics, a
// merge that fails writes nothing, and one that succeeds writes a report
// that fails the build whenever a result is blocked and enforced, whatever
// the reports say.
func FuzzMerge(f *testing.F) {
	dir := f.TempDir()
	for i := range 6 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.exe", i)), testbin.PE(testbin.PEOptions{Overlay: []byte{byte(i)}}), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("text"), 0o644)
	p, _ := cipolicy.Parse([]byte("format: csv-policy/v1\nname: m\nversion: '1'\nrules:\n  - {id: some, action: allow, all: true, paths: ['f[0-2]*']}\n"), "m.yaml")
	set, _ := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	var docs [][]byte
	for i := 1; i <= 2; i++ {
		v, _ := csv.NewValidator(set, csv.Options{Shard: &csv.Shard{Index: i, Count: 2}})
		rep, err := v.Validate(context.Background(), dir)
		if err != nil {
			f.Fatal(err)
		}
		b, _ := json.Marshal(report.NewDocument(rep, report.Options{ToolVersion: "v1"}))
		docs = append(docs, b)
	}
	f.Add(docs[0], docs[1])
	f.Add(docs[1], docs[0])
	f.Add(docs[0], docs[0])
	f.Add(bytes.Replace(docs[0], []byte(`"passed": false`), []byte(`"passed": true`), 1), docs[1])
	f.Add(bytes.Replace(docs[0], []byte(`"count":2`), []byte(`"count":0`), 1), docs[1])
	f.Add(bytes.Replace(docs[0], []byte(`"index":1`), []byte(`"index":3`), 1), docs[1])
	f.Add(docs[0], bytes.Replace(docs[1], []byte(`"entries":`), []byte(`"entries":1`), 1)) // another tree
	f.Add([]byte(`{}`), []byte(`{"shard":{"index":1,"count":1},"run":{}}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var shards []*report.ShardReport
		for _, x := range [][]byte{a, b} {
			sh, err := report.OpenShard("x", bytes.NewReader(x), int64(len(x)))
			panicerr.Check(t, err)
			if err != nil {
				return
			}
			shards = append(shards, sh)
		}
		var out bytes.Buffer
		head, err := report.MergeTo(&out, shards, nil)
		panicerr.Check(t, err)
		if err != nil {
			if !errors.Is(err, report.ErrMerge) {
				t.Fatalf("error %v is not ErrMerge", err)
			}
			if out.Len() != 0 {
				t.Fatalf("a failed merge wrote %d bytes", out.Len())
			}
			return
		}
		var m report.Document
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatalf("the merged report does not decode: %v", err)
		}
		if m.Summary != head.Summary || m.Passed != head.Passed {
			t.Fatalf("MergeTo returned %+v, wrote %+v", head.Summary, m.Summary)
		}
		for _, r := range m.Results {
			if r.Verdict != cipolicy.Allowed && r.Enforced && m.Passed {
				t.Fatalf("%s is blocked and enforced, and the merge passes", r.Path)
			}
		}
		if m.Summary.Files != len(m.Results) || m.Summary.Allowed+m.Summary.Blocked != m.Summary.Files {
			t.Fatalf("summary %+v of %d results", m.Summary, len(m.Results))
		}
	})
}

// sarifFindings renders rep as SARIF with opts, checks it against the
// SARIF 2.1.0 schema, and returns its results by message file.
func sarifFindings(t *testing.T, opts report.Options, rep *csv.Report) (map[string]sarifFinding, map[string]struct{ URI string }) {
	t.Helper()
	out := render(t, "sarif", opts, rep)
	schema, err := jsonschema.NewCompiler().Compile(testenv.Shared(t, "testdata/sarif/sarif-schema-2.1.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(inst); err != nil {
		t.Fatalf("not valid SARIF 2.1.0: %v", err)
	}
	var log struct {
		Runs []struct {
			Tool struct {
				Driver struct {
					Rules []struct {
						ID            string
						DeprecatedIDs []string
					}
				}
			}
			OriginalURIBaseIDs map[string]struct{ URI string }
			Results            []sarifFinding
		}
	}
	if err := json.Unmarshal(out, &log); err != nil {
		t.Fatal(err)
	}
	byFile := map[string]sarifFinding{}
	for _, r := range log.Runs[0].Results {
		file, _, _ := strings.Cut(r.Message.Text, ":")
		byFile[file] = r
	}
	return byFile, log.Runs[0].OriginalURIBaseIDs
}

type sarifFinding struct {
	RuleID              string
	Message             struct{ Text string }
	PartialFingerprints map[string]string
	Locations           []struct {
		PhysicalLocation struct {
			ArtifactLocation struct {
				URI       string
				URIBaseID string
			}
		}
	}
}

func (f sarifFinding) location() string {
	a := f.Locations[0].PhysicalLocation.ArtifactLocation
	return a.URIBaseID + a.URI
}

// TestSARIFFingerprints: each finding carries a fingerprint that two runs
// of the same tree (another directory, another time) agree on, and that
// differs from file to file; a finding of audit mode has the fingerprint
// of the same finding enforced.
func TestSARIFFingerprints(t *testing.T) {
	first, _ := sarifFindings(t, report.Options{}, run(t, cipolicy.Enforce))
	second, _ := sarifFindings(t, report.Options{}, run(t, cipolicy.Audit))
	if len(first) != 3 {
		t.Fatalf("%d findings, want 3", len(first))
	}
	seen := map[string]string{}
	for file, f := range first {
		fp := f.PartialFingerprints[report.FingerprintKey]
		if len(fp) != 64 {
			t.Fatalf("%s: fingerprint %q", file, fp)
		}
		if other, ok := seen[fp]; ok {
			t.Errorf("%s and %s share the fingerprint %s", file, other, fp)
		}
		seen[fp] = file
		if got := second[file].PartialFingerprints[report.FingerprintKey]; got != fp {
			t.Errorf("%s: fingerprint %s in one run, %s in the other", file, fp, got)
		}
	}
}

// TestSARIFRoot: with Options.SARIFRoot, files under it are located
// relative to %SRCROOT%, whose place the log states; files outside it keep
// the path the run gave them; the fingerprints follow the location.
func TestSARIFRoot(t *testing.T) {
	rep := run(t, cipolicy.Enforce)
	wd, _ := os.Getwd()
	plain, _ := sarifFindings(t, report.Options{}, rep)
	rooted, bases := sarifFindings(t, report.Options{SARIFRoot: "win"}, rep)
	if got := rooted["win/unsigned.exe"].location(); got != report.SARIFRootBase+"unsigned.exe" {
		t.Errorf("win/unsigned.exe located at %q", got)
	}
	if got := rooted["bin/denied"].location(); got != "bin/denied" {
		t.Errorf("bin/denied (outside the root) located at %q", got)
	}
	if got, want := bases[report.SARIFRootBase].URI, "file://"+filepath.ToSlash(filepath.Join(wd, "win"))+"/"; got != want {
		t.Errorf("%%SRCROOT%% is %q, want %q", got, want)
	}
	fp := func(m map[string]sarifFinding, f string) string {
		return m[f].PartialFingerprints[report.FingerprintKey]
	}
	if fp(plain, "win/unsigned.exe") == fp(rooted, "win/unsigned.exe") || fp(plain, "bin/denied") != fp(rooted, "bin/denied") {
		t.Error("fingerprints do not follow the location")
	}
	// The repository's root: every file under it, as the run named it.
	all, _ := sarifFindings(t, report.Options{SARIFRoot: wd}, rep)
	for file, f := range all {
		if f.location() != report.SARIFRootBase+file {
			t.Errorf("%s located at %q", file, f.location())
		}
		if fp(all, file) != fp(plain, file) {
			t.Errorf("%s: the fingerprint changed with a root where the path did not", file)
		}
	}
}

// TestMergeIsTheWholeRun: the shards of a tree with containers (their
// members judged, skipped or left out by --include), names whose walk
// order is not their string order ("a.txt" is walked after "a/"), and a
// file that is no binary merge into the whole run's results and skipped
// files, in the whole run's order, whatever the number of shards; and a
// shard's report edited to leave out, repeat, reorder or orphan a file is
// refused.
func TestMergeIsTheWholeRun(t *testing.T) {
	dir := t.TempDir()
	elf := func(i int) []byte { return append(testbin.ELF(testbin.ELFOptions{}), byte(i)) }
	zipOf := func(names ...string) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		for i, n := range names {
			w, _ := zw.Create(n)
			w.Write(elf(100 + i))
		}
		zw.Close()
		return b.Bytes()
	}
	files := map[string][]byte{
		"a/b":           elf(1),
		"a.txt":         []byte("not a binary"),
		"a0":            elf(2),
		"pkg/z.zip":     zipOf("x/tool", "bin/a", "README"),
		"pkg/y.zip":     zipOf("c", "a"),
		"pkg/sub/w.zip": zipOf("only"),
		"pkg/t":         elf(3),
	}
	for i := range 40 {
		files[fmt.Sprintf("many/f%02d", i)] = elf(10 + i)
	}
	for p, b := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := "format: csv-policy/v1\nname: merge\nversion: '1'\nrules:\n  - {id: all, action: allow, all: true}\n"
	p, _ := cipolicy.Parse([]byte(src), "m.yaml")
	set, _ := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	strip := func(d *report.Document) ([]report.ResultDoc, []report.SkippedDoc) {
		for i := range d.Results {
			d.Results[i].Walk = nil
		}
		for i := range d.Skipped {
			d.Skipped[i].Walk = nil
		}
		return d.Results, d.Skipped
	}
	for _, include := range [][]string{nil, {"**/a", "**/only", "a*"}} {
		opts := csv.Options{Include: include}
		whole := shardRun(t, dir, ".", set, opts, report.Options{})
		if len(whole.Results) < 45 && include == nil || len(whole.Results) < 4 {
			t.Fatalf("include %q: the whole run judged %d files", include, len(whole.Results))
		}
		wantRes, wantSkip := strip(whole)
		for _, n := range []int{1, 2, 5} {
			var docs []*report.Document
			for i := n; i >= 1; i-- {
				o := opts
				o.Shard = &csv.Shard{Index: i, Count: n}
				docs = append(docs, shardRun(t, dir, ".", set, o, report.Options{}))
			}
			merged, err := report.Merge(docs)
			if err != nil {
				t.Fatalf("include %q, %d shards: %v", include, n, err)
			}
			gotRes, gotSkip := strip(merged)
			got, _ := json.Marshal([]any{gotRes, gotSkip, merged.Summary})
			want, _ := json.Marshal([]any{wantRes, wantSkip, whole.Summary})
			if !bytes.Equal(got, want) {
				t.Errorf("include %q, %d shards: merged\n%s\nwant\n%s", include, n, got, want)
			}
		}
	}

	// Edited shards.
	shards := func() []*report.Document {
		var docs []*report.Document
		for i := 1; i <= 2; i++ {
			docs = append(docs, shardRun(t, dir, ".", set, csv.Options{Shard: &csv.Shard{Index: i, Count: 2}}, report.Options{}))
		}
		return docs
	}
	member := func(d *report.Document) int {
		for i, r := range d.Results {
			if strings.Contains(r.Path, "!/") {
				return i
			}
		}
		t.Fatal("no member in the shard")
		return 0
	}
	recount := func(d *report.Document) {
		d.Summary.Files, d.Summary.Allowed = len(d.Results), len(d.Results)
		d.Summary.Skipped = len(d.Skipped)
	}
	// target is a shard with a member after other files.
	target := func(docs []*report.Document) *report.Document {
		for _, d := range docs {
			if len(d.Results) > 3 && member(d) > 0 {
				return d
			}
		}
		t.Fatal("no shard to edit")
		return nil
	}
	for _, c := range []struct {
		name, want string
		edit       func(docs []*report.Document)
	}{
		{"a file left out", "no shard lists the walk's entry", func(docs []*report.Document) {
			d := target(docs)
			i := member(d) - 1 // the file before the first member: not a member
			for strings.Contains(d.Results[i].Path, "!/") {
				i--
			}
			d.Results = slices.Delete(d.Results, i, i+1)
			recount(d)
		}},
		{"a file twice", "out of the walk's order", func(docs []*report.Document) {
			d := target(docs)
			d.Results = slices.Insert(d.Results, 1, d.Results[1])
			recount(d)
		}},
		{"files reordered", "out of the walk's order", func(docs []*report.Document) {
			d := target(docs)
			d.Results[0], d.Results[1] = d.Results[1], d.Results[0]
		}},
		{"no place in the walk", "no place in the walk", func(docs []*report.Document) {
			d := target(docs)
			d.Results[len(d.Results)-1].Walk = nil
		}},
		{"a member without its container", "without its container", func(docs []*report.Document) {
			d := target(docs)
			i := member(d)
			d.Results[i].Path = "elsewhere!/" + d.Results[i].Path
		}},
		{"the same place in two shards", "are the same file of the walk", func(docs []*report.Document) {
			// Shard 2's first file, given the place of shard 1's first
			// (the earlier: the other shard's cursor checks its order).
			a, b := &docs[0].Results[0], &docs[1].Results[0]
			if a.Walk[0] > b.Walk[0] {
				a, b = b, a
			}
			b.Walk = slices.Clone(a.Walk)
		}},
	} {
		docs := shards()
		c.edit(docs)
		if _, err := report.Merge(docs); !errors.Is(err, report.ErrMerge) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
