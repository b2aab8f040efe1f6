package triage

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing/manifest"
)

// signedManifest returns a verified manifest listing name with the
// SHA-256 sum.
func signedManifest(t *testing.T, result manifest.Result, name string, sum []byte) Manifest {
	t.Helper()
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing", KeyType: testca.ECDSAP256})
	pred := manifest.Predicate{
		TimeVerified:       testca.Epoch,
		ResourceURI:        "https://ci.example/builds/42",
		Policy:             manifest.ResourceDescriptor{Name: "release", Digest: manifest.DigestSet{"sha256": strings.Repeat("ab", 32)}},
		VerificationResult: result,
	}
	if result == manifest.Passed {
		pred.VerifiedLevels = []string{manifest.PolicyLevel("release")}
	}
	data, err := manifest.New([]manifest.Subject{manifest.SHA256Subject(name, sum)}, pred, leaf.Key, []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert})
	if err != nil {
		t.Fatal(err)
	}
	st, err := manifest.Verify(data, manifest.VerifyOptions{Roots: []*x509.Certificate{ca.Root.Cert}, Now: testca.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	return Manifest{Source: "build-manifest.json", Statement: st}
}

func policyFile(t *testing.T, doc string) PolicyFile {
	t.Helper()
	p, err := cipolicy.Parse([]byte(doc), "current.policy")
	if err != nil {
		t.Fatal(err)
	}
	return PolicyFile{Policy: p, InfoID: PolicyInfoID([]byte(doc))}
}

// sipolicy is a SiPolicy XML base policy with testGUID, PolicyInfo Name
// "Contoso" and Id infoID, allowing by authenticode hash and by a signer
// at the issuer level (TBS issuerTBS).
func sipolicy(infoID string, hash, issuerTBS []byte) string {
	return `<?xml version="1.0" encoding="utf-8"?>
<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy" PolicyType="Base Policy">
  <VersionEx>2.0.0.0</VersionEx>
  <PolicyID>` + testGUID + `</PolicyID>
  <BasePolicyID>` + testGUID + `</BasePolicyID>
  <PlatformID>{2E07F7E4-194C-4D20-B7C9-6F44A6C5A234}</PlatformID>
  <Rules><Rule><Option>Enabled:UMCI</Option></Rule></Rules>
  <EKUs />
  <FileRules>
    <Allow ID="ID_ALLOW_TOOL" FriendlyName="tool.exe Hash Sha256" Hash="` + hex.EncodeToString(hash) + `" />
  </FileRules>
  <Signers>
    <Signer ID="ID_SIGNER_VENDOR" Name="Vendor CA">
      <CertRoot Type="TBS" Value="` + hex.EncodeToString(issuerTBS) + `" />
      <CertPublisher Value="Vendor Signing" />
    </Signer>
  </Signers>
  <SigningScenarios>
    <SigningScenario Value="131" ID="ID_SIGNINGSCENARIO_KMCI" FriendlyName="kernel"><ProductSigners /></SigningScenario>
    <SigningScenario Value="12" ID="ID_SIGNINGSCENARIO_UMCI" FriendlyName="user">
      <ProductSigners>
        <AllowedSigners><AllowedSigner SignerId="ID_SIGNER_VENDOR" /></AllowedSigners>
        <FileRulesRef><FileRuleRef RuleID="ID_ALLOW_TOOL" /></FileRulesRef>
      </ProductSigners>
    </SigningScenario>
  </SigningScenarios>
  <UpdatePolicySigners />
  <CiSigners />
  <HvciOptions>0</HvciOptions>
  <Settings>
    <Setting Provider="PolicyInfo" Key="Information" ValueName="Name"><Value><String>Contoso</String></Value></Setting>
    <Setting Provider="PolicyInfo" Key="Information" ValueName="Id"><Value><String>` + infoID + `</String></Value></Setting>
  </Settings>
</SiPolicy>
`
}

func oneEvent(t *testing.T, specs ...spec) *Event {
	t.Helper()
	l, err := Parse(xmlExport(specs...), "events.xml")
	if err != nil || len(l.Errors) != 0 || len(l.Events) != 1 {
		t.Fatalf("%v %v", err, l)
	}
	return l.Events[0]
}

func TestTriage(t *testing.T) {
	file := `\Device\HarddiskVolume3\Program Files\Contoso\tool.exe`
	vendorCA := repeat(0x77, 32)
	current := policyFile(t, sipolicy("2026-06-01", auth256, vendorCA))
	built := signedManifest(t, manifest.Passed, "bin/tool.exe", flat256)

	blk := blockSpec(IDBlock, file, auth1, auth256, flat1, flat256, testGUID)
	other := blockSpec(IDBlock, file, repeat(9, 20), repeat(9, 32), repeat(9, 20), repeat(9, 32), testGUID)
	vendor := blockSpec(IDAudit, file, repeat(8, 20), repeat(8, 32), repeat(8, 20), repeat(8, 32), testGUID)
	vendorSig := sigSpec(vendor.activity, vendor.computer, 1, 1, "Vendor Signing", "Vendor CA", repeat(0x66, 32), vendorCA)
	tampered := sigSpec(vendor.activity, vendor.computer, 1, 1, "Vendor Signing", "Vendor CA", repeat(0x66, 32), vendorCA)
	for i := range tampered.data {
		if tampered.data[i].name == "VerificationError" {
			tampered.data[i].value = 1 // the file has an invalid hash
		}
	}
	forgedName := sigSpec(vendor.activity, vendor.computer, 1, 1, "Someone Else", "Vendor CA", repeat(0x66, 32), vendorCA)

	cases := []struct {
		name     string
		opts     Options
		event    *Event
		class    Class
		evidence Evidence
		match    string
		reason   string
	}{
		{"built, policy stale", Options{Manifests: []Manifest{built}, Policies: []PolicyFile{current}}, oneEvent(t, blk), ClassBuilt, EvidenceHash, "same-guid-other-id", "build-manifest.json lists it as bin/tool.exe"},
		{"built, no policy given", Options{Manifests: []Manifest{built}}, oneEvent(t, blk), ClassBuilt, "", "", "that policy is wrong or stale"},
		{"old policy by hash", Options{Policies: []PolicyFile{current}}, oneEvent(t, blk), ClassOldPolicy, EvidenceHash, "same-guid-other-id", "the host runs an older policy"},
		{"old policy by the reported signer", Options{Policies: []PolicyFile{current}}, oneEvent(t, vendor, vendorSig), ClassOldPolicy, EvidenceSigner, "same-guid-other-id", "weaker than a verified signature"},
		{"signer of a signature that did not verify", Options{Policies: []PolicyFile{current}}, oneEvent(t, vendor, tampered), ClassUnknown, "", "same-guid-other-id", "did not verify on the host (VerificationError 1)"},
		{"signer with another publisher name", Options{Policies: []PolicyFile{current}}, oneEvent(t, vendor, forgedName), ClassUnknown, "", "same-guid-other-id", "investigate"},
		{"signer rule, no 3089 event", Options{Policies: []PolicyFile{current}}, oneEvent(t, vendor), ClassUnknown, "", "same-guid-other-id", "no 3089 signature event"},
		{"unknown", Options{Manifests: []Manifest{built}, Policies: []PolicyFile{current}}, oneEvent(t, other), ClassUnknown, "", "same-guid-other-id", "no build manifest lists"},
		{"allowed, but another policy blocked", Options{Policies: []PolicyFile{current}}, oneEvent(t, func() spec {
			s := blk
			s.data = append([]kv(nil), blk.data...)
			for i := range s.data {
				switch s.data[i].name {
				case "PolicyGUID":
					s.data[i].value = "{D2BDA982-CCF6-4344-AC5B-0B44427B6816}"
				case "PolicyName":
					s.data[i].value = "Microsoft Windows Driver Policy"
				}
			}
			return s
		}()), ClassUnknown, EvidenceHash, "none", "none of them"},
		{"same policy version", Options{Policies: []PolicyFile{policyFile(t, sipolicy("2026-05-01", auth256, vendorCA))}}, oneEvent(t, other), ClassUnknown, "", "same-guid-same-id", "investigate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, err := New(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			f := tr.Triage(c.event)
			if f.Class != c.class {
				t.Fatalf("class %s, want %s: %s", f.Class, c.class, f.Reason)
			}
			if !strings.Contains(f.Reason, c.reason) {
				t.Errorf("reason %q lacks %q", f.Reason, c.reason)
			}
			if c.evidence != "" && (f.Current == nil || f.Current.Evidence != c.evidence) {
				t.Errorf("current %+v, want evidence %s", f.Current, c.evidence)
			}
			if c.match != "" && (len(f.Policies) != 1 || f.Policies[0].Match != c.match) {
				t.Errorf("policy match %+v, want %s", f.Policies, c.match)
			}
		})
	}
}

