package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/codesignval/csv/csv/report"
	"github.com/codesignval/csv/internal/cli"
	"github.com/codesignval/csv/internal/cli/cilog"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
)

// ciTree writes a build with one allowed PE (ok.exe), one unsigned PE no
// rule allows (new.exe), a cut ELF (cut) and n more cut ELF files under
// many/, and a policy allowing ok.exe by hash; it returns the directory,
// which is the working directory until the test ends.
func ciTree(t *testing.T, n int, extra map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	cut := testbin.ELF(testbin.ELFOptions{})[:100]
	files := map[string][]byte{"build/ok.exe": testbin.PE(testbin.PEOptions{})}
	files["build/new.exe"] = testbin.PE(testbin.PEOptions{Code: []byte{0xb8, 7, 0, 0, 0, 0xc3}})
	files["build/cut"] = cut
	for i := range n {
		files[fmt.Sprintf("build/many/m%03d", i)] = cut
	}
	for p, b := range extra {
		files[p] = b
	}
	for p, b := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, errOut := csvRun(t, "policy", "new", "--level", "hash", "--name", "ci", "--output", "policy.yaml", "build/ok.exe"); code != 0 {
		t.Fatalf("policy new: %d\n%s", code, errOut)
	}
	return dir
}

// csvRun runs csv in this process and returns the exit code and stderr.
func csvRun(t *testing.T, args ...string) (int, string) {
	t.Helper()
	code, _, errOut := csvRunOut(t, args...)
	return code, errOut
}

func csvRunOut(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), &cmdutil.IOStreams{Out: &out, ErrOut: &errOut}, args)
	return code, out.String(), errOut.String()
}

// The lines csv writes for the tree's two blocked files.
var (
	newLine = regexp.MustCompile(`(?m)^BLOCKED build/new\.exe: no rule allows it: not signed; .*\(` + regexp.QuoteMeta(report.RuleMissingSigningCert) + `\)$`)
	cutLine = regexp.MustCompile(`(?m)^BLOCKED build/cut: .*\(` + regexp.QuoteMeta(report.RuleMalformed) + `\)$`)
)

// TestStderrNamesBlockedFiles: whatever --format and --output say, a
// failing csv validate names each blocked file with its reason and rule id
// on standard error, once: a text report on standard output lists them
// itself, and they are not repeated on standard error then.
func TestStderrNamesBlockedFiles(t *testing.T) {
	ciTree(t, 0, nil)
	for _, format := range report.Formats {
		for _, output := range []string{"", "report.out"} {
			args := []string{"validate", "-p", "policy.yaml", "--format", format, "build"}
			if output != "" {
				args = append(args, "--output", output)
			}
			code, stdout, stderr := csvRunOut(t, args...)
			if code != 1 {
				t.Fatalf("%q: exit %d\n%s", args, code, stderr)
			}
			if format == "text" && output == "" {
				if strings.Contains(stderr, "BLOCKED") || !strings.Contains(stdout, "BLOCKED     build/new.exe") {
					t.Errorf("%q: the text report's lines are not where they belong:\nstdout:\n%s\nstderr:\n%s", args, stdout, stderr)
				}
				continue
			}
			if !newLine.MatchString(stderr) || !cutLine.MatchString(stderr) {
				t.Errorf("%q: stderr does not name the blocked files:\n%s", args, stderr)
			}
			if strings.Count(stderr, "BLOCKED ") != 2 || !strings.Contains(stderr, "result: FAILED: 2 of 3 binaries blocked") {
				t.Errorf("%q: stderr:\n%s", args, stderr)
			}
			if strings.Contains(stderr, "::error") {
				t.Errorf("%q: annotations outside GitHub Actions:\n%s", args, stderr)
			}
		}
	}
	// --quiet leaves out the summary, not the failures.
	if code, stderr := csvRun(t, "validate", "-q", "-p", "policy.yaml", "--format", "json", "--output", "r.json", "build"); code != 1 || !newLine.MatchString(stderr) || strings.Contains(stderr, "result:") {
		t.Errorf("--quiet: exit %d, stderr:\n%s", code, stderr)
	}
	// Audit mode: would be blocked, exit 0.
	code, stderr := csvRun(t, "validate", "--mode", "audit", "-p", "policy.yaml", "--format", "sarif", "build")
	if code != 0 || !regexp.MustCompile(`(?m)^WOULD BLOCK build/new\.exe: no rule allows it.*\(CodeSign\.MissingSigningCert\)$`).MatchString(stderr) || strings.Contains(stderr, "BLOCKED build") {
		t.Errorf("audit: exit %d, stderr:\n%s", code, stderr)
	}
}

