package cipolicy

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/sigtest"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

// Test documents.

const (
	testPolicyID = "{11111111-1111-1111-1111-111111111111}"
	testSuppID   = "{22222222-2222-2222-2222-222222222222}"
	// pca2011TBS is the CertRoot of "Microsoft Windows Production PCA 2011"
	// in WinSiPolicy.xml.
	pca2011TBS = "4E80BE107C860DE896384B3EFF50504DC2D76AC7151DF3102A4450637A032146"
)

// sipDoc wraps body in a base SiPolicy document with ID testPolicyID.
func sipDoc(body string) string {
	return `<?xml version="1.0" encoding="utf-8"?>
<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy" PolicyType="Base Policy">
  <VersionEx>1.0.0.0</VersionEx>
  <PolicyID>` + testPolicyID + `</PolicyID>
  <BasePolicyID>` + testPolicyID + `</BasePolicyID>
  <PlatformID>{2E07F7E4-194C-4D20-B7C9-6F44A6C5A234}</PlatformID>
  <Rules><Rule><Option>Enabled:UMCI</Option></Rule></Rules>
` + body + `
</SiPolicy>
`
}

// scenarios wraps ProductSigners content for the user and kernel scenarios.
func scenarios(user, kernel string) string {
	return `  <SigningScenarios>
    <SigningScenario Value="131" ID="ID_SIGNINGSCENARIO_KMCI" FriendlyName="kernel">
      <ProductSigners>` + kernel + `</ProductSigners>
    </SigningScenario>
    <SigningScenario Value="12" ID="ID_SIGNINGSCENARIO_UMCI" FriendlyName="user">
      <ProductSigners>` + user + `</ProductSigners>
    </SigningScenario>
  </SigningScenarios>`
}

func mustParseXML(t *testing.T, doc string) *Policy {
	t.Helper()
	p, err := Parse([]byte(doc), "test.xml")
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, doc)
	}
	return p
}

func lineOf(t *testing.T, doc, marker string) int {
	t.Helper()
	i := strings.Index(doc, marker)
	if i < 0 {
		t.Fatalf("marker %q not in document", marker)
	}
	return strings.Count(doc[:i], "\n") + 1
}

func ruleByID(t *testing.T, p *Policy, id string) *Rule {
	t.Helper()
	for i := range p.Rules {
		if p.Rules[i].ID == id {
			return &p.Rules[i]
		}
	}
	t.Fatalf("no rule %q in %s", id, p.Source)
	return nil
}

