package policy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testca"
)

// lint runs csv policy lint on files and returns its output and exit code.
func lint(t *testing.T, strict bool, files ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := RunLint(&LintOptions{IO: &cmdutil.IOStreams{Out: &out, ErrOut: &errOut}, Strict: strict, Format: "text", Files: files})
	return out.String() + errOut.String(), cmdutil.ExitCode(err)
}

func write(t *testing.T, path, data string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLintReadsWhatValidateReads: a policy naming certificates by
// certificate_file lints, the files read relative to the policy, as
// validate reads them; a missing one is an error naming it.
func TestLintReadsWhatValidateReads(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "certs", "inter.pem"), string(testca.PEM(ca.Intermediate.Cert)))
	write(t, filepath.Join(dir, "certs", "tsa.pem"), string(testca.PEM(ca.Root.Cert)))
	good := write(t, filepath.Join(dir, "policies", "good.yaml"), `format: csv-policy/v1
name: good
version: "1"
timestamp_authorities:
  - certificate_file: ../certs/tsa.pem
rules:
  - id: build-pca
    action: allow
    signer: {certificate_file: ../certs/inter.pem, level: issuer}
`)
	// validate loads it.
	if _, err := cipolicy.LoadFiles([]string{good}); err != nil {
		t.Fatalf("validate's loader: %v", err)
	}
	out, code := lint(t, true, good)
	if code != 0 || !strings.Contains(out, "0 errors, 0 warnings") {
		t.Errorf("lint --strict: exit %d\n%s", code, out)
	}
	// From another working directory: names resolve relative to the
	// policy, not to the process.
	t.Chdir(t.TempDir())
	if out, code := lint(t, true, good); code != 0 {
		t.Errorf("lint from another directory: exit %d\n%s", code, out)
	}

	missing := write(t, filepath.Join(dir, "policies", "missing.yaml"), `format: csv-policy/v1
name: missing
version: "1"
rules:
  - {id: r, action: allow, signer: {certificate_file: ../certs/nope.pem}}
`)
	out, code = lint(t, false, missing)
	if code != 1 || !strings.Contains(out, `certificate_file "../certs/nope.pem"`) {
		t.Errorf("missing certificate file: exit %d, want 1 naming it\n%s", code, out)
	}
	if strings.Contains(out, "without access to other files") {
		t.Errorf("lint still refuses certificate_file:\n%s", out)
	}
}

// TestLintMatchEverything: rules that match every file by accident warn,
// and fail --strict.
func TestLintMatchEverything(t *testing.T) {
	dir := t.TempDir()
	const guid = "{A244370E-44C9-4C06-B551-F6016E563076}"
	wdac := func(fileRule string) string {
		return fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?>
<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy" PolicyType="Base Policy">
  <VersionEx>1.0.0.0</VersionEx>
  <PolicyID>%[1]s</PolicyID>
  <BasePolicyID>%[1]s</BasePolicyID>
  <PlatformID>{2E07F7E4-194C-4D20-B7C9-6F44A6C5A234}</PlatformID>
  <Rules><Rule><Option>Enabled:UMCI</Option></Rule></Rules>
  <EKUs />
  <FileRules>%[2]s</FileRules>
  <Signers />
  <SigningScenarios>
    <SigningScenario Value="12" ID="ID_SIGNINGSCENARIO_WINDOWS" FriendlyName="user">
      <ProductSigners><FileRulesRef><FileRuleRef RuleID="ID_R" /></FileRulesRef></ProductSigners>
    </SigningScenario>
  </SigningScenarios>
  <UpdatePolicySigners />
</SiPolicy>
`, guid, fileRule)
	}
	yaml := func(rule string) string {
		return "format: csv-policy/v1\nname: p\nversion: \"1\"\nrules:\n  - " + rule + "\n"
	}
	tests := []struct {
		name, src, want string
	}{
		{"yaml version only", yaml("{id: r, action: allow, file: {min_version: 1.0.0.0}}"), "allows every PE file with version >= 1.0.0.0, whatever its name"},
		{"yaml deny version only", yaml("{id: r, action: deny, file: {max_version: 1.0.0.0}}"), "denies every PE file with version <= 1.0.0.0, whatever its name"},
		{"wdac star with version", wdac(`<Allow ID="ID_R" FriendlyName="r" FileName="*" MinimumFileVersion="1.0.0.0" />`), "allows every PE file with version >= 1.0.0.0, whatever its name"},
		{"yaml all", yaml("{id: r, action: allow, all: true}"), "allows every file in its scope: only deny rules block anything"},
		{"yaml all under every path", yaml(`{id: r, action: allow, all: true, paths: ["**"]}`), `path glob "**" matches every path`},
		{"yaml all in every scenario", yaml(`{id: r, action: allow, all: true, scenarios: [build, boot]}`), "allows every file in its scope: only deny rules block anything"},
		{"yaml all in every scenario, listed", yaml(`{id: r, action: allow, all: true, scenarios: [boot, kernel, user]}`), "allows every file in its scope: only deny rules block anything"},
		{"yaml glob every path", yaml(`{id: r, action: allow, sha256: 1111111111111111111111111111111111111111111111111111111111111111, paths: ["**/*"]}`), `path glob "**/*" matches every path`},
		{"yaml exception of everything", yaml(`{id: r, action: allow, sha256: 1111111111111111111111111111111111111111111111111111111111111111, except: [{all: true}]}`), "can never allow anything"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ext := ".yaml"
			if strings.HasPrefix(tt.src, "<?xml") {
				ext = ".xml"
			}
			f := write(t, filepath.Join(dir, fmt.Sprint(i)+ext), tt.src)
			out, code := lint(t, false, f)
			if code != 0 || !strings.Contains(out, tt.want) {
				t.Errorf("lint: exit %d, want 0 and a warning %q\n%s", code, tt.want, out)
			}
			if _, code := lint(t, true, f); code != 1 {
				t.Errorf("lint --strict: exit %d, want 1", code)
			}
		})
	}
	// A name, or a scope, is not everything.
	for _, src := range []string{
		yaml("{id: r, action: allow, file: {name: tool.exe, min_version: 1.0.0.0}}"),
		yaml(`{id: r, action: allow, all: true, paths: ["bin/**"]}`),
	} {
		f := write(t, filepath.Join(dir, "fine.yaml"), src)
		if out, code := lint(t, true, f); code != 0 {
			t.Errorf("lint --strict of %q: exit %d\n%s", src, code, out)
		}
	}
}