func TestDeniedIsUnknown(t *testing.T) {
	doc := "format: csv-policy/v1\nname: current\nversion: 3.0.0\nmode: enforce\nrules:\n" +
		"  - id: deny-tool\n    action: deny\n    authenticode_sha256: " + hex.EncodeToString(auth256) + "\n" +
		"  - id: allow-tool\n    action: allow\n    sha256: " + hex.EncodeToString(flat256) + "\n"
	tr, err := New(Options{Policies: []PolicyFile{policyFile(t, doc)}})
	if err != nil {
		t.Fatal(err)
	}
	f := tr.Triage(oneEvent(t, blockSpec(IDBlock, `\??\C:\t.exe`, auth1, auth256, flat1, flat256, testGUID)))
	if f.Class != ClassUnknown || !strings.Contains(f.Reason, "deny-tool") {
		t.Errorf("%s: %s", f.Class, f.Reason)
	}
}

func TestManifestMustBeVerifiedAndPassed(t *testing.T) {
	if _, err := New(Options{Manifests: []Manifest{{Source: "m", Statement: &manifest.Statement{}}}}); !errors.Is(err, ErrUnverified) {
		t.Errorf("unverified statement: %v", err)
	}
	failed := signedManifest(t, manifest.Failed, "a.exe", flat256)
	if _, err := New(Options{Manifests: []Manifest{failed}}); !errors.Is(err, ErrUnverified) {
		t.Errorf("FAILED manifest: %v", err)
	}
}