func ver(t *testing.T, s string) *Version {
	t.Helper()
	v, err := ParseVersion(s)
	if err != nil {
		t.Fatal(err)
	}
	return &v
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Synthetic signatures.

func synthCert(cn, issuer string, tbs []byte, ekus ...string) *signing.Certificate {
	c := &signing.Certificate{Subject: pkix.Name{CommonName: cn}, Issuer: pkix.Name{CommonName: issuer}, TBSHash: tbs, EKUs: ekus}
	c.SHA256[0] = byte(len(cn))
	copy(c.SHA256[1:], cn)
	return c
}

func signedBy(t testing.TB, chain ...*signing.Certificate) []*signing.Signature {
	return []*signing.Signature{sigtest.Verified(t, &signing.Signature{Format: "authenticode", SignatureAlgorithm: "RSA", Chains: [][]*signing.Certificate{chain}})}
}

func peSubject(sc Scenario, attrs *FileAttributes, sigs []*signing.Signature) Subject {
	return Subject{Path: "bin/x.exe", Format: FormatPE, Scenario: sc, Attributes: attrs, Signed: sigs != nil, Signatures: sigs,
		Digests: Digests{AuthenticodeSHA256: h1, AuthenticodeSHA1: s1, PageSHA256: p256, PageSHA1: p1}}
}

// First-page hashes of the subjects that no rule names.
var (
	h5   = bytes.Repeat([]byte{0x55}, 32)
	p256 = bytes.Repeat([]byte{0x66}, 32)
	p1   = bytes.Repeat([]byte{0x66}, 20)
)

// withPage sets the subject's first-page SHA256.
func withPage(s Subject, v []byte) Subject {
	s.Digests = maps.Clone(s.Digests)
	s.Digests[PageSHA256] = v
	return s
}

// pageSignedBy is signedBy with the signature carrying a checked page-hash
// table.
func pageSignedBy(t testing.TB, chain ...*signing.Certificate) []*signing.Signature {
	return []*signing.Signature{sigtest.Verified(t, &signing.Signature{Format: "authenticode", SignatureAlgorithm: "RSA", Chains: [][]*signing.Certificate{chain}, PageHashes: crypto.SHA256})}
}

func attrs(name, version string) *FileAttributes {
	a := &FileAttributes{OriginalFileName: name}
	if version != "" {
		v, _ := ParseVersion(version)
		a.FileVersion = &v
	}
	return a
}

const (
	oidWindows     = "1.3.6.1.4.1.311.10.3.6"
	oidCodeSigning = "1.3.6.1.5.5.7.3.3"
)

func TestDecodeEKU(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "010A2B0601040182370A0306", want: "1.3.6.1.4.1.311.10.3.6"},
		{in: "010a2b0601040182374c0301", want: "1.3.6.1.4.1.311.76.3.1"},
		{in: "010A2B0601040182373D0401", want: "1.3.6.1.4.1.311.61.4.1"},
		{in: "01082B06010505070303", want: oidCodeSigning},
		{in: "0A2B0601040182370A0306", bad: true},   // no 01 prefix
		{in: "010B2B0601040182370A0306", bad: true}, // length says 11
		{in: "0101", bad: true},
		{in: "01022B", bad: true},
		{in: "zz", bad: true},
		{in: "01028080", bad: true}, // truncated base-128 arc
	}
	for _, tt := range tests {
		got, err := decodeEKU(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("decodeEKU(%s) = %q, %v; want %q (error %v)", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestVersionBounds(t *testing.T) {
	v1, v2 := Version{1, 0, 0, 0}, Version{2, 0, 0, 0}
	tests := []struct {
		name     string
		min, max *Version
		deny     bool
		lo, hi   *Version
	}{
		{"allow min", &v1, nil, false, &v1, nil},
		{"allow max", nil, &v2, false, nil, &v2},
		{"allow both", &v1, &v2, false, &v1, &v2},
		{"deny min is a maximum", &v1, nil, true, nil, &v1},
		{"deny max is a minimum", nil, &v2, true, &v2, nil},
		{"deny both is a range", &v1, &v2, true, &v1, &v2},
		{"none", nil, nil, true, nil, nil},
	}
	for _, tt := range tests {
		lo, hi := versionBounds(tt.min, tt.max, tt.deny)
		if !reflect.DeepEqual(lo, tt.lo) || !reflect.DeepEqual(hi, tt.hi) {
			t.Errorf("%s: got [%v, %v], want [%v, %v]", tt.name, lo, hi, tt.lo, tt.hi)
		}
	}
}

// TestParseXMLMapping checks the mapping of each kind of rule with small
// documents.
func TestParseXMLMapping(t *testing.T) {
	doc := sipDoc(`
  <EKUs>
    <EKU ID="ID_EKU_WINDOWS" Value="010A2B0601040182370A0306" />
    <EKU ID="ID_EKU_CODE" Value="01082B06010505070303" />
  </EKUs>
  <FileRules>
    <Allow ID="ID_ALLOW_HASH256" FriendlyName="a.exe Hash Sha256" Hash="` + strings.Repeat("11", 32) + `" />
    <Allow ID="ID_ALLOW_HASH1" FriendlyName="a.exe Hash Sha1" Hash="` + strings.Repeat("44", 20) + `" />
    <Allow ID="ID_ALLOW_PAGE" FriendlyName="a.exe Hash Page Sha256" Hash="` + strings.Repeat("55", 32) + `" />
    <Allow ID="ID_ALLOW_PATH" FilePath="C:\Program Files\App\*" />
    <Allow ID="ID_ALLOW_PFN" PackageFamilyName="Contoso.App_8wekyb3d8bbwe" />
    <Allow ID="ID_ALLOW_ALL" FriendlyName="Allow All" FileName="*" />
    <Allow ID="ID_ALLOW_PRODUCT" ProductName="Contoso Tools" MinimumFileVersion="2.0.0.0" />
    <Allow ID="ID_ALLOW_WILD" FileName="app*.exe" />
    <Deny ID="ID_DENY_MIN" FileName="old.exe" MinimumFileVersion="4.21.0.0" />
    <Deny ID="ID_DENY_MAX" FileName="new.exe" MaximumFileVersion="9.0.0.0" />
    <Deny ID="ID_DENY_BOTH" FileName="mid.exe" MinimumFileVersion="1.0.0.0" MaximumFileVersion="2.0.0.0" />
    <FileAttrib ID="ID_FILEATTRIB_TOOL" FileName="tool.exe" MinimumFileVersion="3.0.0.0" />
    <FileAttrib ID="ID_FILEATTRIB_ANY" FileName="*" MinimumFileVersion="5.0.0.0" />
  </FileRules>
  <Signers>
    <Signer ID="ID_SIGNER_PCA" Name="Microsoft Windows Production PCA 2011">
      <CertRoot Type="TBS" Value="` + pca2011TBS + `" />
      <CertEKU ID="ID_EKU_WINDOWS" />
      <CertPublisher Value="Microsoft Windows" />
      <CertIssuer Value="Microsoft Windows Production PCA 2011" />
    </Signer>
    <Signer ID="ID_SIGNER_ROOT" Name="root 2010">
      <CertRoot Type="Wellknown" Value="06" />
    </Signer>
    <Signer ID="ID_SIGNER_TOOL" Name="tool signer">
      <CertRoot Type="TBS" Value="` + strings.Repeat("AB", 20) + `" />
      <FileAttribRef RuleID="ID_FILEATTRIB_TOOL" />
      <FileAttribRef RuleID="ID_FILEATTRIB_ANY" />
    </Signer>
    <Signer ID="ID_SIGNER_OEM" Name="oem">
      <CertRoot Type="TBS" Value="` + strings.Repeat("CD", 32) + `" />
      <CertOemID Value="contoso" />
    </Signer>
    <Signer ID="ID_SIGNER_TWOEKU" Name="two EKUs">
      <CertRoot Type="TBS" Value="` + strings.Repeat("CD", 48) + `" />
      <CertEKU ID="ID_EKU_WINDOWS" />
      <CertEKU ID="ID_EKU_CODE" />
    </Signer>
    <Signer ID="ID_SIGNER_STORE" Name="trusted root store">
      <CertRoot Type="Wellknown" Value="14" />
    </Signer>
    <Signer ID="ID_SIGNER_MD5" Name="md5">
      <CertRoot Type="TBS" Value="` + strings.Repeat("EF", 16) + `" />
    </Signer>
    <Signer ID="ID_SIGNER_LATE" Name="late" SignTimeAfter="2020-01-01T00:00:00">
      <CertRoot Type="TBS" Value="` + strings.Repeat("EF", 64) + `" />
    </Signer>
  </Signers>
` + scenarios(`
        <AllowedSigners>
          <AllowedSigner SignerId="ID_SIGNER_PCA" />
          <AllowedSigner SignerId="ID_SIGNER_ROOT" />
          <AllowedSigner SignerId="ID_SIGNER_TOOL" />
          <AllowedSigner SignerId="ID_SIGNER_OEM" />
          <AllowedSigner SignerId="ID_SIGNER_TWOEKU" />
          <AllowedSigner SignerId="ID_SIGNER_STORE" />
          <AllowedSigner SignerId="ID_SIGNER_MD5" />
          <AllowedSigner SignerId="ID_SIGNER_LATE" />
        </AllowedSigners>
        <DeniedSigners>
          <DeniedSigner SignerId="ID_SIGNER_TOOL" />
        </DeniedSigners>
        <FileRulesRef>
          <FileRuleRef RuleID="ID_ALLOW_HASH256" />
          <FileRuleRef RuleID="ID_ALLOW_HASH1" />
          <FileRuleRef RuleID="ID_ALLOW_PAGE" />
          <FileRuleRef RuleID="ID_ALLOW_PATH" />
          <FileRuleRef RuleID="ID_ALLOW_PFN" />
          <FileRuleRef RuleID="ID_ALLOW_ALL" />
          <FileRuleRef RuleID="ID_ALLOW_PRODUCT" />
          <FileRuleRef RuleID="ID_ALLOW_WILD" />
          <FileRuleRef RuleID="ID_DENY_MIN" />
          <FileRuleRef RuleID="ID_DENY_MAX" />
          <FileRuleRef RuleID="ID_DENY_BOTH" />
        </FileRulesRef>`, `
        <AllowedSigners><AllowedSigner SignerId="ID_SIGNER_PCA" /></AllowedSigners>`))
	p := mustParseXML(t, doc)
	if p.Format != "sipolicy" || !p.WDACCompatible || p.ID != testPolicyID || p.Type != Base || p.Mode != Enforce || p.Version != "1.0.0.0" || p.Name != testPolicyID {
		t.Errorf("policy header: %+v", p)
	}
	pe := []Format{FormatPE}
	user := []Scenario{ScenarioUser}
	check := func(id string, want Rule) {
		t.Helper()
		got := *ruleByID(t, p, id)
		want.ID = id
		if want.Scenarios == nil {
			want.Scenarios = user
		}
		if want.Signer == nil && want.Formats == nil {
			want.Formats = pe // hash and file rules; signer rules judge ELF signatures too
		}
		got.Line, got.Description = 0, ""
		if !reflect.DeepEqual(got, want) {
			t.Errorf("rule %s:\n got %+v\nwant %+v", id, got, want)
		}
	}
	// A user-mode hash is a script's SIP hash too.
	peScripts := []Format{FormatPE, FormatPowerShell}
	check("ID_ALLOW_HASH256", Rule{Action: Allow, Hash: &HashMatch{AuthenticodeSHA256, h1}, Formats: peScripts})
	check("ID_ALLOW_HASH1", Rule{Action: Allow, Hash: &HashMatch{AuthenticodeSHA1, s1}, Formats: peScripts})
	check("ID_ALLOW_PRODUCT", Rule{Action: Allow, File: &FileAttrMatch{Field: ProductName, Name: "Contoso Tools", MinVersion: ver(t, "2.0.0.0")}})
	check("ID_DENY_MIN", Rule{Action: Deny, File: &FileAttrMatch{Field: OriginalFileName, Name: "old.exe", MaxVersion: ver(t, "4.21.0.0")}})
	check("ID_DENY_MAX", Rule{Action: Deny, File: &FileAttrMatch{Field: OriginalFileName, Name: "new.exe", MinVersion: ver(t, "9.0.0.0")}})
	check("ID_DENY_BOTH", Rule{Action: Deny, File: &FileAttrMatch{Field: OriginalFileName, Name: "mid.exe", MinVersion: ver(t, "1.0.0.0"), MaxVersion: ver(t, "2.0.0.0")}})
	check("ID_SIGNER_PCA:user", Rule{Action: Allow, Signer: &SignerMatch{Cert: CertRef{TBSHash: mustHex(t, pca2011TBS)}, Level: LevelAny,
		Publisher: "Microsoft Windows", IssuerName: "Microsoft Windows Production PCA 2011", EKUs: []string{oidWindows}}})
	check("ID_SIGNER_PCA:kernel", Rule{Action: Allow, Scenarios: []Scenario{ScenarioKernel, ScenarioBoot}, Signer: &SignerMatch{Cert: CertRef{TBSHash: mustHex(t, pca2011TBS)}, Level: LevelAny,
		Publisher: "Microsoft Windows", IssuerName: "Microsoft Windows Production PCA 2011", EKUs: []string{oidWindows}}})
	check("ID_SIGNER_ROOT", Rule{Action: Allow, Signer: &SignerMatch{Cert: CertRef{WellKnown: "06", WellKnownName: "Microsoft Root Certificate Authority 2010"}, Level: LevelAny}})
	// The same signer allowed and denied in one scenario: the allow reads
	// the FileAttrib's MinimumFileVersion as a minimum, the deny as a
	// maximum.
	check("ID_SIGNER_TOOL:user:allow", Rule{Action: Allow, Signer: &SignerMatch{Cert: CertRef{TBSHash: bytes.Repeat([]byte{0xab}, 20)}, Level: LevelAny,
		Files: []FileAttrMatch{{Field: OriginalFileName, Name: "tool.exe", MinVersion: ver(t, "3.0.0.0")}, {Field: OriginalFileName, MinVersion: ver(t, "5.0.0.0")}}}})
	check("ID_SIGNER_TOOL:user:deny", Rule{Action: Deny, Signer: &SignerMatch{Cert: CertRef{TBSHash: bytes.Repeat([]byte{0xab}, 20)}, Level: LevelAny,
		Files: []FileAttrMatch{{Field: OriginalFileName, Name: "tool.exe", MaxVersion: ver(t, "3.0.0.0")}, {Field: OriginalFileName, MaxVersion: ver(t, "5.0.0.0")}}}})

	if r := ruleByID(t, p, "ID_ALLOW_PAGE"); r.Unsupported != "" || r.Hash == nil || r.Hash.Algorithm != PageSHA256 || r.Action != Allow {
		t.Errorf("ID_ALLOW_PAGE: %+v", r)
	}
	unsupported := map[string]string{
		"ID_ALLOW_PATH":    "FilePath rule",
		"ID_ALLOW_PFN":     "packaged app rule",
		"ID_ALLOW_WILD":    "wildcard in FileName",
		"ID_SIGNER_TWOEKU": "several CertEKU",
		"ID_SIGNER_STORE":  "well-known root 14",
		"ID_SIGNER_MD5":    "MD5 TBS hash",
		"ID_SIGNER_LATE":   "SignTimeAfter",
	}
	for id, want := range unsupported {
		r := ruleByID(t, p, id)
		if !strings.Contains(r.Unsupported, want) || r.Hash != nil {
			t.Errorf("rule %s: Unsupported = %q, Hash %v; want it to mention %q and no hash", id, r.Unsupported, r.Hash, want)
		}
	}
	if r := ruleByID(t, p, "ID_ALLOW_ALL"); !r.All || r.Unsupported != "" || r.Action != Allow {
		t.Errorf(`FileName="*" without versions is not an allow-all rule: %+v`, r)
	}
	if r := ruleByID(t, p, "ID_SIGNER_OEM"); r.Signer == nil || r.Signer.OEMID != "contoso" || r.Unsupported != "" {
		t.Errorf("OEM signer: %+v", r)
	}

	var got []string
	for _, f := range Lint(p) {
		got = append(got, f.String())
	}
	text := strings.Join(got, "\n")
	t.Log(text)
	for _, want := range []string{
		`rule "ID_SIGNER_OEM": signer rule sets CertOemID "contoso"`,
		`1 allow page-hash rule admits only files whose verified signature, chained to a root supplied as trusted (--certs), carries page hashes`,
		`rule "ID_ALLOW_PATH": cannot be judged offline: FilePath rule`,
		`1 signer rule chains to well-known root 06 (Microsoft Product Root 2010, certificate "Microsoft Root Certificate Authority 2010")`,
		`supplied with --certs`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("lint lacks %q", want)
		}
	}
}

// TestParseXMLEvaluate judges subjects with small documents: allow by hash,
// deny by signer (with an ExceptAllowRule), ExceptDenyRule and FileAttribRef.
func TestParseXMLEvaluate(t *testing.T) {
	pcaTBS := mustHex(t, pca2011TBS)
	badTBS := bytes.Repeat([]byte{0xba}, 32)
	doc := sipDoc(`
  <EKUs><EKU ID="ID_EKU_WINDOWS" Value="010A2B0601040182370A0306" /></EKUs>
  <FileRules>
    <Allow ID="ID_ALLOW_H" FriendlyName="a.exe Hash Sha256" Hash="` + hx(h2) + `" />
    <Allow ID="ID_ALLOW_EXEMPT" FriendlyName="exempt.exe Hash Sha256" Hash="` + hx(h3) + `" />
    <Deny ID="ID_DENY_CMD" FriendlyName="cmd.exe" FileName="cmd.Exe" MinimumFileVersion="65535.65535.65535.65535" />
    <Deny ID="ID_DENY_PAGE" FriendlyName="evil.exe Hash Page Sha256" Hash="` + hx(h4) + `" />
    <Allow ID="ID_ALLOW_PAGE" FriendlyName="good.exe Hash Page Sha256" Hash="` + hx(h5) + `" />
    <FileAttrib ID="ID_FILEATTRIB_TOOL" FileName="tool.exe" MinimumFileVersion="3.0.0.0" />
  </FileRules>
  <Signers>
    <Signer ID="ID_SIGNER_PCA" Name="Microsoft Windows Production PCA 2011">
      <CertRoot Type="TBS" Value="` + pca2011TBS + `" />
      <CertEKU ID="ID_EKU_WINDOWS" />
    </Signer>
    <Signer ID="ID_SIGNER_BAD" Name="leaked">
      <CertRoot Type="TBS" Value="` + hx(badTBS) + `" />
    </Signer>
    <Signer ID="ID_SIGNER_TOOL" Name="tools">
      <CertRoot Type="TBS" Value="` + hx(badTBS) + `" />
      <FileAttribRef RuleID="ID_FILEATTRIB_TOOL" />
    </Signer>
  </Signers>
` + scenarios(`
        <AllowedSigners>
          <AllowedSigner SignerId="ID_SIGNER_PCA"><ExceptDenyRule DenyRuleID="ID_DENY_CMD" /></AllowedSigner>
          <AllowedSigner SignerId="ID_SIGNER_TOOL" />
        </AllowedSigners>
        <DeniedSigners>
          <DeniedSigner SignerId="ID_SIGNER_BAD"><ExceptAllowRule AllowRuleID="ID_ALLOW_EXEMPT" /></DeniedSigner>
        </DeniedSigners>
        <FileRulesRef><FileRuleRef RuleID="ID_ALLOW_H" /><FileRuleRef RuleID="ID_DENY_PAGE" /><FileRuleRef RuleID="ID_ALLOW_PAGE" /></FileRulesRef>`, `
        <AllowedSigners><AllowedSigner SignerId="ID_SIGNER_PCA" /></AllowedSigners>`))
	p := mustParseXML(t, doc)
	leaf := synthCert("Microsoft Windows", "Microsoft Windows Production PCA 2011", bytes.Repeat([]byte{1}, 32), oidWindows, oidCodeSigning)
	leafNoEKU := synthCert("Contoso", "Microsoft Windows Production PCA 2011", bytes.Repeat([]byte{2}, 32), oidCodeSigning)
	pca := synthCert("Microsoft Windows Production PCA 2011", "Microsoft Root Certificate Authority 2010", pcaTBS)
	attacker := synthCert("Mallory", "Mallory", bytes.Repeat([]byte{4}, 32), oidCodeSigning)
	s, err := NewSet(SetOptions{TrustedRoots: []*signing.Certificate{pca}}, p)
	if err != nil {
		t.Fatal(err)
	}
	bad := synthCert("Leaked CA", "Leaked CA", badTBS)
	badLeaf := synthCert("Leaked signer", "Leaked CA", bytes.Repeat([]byte{3}, 32), oidCodeSigning)
	withDigest := func(sub Subject, d []byte) Subject {
		sub.Digests = maps.Clone(sub.Digests)
		sub.Digests.Set(AuthenticodeSHA256, d)
		return sub
	}

	tests := []struct {
		name    string
		sub     Subject
		verdict Verdict
		kind    ReasonKind
		rule    string
	}{
		{"allowed by hash", withDigest(peSubject(ScenarioUser, nil, nil), h2), Allowed, KindAllowedByHash, "ID_ALLOW_H"},
		{"hash rule is user-mode only", withDigest(peSubject(ScenarioKernel, nil, nil), h2), Blocked, KindUnsigned, ""},
		{"allowed by PCA signer", peSubject(ScenarioUser, attrs("notepad.exe", "10.0.1.0"), signedBy(t, leaf, pca)), Allowed, KindAllowedBySigner, "ID_SIGNER_PCA:user"},
		{"PCA signer without attributes", peSubject(ScenarioUser, nil, signedBy(t, leaf, pca)), Allowed, KindAllowedBySigner, "ID_SIGNER_PCA:user"},
		{"ExceptDenyRule exempts cmd.exe", peSubject(ScenarioUser, attrs("CMD.EXE", "10.0.22621.1"), signedBy(t, leaf, pca)), Blocked, KindNotAllowed, ""},
		{"no exception in the kernel scenario", peSubject(ScenarioKernel, attrs("cmd.exe", "10.0.22621.1"), signedBy(t, leaf, pca)), Allowed, KindAllowedBySigner, "ID_SIGNER_PCA:kernel"},
		{"leaf lacks the Windows EKU", peSubject(ScenarioUser, nil, signedBy(t, leafNoEKU, pca)), Blocked, KindNotAllowed, ""},
		{"denied signer", withDigest(peSubject(ScenarioUser, attrs("tool.exe", "4.0.0.0"), signedBy(t, badLeaf, bad)), h2), Blocked, KindDenied, "ID_SIGNER_BAD"},
		{"ExceptAllowRule exempts from the deny", withDigest(peSubject(ScenarioUser, attrs("tool.exe", "4.0.0.0"), signedBy(t, badLeaf, bad)), h3), Allowed, KindAllowedBySigner, "ID_SIGNER_TOOL"},
		{"FileAttribRef version too low", withDigest(peSubject(ScenarioUser, attrs("tool.exe", "2.9.0.0"), signedBy(t, badLeaf, bad)), h3), Blocked, KindNotAllowed, ""},
		{"FileAttribRef other name", withDigest(peSubject(ScenarioUser, attrs("other.exe", "4.0.0.0"), signedBy(t, badLeaf, bad)), h3), Blocked, KindNotAllowed, ""},
		// A deny page-hash rule denies the file whose first page it
		// names, and no other.
		{"a deny page-hash rule denies its file", withPage(peSubject(ScenarioUser, nil, signedBy(t, leaf, pca)), h4), Blocked, KindDenied, "ID_DENY_PAGE"},
		{"a deny page-hash rule denies its unsigned file", withPage(peSubject(ScenarioUser, nil, nil), h4), Blocked, KindDenied, "ID_DENY_PAGE"},
		{"a deny page-hash rule does not deny another file", withPage(peSubject(ScenarioUser, nil, signedBy(t, leaf, pca)), h3), Allowed, KindAllowedBySigner, "ID_SIGNER_PCA:user"},
		// Windows reads no FriendlyName: a deny named "Hash Page" whose
		// value is the whole-image hash still denies the file; an allow
		// so named does not admit it.
		{"a deny named as a page hash matches the image hash", withDigest(peSubject(ScenarioUser, nil, signedBy(t, leaf, pca)), h4), Blocked, KindDenied, "ID_DENY_PAGE"},
		{"an allow named as a page hash does not match the image hash", withDigest(peSubject(ScenarioUser, nil, nil), h5), Blocked, KindUnsigned, ""},
		// An allow page-hash rule admits only a file whose verified
		// signature carries a checked page-hash table.
		{"an allow page-hash rule admits a page-signed file", withPage(peSubject(ScenarioUser, nil, pageSignedBy(t, leafNoEKU, pca)), h5), Allowed, KindAllowedByHash, "ID_ALLOW_PAGE"},
		// The table vouches for the other pages only as far as its
		// signer is trusted: anyone can sign another file's headers with
		// code of their own, and a table of their own pages.
		{"an allow page-hash rule does not admit a file page-signed by an untrusted signer", withPage(peSubject(ScenarioUser, nil, pageSignedBy(t, attacker)), h5), Blocked, KindNotAllowed, ""},
		{"an allow page-hash rule does not admit a page-signed file whose root is not trusted", withPage(peSubject(ScenarioUser, nil, pageSignedBy(t, leaf)), h5), Blocked, KindNotAllowed, ""},
		{"an allow page-hash rule does not admit an unsigned file", withPage(peSubject(ScenarioUser, nil, nil), h5), Blocked, KindUnsigned, ""},
		{"an allow page-hash rule does not admit a file signed without page hashes", withPage(peSubject(ScenarioUser, nil, signedBy(t, leafNoEKU, pca)), h5), Blocked, KindNotAllowed, ""},
		{"ELF files are not judged by WDAC rules", Subject{Path: "x", Format: FormatELF, Scenario: ScenarioUser, Digests: Digests{SHA256: h2}}, Blocked, KindUnsigned, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Evaluate(tt.sub)
			if d.Verdict != tt.verdict || d.Kind != tt.kind || d.Rule != tt.rule || !d.Enforced {
				t.Errorf("got %s/%s rule %q enforced %v (%s); want %s/%s rule %q", d.Verdict, d.Kind, d.Rule, d.Enforced, d.Reason, tt.verdict, tt.kind, tt.rule)
			}
		})
	}
	d := s.Evaluate(peSubject(ScenarioUser, attrs("cmd.exe", "10.0.0.0"), signedBy(t, leaf, pca)))
	if !strings.Contains(d.Reason, `exception`) || !strings.Contains(d.Reason, "cmd.Exe") {
		t.Errorf("reason does not name the exception: %s", d.Reason)
	}
	n := s.Needs("bin/x.exe", FormatPE, ScenarioUser)
	if !n.Signatures || !n.Attributes || !n.Digests.Has(AuthenticodeSHA256) || n.Digests.Has(SHA256) {
		t.Errorf("Needs = %+v", n)
	}
}

// allowSupplementals adds the option that lets supplemental policies
// extend a base policy made by sipDoc.
func allowSupplementals(doc string) string {
	return strings.Replace(doc, `<Rule><Option>Enabled:UMCI</Option></Rule>`,
		`<Rule><Option>Enabled:UMCI</Option></Rule><Rule><Option>Enabled:Allow Supplemental Policies</Option></Rule>`, 1)
}

func TestParseXMLSupplemental(t *testing.T) {
	baseDoc := sipDoc(`
  <FileRules><Deny ID="ID_DENY_X" FriendlyName="x Hash Sha256" Hash="` + hx(h3) + `" /></FileRules>
` + scenarios(`<FileRulesRef><FileRuleRef RuleID="ID_DENY_X" /></FileRulesRef>`, ``))
	base := mustParseXML(t, allowSupplementals(baseDoc))
	suppDoc := `<?xml version="1.0" encoding="utf-8"?>
<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy" PolicyType="Supplemental Policy">
  <VersionEx>1.0.0.1</VersionEx>
  <PolicyID>` + strings.ToLower(testSuppID) + `</PolicyID>
  <BasePolicyID>` + strings.ToLower(testPolicyID) + `</BasePolicyID>
  <Rules />
  <FileRules>
    <Allow ID="ID_ALLOW_A" FriendlyName="a Hash Sha256" Hash="` + hx(h2) + `" />
    <Allow ID="ID_ALLOW_X" FriendlyName="x Hash Sha256" Hash="` + hx(h3) + `" />
    <Deny ID="ID_DENY_A" FriendlyName="a Hash Sha256" Hash="` + hx(h2) + `" />
  </FileRules>
  <Signers>
    <Signer ID="ID_SIGNER_D" Name="d"><CertRoot Type="TBS" Value="` + hx(h1) + `" /></Signer>
  </Signers>
` + scenarios(`
        <DeniedSigners><DeniedSigner SignerId="ID_SIGNER_D" /></DeniedSigners>
        <FileRulesRef>
          <FileRuleRef RuleID="ID_ALLOW_A" />
          <FileRuleRef RuleID="ID_ALLOW_X" />
          <FileRuleRef RuleID="ID_DENY_A" />
        </FileRulesRef>`, ``) + `
  <Settings>
    <Setting Provider="PolicyInfo" Key="Information" ValueName="Name"><Value><String>My Supplemental</String></Value></Setting>
  </Settings>
</SiPolicy>`
	supp := mustParseXML(t, suppDoc)
	if supp.Type != Supplemental || supp.ID != testSuppID || supp.BaseID != testPolicyID || supp.Name != "My Supplemental" {
		t.Fatalf("supplemental header: %+v", supp)
	}
	for _, r := range supp.Rules {
		if r.Action != Allow {
			t.Errorf("supplemental kept deny rule %s", r.ID)
		}
	}
	if len(supp.Rules) != 2 {
		t.Errorf("%d rules, want 2", len(supp.Rules))
	}
	// Without Enabled:Allow Supplemental Policies Windows applies no
	// supplemental policy to the base: csv refuses the set.
	if _, err := NewSet(SetOptions{}, mustParseXML(t, baseDoc), supp); !errors.Is(err, ErrPolicySet) || !strings.Contains(err.Error(), "Windows does not apply it") {
		t.Errorf("a base without Enabled:Allow Supplemental Policies: %v", err)
	}
	s, err := NewSet(SetOptions{}, base, supp)
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Evaluate(Subject{Path: "a", Format: FormatPE, Scenario: ScenarioUser, Digests: Digests{AuthenticodeSHA256: h2, PageSHA256: p256}}); d.Verdict != Allowed || d.Rule != "ID_ALLOW_A" {
		t.Errorf("supplemental allow (its dropped deny must not apply): %+v", d)
	}
	if d := s.Evaluate(Subject{Path: "x", Format: FormatPE, Scenario: ScenarioUser, Digests: Digests{AuthenticodeSHA256: h3, PageSHA256: p256}}); d.Kind != KindDenied || d.Rule != "ID_DENY_X" {
		t.Errorf("the base's deny wins over the supplemental's allow: %+v", d)
	}
	var lint []string
	for _, f := range Lint(base, supp) {
		lint = append(lint, f.String())
	}
	text := strings.Join(lint, "\n")
	t.Log(text)
	for _, want := range []string{
		fmt.Sprintf(`test.xml:%d: warning: rule "ID_DENY_A": deny rule in a supplemental policy: Windows ignores deny rules`, lineOf(t, suppDoc, `<Deny ID="ID_DENY_A"`)),
		fmt.Sprintf(`test.xml:%d: warning: rule "ID_SIGNER_D": denied signer in a supplemental policy`, lineOf(t, suppDoc, `<Signer ID="ID_SIGNER_D"`)),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("lint lacks %q", want)
		}
	}

	// Without a PolicyType attribute, a BasePolicyID other than the
	// PolicyID makes a policy supplemental (the format before the attribute
	// existed).
	legacy := strings.Replace(suppDoc, ` PolicyType="Supplemental Policy"`, "", 1)
	if p := mustParseXML(t, legacy); p.Type != Supplemental || p.BaseID != testPolicyID {
		t.Errorf("legacy supplemental: %s base %s", p.Type, p.BaseID)
	}
}