// TestStderrCapped: past cilog.MaxLines the lines stop, and say how many
// more there are and where the report is.
func TestStderrCapped(t *testing.T) {
	ciTree(t, 60, nil)
	code, stderr := csvRun(t, "validate", "-p", "policy.yaml", "--format", "json", "--output", "r.json", "build")
	if code != 1 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if n := strings.Count(stderr, "\nBLOCKED "); n != cilog.MaxLines {
		t.Errorf("%d lines of blocked files, want %d:\n%s", n, cilog.MaxLines, stderr)
	}
	if !strings.Contains(stderr, "\n... and 12 more; see r.json\n") {
		t.Errorf("no count of the rest:\n%s", stderr)
	}
	// The walk's order: the first lines are the same each run.
	_, again := csvRun(t, "validate", "-p", "policy.yaml", "--format", "json", "--output", "r.json", "build")
	if again != stderr {
		t.Errorf("two runs, two lists:\n%s\n---\n%s", stderr, again)
	}
}

// TestShardsAndSignNameBlockedFiles: csv report merge names the merged
// failures, csv sign --policy the files that keep it from signing.
func TestShardsAndSignNameBlockedFiles(t *testing.T) {
	ciTree(t, 0, nil)
	var shards []string
	for i := 1; i <= 2; i++ {
		s := fmt.Sprintf("s%d.json", i)
		shards = append(shards, s)
		csvRun(t, "validate", "-p", "policy.yaml", "--shard", fmt.Sprintf("%d/2", i), "--format", "json", "--output", s, "build")
	}
	code, stderr := csvRun(t, append([]string{"report", "merge", "--output", "merged.json"}, shards...)...)
	if code != 1 || !newLine.MatchString(stderr) || !cutLine.MatchString(stderr) || !strings.Contains(stderr, "result: FAILED: 2 of 3") {
		t.Errorf("merge: exit %d, stderr:\n%s", code, stderr)
	}

	ca := testca.New(t)
	keys := ca.WriteFiles(t, t.TempDir(), ca.Leaf(t, testca.LeafOptions{CommonName: "build"}))
	code, stderr = csvRun(t, "sign", "--key", keys.Key, "--cert", keys.Chain, "--policy", "policy.yaml", "build")
	if code != 1 || !newLine.MatchString(stderr) || !cutLine.MatchString(stderr) || strings.Contains(stderr, "run csv validate") {
		t.Errorf("sign --policy: exit %d, stderr:\n%s", code, stderr)
	}
	code, stderr = csvRun(t, "validate", "--sign", "--key", keys.Key, "--cert", keys.Chain, "-p", "policy.yaml", "--format", "junit", "--output", "r.xml", "build")
	if code != 1 || !newLine.MatchString(stderr) || !cutLine.MatchString(stderr) || !strings.Contains(stderr, "not signing") {
		t.Errorf("validate --sign: exit %d, stderr:\n%s", code, stderr)
	}
}

