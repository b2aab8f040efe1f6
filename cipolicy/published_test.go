package cipolicy

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/codesignval/csv/internal/testenv"
)

// toUTF16 encodes s as UTF-16 with a byte order mark, as Windows
// PowerShell 5.1 writes files.
func toUTF16(s string, order binary.ByteOrder) []byte {
	units := utf16.Encode([]rune(s))
	out := make([]byte, 2+2*len(units))
	order.PutUint16(out, 0xfeff)
	for i, u := range units {
		order.PutUint16(out[2+2*i:], u)
	}
	return out
}

// samePolicy compares two loads of one policy, ignoring what depends on
// the bytes (SHA256, source).
func samePolicy(t *testing.T, a, b *Policy) {
	t.Helper()
	a2, b2 := *a, *b
	a2.SHA256, b2.SHA256, a2.Source, b2.Source = [32]byte{}, [32]byte{}, "", ""
	if !reflect.DeepEqual(&a2, &b2) {
		t.Errorf("policies differ:\n%+v\n%+v", a2, b2)
	}
}

// utf16Doc is a policy whose XML declaration says what PowerShell's
// Out-File writes.
var utf16Doc = strings.Replace(sipDoc(`<FileRules><Allow ID="ID_ALLOW_A" FriendlyName="wörk.exe Hash Sha256" Hash="`+strings.Repeat("AB", 32)+`" /></FileRules>`+
	scenarios(`<FileRulesRef><FileRuleRef RuleID="ID_ALLOW_A" /></FileRulesRef>`, "")), `encoding="utf-8"`, `encoding="utf-16"`, 1)

// TestParseUTF16: a SiPolicy saved as UTF-16 with a byte order mark loads
// as its UTF-8 text does; UTF-16 without a mark, UTF-32 and broken UTF-16
// are refused saying so.
func TestParseUTF16(t *testing.T) {
	want := mustParseXML(t, strings.Replace(utf16Doc, `encoding="utf-16"`, `encoding="utf-8"`, 1))
	for name, data := range map[string][]byte{
		"little endian": toUTF16(utf16Doc, binary.LittleEndian),
		"big endian":    toUTF16(utf16Doc, binary.BigEndian),
		// PowerShell re-saving a file whose declaration says utf-8.
		"declares utf-8": toUTF16(strings.Replace(utf16Doc, `encoding="utf-16"`, `encoding="utf-8"`, 1), binary.LittleEndian),
		"yaml":           toUTF16("format: csv-policy/v1\nname: u16\nrules: []\n", binary.LittleEndian),
	} {
		t.Run(name, func(t *testing.T) {
			p, err := Parse(data, "utf16.xml")
			if err != nil {
				t.Fatal(err)
			}
			if name == "yaml" {
				if p.Format != "yaml" || p.Name != "u16" {
					t.Errorf("got %+v", p)
				}
				return
			}
			samePolicy(t, want, p)
			if p.Rules[0].Description != "wörk.exe Hash Sha256" {
				t.Errorf("FriendlyName %q", p.Rules[0].Description)
			}
		})
	}
	le := toUTF16(utf16Doc, binary.LittleEndian)
	for name, tt := range map[string]struct {
		data []byte
		want string
	}{
		"no byte order mark":      {le[2:], "UTF-16 without a byte order mark"},
		"odd length":              {le[:len(le)-1], "odd number of bytes"},
		"unpaired surrogate":      {append(le[:len(le):len(le)], 0x00, 0xd8), "unpaired surrogate"},
		"UTF-32":                  {append([]byte{0xff, 0xfe, 0, 0}, '<', 0, 0, 0), "UTF-32"},
		"utf-8 declaring utf-16":  {[]byte(utf16Doc), "not supported"},
		"utf-16 declaring latin1": {toUTF16(strings.Replace(utf16Doc, `encoding="utf-16"`, `encoding="iso-8859-1"`, 1), binary.LittleEndian), `declares encoding "iso-8859-1"`},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := Parse(tt.data, "bad.xml")
			if p != nil || !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v, %v; want an error mentioning %q", p, err, tt.want)
			}
		})
	}
	// A real policy, as PowerShell 5.1 would save it.
	dir := testenv.Shared(t, "testdata/wdac")
	for _, name := range []string{"AllowMicrosoft.xml", "WinSiPolicy.xml"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		utf8Policy := loadShared(t, name)
		p, err := Parse(toUTF16(strings.TrimPrefix(string(data), "\ufeff"), binary.LittleEndian), name)
		if err != nil {
			t.Fatalf("%s as UTF-16: %v", name, err)
		}
		samePolicy(t, utf8Policy, p)
	}
}