func TestParseXMLRuleIDsPerScenario(t *testing.T) {
	p := mustParseXML(t, sipDoc(`
  <FileRules><Deny ID="ID_DENY_K" FileName="kd.exe" MinimumFileVersion="65535.65535.65535.65535" /></FileRules>
  <Signers><Signer ID="ID_SIGNER_S" Name="s"><CertRoot Type="TBS" Value="`+hx(h1)+`" /></Signer></Signers>
`+scenarios(`<AllowedSigners><AllowedSigner SignerId="ID_SIGNER_S" /></AllowedSigners><FileRulesRef><FileRuleRef RuleID="ID_DENY_K" /></FileRulesRef>`,
		`<AllowedSigners><AllowedSigner SignerId="ID_SIGNER_S" /></AllowedSigners><FileRulesRef><FileRuleRef RuleID="ID_DENY_K" /></FileRulesRef>`)))
	var ids []string
	for _, r := range p.Rules {
		ids = append(ids, r.ID)
	}
	want := []string{"ID_SIGNER_S:kernel", "ID_DENY_K:kernel", "ID_SIGNER_S:user", "ID_DENY_K:user"}
	if !slices.Equal(ids, want) {
		t.Errorf("rule ids %v, want %v", ids, want)
	}
}

func TestParseXMLErrors(t *testing.T) {
	signer := `<Signers><Signer ID="ID_SIGNER_S" Name="s"><CertRoot Type="TBS" Value="` + hx(h1) + `" /></Signer></Signers>`
	tests := []struct {
		name   string
		doc    string
		marker string // the problem is on the line holding this
		want   string
	}{
		{"malformed XML", sipDoc("<FileRules>\n  <Allow ID=\"ID_ALLOW_A\" Hash=\"11\">\n</FileRules>"), "</FileRules>", "XML syntax: element <Allow> closed by </FileRules>"},
		{"unknown signer reference", sipDoc(signer + scenarios(`
        <AllowedSigners>
          <AllowedSigner SignerId="ID_SIGNER_X" />
        </AllowedSigners>`, "")), `SignerId="ID_SIGNER_X"`, "unknown signer ID_SIGNER_X referenced by AllowedSigner"},
		{"unknown file rule reference", sipDoc(scenarios(`<FileRulesRef>
          <FileRuleRef RuleID="ID_ALLOW_NOPE" /></FileRulesRef>`, "")), `ID_ALLOW_NOPE`, "unknown file rule ID_ALLOW_NOPE referenced by FileRuleRef"},
		{"unknown exception reference", sipDoc(signer + scenarios(`<AllowedSigners><AllowedSigner SignerId="ID_SIGNER_S">
          <ExceptDenyRule DenyRuleID="ID_DENY_NOPE" /></AllowedSigner></AllowedSigners>`, "")), `ID_DENY_NOPE`, "unknown file rule ID_DENY_NOPE referenced by ExceptDenyRule"},
		{"exception of the wrong kind", sipDoc(`<FileRules><Allow ID="ID_ALLOW_A" FileName="a.exe" /></FileRules>` + signer + scenarios(`<AllowedSigners><AllowedSigner SignerId="ID_SIGNER_S">
          <ExceptDenyRule DenyRuleID="ID_ALLOW_A" /></AllowedSigner></AllowedSigners>`, "")), `DenyRuleID="ID_ALLOW_A"`, "ExceptDenyRule references ID_ALLOW_A, which is an Allow rule (want a Deny)"},
		{"unknown EKU reference", sipDoc(`<Signers><Signer ID="ID_SIGNER_S" Name="s"><CertRoot Type="TBS" Value="` + hx(h1) + `" />
          <CertEKU ID="ID_EKU_NOPE" /></Signer></Signers>` + scenarios(`<AllowedSigners><AllowedSigner SignerId="ID_SIGNER_S" /></AllowedSigners>`, "")), `ID_EKU_NOPE`, "unknown EKU ID_EKU_NOPE referenced by signer ID_SIGNER_S"},
		{"FileRuleRef to a FileAttrib", sipDoc(`<FileRules><FileAttrib ID="ID_FILEATTRIB_A" FileName="a.exe" /></FileRules>` + scenarios(`<FileRulesRef>
          <FileRuleRef RuleID="ID_FILEATTRIB_A" /></FileRulesRef>`, "")), `RuleID="ID_FILEATTRIB_A"`, "FileRuleRef references ID_FILEATTRIB_A, a FileAttrib"},
		{"duplicate ID", sipDoc(`<FileRules>
  <Allow ID="ID_ALLOW_A" FileName="a.exe" />
  <Deny ID="ID_ALLOW_A" FileName="b.exe" />
</FileRules>`), `<Deny ID="ID_ALLOW_A"`, "duplicate ID ID_ALLOW_A (first at line"},
		{"duplicate across rules and signers", sipDoc(`<FileRules><Allow ID="ID_SIGNER_S" FileName="a.exe" /></FileRules>
` + signer), `<Signers>`, "duplicate ID ID_SIGNER_S"},
		{"listed twice with other exceptions", sipDoc(`<FileRules><Deny ID="ID_DENY_X" FileName="x.exe" /></FileRules>` + signer + scenarios(`<AllowedSigners><AllowedSigner SignerId="ID_SIGNER_S"><ExceptDenyRule DenyRuleID="ID_DENY_X" /></AllowedSigner>
          <AllowedSigner SignerId="ID_SIGNER_S" /></AllowedSigners>`, "")), `<AllowedSigner SignerId="ID_SIGNER_S" /></AllowedSigners>`, "ID_SIGNER_S is listed twice in the user-mode scenario with different exceptions"},
		{"not SiPolicy", `<?xml version="1.0"?>
<project><name>x</name></project>`, "<project>", "not a WDAC SiPolicy document: the root element is <project>"},
		{"SiPolicy without namespace", "<SiPolicy>\n<VersionEx>1.0.0.0</VersionEx></SiPolicy>", "<SiPolicy>", "not a WDAC SiPolicy document"},
		{"unknown element", sipDoc("<FileRules>\n  <Permit ID=\"ID_ALLOW_A\" />\n</FileRules>"), "<Permit", "unknown element <Permit> in <FileRules> (known: Allow, Deny, FileAttrib)"},
		{"unknown top-level element", sipDoc("<EFSSupported>false</EFSSupported>"), "<EFSSupported>", "unknown element <EFSSupported> in <SiPolicy>"},
		{"unknown attribute", sipDoc("<FileRules>\n  <Allow ID=\"ID_ALLOW_A\" FileName=\"a.exe\" Publisher=\"x\" />\n</FileRules>"), "Publisher=", `<Allow>: unknown attribute "Publisher"`},
		{"element in another namespace", sipDoc("<x:Extra xmlns:x=\"urn:other\" />"), "<x:Extra", `element <Extra> is in namespace "urn:other"`},
		{"text where none belongs", sipDoc("<FileRules>oops</FileRules>"), "oops", `<FileRules>: unexpected text "oops"`},
		{"repeated section", sipDoc("<FileRules />\n<FileRules />"), "<FileRules />\n<FileRules />", "<FileRules> repeated in <SiPolicy>"},
		{"bad GUID", strings.Replace(sipDoc(""), "<PolicyID>"+testPolicyID, "<PolicyID>not-a-guid", 1), "<PolicyID>", "<PolicyID> \"NOT-A-GUID\" is not a GUID"},
		{"bad hash", sipDoc("<FileRules>\n  <Allow ID=\"ID_ALLOW_A\" Hash=\"XYZ\" />\n</FileRules>"), "XYZ", `rule ID_ALLOW_A: Hash "XYZ" is not hexadecimal`},
		{"bad version", sipDoc("<FileRules>\n  <Deny ID=\"ID_DENY_A\" FileName=\"a\" MinimumFileVersion=\"1.2.3.99999\" />\n</FileRules>" + scenarios(`<FileRulesRef><FileRuleRef RuleID="ID_DENY_A" /></FileRulesRef>`, "")), "99999", "MinimumFileVersion \"1.2.3.99999\""},
		{"bad EKU", sipDoc("<EKUs>\n  <EKU ID=\"ID_EKU_A\" Value=\"0A2B06\" />\n</EKUs>"), "ID_EKU_A", "EKU ID_EKU_A: Value"},
		{"bad TBS length", sipDoc(`<Signers><Signer ID="ID_SIGNER_S" Name="s">
  <CertRoot Type="TBS" Value="0102" /></Signer></Signers>` + scenarios(`<AllowedSigners><AllowedSigner SignerId="ID_SIGNER_S" /></AllowedSigners>`, "")), `Value="0102"`, "CertRoot TBS value has 2 bytes"},
		{"unknown scenario", strings.Replace(sipDoc(scenarios("", "")), `Value="131"`, `Value="7"`, 1), `Value="7"`, "unknown Value 7"},
		{"rule without matcher", sipDoc("<FileRules>\n  <Allow ID=\"ID_ALLOW_A\" FriendlyName=\"nothing\" />\n</FileRules>" + scenarios(`<FileRulesRef><FileRuleRef RuleID="ID_ALLOW_A" /></FileRulesRef>`, "")), "nothing", "says nothing to match"},
		{"supplemental without base", strings.Replace(strings.Replace(sipDoc(""), "Base Policy", "Supplemental Policy", 1), "<BasePolicyID>"+testPolicyID+"</BasePolicyID>", "", 1), "<SiPolicy", "must name its base"},
		{"base with another BasePolicyID", strings.Replace(sipDoc(""), "<BasePolicyID>"+testPolicyID, "<BasePolicyID>"+testSuppID, 1), "<SiPolicy", "a base policy's BasePolicyID"},
		{"no ID", strings.Replace(sipDoc(""), "<PolicyID>"+testPolicyID+"</PolicyID>", "", 1), "<SiPolicy", "no <PolicyID>"},
		{"DOCTYPE", "<!DOCTYPE SiPolicy [<!ENTITY x \"y\">]>\n<SiPolicy xmlns=\"urn:schemas-microsoft-com:sipolicy\"/>", "<!DOCTYPE", "<!DOCTYPE...> declarations"},
		{"second root", sipDoc("") + "<SiPolicy xmlns=\"urn:schemas-microsoft-com:sipolicy\"/>", "</SiPolicy>\n<SiPolicy", "a second root element"},
		{"too deep", sipDoc(strings.Repeat("<Settings>", 40) + strings.Repeat("</Settings>", 40)), "<Settings>", "nested deeper than 32 levels"},
		{"empty", "<?xml version=\"1.0\"?>\n", "", "empty document"},
		{"InheritedScenarios", strings.Replace(sipDoc(scenarios("", "")), `Value="12"`, `Value="12" InheritedScenarios="ID_SIGNINGSCENARIO_KMCI"`, 1), "InheritedScenarios", "InheritedScenarios is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.doc), "bad.xml")
			if p != nil || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("Parse = %v, %v; want nil, ErrInvalidPolicy", p, err)
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("error is %T", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if tt.marker == "" {
				return
			}
			line := lineOf(t, tt.doc, tt.marker)
			if tt.name == "repeated section" || tt.name == "second root" || tt.name == "too deep" {
				line = lineOf(t, tt.doc, tt.marker) + strings.Count(tt.marker, "\n")
			}
			found := false
			for _, pr := range le.Problems {
				if pr.Line == line && strings.Contains(pr.Message, strings.TrimPrefix(tt.want, "bad.xml: ")) {
					found = true
				}
			}
			if !found && !strings.Contains(err.Error(), fmt.Sprintf("bad.xml:%d: ", line)) {
				t.Errorf("no problem at line %d: %v", line, err)
			}
		})
	}
}

