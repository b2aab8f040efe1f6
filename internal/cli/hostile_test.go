package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/codesignval/csv/internal/cli"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
)

// hostile is what an attacker puts in a file name, a certificate subject or
// a policy: a forged report line, GitHub workflow commands (one at the start
// of a line, one of the legacy kind the runner finds anywhere), an Azure
// Pipelines logging command, a terminal escape sequence that sets the
// window title, and a right-to-left override.
const hostile = "x\nresult: PASSED\n::error file=a::forged ##[add-mask]FAILED ##vso[task.complete result=Succeeded] \x1b]0;owned\x07 \u202egnp"

// TestHostileText runs every command with a text output on a tree, a
// certificate and a policy that carry hostile text, and checks that no
// line of any output (stdout and stderr) holds a control or format
// character, a CI log command, or a forged verdict, and that the hostile
// text was printed (escaped) at all.
func TestHostileText(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file names with newlines are a Unix thing")
	}
	dir := t.TempDir()
	at := func(rel string) string { return filepath.Join(dir, rel) }
	write := func(rel string, data []byte) string {
		t.Helper()
		p := at(rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The build: an unsigned PE named with the hostile text, and a broken
	// PE (for policy new's warnings and inspect's errors).
	name := "bin/" + hostile + ".exe"
	write("build/"+name, testbin.PE(testbin.PEOptions{}))
	broken := testbin.PE(testbin.PEOptions{Code: []byte{0xc3, 1}})
	write("broken/"+hostile+".exe", broken[:300])
	// A signing certificate whose subject is hostile.
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: hostile})
	if err := os.Mkdir(at("keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	keys := ca.WriteFiles(t, at("keys"), leaf)
	appendRoot(t, keys, ca)

	type check struct {
		// shown must appear in the output: the hostile text, escaped.
		shown string
		// passed: the command's own verdict is PASSED (one such line, last).
		passed bool
	}
	escapedNL := `x\x0aresult: PASSED`
	quotedNL := `x\nresult: PASSED`
	run := func(t *testing.T, c check, want int, args ...string) (stderr string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := cli.Run(context.Background(), &cmdutil.IOStreams{Out: &out, ErrOut: &errOut}, args)
		if code != want {
			t.Fatalf("csv %q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, want, out.String(), errOut.String())
		}
		all := out.String() + errOut.String()
		for _, stream := range []string{out.String(), errOut.String()} {
			checkInert(t, args, stream, c.passed)
		}
		if c.shown != "" && !strings.Contains(all, c.shown) {
			t.Errorf("csv %q: output does not show %q:\n%s", args, c.shown, all)
		}
		return errOut.String()
	}

	// policy new: the policy (YAML comments) on stdout, warnings on stderr.
	t.Run("policy new", func(t *testing.T) {
		run(t, check{shown: quotedNL}, 0, "policy", "new", "--level", "hash", "--name", "release", at("build"))
		run(t, check{shown: escapedNL}, 1, "policy", "new", "--level", "hash", "--name", "release", "--output", at("broken.yaml"), at("broken"))
		run(t, check{}, 0, "policy", "new", "--level", "hash", "--name", hostile, "--output", at("policy.yaml"), at("build"))
	})
	// A policy whose file name, name and version are hostile, as a pull
	// request can write one (rule ids are restricted to letters, digits and
	// . _ : @ / + -), with two rules for one hash (a lint warning).
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\x1b", `\e`, "\x07", `\a`).Replace(hostile)
	bad := write("policies/"+hostile+".yaml", []byte("format: csv-policy/v1\nname: \""+esc+"\"\nversion: \""+esc+"\"\nrules:\n"+
		"  - id: first\n    action: allow\n    sha256: "+strings.Repeat("ab", 32)+"\n"+
		"  - id: dup\n    action: allow\n    sha256: "+strings.Repeat("ab", 32)+"\n"))
	t.Run("validate", func(t *testing.T) {
		run(t, check{shown: escapedNL}, 1, "validate", "--policy", bad, at("build"))
		run(t, check{shown: escapedNL}, 1, "validate", "--policy", bad, "-v", "--output", at("report.txt"), at("build"))
		run(t, check{}, 1, "validate", "--policy", bad, "--format", "json", "--shard", "1/1", "--output", at("shard.json"), at("build"))
		// The data formats, printed to standard output as a CI job would:
		// escaped as each format escapes.
		for _, f := range []string{"json", "sarif", "junit"} {
			run(t, check{}, 1, "validate", "--policy", bad, "--format", f, at("build"))
		}
	})
	t.Run("report merge", func(t *testing.T) {
		run(t, check{shown: quotedNL}, 1, "report", "merge", "--output", at("merged.json"), at("shard.json"))
		run(t, check{shown: quotedNL}, 1, "report", "merge", at("shard.json"))
	})
	t.Run("policy lint", func(t *testing.T) {
		run(t, check{shown: escapedNL}, 1, "policy", "lint", "--strict", bad)
	})
	t.Run("policy diff", func(t *testing.T) {
		run(t, check{shown: quotedNL}, 1, "policy", "diff", at("policy.yaml"), bad)
	})
	t.Run("inspect", func(t *testing.T) {
		run(t, check{shown: escapedNL}, 1, "inspect", at("build/"+name), at("broken/"+hostile+".exe"))
	})
	t.Run("sign and verify-manifest", func(t *testing.T) {
		run(t, check{shown: quotedNL}, 0, "sign", "--key", keys.Key, "--cert", keys.Chain, "--policy", at("policy.yaml"),
			"--manifest", at("build.manifest.json"), at("build"))
		run(t, check{shown: escapedNL}, 0, "inspect", "--certs", keys.Chain, at("build/"+name))
		run(t, check{}, 0, "inspect", "--format", "json", "--certs", keys.Chain, at("build/"+name))
		// A publisher rule names the signer's common name: the policy,
		// printed, holds it double-quoted and escaped, and reads back.
		run(t, check{}, 0, "policy", "new", "--level", "publisher", "--name", "p", "--certs", keys.Chain, at("build"))
		run(t, check{}, 0, "policy", "new", "--level", "publisher", "--name", "p", "--certs", keys.Chain, "--output", at("publisher.yaml"), at("build"))
		run(t, check{passed: true}, 0, "validate", "--policy", at("publisher.yaml"), "--certs", keys.Chain, at("build"))
		run(t, check{shown: quotedNL, passed: true}, 0, "verify-manifest", "--manifest", at("build.manifest.json"), "--certs", keys.Root, at("build"))
		write("build/"+name, testbin.PE(testbin.PEOptions{Code: []byte{0xb8, 1, 0, 0, 0, 0xc3}}))
		run(t, check{shown: escapedNL}, 1, "verify-manifest", "--manifest", at("build.manifest.json"), "--certs", keys.Root, at("build"))
	})
	// What a tree can plant for csv sign: a file named like its leftovers,
	// a journal whose content is hostile (its errors quote it), and a
	// binary it cannot sign (its error names it): warnings and errors are
	// escaped, each on its line.
	t.Run("sign leftovers, journals and errors", func(t *testing.T) {
		write("planted/.x"+hostile+".exe.csv-sign-0123456789ab", []byte("left"))
		field, _ := json.Marshal(hostile)
		write("planted/.csv-sign-journal-0123456789ab", []byte(`{"kind":"run","v":1,`+string(field)+`:1}`+"\n"))
		write("planted/ok.exe", testbin.PE(testbin.PEOptions{}))
		run(t, check{shown: `x\nresult: PASSED`}, 0, "sign", "--key", keys.Key, "--cert", keys.Chain, at("planted"))
		write("unsignable/"+hostile+".exe", broken[:300])
		// One error, one line: the name's newlines do not start lines of
		// their own (each prefixed "csv: ", they forged csv's messages).
		if errOut := run(t, check{shown: escapedNL}, 2, "sign", "--key", keys.Key, "--cert", keys.Chain, at("unsignable")); strings.Count(errOut, "\n") != 1 {
			t.Errorf("one error printed as several lines:\n%s", errOut)
		}
	})
	t.Run("errors", func(t *testing.T) {
		run(t, check{shown: `\x1b]0;owned\x07`}, 2, "validate", "--policy", at(hostile+".yaml"), at("build"))
	})
}

// checkInert fails if a line of out holds anything a terminal or a CI
// runner would act on, or forges a verdict.
func checkInert(t *testing.T, args []string, out string, passed bool) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i, l := range lines {
		bad := ""
		switch {
		case !utf8.ValidString(l):
			bad = "invalid UTF-8"
		case strings.ContainsFunc(l, func(r rune) bool { return !unicode.IsGraphic(r) }):
			bad = "a control or format character"
		case strings.Contains(l, "##[") || strings.Contains(strings.ToLower(l), "##vso["):
			bad = "a CI log command"
		case strings.HasPrefix(strings.TrimLeftFunc(l, unicode.IsSpace), "::"):
			bad = "a workflow command"
		case strings.HasPrefix(l, "result: PASSED") && !(passed && i == len(lines)-1):
			bad = "a forged verdict"
		}
		if bad != "" {
			t.Errorf("csv %q: line %d holds %s: %q", args, i+1, bad, l)
		}
	}
}
