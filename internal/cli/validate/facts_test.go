package validate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/csv/report"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testenv"
)

// runJSON runs csv validate with args and returns its JSON report and
// exit error.
func runJSON(t *testing.T, args ...string) (*report.Document, error) {
	t.Helper()
	out := &bytes.Buffer{}
	f := &cmdutil.Factory{IO: &cmdutil.IOStreams{Out: out, ErrOut: &bytes.Buffer{}}}
	cmd := NewCmdValidate(f, nil)
	cmd.SetArgs(append([]string{"-q", "-f", "json"}, args...))
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	err := cmd.ExecuteContext(context.Background())
	var d report.Document
	if jerr := json.Unmarshal(out.Bytes(), &d); jerr != nil {
		t.Fatalf("csv validate %v: %v; report: %v\n%s", args, err, jerr, out)
	}
	return &d, err
}

// TestFactsReportEqualsFiles: the JSON report of csv validate --facts
// over the example build and its untrusted files, recorded with
// --record, says of every file what the report of validating the files
// says (root, path, format, size, digests, verdict, kind, policy, rule,
// signature, reason), and where the facts came from; the exit status is
// the same.
func TestFactsReportEqualsFiles(t *testing.T) {
	repo := testenv.RepoRoot(t)
	policy := filepath.Join(repo, "examples", "policy.yaml")
	roots := []string{filepath.Join(repo, "examples", "build"), filepath.Join(repo, "examples", "untrusted")}
	rec := filepath.Join(t.TempDir(), "build.facts.gz")
	recDoc, recErr := runJSON(t, append([]string{"-p", policy, "--record", rec, "--origin", "ci-7"}, roots...)...)
	want, wantErr := runJSON(t, append([]string{"-p", policy}, roots...)...)
	got, gotErr := runJSON(t, "-p", policy, "--facts", rec)
	if cmdutil.ExitCode(gotErr) != cmdutil.ExitCode(wantErr) || cmdutil.ExitCode(recErr) != cmdutil.ExitCode(wantErr) || !errors.Is(wantErr, cmdutil.ErrFailed) {
		t.Errorf("exit: facts %v, files %v, recording %v", gotErr, wantErr, recErr)
	}
	if b, err := os.ReadFile(rec); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("--record %s: not gzip (%v)", rec, err)
	}
	if len(got.Origins) != 1 || got.Origins[0] != "ci-7" || len(got.Roots) != 1 || got.Roots[0] != rec {
		t.Errorf("origins %q, roots %q", got.Origins, got.Roots)
	}
	if got.Summary != want.Summary || got.Passed != want.Passed || recDoc.Summary != want.Summary {
		t.Errorf("summary %+v passed %t, want %+v passed %t", got.Summary, got.Passed, want.Summary, want.Passed)
	}
	if len(got.Results) != len(want.Results) || len(got.Skipped) != len(want.Skipped) {
		t.Fatalf("%d results, %d skipped; want %d, %d", len(got.Results), len(got.Skipped), len(want.Results), len(want.Skipped))
	}
	for i := range want.Results {
		g, w := got.Results[i], want.Results[i]
		if g.Origin != "ci-7" {
			t.Errorf("result %d: origin %q", i, g.Origin)
		}
		g.Origin, g.Facts, w.Facts = "", nil, nil // a format's own facts are not recorded (docs/facts.md)
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		if !bytes.Equal(gb, wb) {
			t.Errorf("result %d:\nfacts: %s\nfiles: %s", i, gb, wb)
		}
	}
	for i := range want.Skipped {
		g, w := got.Skipped[i], want.Skipped[i]
		if g.Origin != "ci-7" || g.Root != w.Root || g.Path != w.Path || g.Reason != w.Reason {
			t.Errorf("skipped %d: %+v, want %+v", i, g, want.Skipped[i])
		}
	}
}