// Real policies (../shared/testdata/wdac).

func loadShared(t *testing.T, name string) *Policy {
	t.Helper()
	path := filepath.Join(testenv.Shared(t, "testdata/wdac"), name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(data, name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

// ruleCounts counts rules by "scenario action kind".
func ruleCounts(p *Policy) map[string]int {
	out := map[string]int{}
	for _, r := range p.Rules {
		sc := "any"
		if len(r.Scenarios) > 0 {
			sc = string(r.Scenarios[0]) // kernel rules also cover boot
		}
		out[fmt.Sprintf("%s %s %s", sc, r.Action, r.Kind())]++
	}
	return out
}

func TestSharedWDACPolicies(t *testing.T) {
	dir := testenv.Shared(t, "testdata/wdac")
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no policies in %s", dir)
	}
	type facts struct {
		id, name, base string
		typ            PolicyType
		mode           Mode
		version        string
		counts         map[string]int
		lint           []string // substrings of lint findings
	}
	want := map[string]facts{
		"AllowMicrosoft.xml": {id: "{959A0F15-8985-4551-A208-5FFE9EDB3A70}", name: "DefaultMicrosoftEnforced", typ: Base, mode: Audit, version: "10.0.5.0",
			counts: map[string]int{"kernel allow signer": 8, "user allow signer": 10},
			lint: []string{`2 signer rules chain to well-known root 06 (Microsoft Product Root 2010, certificate "Microsoft Root Certificate Authority 2010")`,
				"CiSigners (signers Windows trusts for enterprise signing levels) are not code rules"}},
		"DefaultWindows_Audit.xml": {id: "{E0ABDA1F-CCF0-468E-8855-3E0F08B02D6A}", name: "DefaultWindowsAudit", typ: Base, mode: Audit, version: "10.3.0.0",
			counts: map[string]int{"kernel allow signer": 11, "user allow signer": 21},
			lint:   []string{`option "Enabled:Revoked Expired As Unsigned"`, "policy is in audit mode", "10 signer rules chain to well-known root 0E"}},
		"EmptyWDAC.xml": {id: "{32002E5A-B0DA-4401-9AC3-C24F25849804}", name: "{32002E5A-B0DA-4401-9AC3-C24F25849804}", typ: Base, mode: Audit, version: "10.0.0.0",
			counts: map[string]int{},
			lint:   []string{"policy allows nothing", `option "Enabled:UMCI" is not set`, "policy is in audit mode"}},
		"Empty_Supplemental.xml": {id: "{B5C8D1E7-A920-4E0C-BD86-783BB59C145E}", name: "SupplementalTemplate", typ: Supplemental, base: "{E0ABDA1F-CCF0-468E-8855-3E0F08B02D6A}",
			mode: Enforce, version: "10.0.0.0", counts: map[string]int{}},
		"Recommended_UserMode_Blocklist.xml": {id: "{A244370E-44C9-4C06-B551-F6016E563076}", name: "Microsoft Windows Recommended User Mode BlockList", typ: Base, mode: Enforce, version: "10.1.0.2",
			counts: map[string]int{"kernel deny file": 1, "user deny file": 47, "user deny hash": 614},
			lint: []string{"policy allows nothing",
				"39 deny rules stop at version 65355.65355.65355.65355"}},
		"WinSiPolicy.xml": {id: "{5951A96A-E0B5-4D3D-8FB8-3E5B61030784}", name: "Windows10S_Lockdown_Policy_Supplementable", typ: Base, mode: Audit, version: "10.0.25200.0",
			counts: map[string]int{"kernel allow signer": 12, "user allow signer": 20},
			lint: []string{`option "Required:WHQL"`, `rule "ID_SIGNER_WINDOWS_PRODUCTION_PCA2011": signer is referenced by no signing scenario`,
				`option "Enabled:Developer Mode Dynamic Code Trust"`}},
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			p := loadShared(t, name)
			var lint []string
			for _, fi := range Lint(p) {
				lint = append(lint, fi.String())
			}
			text := strings.Join(lint, "\n")
			t.Logf("lint %s:\n%s", name, text)
			w, ok := want[name]
			if !ok {
				t.Logf("no facts recorded for %s (it loads)", name)
				return
			}
			if p.ID != w.id || p.Name != w.name || p.Type != w.typ || p.BaseID != w.base || p.Mode != w.mode || p.Version != w.version || p.Format != "sipolicy" || !p.WDACCompatible {
				t.Errorf("header: id %s name %q type %s base %q mode %s version %s format %s", p.ID, p.Name, p.Type, p.BaseID, p.Mode, p.Version, p.Format)
			}
			if got := ruleCounts(p); !reflect.DeepEqual(got, w.counts) {
				t.Errorf("rule counts %v, want %v", got, w.counts)
			}
			for _, s := range w.lint {
				if !strings.Contains(text, s) {
					t.Errorf("lint lacks %q", s)
				}
			}
			ids := map[string]bool{}
			for _, r := range p.Rules {
				if ids[r.ID] {
					t.Errorf("duplicate rule id %s", r.ID)
				}
				ids[r.ID] = true
				if r.Line == 0 {
					t.Errorf("rule %s has no line", r.ID)
				}
			}
		})
	}
}

