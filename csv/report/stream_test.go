package report_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/report"
	"github.com/codesignval/csv/internal/textsafe"
)

// bigReport is run's report with its results and skipped files repeated
// n times, under other paths: its JSON spools to a temporary file.
func bigReport(t *testing.T, n int) *csv.Report {
	rep := run(t, cipolicy.Enforce)
	big := *rep
	big.Results, big.Skipped = nil, nil
	for i := range n {
		for _, r := range rep.Results {
			r.Path = fmt.Sprintf("%s.%d##[x]", r.Path, i)
			big.Results = append(big.Results, r)
		}
		for _, s := range rep.Skipped {
			s.Path = fmt.Sprintf("%s.%d", s.Path, i)
			big.Skipped = append(big.Skipped, s)
		}
	}
	big.Summary.Files *= n
	big.Summary.Allowed *= n
	big.Summary.Blocked *= n
	big.Summary.Skipped *= n
	return &big
}

// TestJSONSinkWritesTheDocument: the JSON report written result by result
// (spooled, past spoolMemory, to a temporary file that is removed) is the
// document json.Encoder writes in one piece, byte for byte.
func TestJSONSinkWritesTheDocument(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	for _, n := range []int{0, 1, 3000} {
		rep := bigReport(t, max(n, 1))
		if n == 0 {
			rep.Results, rep.Skipped, rep.Summary = nil, nil, csv.Summary{}
		}
		opts := report.Options{ToolVersion: "1.2.3"}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report.NewDocument(rep, opts)); err != nil {
			t.Fatal(err)
		}
		got := render(t, "json", opts, rep)
		if w := textsafe.InertJSON(want.Bytes()); !bytes.Equal(got, w) {
			t.Errorf("%d: the streamed JSON differs (%d bytes, want %d)", n, len(got), len(w))
		}
		if n == 3000 && len(got) < 2<<20 {
			t.Errorf("the report is too small (%d bytes) to spool to a file", len(got))
		}
		if left, _ := os.ReadDir(os.Getenv("TMPDIR")); len(left) != 0 {
			t.Errorf("%d: left %v", n, left)
		}
	}
}

// TestSinkIsValidateToRender: the report the sink writes as ValidateTo
// feeds it is, in every format, the report rendered from Validate's.
func TestSinkIsValidateToRender(t *testing.T) {
	rep := run(t, cipolicy.Enforce) // leaves the working directory in its tree
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, rep.Policies...)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v, err := csv.NewValidator(set, csv.Options{Now: func() time.Time { return at }, Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	roots := []string{"bin", "win", "docs"}
	rep, err = v.Validate(t.Context(), roots...)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range report.Formats {
		for _, verbose := range []bool{false, true} {
			opts := report.Options{Verbose: verbose, SARIFPasses: verbose, ToolVersion: "1.2.3"}
			want := render(t, format, opts, rep)
			var got bytes.Buffer
			s, err := report.NewSink(format, opts, &got)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.ValidateTo(t.Context(), s, roots...); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s, verbose %v: the sink wrote\n%s\nwant\n%s", format, verbose, got.Bytes(), want)
			}
		}
	}
}

// TestSARIFSinkSpools: a SARIF log too large to spool in memory is one
// valid log with every result, in order.
func TestSARIFSinkSpools(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	rep := bigReport(t, 3000)
	out := render(t, "sarif", report.Options{SARIFPasses: true}, rep)
	var log struct {
		Runs []struct {
			Results []struct {
				Message struct{ Text string }
			}
		}
	}
	if err := json.Unmarshal(out, &log); err != nil {
		t.Fatal(err)
	}
	if len(out) < 2<<20 || len(log.Runs) != 1 || len(log.Runs[0].Results) != len(rep.Results) {
		t.Fatalf("%d bytes, %d runs", len(out), len(log.Runs))
	}
	for i, r := range log.Runs[0].Results {
		if want := rep.Results[i].DisplayPath() + ": "; !strings.HasPrefix(r.Message.Text, want) {
			t.Fatalf("result %d: %q, want %q...", i, r.Message.Text, want)
		}
	}
	if left, _ := os.ReadDir(os.Getenv("TMPDIR")); len(left) != 0 {
		t.Errorf("left %v", left)
	}
}

// TestJUnitSinkWritesTheDocument: the JUnit report written case by case
// (spooled, past spoolMemory, to a temporary file that is removed) is the
// document xml.Encoder writes in one piece, byte for byte, with a test
// case per result in order, and the run's own cases (no targets) after
// them.
func TestJUnitSinkWritesTheDocument(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	for _, n := range []int{0, 1, 3000} {
		rep := bigReport(t, max(n, 1))
		opts := report.Options{ToolVersion: "1.2.3"}
		var wantNames []string
		for _, r := range rep.Results {
			wantNames = append(wantNames, r.DisplayPath())
		}
		if n == 0 {
			rep.Results, rep.Skipped, rep.Summary = nil, nil, csv.Summary{}
			opts.FailedNoTargets = true
			wantNames = []string{"binaries found"}
		}
		got := render(t, "junit", opts, rep)
		want, names, err := report.JUnitInOnePiece(got)
		if err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%d: the streamed JUnit differs from the document in one piece (%d bytes, want %d)\n%.2000s", n, len(got), len(want), got)
		}
		if !slices.Equal(names, wantNames) || !bytes.Contains(got, fmt.Appendf(nil, `<testsuites name="csv" tests="%d"`, len(wantNames))) {
			t.Errorf("%d: test cases %.200q, want %.200q", n, names, wantNames)
		}
		if n == 3000 && len(got) < 2<<20 {
			t.Errorf("the report is too small (%d bytes) to spool to a file", len(got))
		}
		if left, _ := os.ReadDir(os.Getenv("TMPDIR")); len(left) != 0 {
			t.Errorf("%d: left %v", n, left)
		}
	}
}