// TestGitHubActions: under GitHub Actions, csv writes an error annotation
// per blocked file (file= relative to the workspace, escaped as the runner
// unescapes: a name holding %, a newline, : and , cannot end the command
// or add a property), ten at most, and appends a job summary; --github off
// writes neither.
func TestGitHubActions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file names with newlines are a Unix thing")
	}
	hostileName := "build/50%\n::error::x:a,b.exe"
	dir := ciTree(t, 0, map[string][]byte{hostileName: testbin.PE(testbin.PEOptions{Code: []byte{0xb8, 9, 0, 0, 0, 0xc3}})})
	summary := filepath.Join(dir, "summary.md")
	t.Setenv("GITHUB_ACTIONS", "true")
	t.Setenv("GITHUB_WORKSPACE", dir)
	t.Setenv("GITHUB_STEP_SUMMARY", summary)

	code, stderr := csvRun(t, "validate", "-p", "policy.yaml", "--format", "sarif", "--output", "out.sarif", "build")
	if code != 1 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var annotations []string
	for _, l := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if strings.HasPrefix(l, "::") {
			annotations = append(annotations, l)
		}
	}
	want := []string{
		"::error file=build/50%25%0A%3A%3Aerror%3A%3Ax%3Aa%2Cb.exe,title=csv validate%3A CodeSign.MissingSigningCert::BLOCKED build/50%25\\x0a::error::x:a,b.exe: no rule allows it: not signed; ",
		"::error file=build/cut,title=csv validate%3A CSV.Malformed::BLOCKED build/cut: ",
		"::error file=build/new.exe,title=csv validate%3A CodeSign.MissingSigningCert::BLOCKED build/new.exe: no rule allows it: not signed; ",
	}
	if len(annotations) != len(want) {
		t.Fatalf("%d annotations, want %d:\n%s", len(annotations), len(want), stderr)
	}
	for i, w := range want {
		if !strings.HasPrefix(annotations[i], w) {
			t.Errorf("annotation %d:\n%s\nwant a line beginning\n%s", i, annotations[i], w)
		}
	}
	// Everything else on stderr is inert, the hostile name included.
	checkInert(t, nil, strings.Join(slicesWithout(strings.Split(stderr, "\n"), annotations), "\n"), false)

	// The SARIF log locates the files in the workspace.
	data, err := os.ReadFile("out.sarif")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`"uri": "build/new\.exe",\s*"uriBaseId": "%SRCROOT%"`).Match(data) {
		t.Errorf("SARIF locations not under %%SRCROOT%%:\n%s", data)
	}

	// The summary: the verdict, the counts, a row per file (the hostile
	// one on its row, escaped), the policy and its hash.
	sum, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"### csv validate: failed\n",
		"result\\: FAILED\\: 3 of 4 binaries blocked",
		"| 4 | 1 | 3 | 0 |",
		"| BLOCKED | build/new.exe | CodeSign.MissingSigningCert | no rule allows it\\: not signed; ",
		"| BLOCKED | build/50%\\\\x0a\\:\\:error\\:\\:x\\:a,b.exe | CodeSign.MissingSigningCert |",
		"Policy ci version 1.0.0 (enforce), SHA\\-256 ",
	} {
		if !strings.Contains(string(sum), w) {
			t.Errorf("summary lacks %q:\n%s", w, sum)
		}
	}
	for _, l := range strings.Split(string(sum), "\n") {
		if strings.HasPrefix(l, "| ") && !strings.HasSuffix(l, " |") {
			t.Errorf("a table row cut: %q", l)
		}
	}

	// --github off: no annotation, nothing appended.
	code, stderr = csvRun(t, "validate", "--github", "off", "-p", "policy.yaml", "--format", "json", "--output", "r.json", "build")
	if code != 1 || strings.Contains(stderr, "\n::") || !newLine.MatchString(stderr) {
		t.Errorf("--github off: exit %d, stderr:\n%s", code, stderr)
	}
	if again, _ := os.ReadFile(summary); !bytes.Equal(again, sum) {
		t.Errorf("--github off appended to the summary:\n%s", again[len(sum):])
	}
	if code, _ := csvRun(t, "validate", "--github", "maybe", "-p", "policy.yaml", "build"); code != cmdutil.ExitError {
		t.Errorf("--github maybe: exit %d", code)
	}
}

// TestGitHubAnnotationsCapped: GitHub shows ten error annotations a step:
// nine files, and the tenth says how many more.
func TestGitHubAnnotationsCapped(t *testing.T) {
	dir := ciTree(t, 20, nil)
	t.Setenv("GITHUB_ACTIONS", "true")
	t.Setenv("GITHUB_WORKSPACE", filepath.Join(dir, "elsewhere"))
	code, stderr := csvRun(t, "validate", "-p", "policy.yaml", "--format", "json", "--output", "r.json", "build")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	if n := strings.Count(stderr, "\n::error "); n != cilog.MaxAnnotations {
		t.Errorf("%d annotations, want %d:\n%s", n, cilog.MaxAnnotations, stderr)
	}
	if strings.Contains(stderr, "::error file=") {
		t.Errorf("file= names a file outside the workspace:\n%s", stderr)
	}
	if !strings.Contains(stderr, "::error title=csv validate::13 more files blocked (GitHub shows 10 annotations a step): see the job's log or r.json\n") {
		t.Errorf("the last annotation does not count the rest:\n%s", stderr)
	}
	// Audit mode: warnings.
	_, stderr = csvRun(t, "validate", "--mode", "audit", "-p", "policy.yaml", "--format", "json", "--output", "r.json", "build")
	if strings.Contains(stderr, "::error") || strings.Count(stderr, "\n::warning ") != cilog.MaxAnnotations {
		t.Errorf("audit mode:\n%s", stderr)
	}
}

func slicesWithout(all, drop []string) []string {
	skip := map[string]bool{}
	for _, d := range drop {
		skip[d] = true
	}
	var out []string
	for _, a := range all {
		if !skip[a] {
			out = append(out, a)
		}
	}
	return out
}