func TestSharedBaseIDs(t *testing.T) {
	supp := loadShared(t, "Empty_Supplemental.xml")
	dw := loadShared(t, "DefaultWindows_Audit.xml")
	empty := loadShared(t, "EmptyWDAC.xml")
	// Empty_Supplemental.xml extends DefaultWindows_Audit.xml, not
	// EmptyWDAC.xml (whose PolicyID differs).
	if supp.BaseID != dw.ID || supp.BaseID == empty.ID {
		t.Errorf("supplemental base %s; DefaultWindows %s; EmptyWDAC %s", supp.BaseID, dw.ID, empty.ID)
	}
	if _, err := NewSet(SetOptions{}, empty, supp); !errors.Is(err, ErrPolicySet) {
		t.Errorf("a set of the supplemental with EmptyWDAC: %v", err)
	}
}

func TestSharedWinSiPolicyPCA2011Signer(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.Shared(t, "testdata/wdac"), "WinSiPolicy.xml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, lerr := decodeSiPolicy(data, "WinSiPolicy.xml", false)
	if lerr != nil {
		t.Fatal(lerr)
	}
	s := doc.signers["ID_SIGNER_WINDOWS_PRODUCTION_PCA2011"]
	if s == nil || s.name != "Microsoft Windows Production PCA 2011" {
		t.Fatalf("signer: %+v", s)
	}
	m, why := doc.signerMatcher(s, false, false)
	if why != "" || !bytes.Equal(m.Cert.TBSHash, mustHex(t, pca2011TBS)) || m.Level != LevelAny || !slices.Equal(m.EKUs, []string{oidWindows}) {
		t.Errorf("PCA 2011 signer: %+v (%s)", m, why)
	}
	p := loadShared(t, "WinSiPolicy.xml")
	r := ruleByID(t, p, "ID_SIGNER_WINDOWS_PRODUCTION:user")
	if r.Signer.Cert.WellKnown != "06" || len(r.Except) != 34 || r.Except[0].ID != "ID_DENY_CBD" || r.Except[0].File.MaxVersion.String() != "65535.65535.65535.65535" {
		t.Errorf("Windows production signer (user): %+v", r)
	}
	if k := ruleByID(t, p, "ID_SIGNER_WINDOWS_PRODUCTION:kernel"); len(k.Except) != 0 {
		t.Errorf("kernel rule has %d exceptions", len(k.Except))
	}
}