// TestParsePublishedShapes: shapes Microsoft's own policies and tools
// produce load, and lint says what csv makes of them.
func TestParsePublishedShapes(t *testing.T) {
	fileRule := `<FileRules><Deny ID="ID_DENY_A" FriendlyName="a" FileName="a.exe" MinimumFileVersion="65535.65535.65535.65535" /></FileRules>`
	t.Run("FileRuleRef twice", func(t *testing.T) {
		p := mustParseXML(t, sipDoc(fileRule+scenarios(`<FileRulesRef><FileRuleRef RuleID="ID_DENY_A" /><FileRuleRef RuleID="ID_DENY_A" /></FileRulesRef>`, "")))
		if len(p.Rules) != 1 {
			t.Fatalf("%d rules, want 1", len(p.Rules))
		}
		if !lintSays(p, SeverityWarning, "listed twice in the user-mode scenario") {
			t.Errorf("lint: %v", Lint(p))
		}
	})
	t.Run("AppIDTags in a base policy", func(t *testing.T) {
		p := mustParseXML(t, sipDoc(fileRule+strings.Replace(scenarios(`<FileRulesRef><FileRuleRef RuleID="ID_DENY_A" /></FileRulesRef>`, ""),
			`</ProductSigners>
    </SigningScenario>
  </SigningScenarios>`, `</ProductSigners>
      <AppIDTags EnforceDLL="true"><AppIDTag Key="MyKey" Value="MyValue" /></AppIDTags>
    </SigningScenario>
  </SigningScenarios>`, 1)))
		if p.Type != Base || len(p.Rules) != 1 || p.Rules[0].Action != Deny {
			t.Fatalf("got %+v", p)
		}
		if !lintSays(p, SeverityWarning, `AppID tags "MyKey"="MyValue"`) {
			t.Errorf("lint: %v", Lint(p))
		}
	})
	t.Run("AppID tagging policy", func(t *testing.T) {
		// The shape of Microsoft's AppID tagging policy template: allowed
		// signers to tag, the tags, no enforcement.
		doc := strings.Replace(sipDoc(`<Signers><Signer ID="ID_SIGNER_S" Name="s"><CertRoot Type="TBS" Value="`+hx(h1)+`" /></Signer></Signers>
  <SigningScenarios>
    <SigningScenario Value="12" ID="ID_SIGNINGSCENARIO_WINDOWS" FriendlyName="tags">
      <ProductSigners><AllowedSigners><AllowedSigner SignerId="ID_SIGNER_S" /></AllowedSigners></ProductSigners>
      <AppIDTags><AppIDTag Key="MyCustomKey" Value="MyGreatAppIDTag" /></AppIDTags>
    </SigningScenario>
  </SigningScenarios>`), `PolicyType="Base Policy"`, `PolicyType="AppID Tagging Policy"`, 1)
		p := mustParseXML(t, doc)
		if p.Type != AppIDTagging {
			t.Fatalf("type %q", p.Type)
		}
		if _, err := NewSet(SetOptions{}, p); !errors.Is(err, ErrPolicySet) {
			t.Errorf("a set of only a tagging policy: %v, want ErrPolicySet", err)
		}
		// Beside a base policy it judges nothing: the file the tagging
		// policy's signer rule covers is judged by the base alone.
		base := pol(t, "name: b", "{id: nothing, action: allow, sha256: "+hx(h3)+"}")
		s, err := NewSet(SetOptions{}, base, p)
		if err != nil {
			t.Fatal(err)
		}
		d := s.Evaluate(Subject{Path: "a.exe", Format: FormatPE, Scenario: ScenarioUser, Signed: true,
			Digests: Digests{SHA256: h1}, Signatures: signedBy(t, synthCert("s", "r", h1, ""))})
		if d.Allowed() {
			t.Errorf("allowed through a tagging policy: %s", d.Reason)
		}
		if !lintSays(p, SeverityWarning, "allows or blocks nothing") || lintSays(p, SeverityWarning, "allows nothing: every binary") {
			t.Errorf("lint: %v", Lint(p))
		}
		if _, err := MarshalYAML(p); err == nil {
			t.Error("MarshalYAML wrote a tagging policy")
		}
	})
	t.Run("PolicyID without braces", func(t *testing.T) {
		bare := strings.Trim(testPolicyID, "{}")
		p := mustParseXML(t, strings.ReplaceAll(allowSupplementals(sipDoc("")), testPolicyID, strings.ToLower(bare)))
		if p.ID != testPolicyID {
			t.Errorf("ID %q, want %q", p.ID, testPolicyID)
		}
		if !lintSays(p, SeverityWarning, "has no braces") {
			t.Errorf("lint: %v", Lint(p))
		}
		// A supplemental policy naming its base without braces extends it.
		supp := mustParseXML(t, strings.Replace(strings.Replace(strings.Replace(sipDoc(""), "Base Policy", "Supplemental Policy", 1),
			"<PolicyID>"+testPolicyID, "<PolicyID>"+testSuppID, 1), "<BasePolicyID>"+testPolicyID, "<BasePolicyID>"+bare, 1))
		if _, err := NewSet(SetOptions{}, p, supp); err != nil {
			t.Errorf("base and supplemental: %v", err)
		}
	})
}

