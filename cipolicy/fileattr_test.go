package cipolicy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/internal/testbin"
)

// validateTree judges every file under dir with the policies, through the
// validator (inspection reads the version resources), and returns the
// results by path.
func validateTree(t *testing.T, dir string, ps ...*cipolicy.Policy) map[string]csv.Result {
	t.Helper()
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, ps...)
	if err != nil {
		t.Fatal(err)
	}
	v, err := csv.NewValidator(set, csv.Options{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := v.Validate(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]csv.Result{}
	for _, r := range rep.Results {
		out[r.Path] = r
	}
	return out
}

func parse(t *testing.T, name, src string) *cipolicy.Policy {
	t.Helper()
	p, err := cipolicy.Parse([]byte(src), name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func v4(a, b, c, d uint16) *[4]uint16 { return &[4]uint16{a, b, c, d} }

// TestFileAttributeRulesMatchAsWindows builds PE files whose version
// resources can be read several ways (no VS_FIXEDFILEINFO, several string
// tables, languages or resource names, a key written twice or in other
// letter case) and judges them with file name rules, YAML and WDAC: a deny
// rule must match if any reading matches (an unknown version within any
// bound), an allow rule only if every reading does.
func TestFileAttributeRulesMatchAsWindows(t *testing.T) {
	tool := [][2]string{{"OriginalFilename", "tool.exe"}, {"FileDescription", "Contoso tool"}}
	cdb := [][2]string{{"OriginalFilename", "cdb.exe"}}
	en := func(fv *[4]uint16, strs [][2]string) testbin.VersionResource {
		return testbin.VersionResource{Lang: 0x409, FileVersion: fv, Tables: []testbin.VersionTable{{Key: "040904b0", Strings: strs}}}
	}
	de := func(fv *[4]uint16, strs [][2]string) testbin.VersionResource {
		return testbin.VersionResource{Lang: 0x407, FileVersion: fv, Tables: []testbin.VersionTable{{Key: "040704b0", Strings: strs}}}
	}
	files := map[string][]byte{
		// Consistent files, the controls.
		"tool.exe":    testbin.VersionPE([]testbin.VersionResource{en(v4(1, 2, 3, 4), tool)}),
		"cdb-new.exe": testbin.VersionPE([]testbin.VersionResource{en(v4(10, 0, 0, 1), cdb)}),
		// The name, no VS_FIXEDFILEINFO: the version is unknown.
		"cdb-nofixed.exe":  testbin.VersionPE([]testbin.VersionResource{en(nil, cdb)}),
		"tool-nofixed.exe": testbin.VersionPE([]testbin.VersionResource{en(nil, tool)}),
		// en-US says tool.exe, a second language says cdb.exe.
		"two-languages.exe": testbin.VersionPE([]testbin.VersionResource{en(v4(1, 2, 3, 4), tool), de(v4(1, 0, 0, 0), cdb)}),
		// One resource, two string tables.
		"two-tables.exe": testbin.VersionPE([]testbin.VersionResource{{Lang: 0x409, FileVersion: v4(1, 2, 3, 4), Tables: []testbin.VersionTable{
			{Key: "040904b0", Strings: tool}, {Key: "040704b0", Strings: cdb}}}}),
		// Two resource names.
		"two-names.exe": testbin.VersionPE([]testbin.VersionResource{en(v4(1, 2, 3, 4), tool)}, []testbin.VersionResource{en(v4(1, 0, 0, 0), cdb)}),
		// OriginalFilename written twice; in other letter case.
		"repeated.exe": testbin.VersionPE([]testbin.VersionResource{en(v4(1, 2, 3, 4), append(tool[:1:1], [2]string{"OriginalFilename", "cdb.exe"}))}),
		"case.exe":     testbin.VersionPE([]testbin.VersionResource{en(v4(1, 2, 3, 4), append(tool[:1:1], [2]string{"ORIGINALFILENAME", "cdb.exe"}))}),
		// The StringFileInfo block's key in other letter case:
		// VerQueryValue finds "\\StringFileInfo\\..." in it all the same.
		"block-case.exe": testbin.VersionPE([]testbin.VersionResource{{Lang: 0x409, FileVersion: v4(1, 2, 3, 4), StringFileInfoKey: "STRINGFILEINFO",
			Tables: []testbin.VersionTable{{Key: "040904b0", Strings: cdb}}}}),
	}
	dir := t.TempDir()
	for name, img := range files {
		if err := os.WriteFile(filepath.Join(dir, name), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Deny cdb.exe up to 10.0.0.0, allow everything else.
	yamlDeny := parse(t, "deny.yaml", `format: csv-policy/v1
name: deny
rules:
  - {id: no-cdb, action: deny, file: {name: CDB.EXE, max_version: 10.0.0.0}}
  - {id: rest, action: allow, all: true}
`)
	// Microsoft's block-list shape: MinimumFileVersion on a deny rule means
	// that version and below.
	wdacDeny := parse(t, "deny.xml", `<?xml version="1.0" encoding="utf-8"?>
<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy" PolicyType="Base Policy">
  <VersionEx>1.0.0.0</VersionEx>
  <PolicyID>{A244370E-44C9-4C06-B551-F6016E563076}</PolicyID>
  <BasePolicyID>{A244370E-44C9-4C06-B551-F6016E563076}</BasePolicyID>
  <PlatformID>{2E07F7E4-194C-4D20-B7C9-6F44A6C5A234}</PlatformID>
  <Rules><Rule><Option>Enabled:UMCI</Option></Rule></Rules>
  <EKUs />
  <FileRules>
    <Deny ID="ID_DENY_CDB" FriendlyName="cdb.exe" FileName="cdb.Exe" MinimumFileVersion="65535.65535.65535.65535" />
    <Allow ID="ID_ALLOW_ALL" FriendlyName="all" FileName="*" />
  </FileRules>
  <Signers />
  <SigningScenarios>
    <SigningScenario Value="12" ID="ID_SIGNINGSCENARIO_WINDOWS" FriendlyName="user">
      <ProductSigners>
        <FileRulesRef>
          <FileRuleRef RuleID="ID_DENY_CDB" />
          <FileRuleRef RuleID="ID_ALLOW_ALL" />
        </FileRulesRef>
      </ProductSigners>
    </SigningScenario>
  </SigningScenarios>
  <UpdatePolicySigners />
</SiPolicy>
`)
	// Allow tool.exe from version 1.0.0.0, by name.
	yamlAllow := parse(t, "allow.yaml", `format: csv-policy/v1
name: allow
rules:
  - {id: tool, action: allow, file: {name: tool.exe, min_version: 1.0.0.0}}
`)

	denied := []string{"cdb-nofixed.exe", "two-languages.exe", "two-tables.exe", "two-names.exe", "repeated.exe", "case.exe", "block-case.exe"}
	for _, p := range []*cipolicy.Policy{yamlDeny, wdacDeny} {
		t.Run("deny "+p.Source, func(t *testing.T) {
			got := validateTree(t, dir, p)
			for _, name := range denied {
				d := got[name].Decision
				if d.Allowed() || d.Kind != cipolicy.KindDenied {
					t.Errorf("%s: %s (%s), want denied: %s", name, d.Verdict, d.Kind, d.Reason)
				}
			}
			if d := got["cdb-nofixed.exe"].Decision; !strings.Contains(d.Reason, "no VS_FIXEDFILEINFO") {
				t.Errorf("cdb-nofixed.exe: reason %q does not say the version is unknown", d.Reason)
			}
			if d := got["two-languages.exe"].Decision; !strings.Contains(d.Reason, "another reading") {
				t.Errorf("two-languages.exe: reason %q does not say which reading matched", d.Reason)
			}
			allowed := []string{"tool.exe", "tool-nofixed.exe"}
			if p.Format == "yaml" {
				// Above max_version; the WDAC rule denies every version.
				allowed = append(allowed, "cdb-new.exe")
			}
			for _, name := range allowed {
				if d := got[name].Decision; !d.Allowed() {
					t.Errorf("%s: %s, want allowed: %s", name, d.Verdict, d.Reason)
				}
			}
		})
	}

	t.Run("allow", func(t *testing.T) {
		got := validateTree(t, dir, yamlAllow)
		if d := got["tool.exe"].Decision; !d.Allowed() {
			t.Errorf("tool.exe: %s", d.Reason)
		}
		for name, why := range map[string]string{
			"tool-nofixed.exe":  "version is unknown",
			"two-languages.exe": "disagree",
			"two-tables.exe":    "disagree",
			"two-names.exe":     "disagree",
			"repeated.exe":      "disagree",
			"case.exe":          "disagree",
		} {
			d := got[name].Decision
			if d.Allowed() {
				t.Errorf("%s: allowed, want blocked (an allow must hold for every reading)", name)
			} else if !strings.Contains(d.Reason, why) {
				t.Errorf("%s: reason %q does not say %q", name, d.Reason, why)
			}
		}
	})
}