func TestSharedBlocklistHashes(t *testing.T) {
	p := loadShared(t, "Recommended_UserMode_Blocklist.xml")
	for _, id := range []string{"ID_DENY_HVCISCAN_AMD_3", "ID_DENY_HVCISCAN_AMD_4", "ID_DENY_HVCISCAN_ARM_3", "ID_DENY_HVCISCAN_ARM_4"} {
		// New-CIPolicy's "Hash Page" rules compare first-page hashes.
		if r := ruleByID(t, p, id); r.Unsupported != "" || r.Hash == nil || !r.Hash.Algorithm.FirstPage() || r.Action != Deny {
			t.Errorf("%s: %+v", id, r)
		}
	}
	for id, want := range map[string]HashMatch{
		"ID_DENY_HVCISCAN_AMD_1": {AuthenticodeSHA1, mustHex(t, "424823CD625834C05D55C7B825B0D8059D589748")},
		"ID_DENY_HVCISCAN_AMD_2": {AuthenticodeSHA256, mustHex(t, "4968BA3E491CF6471C5D1C6CBECE84294012298D8EB6D32C03E476892F34279C")},
		"ID_DENY_D_1":            {AuthenticodeSHA1, mustHex(t, "02BE82F63EE962BCD4B8303E60F806F6613759C6")},
		"ID_DENY_D_3":            {AuthenticodeSHA256, mustHex(t, "148972F670E18790D62D753E01ED8D22B351A57E45544D88ACE380FEDAF24A40")},
	} {
		r := ruleByID(t, p, id)
		if r.Unsupported != "" || r.Hash == nil || !reflect.DeepEqual(*r.Hash, want) || !slices.Equal(r.Formats, []Format{FormatPE, FormatPowerShell}) {
			t.Errorf("%s: %+v", id, r)
		}
	}
	// Deny rules with MinimumFileVersion only deny that version and below.
	if r := ruleByID(t, p, "ID_DENY_BGINFO"); r.File.MinVersion != nil || r.File.MaxVersion.String() != "4.21.0.0" {
		t.Errorf("bginfo: %v", r.File)
	}
}