func lintSays(p *Policy, sev Severity, msg string) bool {
	for _, f := range Lint(p) {
		if f.Severity == sev && strings.Contains(f.Message, msg) {
			return true
		}
	}
	return false
}

// publishedSeeds are the shapes of TestParseUTF16 and
// TestParsePublishedShapes, for the fuzz targets.
func publishedSeeds() [][]byte {
	fileRule := `<FileRules><Deny ID="ID_DENY_A" FriendlyName="a" FileName="a.exe" MinimumFileVersion="65535.65535.65535.65535" /></FileRules>`
	return [][]byte{
		toUTF16(utf16Doc, binary.LittleEndian),
		toUTF16(utf16Doc, binary.BigEndian),
		[]byte(sipDoc(fileRule + scenarios(`<FileRulesRef><FileRuleRef RuleID="ID_DENY_A" /><FileRuleRef RuleID="ID_DENY_A" /></FileRulesRef>`, ""))),
		[]byte(strings.Replace(sipDoc(`<Signers><Signer ID="ID_SIGNER_S" Name="s"><CertRoot Type="TBS" Value="`+hx(h1)+`" /></Signer></Signers>
  <SigningScenarios>
    <SigningScenario Value="12" ID="ID_SIGNINGSCENARIO_WINDOWS" FriendlyName="tags">
      <ProductSigners><AllowedSigners><AllowedSigner SignerId="ID_SIGNER_S" /></AllowedSigners></ProductSigners>
      <AppIDTags EnforceDLL="true"><AppIDTag Key="MyCustomKey" Value="MyGreatAppIDTag" /></AppIDTags>
    </SigningScenario>
  </SigningScenarios>`), `PolicyType="Base Policy"`, `PolicyType="AppID Tagging Policy"`, 1)),
		[]byte(strings.ReplaceAll(sipDoc(""), testPolicyID, strings.Trim(testPolicyID, "{}"))),
	}
}
