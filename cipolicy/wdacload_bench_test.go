package cipolicy

import (
	"fmt"
	"strings"
	"testing"
)

// bigSiPolicy is a SiPolicy document of hashes file rules (Allow with a
// SHA256 Hash, as New-CIPolicy -Level Hash writes them) and signers signers
// (CertRoot TBS with a CertPublisher), every one referenced from the
// user-mode signing scenario, as the WDAC tools lay a policy out.
func bigSiPolicy(hashes, signers int) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>
<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy" PolicyType="Base Policy">
  <VersionEx>10.0.0.0</VersionEx>
  <PolicyID>{A244370E-44C9-4C06-B551-F6016E563076}</PolicyID>
  <BasePolicyID>{A244370E-44C9-4C06-B551-F6016E563076}</BasePolicyID>
  <PlatformID>{2E07F7E4-194C-4D20-B7C9-6F44A6C5A234}</PlatformID>
  <Rules>
    <Rule>
      <Option>Enabled:Unsigned System Integrity Policy</Option>
    </Rule>
  </Rules>
  <EKUs />
  <FileRules>
`)
	for i := range hashes {
		fmt.Fprintf(&b, "    <Allow ID=\"ID_ALLOW_A_%X\" FriendlyName=\"dir%d\\file%d.exe Hash Sha256\" Hash=\"%064X\" />\n", i, i/100, i, uint64(i)*2654435761)
	}
	b.WriteString("  </FileRules>\n  <Signers>\n")
	for i := range signers {
		fmt.Fprintf(&b, "    <Signer ID=\"ID_SIGNER_S_%X\" Name=\"Contoso Code Signing CA %d\">\n      <CertRoot Type=\"TBS\" Value=\"%064X\" />\n      <CertPublisher Value=\"Contoso Product %d\" />\n    </Signer>\n",
			i, i, uint64(i)*0x9E3779B97F4A7C15, i)
	}
	b.WriteString(`  </Signers>
  <SigningScenarios>
    <SigningScenario Value="12" ID="ID_SIGNINGSCENARIO_WINDOWS" FriendlyName="Auto generated policy">
      <ProductSigners>
        <AllowedSigners>
`)
	for i := range signers {
		fmt.Fprintf(&b, "          <AllowedSigner SignerId=\"ID_SIGNER_S_%X\" />\n", i)
	}
	b.WriteString("        </AllowedSigners>\n        <FileRulesRef>\n")
	for i := range hashes {
		fmt.Fprintf(&b, "          <FileRuleRef RuleID=\"ID_ALLOW_A_%X\" />\n", i)
	}
	b.WriteString(`        </FileRulesRef>
      </ProductSigners>
    </SigningScenario>
  </SigningScenarios>
  <UpdatePolicySigners />
  <CiSigners />
  <HvciOptions>0</HvciOptions>
</SiPolicy>
`)
	return []byte(b.String())
}

// BenchmarkLoadSiPolicy100k loads and indexes a 100,000-rule SiPolicy
// (90,000 hash rules and 10,000 signers, about 17 MB of XML), as csv
// validate does before it judges anything: the target is under
// 0.5 s, in memory proportional to the document.
func BenchmarkLoadSiPolicy100k(b *testing.B) {
	src := bigSiPolicy(90_000, 10_000)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := Parse(src, "big.xml")
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Rules) != 100_000 {
			b.Fatalf("%d rules, want 100000", len(p.Rules))
		}
		if _, err := NewSet(SetOptions{}, p); err != nil {
			b.Fatal(err)
		}
	}
}