// TestSharedSetEvaluate judges synthetic subjects with the supplemental
// template, its base (DefaultWindows_Audit.xml) and the block list.
func TestSharedSetEvaluate(t *testing.T) {
	dw := loadShared(t, "DefaultWindows_Audit.xml")
	supp := loadShared(t, "Empty_Supplemental.xml")
	block := loadShared(t, "Recommended_UserMode_Blocklist.xml")
	s, err := NewSet(SetOptions{}, dw, supp, block)
	if err != nil {
		t.Fatal(err)
	}
	sha256Denied := mustHex(t, "148972F670E18790D62D753E01ED8D22B351A57E45544D88ACE380FEDAF24A40") // ID_DENY_D_3
	sha1Denied := mustHex(t, "424823CD625834C05D55C7B825B0D8059D589748")                           // ID_DENY_HVCISCAN_AMD_1
	sub := func(sc Scenario, d256, d1 []byte, a *FileAttributes) Subject {
		return Subject{Path: "out/x.exe", Format: FormatPE, Scenario: sc, Attributes: a, Digests: Digests{AuthenticodeSHA256: d256, AuthenticodeSHA1: d1, PageSHA256: p256, PageSHA1: p1}}
	}
	tests := []struct {
		name     string
		sub      Subject
		kind     ReasonKind
		rule     string
		enforced bool
	}{
		{"denied SHA256", sub(ScenarioUser, sha256Denied, s1, nil), KindDenied, "ID_DENY_D_3", true},
		{"denied SHA1", sub(ScenarioUser, h1, sha1Denied, nil), KindDenied, "ID_DENY_HVCISCAN_AMD_1", true},
		{"hash denied in user mode only", sub(ScenarioKernel, sha256Denied, s1, nil), KindUnsigned, "", true},
		{"MSBuild.exe denied", sub(ScenarioUser, h1, s1, attrs("MSBuild.exe", "16.11.2.50704")), KindDenied, "ID_DENY_MSBUILD", true},
		{"MSBuild.exe above 65355.65355.65355.65355", sub(ScenarioUser, h1, s1, attrs("msbuild.exe", "65400.0.0.0")), KindUnsigned, "", true},
		{"bginfo 4.21 denied", sub(ScenarioUser, h1, s1, attrs("BGINFO.EXE", "4.21.0.0")), KindDenied, "ID_DENY_BGINFO", true},
		{"bginfo 4.22 not denied", sub(ScenarioUser, h1, s1, attrs("bginfo.exe", "4.22.0.0")), KindUnsigned, "", true},
		{"kd.exe in kernel mode", sub(ScenarioKernel, h1, s1, attrs("kd.exe", "10.0.0.0")), KindDenied, "ID_DENY_KD_KMCI", true},
		{"MSBuild.exe in kernel mode", sub(ScenarioKernel, h1, s1, attrs("MSBuild.exe", "16.0.0.0")), KindUnsigned, "", true},
		{"missing digests fail closed", sub(ScenarioUser, h1, nil, nil), KindMalformed, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Evaluate(tt.sub)
			if d.Verdict != Blocked || d.Kind != tt.kind || d.Rule != tt.rule || d.Enforced != tt.enforced {
				t.Errorf("got %s/%s rule %q enforced %v (%s by %s)", d.Verdict, d.Kind, d.Rule, d.Enforced, d.Reason, d.Policy)
			}
		})
	}
	// Without the block list, the audit-mode base blocks without enforcing.
	s2, err := NewSet(SetOptions{}, dw, supp)
	if err != nil {
		t.Fatal(err)
	}
	if d := s2.Evaluate(sub(ScenarioUser, sha256Denied, s1, nil)); d.Verdict != Blocked || d.Enforced || d.Policy != "DefaultWindowsAudit" {
		t.Errorf("audit base: %+v", d)
	}
}

// sharedCertificates returns the certificates in a Secure Boot event log of
// the shared data, by subject common name: Microsoft Root Certificate
// Authority 2010, Microsoft Windows Production PCA 2011 and Microsoft
// Corporation Third Party Marketplace Root among them.
func sharedCertificates(t *testing.T) map[string]*signing.Certificate {
	t.Helper()
	b, err := os.ReadFile(testenv.Shared(t, "testdata/eventlogs/go-attestation/sb_cert_eventlog"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*signing.Certificate{}
	for i := 0; i+4 < len(b); i++ {
		if b[i] != 0x30 || b[i+1] != 0x82 {
			continue
		}
		n := int(b[i+2])<<8 | int(b[i+3])
		if i+4+n > len(b) {
			continue
		}
		der := b[i : i+4+n]
		if _, err := x509.ParseCertificate(der); err != nil {
			continue
		}
		c, err := signing.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if out[c.CommonName()] == nil {
			out[c.CommonName()] = c
		}
	}
	return out
}

// marketplaceRootKey is the public key Microsoft's table of well-known roots
// lists for ID 0F ("Microsoft Third Party Marketplace Root").
const marketplaceRootKey = "30820222300D06092A864886F70D01010105000382020F003082020A0282020100F0AD5E8240052D682459CBDE0AE884CC48B93B1DB08B52250E1214C410153A84BE81E075E6BA0EF861E36B1DCE9D1EDF9F283336DA8332C8A1A1ED594AE28C600C6A82B19A09A25C222E39ED92F681017AFF91689085A39C8A97837112946E32D71527E6670B7FE57A02FB90FFF049001ACF300C7BFFE94EA806FD2231166DDE496D96AA91261603419B1614EE98B85B4BD3F12FDB7E30FC79A668124A86773CECE533C3DFEA815519AD085E65D3DEAFBD5E741326839CCE585648E08AA76992ED72DB6782C2E6384ECF5F2BA03BD3C38B9A9A17125554A6647394F85356F21DE1BBD9CE92E2275B7DC4569CEB57FC0D9EE4A27A5999BD23C4656C906D08B25E871A6EA7D1F0EA0532857806504996988928566B0D29793567B8629FA3CFEF8563F8BE16DCED94047C6D610F9B78341E824CDD2A1C8F6D80B6DD7A051F84EDD855D711EB8793179F9A4D0E2874AAAC094F0E08BFFE59BF66EEE2F3511C178E3E3E5B7F2478A31CF4CAC2D619FDE8EBED4F94A55F34C49CE254BA48838B6444D3423B156AC60A6810242A227F4BB079D6DEE5E317199098063AEB5981A64EF496233FA28DCC76C8194EBD68553CD8FD8F844439894D1061951AE89CCCAFF14D38AE821C631CBF68EA45A236B6886A042C6BCB66D4C741090DADF3B0B498127369278E60E606ECEE8A6F30E55DDB56F0F02B523CA73B2A1A7EC0FF03C5ECE029DF0203010001"

func TestWellKnownRootsAgainstRealCertificates(t *testing.T) {
	certs := sharedCertificates(t)
	// 0F: the key Microsoft lists is that of the certificate our table names.
	_, cn, _ := wellKnownRoot("0F")
	mp := certs[cn]
	if mp == nil || !mp.SelfSigned() || !strings.EqualFold(hex.EncodeToString(mp.RawSPKI), marketplaceRootKey) {
		t.Errorf("well-known 0F: no self-signed %q with Microsoft's listed key among %d certificates", cn, len(certs))
	}
	// 06: Windows' production PCA, which WDAC's own policies allow through
	// root 06, is issued by the certificate our table names.
	_, cn, _ = wellKnownRoot("06")
	root, pca := certs[cn], certs["Microsoft Windows Production PCA 2011"]
	if root == nil || pca == nil || !root.SelfSigned() || pca.CheckSignedBy(root) != nil {
		t.Fatalf("well-known 06: %q does not issue Microsoft Windows Production PCA 2011", cn)
	}
	if pca.TBSHashHex() != pca2011TBS {
		t.Errorf("PCA 2011 TBS hash %s, WinSiPolicy.xml says %s", pca.TBSHashHex(), pca2011TBS)
	}
}

// TestSharedWinSiPolicyEvaluate judges a Windows-signed subject (a synthetic
// leaf under the real Windows Production PCA 2011 and Root Certificate
// Authority 2010) with WinSiPolicy.xml: allowed in user mode unless an
// ExceptDenyRule (cmd.exe, ...) matches. WinSiPolicy.xml's PCA 2011 TBS
// signer is referenced by no scenario, so the allow comes from the
// well-known root 06 signer, which needs the root supplied as trusted.
func TestSharedWinSiPolicyEvaluate(t *testing.T) {
	p := loadShared(t, "WinSiPolicy.xml")
	certs := sharedCertificates(t)
	root, pca := certs["Microsoft Root Certificate Authority 2010"], certs["Microsoft Windows Production PCA 2011"]
	if root == nil || pca == nil {
		t.Fatal("Microsoft certificates missing from the event log")
	}
	leaf := synthCert("Microsoft Windows", "Microsoft Windows Production PCA 2011", bytes.Repeat([]byte{7}, 32), oidWindows, oidCodeSigning)
	sigs := signedBy(t, leaf, pca, root)
	s, err := NewSet(SetOptions{TrustedRoots: []*signing.Certificate{root}}, p)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		sub     Subject
		verdict Verdict
		rule    string
	}{
		{"notepad.exe in user mode", peSubject(ScenarioUser, attrs("NOTEPAD.EXE", "10.0.22621.1"), sigs), Allowed, "ID_SIGNER_WINDOWS_PRODUCTION:user"},
		{"cmd.exe in user mode: ExceptDenyRule", peSubject(ScenarioUser, attrs("Cmd.Exe", "10.0.22621.1"), sigs), Blocked, ""},
		{"MSBuild.exe in user mode: ExceptDenyRule", peSubject(ScenarioUser, attrs("MSBuild.exe", "16.0.0.0"), sigs), Blocked, ""},
		{"cmd.exe in kernel mode", peSubject(ScenarioKernel, attrs("cmd.exe", "10.0.22621.1"), sigs), Allowed, "ID_SIGNER_WINDOWS_PRODUCTION:kernel"},
		{"leaf without the Windows EKU", peSubject(ScenarioUser, attrs("notepad.exe", "10.0.0.0"),
			signedBy(t, synthCert("Contoso", "Microsoft Windows Production PCA 2011", bytes.Repeat([]byte{8}, 32), oidCodeSigning), pca, root)), Blocked, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Evaluate(tt.sub)
			if d.Verdict != tt.verdict || d.Rule != tt.rule || d.Enforced {
				t.Errorf("got %s rule %q enforced %v: %s", d.Verdict, d.Rule, d.Enforced, d.Reason)
			}
		})
	}
	// Without the root supplied, the well-known rules match nothing.
	s2, _ := NewSet(SetOptions{}, p)
	if d := s2.Evaluate(peSubject(ScenarioUser, attrs("notepad.exe", "10.0.0.0"), sigs)); d.Verdict != Blocked {
		t.Errorf("without trusted roots: %+v", d)
	}
}

