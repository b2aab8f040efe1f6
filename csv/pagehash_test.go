package csv

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/testbin"
)

// pageHex returns the first-page digest a of img, as csv inspect computes
// it (signing/authenticode/pe checks the value against osslsigncode's
// page-hash tables).
func pageHex(t *testing.T, img []byte, a cipolicy.HashAlgorithm) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.exe")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	in := InspectFile(context.Background(), p, nil, InspectOptions{})
	if in.Err != nil {
		t.Fatal(in.Err)
	}
	v := in.Digests.Get(a)
	if len(v) != a.Size() {
		t.Fatalf("%s: %x", a, v)
	}
	return hex.EncodeToString(v)
}

// TestSiPolicyPageHashDeny: a deny rule New-CIPolicy names "Hash Page
// Sha256" (as Microsoft's block lists carry them) blocks the file whose
// first page it names, and not another; before, csv did not compute page
// hashes and such a rule never matched.
func TestSiPolicyPageHashDeny(t *testing.T) {
	for _, named := range []bool{true, false} {
		t.Run(fmt.Sprint("named ", named), func(t *testing.T) { testSiPolicyPageHashDeny(t, named) })
	}
}

// testSiPolicyPageHashDeny: with named false, the deny rules' names say
// no kind ("Powershell 1", as Microsoft's user-mode block list names
// hundreds): Windows reads no FriendlyName, and they deny a.exe by its
// first page all the same.
func testSiPolicyPageHashDeny(t *testing.T, named bool) {
	a := testbin.PE(testbin.PEOptions{Data: []byte("a")})
	b := testbin.PE(testbin.PEOptions{PE32: true, Data: []byte("b")})
	dir := tree(t, map[string][]byte{"a.exe": a, "b.exe": b})
	xml := `<?xml version="1.0" encoding="utf-8"?>
<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy" PolicyType="Base Policy">
  <VersionEx>1.0.0.0</VersionEx>
  <PolicyID>{A244370E-44C9-4C06-B551-F6016E563076}</PolicyID>
  <BasePolicyID>{A244370E-44C9-4C06-B551-F6016E563076}</BasePolicyID>
  <PlatformID>{2E07F7E4-194C-4D20-B7C9-6F44A6C5A234}</PlatformID>
  <Rules><Rule><Option>Enabled:UMCI</Option></Rule></Rules>
  <FileRules>
    <Allow ID="ID_ALLOW_A" FriendlyName="a.exe Hash Sha256" Hash="` + authHex(t, a) + `" />
    <Allow ID="ID_ALLOW_B" FriendlyName="b.exe Hash Sha256" Hash="` + authHex(t, b) + `" />
    <Deny ID="ID_DENY_A_PAGE" FriendlyName="a.exe Hash Page Sha256" Hash="` + pageHex(t, a, cipolicy.PageSHA256) + `" />
    <Deny ID="ID_DENY_A_PAGE1" FriendlyName="a.exe Hash Page Sha1" Hash="` + pageHex(t, a, cipolicy.PageSHA1) + `" />
  </FileRules>
  <SigningScenarios>
    <SigningScenario Value="12" ID="ID_SIGNINGSCENARIO_UMCI" FriendlyName="user">
      <ProductSigners><FileRulesRef>
        <FileRuleRef RuleID="ID_ALLOW_A" /><FileRuleRef RuleID="ID_ALLOW_B" />
        <FileRuleRef RuleID="ID_DENY_A_PAGE" /><FileRuleRef RuleID="ID_DENY_A_PAGE1" />
      </FileRulesRef></ProductSigners>
    </SigningScenario>
  </SigningScenarios>
</SiPolicy>`
	if !named {
		xml = strings.NewReplacer("a.exe Hash Page Sha256", "Powershell 1", "a.exe Hash Page Sha1", "Powershell 2",
			"ID_DENY_A_PAGE1", "ID_DENY_D_2", "ID_DENY_A_PAGE", "ID_DENY_D_1").Replace(xml)
	}
	p, err := cipolicy.Parse([]byte(xml), "block.xml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	if err != nil {
		t.Fatal(err)
	}
	rep := validate(t, set, Options{Scenario: cipolicy.ScenarioUser}, dir)
	got := map[string]string{}
	for _, r := range rep.Results {
		got[r.Path] = fmt.Sprintf("%s/%s", r.Decision.Verdict, r.Decision.Kind)
		if r.Path == "a.exe" && !slices.Contains([]string{"ID_DENY_A_PAGE", "ID_DENY_A_PAGE1", "ID_DENY_D_1", "ID_DENY_D_2"}, r.Decision.Rule) {
			t.Errorf("a.exe denied by %q", r.Decision.Rule)
		}
	}
	if got["a.exe"] != "blocked/denied" || got["b.exe"] != "allowed/allowed-by-hash" {
		t.Errorf("verdicts %v, want a.exe denied by its page hash, b.exe allowed", got)
	}
}

// TestPolicyNewHashWritesFour: csv policy new --level hash writes the four
// hash rules New-CIPolicy writes per PE file (Authenticode SHA256 and SHA1,
// first-page SHA256 and SHA1), named as it names them, and the policy
// allows the build; one rule per ELF file.
func TestPolicyNewHashWritesFour(t *testing.T) {
	img := testbin.PE(testbin.PEOptions{Data: []byte("data")})
	dir := tree(t, map[string][]byte{"bin/app.exe": img, "bin/tool": elfImg})
	g, err := GeneratePolicy(context.Background(), GenerateOptions{Level: LevelHash, Name: "gen"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[cipolicy.HashAlgorithm]string{
		cipolicy.AuthenticodeSHA256: authHex(t, img) + " app.exe Hash Sha256",
		cipolicy.AuthenticodeSHA1:   "",
		cipolicy.PageSHA256:         pageHex(t, img, cipolicy.PageSHA256) + " app.exe Hash Page Sha256",
		cipolicy.PageSHA1:           pageHex(t, img, cipolicy.PageSHA1) + " app.exe Hash Page Sha1",
		cipolicy.SHA256:             sha(elfImg) + " tool Hash SHA256",
	}
	if len(g.Policy.Rules) != len(want) {
		t.Fatalf("%d rules, want %d: %+v", len(g.Policy.Rules), len(want), g.Policy.Rules)
	}
	for _, r := range g.Policy.Rules {
		w, ok := want[r.Hash.Algorithm]
		if !ok || r.Action != cipolicy.Allow {
			t.Errorf("unexpected rule %+v", r)
			continue
		}
		if got := hex.EncodeToString(r.Hash.Value) + " " + r.Description; w != "" && got != w {
			t.Errorf("%s rule: %s, want %s", r.Hash.Algorithm, got, w)
		}
		delete(want, r.Hash.Algorithm)
	}
	if len(want) != 0 {
		t.Errorf("missing rules: %v", want)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, g.Policy)
	if err != nil {
		t.Fatal(err)
	}
	if rep := validate(t, set, Options{}, dir); rep.Failed() || len(rep.Results) != 2 {
		t.Errorf("the generated policy does not allow the build: %+v", rep.Results)
	}
}