func TestTriageLogOrder(t *testing.T) {
	built := signedManifest(t, manifest.Passed, "bin/tool.exe", flat256)
	tr, err := New(Options{Manifests: []Manifest{built}})
	if err != nil {
		t.Fatal(err)
	}
	known := blockSpec(IDBlock, `\??\C:\a.exe`, auth1, auth256, flat1, flat256, testGUID)
	audit := blockSpec(IDAudit, `\??\C:\b.exe`, auth1, auth256, flat1, repeat(5, 32), testGUID)
	audit.activity = "{00000000-0000-0000-0000-000000000001}"
	block := blockSpec(IDBlock, `\??\C:\c.exe`, auth1, auth256, flat1, repeat(6, 32), testGUID)
	block.activity = "{00000000-0000-0000-0000-000000000002}"
	data := string(xmlExport(known, audit, block)) + "<Event"
	l, err := Parse([]byte(data), "x.xml")
	if err != nil {
		t.Fatal(err)
	}
	fs := tr.TriageLog(l)
	var got []string
	for _, f := range fs {
		s := string(f.Class)
		if f.Event != nil {
			s += ":" + f.Event.Path
		}
		got = append(got, s)
	}
	want := []string{"error", `unknown:C:\c.exe`, `unknown:C:\b.exe`, `built:C:\a.exe`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("order %v, want %v", got, want)
	}
}