// trimHashRules drops the lines that define or reference the numbered
// ID_DENY_D_n hash rules of the block list beyond the first keep.
func trimHashRules(data []byte, keep int) []byte {
	var out [][]byte
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if i := bytes.Index(line, []byte(`"ID_DENY_D_`)); i >= 0 {
			var n int
			if _, err := fmt.Sscanf(string(line[i+len(`"ID_DENY_D_`):]), "%d", &n); err == nil && n > keep {
				continue
			}
		}
		out = append(out, line)
	}
	return bytes.Join(out, nil)
}

func FuzzParseXML(f *testing.F) {
	// Seed with the shared policies where present (testenv.Shared would skip
	// the whole fuzz target without them).
	shared := os.Getenv("CSV_SHARED")
	if shared == "" {
		shared = filepath.Join(testenv.RepoRoot(f), "..", "shared")
	}
	// Go's coverage-guided fuzzer all but stops on inputs of 100 KB and
	// more, so the block list (120 KB) is seeded with its hash rules cut to
	// the first ten (it stays a valid policy).
	files, _ := filepath.Glob(filepath.Join(shared, "testdata", "wdac", "*.xml"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		if len(data) > 32<<10 {
			data = trimHashRules(data, 10)
		}
		f.Add(data)
	}
	f.Add([]byte(sipDoc(`<FileRules><Allow ID="ID_ALLOW_A" FriendlyName="a Hash Sha256" Hash="` + hx(h1) + `" /><Deny ID="ID_DENY_B" FileName="b.exe" MinimumFileVersion="1.0.0.0" /></FileRules>
<Signers><Signer ID="ID_SIGNER_S" Name="s"><CertRoot Type="Wellknown" Value="06" /></Signer></Signers>` +
		scenarios(`<AllowedSigners><AllowedSigner SignerId="ID_SIGNER_S"><ExceptDenyRule DenyRuleID="ID_DENY_B" /></AllowedSigner></AllowedSigners><FileRulesRef><FileRuleRef RuleID="ID_ALLOW_A" /></FileRulesRef>`, ``))))
	f.Add([]byte(strings.Replace(sipDoc(`<FileRules><Deny ID="ID_DENY_A" FileName="a" /></FileRules>`+scenarios(`<FileRulesRef><FileRuleRef RuleID="ID_DENY_A" /></FileRulesRef>`, "")),
		`PolicyType="Base Policy"`, `PolicyType="Supplemental Policy"`, 1)))
	f.Add([]byte(`<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"><PolicyTypeID>{A244370E-44C9-4C06-B551-F6016E563076}</PolicyTypeID></SiPolicy>`))
	f.Add([]byte("<SiPolicy/>"))
	for _, seed := range publishedSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b, "fuzz.xml")
		if err != nil {
			if p != nil || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("Parse = %v, %v", p, err)
			}
			return
		}
		if p.Format != "sipolicy" {
			return // YAML
		}
		ids := map[string]bool{}
		for _, r := range p.Rules {
			if ids[r.ID] {
				t.Fatalf("duplicate rule id %q", r.ID)
			}
			ids[r.ID] = true
			if p.Type == Supplemental && r.Action == Deny {
				t.Fatalf("supplemental policy kept deny rule %q", r.ID)
			}
		}
		Lint(p)
		policies := []*Policy{p}
		switch p.Type {
		case Supplemental:
			policies = []*Policy{{ID: p.BaseID, Name: "base", Type: Base, Mode: Enforce}, p}
		case AppIDTagging:
			policies = []*Policy{{ID: "base", Name: "base", Type: Base, Mode: Enforce}, p}
		}
		s, err := NewSet(SetOptions{}, policies...)
		if err != nil {
			t.Fatalf("NewSet: %v", err)
		}
		for _, sc := range []Scenario{ScenarioUser, ScenarioKernel} {
			s.Evaluate(Subject{Path: "a/b.exe", Format: FormatPE, Scenario: sc, Signed: true,
				Digests:    Digests{SHA256: h1, AuthenticodeSHA256: h2, AuthenticodeSHA1: s1},
				Attributes: attrs("b.exe", "1.0.0.0"), Signatures: signedBy(t, synthCert("s", "r", h1, oidWindows))})
		}
	})
}

// TestXMLPageHashScenarios: a kernel-mode page-hash rule judges kernel
// files, not boot components, which are judged from event logs that carry
// no first-page hashes (its whole-image companion judges them); a
// whole-image hash rule of the kernel scenario applies to both.
func TestXMLPageHashScenarios(t *testing.T) {
	p := mustParseXML(t, sipDoc(`
  <FileRules>
    <Deny ID="ID_DENY_IMG" FriendlyName="bad.sys Hash Sha256" Hash="`+hx(h2)+`" />
    <Deny ID="ID_DENY_PG" FriendlyName="bad.sys Hash Page Sha256" Hash="`+hx(h3)+`" />
  </FileRules>
`+scenarios(``, `<FileRulesRef><FileRuleRef RuleID="ID_DENY_IMG" /><FileRuleRef RuleID="ID_DENY_PG" /></FileRulesRef>`)))
	if r := ruleByID(t, p, "ID_DENY_PG"); r.Hash == nil || r.Hash.Algorithm != PageSHA256 || !slices.Equal(r.Scenarios, []Scenario{ScenarioKernel}) {
		t.Errorf("page-hash rule: %+v", r)
	}
	if r := ruleByID(t, p, "ID_DENY_IMG"); !slices.Equal(r.Scenarios, []Scenario{ScenarioKernel, ScenarioBoot}) {
		t.Errorf("image hash rule: %+v", r)
	}
	s, err := NewSet(SetOptions{}, p)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Needs("x.sys", FormatPE, ScenarioBoot); n.Digests.Has(PageSHA256) {
		t.Errorf("boot components need %v", n.Digests)
	}
	if n := s.Needs("x.sys", FormatPE, ScenarioKernel); !n.Digests.Has(PageSHA256) {
		t.Errorf("kernel files need %v", n.Digests)
	}
}

// TestXMLUnnamedPageHashDeny: Windows reads no FriendlyName, so a SiPolicy
// deny hash rule not named a page hash (Microsoft's recommended block list
// names many "Powershell N", whole-image and first-page hashes alike)
// denies the file whose first-page hash it holds, as well as the file
// whose image hash it holds; an allow so named admits by the image hash
// only. Scripts and boot components, which have no first-page hash, are
// not asked for one.
func TestXMLUnnamedPageHashDeny(t *testing.T) {
	p := mustParseXML(t, sipDoc(`
  <FileRules>
    <Deny ID="ID_DENY_D_1" FriendlyName="Powershell 1" Hash="`+hx(p256)+`" />
    <Deny ID="ID_DENY_D_2" FriendlyName="Powershell 2" Hash="`+hx(bytes.Repeat([]byte{0x77}, 20))+`" />
    <Allow ID="ID_ALLOW_A" FriendlyName="a" Hash="`+hx(h5)+`" />
  </FileRules>
`+scenarios(`<FileRulesRef><FileRuleRef RuleID="ID_DENY_D_1" /><FileRuleRef RuleID="ID_DENY_D_2" /><FileRuleRef RuleID="ID_ALLOW_A" /></FileRulesRef>`,
		`<FileRulesRef><FileRuleRef RuleID="ID_DENY_D_1" /></FileRulesRef>`)))
	s, err := NewSet(SetOptions{}, p)
	if err != nil {
		t.Fatal(err)
	}
	sub := func(d Digests) Subject {
		return Subject{Path: "bin/x.dll", Format: FormatPE, Scenario: ScenarioUser, Digests: d}
	}
	for _, tt := range []struct {
		name string
		sub  Subject
		rule string
	}{
		{"first-page SHA256", sub(Digests{AuthenticodeSHA256: h5, AuthenticodeSHA1: s1, PageSHA256: p256, PageSHA1: p1}), "ID_DENY_D_1"},
		{"first-page SHA1", sub(Digests{AuthenticodeSHA256: h5, AuthenticodeSHA1: s1, PageSHA256: h3, PageSHA1: bytes.Repeat([]byte{0x77}, 20)}), "ID_DENY_D_2"},
		{"image hash", sub(Digests{AuthenticodeSHA256: p256, AuthenticodeSHA1: s1, PageSHA256: h3, PageSHA1: p1}), "ID_DENY_D_1"},
	} {
		if d := s.Evaluate(tt.sub); d.Kind != KindDenied || !strings.HasPrefix(d.Rule, tt.rule) {
			t.Errorf("%s: %s/%s rule %q (%s), want denied by %s", tt.name, d.Verdict, d.Kind, d.Rule, d.Reason, tt.rule)
		}
	}
	if d := s.Evaluate(sub(Digests{AuthenticodeSHA256: h3, AuthenticodeSHA1: s1, PageSHA256: h5, PageSHA1: p1})); d.Verdict != Blocked || d.Rule != "" {
		t.Errorf("an allow not named a page hash admits by the first page: %+v", d)
	}
	if n := s.Needs("bin/x.dll", FormatPE, ScenarioUser); !n.Digests.Has(PageSHA256) || !n.Digests.Has(PageSHA1) {
		t.Errorf("PE files need %v", n.Digests)
	}
	if n := s.Needs("x.ps1", FormatPowerShell, ScenarioUser); n.Digests.Has(PageSHA256) || n.Digests.Has(PageSHA1) {
		t.Errorf("scripts need %v", n.Digests)
	}
	if n := s.Needs("x.efi", FormatPE, ScenarioBoot); n.Digests.Has(PageSHA256) {
		t.Errorf("boot components need %v", n.Digests)
	}
}
