package cipolicy

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/codesignval/csv/internal/sigtest"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
)

// pki is a test PKI as the facts package signing establishes them.
type pki struct {
	ca                           *testca.CA
	root, inter, leaf, ecdsaLeaf *signing.Certificate
	expired, lifetime, rogue     *signing.Certificate
	tsa, tls, noEKU              *signing.Certificate
	// softTSA and codeTSA are not TSAs as RFC 3161 wants: the
	// timeStamping EKU not critical, or beside codeSigning.
	softTSA, codeTSA *signing.Certificate
	t                testing.TB
}

func cert(t *testing.T, c *x509.Certificate) *signing.Certificate {
	t.Helper()
	sc, err := signing.ParseCertificate(c.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	ca := testca.New(t)
	p := &pki{t: t, ca: ca, root: cert(t, ca.Root.Cert), inter: cert(t, ca.Intermediate.Cert)}
	p.leaf = cert(t, ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing"}).Cert)
	p.ecdsaLeaf = cert(t, ca.Leaf(t, testca.LeafOptions{CommonName: "ECDSA Signing", KeyType: testca.ECDSAP256}).Cert)
	// Valid for six months a year ago, inside the CA's validity.
	p.expired = cert(t, ca.Leaf(t, testca.LeafOptions{CommonName: "Old Signing",
		NotBefore: testca.Epoch.AddDate(-1, 0, 0), NotAfter: testca.Epoch.AddDate(0, -6, 0)}).Cert)
	p.lifetime = cert(t, ca.Leaf(t, testca.LeafOptions{CommonName: "Lifetime Signing",
		NotBefore: testca.Epoch.AddDate(-3, 0, 0), NotAfter: testca.Epoch.AddDate(-1, 0, 0),
		UnknownEKUs: [][]int{{1, 3, 6, 1, 4, 1, 311, 10, 3, 13}}}).Cert)
	p.rogue = cert(t, ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing", SelfSigned: true}).Cert)
	p.tsa = cert(t, ca.TSA(t).Cert)
	p.softTSA = cert(t, ca.Leaf(t, testca.LeafOptions{CommonName: "Soft TSA", EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}}).Cert)
	p.codeTSA = cert(t, ca.Leaf(t, testca.LeafOptions{CommonName: "Code TSA", EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping, x509.ExtKeyUsageCodeSigning}}).Cert)
	p.tls = cert(t, ca.Leaf(t, testca.LeafOptions{CommonName: "www.example.com", EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}).Cert)
	p.noEKU = cert(t, ca.Leaf(t, testca.LeafOptions{CommonName: "No EKU", EKUs: []x509.ExtKeyUsage{}}).Cert)
	return p
}

// sig makes a verified signature whose chain runs from leaf through the CA.
func (p *pki) sig(leaf *signing.Certificate, alg string) *signing.Signature {
	return sigtest.Verified(p.t, p.unverifiedSig(leaf, alg))
}

// unverifiedSig is sig, not verified.
func (p *pki) unverifiedSig(leaf *signing.Certificate, alg string) *signing.Signature {
	chain := []*signing.Certificate{leaf}
	if leaf.IssuedBy(p.inter) {
		chain = append(chain, p.inter, p.root)
	}
	return &signing.Signature{Format: "authenticode", SignatureAlgorithm: alg, Chains: [][]*signing.Certificate{chain}}
}

func signedPE(sigs ...*signing.Signature) Subject {
	return Subject{Path: "bin/app.exe", Format: FormatPE, Scenario: ScenarioUser, Signed: len(sigs) > 0, Signatures: sigs,
		Digests: Digests{AuthenticodeSHA256: h1}}
}

func signerRule(id, action, body string) string {
	return fmt.Sprintf("{id: %s, action: %s, signer: {%s}}", id, action, body)
}

func tbs(c *signing.Certificate) string { return c.TBSHashHex() }

func TestSignerRules(t *testing.T) {
	p := newPKI(t)
	twoCNs := cert(t, p.ca.Leaf(t, testca.LeafOptions{CommonNames: []string{"Evil", "Build Signing"}}).Cert)
	now := func() time.Time { return testca.Epoch }
	// The expired signer countersigns itself with a time inside its old
	// validity: its chain holds a trusted authority (the root), but it is no
	// timestamping certificate.
	selfTimestamped := func() *signing.Signature {
		s := p.sig(p.expired, "RSA")
		s.Timestamp = sigtest.VerifiedTimestamp(t, &signing.Timestamp{Kind: "rfc3161", Time: testca.Epoch.AddDate(0, -9, 0),
			Chains: [][]*signing.Certificate{{p.expired, p.inter, p.root}}})
		return s
	}
	futureTimestamp := func() *signing.Signature {
		s := p.sig(p.leaf, "RSA")
		s.Timestamp = sigtest.VerifiedTimestamp(t, &signing.Timestamp{Kind: "rfc3161", Time: testca.Epoch.AddDate(1, 0, 0),
			Chains: [][]*signing.Certificate{{p.tsa, p.inter, p.root}}})
		return s
	}
	expiredStampedBy := func(tsa *signing.Certificate) *signing.Signature {
		s := p.sig(p.expired, "RSA")
		s.Timestamp = sigtest.VerifiedTimestamp(t, &signing.Timestamp{Kind: "rfc3161", Time: testca.Epoch.AddDate(0, -9, 0),
			Chains: [][]*signing.Certificate{{tsa, p.inter, p.root}}})
		return s
	}
	expiredWithTimestamp := func(trusted bool) *signing.Signature {
		if !trusted {
			return expiredStampedBy(p.rogue)
		}
		return expiredStampedBy(p.tsa)
	}
	if !trustedTSAIsMatchedByChain(p) {
		t.Fatal("test PKI: the TSA is not issued by the intermediate")
	}
	unverified := p.unverifiedSig(p.leaf, "RSA")
	unverified.Problem = errors.New("image digest mismatch")

	tests := []struct {
		name    string
		header  string
		rules   []string
		sub     Subject
		verdict Verdict
		kind    ReasonKind
		rule    string
		sig     int
		reason  string // substring of the reason
	}{
		{"issuer level", "", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter)+", level: issuer")},
			signedPE(p.sig(p.leaf, "RSA")), Allowed, KindAllowedBySigner, "pca", 0, `chains to "Test Issuing CA"`},
		{"leaf level does not match the issuer", "", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter)+", level: leaf")},
			signedPE(p.sig(p.leaf, "RSA")), Blocked, KindNotAllowed, "", -1, "none by a signer a rule allows"},
		{"root level", "", []string{signerRule("root", "allow", "tbs: "+tbs(p.root)+", level: root")},
			signedPE(p.sig(p.leaf, "RSA")), Allowed, KindAllowedBySigner, "root", 0, ""},
		{"any level", "", []string{signerRule("any", "allow", "tbs: "+tbs(p.root))},
			signedPE(p.sig(p.leaf, "RSA")), Allowed, KindAllowedBySigner, "any", 0, ""},
		{"rogue self-signed with the same name", "", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(p.sig(p.rogue, "RSA")), Blocked, KindNotAllowed, "", -1, ""},
		{"unverified signature never matches", "", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(unverified), Blocked, KindNotAllowed, "", -1, "signature 0 does not verify: image digest mismatch"},
		{"publisher", "", []string{signerRule("pub", "allow", "tbs: "+tbs(p.inter)+", publisher: Build Signing")},
			signedPE(p.sig(p.leaf, "RSA")), Allowed, KindAllowedBySigner, "pub", 0, ""},
		{"wrong publisher", "", []string{signerRule("pub", "allow", "tbs: "+tbs(p.inter)+", publisher: Someone Else")},
			signedPE(p.sig(p.leaf, "RSA")), Blocked, KindNotAllowed, "", -1, `publisher "Build Signing" is not "Someone Else"`},
		// "CN=Evil, CN=Build Signing": crypto/x509 reads the last common
		// name, Windows may read the first.
		{"an allow publisher on a subject with two common names", "", []string{signerRule("pub", "allow", "tbs: "+tbs(p.inter)+", publisher: Build Signing")},
			signedPE(p.sig(twoCNs, "RSA")), Blocked, KindNotAllowed, "", -1, `publisher has 2 common names "Evil", "Build Signing"`},
		{"a deny publisher names any common name", "", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter)), signerRule("evil", "deny", "tbs: "+tbs(p.inter)+", publisher: Evil")},
			signedPE(p.sig(twoCNs, "RSA")), Blocked, KindDenied, "evil", 0, ""},
		{"a deny publisher ignores case", "", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter)), signerRule("build", "deny", "tbs: "+tbs(p.inter)+", publisher: BUILD SIGNING")},
			signedPE(p.sig(p.leaf, "RSA")), Blocked, KindDenied, "build", 0, ""},
		{"an allow publisher does not", "", []string{signerRule("pub", "allow", "tbs: "+tbs(p.inter)+", publisher: BUILD SIGNING")},
			signedPE(p.sig(p.leaf, "RSA")), Blocked, KindNotAllowed, "", -1, `publisher "Build Signing" is not "BUILD SIGNING"`},
		{"issuer name", "", []string{signerRule("iss", "allow", "tbs: "+tbs(p.root)+", issuer: Test Issuing CA")},
			signedPE(p.sig(p.leaf, "RSA")), Allowed, KindAllowedBySigner, "iss", 0, ""},
		{"required EKU present", "", []string{signerRule("eku", "allow", "tbs: "+tbs(p.inter)+", ekus: [1.3.6.1.5.5.7.3.3]")},
			signedPE(p.sig(p.leaf, "RSA")), Allowed, KindAllowedBySigner, "eku", 0, ""},
		{"required EKU missing", "", []string{signerRule("eku", "allow", "tbs: "+tbs(p.inter)+", ekus: [1.3.6.1.4.1.311.10.3.6]")},
			signedPE(p.sig(p.leaf, "RSA")), Blocked, KindNotAllowed, "", -1, "lacks EKU 1.3.6.1.4.1.311.10.3.6"},
		{"ECDSA matches by default", "", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(p.sig(p.ecdsaLeaf, "ECDSA")), Allowed, KindAllowedBySigner, "pca", 0, ""},
		{"ECDSA never matches under WDAC", "wdac_compatible: true", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(p.sig(p.ecdsaLeaf, "ECDSA")), Blocked, KindNotAllowed, "", -1, "ECDSA signatures never match"},
		{"expired is refused by default", "", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(p.sig(p.expired, "RSA")), Blocked, KindNotAllowed, "", -1, `"Old Signing" (valid 2025-06-01 to 2025-12-01) is not valid now`},
		{"expired, timestamped by a trusted TSA", "timestamp_authorities: [{tbs: " + tbs(p.tsa) + "}]", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(expiredWithTimestamp(true)), Allowed, KindAllowedBySigner, "pca", 0, ""},
		{"expired, timestamped by an untrusted TSA", "timestamp_authorities: [{tbs: " + tbs(p.tsa) + "}]", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(expiredWithTimestamp(false)), Blocked, KindNotAllowed, "", -1, "is not valid now (the signature's timestamp was ignored: its TSA is not among the policy's timestamp_authorities)"},
		{"expired, timestamped, no TSAs in the policy", "", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(expiredWithTimestamp(true)), Blocked, KindNotAllowed, "", -1, "timestamp was ignored: the policy names no timestamp_authorities"},
		{"expired, timestamp does not verify", "timestamp_authorities: [{tbs: " + tbs(p.tsa) + "}]", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			func() Subject {
				s := expiredWithTimestamp(true)
				s.Timestamp = &signing.Timestamp{Kind: s.Timestamp.Kind, Time: s.Timestamp.Time, Chains: s.Timestamp.Chains, Problem: errors.New("imprint mismatch")}
				return signedPE(s)
			}(), Blocked, KindNotAllowed, "", -1, "timestamp was ignored: it does not verify: imprint mismatch"},
		// One rule for every timestamp (timestamp.CheckCertificate):
		// a TSA certificate whose timeStamping EKU is not critical, or sits
		// beside codeSigning, vouches for no time, even when the policy
		// lists its issuer.
		{"a TSA whose EKU is not critical is not trusted", "timestamp_authorities: [{tbs: " + tbs(p.inter) + "}]", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(expiredStampedBy(p.softTSA)), Blocked, KindNotAllowed, "", -1, "is not valid now"},
		{"a TSA that may also sign code is not trusted", "timestamp_authorities: [{tbs: " + tbs(p.inter) + "}]", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(expiredStampedBy(p.codeTSA)), Blocked, KindNotAllowed, "", -1, "is not valid now"},
		{"a proper TSA under the listed issuer is trusted", "timestamp_authorities: [{tbs: " + tbs(p.inter) + "}]", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(expiredStampedBy(p.tsa)), Allowed, KindAllowedBySigner, "pca", 0, ""},
		{"a self-made timestamp does not backdate", "timestamp_authorities: [{tbs: " + tbs(p.root) + "}]", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(selfTimestamped()), Blocked, KindNotAllowed, "", -1, `timestamp was ignored: its signer "Old Signing" is not a timestamping certificate`},
		{"a timestamp from the future is not used", "timestamp_authorities: [{tbs: " + tbs(p.tsa) + "}]", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(futureTimestamp()), Allowed, KindAllowedBySigner, "pca", 0, ""},
		{"key_types refuses ECDSA", "key_types: [rsa]", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(p.sig(p.ecdsaLeaf, "ECDSA")), Blocked, KindNotAllowed, "", -1, "ECDSA signature: the policy accepts key types rsa"},
		{"key_types admits what it lists", "key_types: [ecdsa]", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(p.sig(p.ecdsaLeaf, "ECDSA")), Allowed, KindAllowedBySigner, "pca", 0, ""},
		{"Ed25519 never matches under WDAC", "wdac_compatible: true", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(p.sig(p.leaf, "Ed25519")), Blocked, KindNotAllowed, "", -1, "Ed25519 signatures never match a signer rule under WDAC compatibility"},
		{"digest_algorithms refuses a SHA-1 signature", "digest_algorithms: [sha256, sha384]", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(func() *signing.Signature { s := p.sig(p.leaf, "RSA"); s.DigestAlgorithm = crypto.SHA1; return s }()), Blocked, KindNotAllowed, "", -1,
			"signature over a sha1 digest: the policy accepts digest algorithms sha256, sha384"},
		{"digest_algorithms admits what it lists", "digest_algorithms: [sha256]", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(func() *signing.Signature { s := p.sig(p.leaf, "RSA"); s.DigestAlgorithm = crypto.SHA256; return s }()), Allowed, KindAllowedBySigner, "pca", 0, ""},
		// A SHA-256 image hash whose signer signs through SHA-1
		// (sha1WithRSAEncryption, or a SHA-1 SignerInfo digest): a SHA-1
		// collision forges it all the same.
		{"digest_algorithms refuses a signer digesting with SHA-1", "digest_algorithms: [sha256]", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(func() *signing.Signature {
				s := p.sig(p.leaf, "RSA")
				s.DigestAlgorithm, s.SignerDigests = crypto.SHA256, []crypto.Hash{crypto.SHA1}
				return s
			}()), Blocked, KindNotAllowed, "", -1,
			"signature over a sha256 digest, whose signer digests with sha1: the policy accepts digest algorithms sha256"},
		{"digest_algorithms admits a signer digest it lists", "digest_algorithms: [sha256, sha384]", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(func() *signing.Signature {
				s := p.sig(p.leaf, "RSA")
				s.DigestAlgorithm, s.SignerDigests = crypto.SHA256, []crypto.Hash{crypto.SHA384}
				return s
			}()), Allowed, KindAllowedBySigner, "pca", 0, ""},
		{"a deny matches a refused key type", "key_types: [rsa]", []string{"{id: all, action: allow, all: true}", signerRule("leaked", "deny", "tbs: "+tbs(p.ecdsaLeaf)+", level: leaf")},
			signedPE(p.sig(p.ecdsaLeaf, "ECDSA")), Blocked, KindDenied, "leaked", 0, ""},
		{"digest_algorithms refuses a SHA-1 hash rule", "digest_algorithms: [sha256]", []string{fmt.Sprintf("{id: h, action: allow, authenticode_sha1: %s}", hx(s1))},
			func() Subject { s := signedPE(); s.Digests.Set(AuthenticodeSHA1, s1); return s }(), Blocked, KindUnsigned, "", -1, "its authenticode_sha1 digest matches, but the policy accepts digest algorithms sha256"},
		{"a SHA-1 hash deny still denies", "digest_algorithms: [sha256]", []string{"{id: all, action: allow, all: true}", fmt.Sprintf("{id: h, action: deny, authenticode_sha1: %s}", hx(s1))},
			func() Subject { s := signedPE(); s.Digests.Set(AuthenticodeSHA1, s1); return s }(), Blocked, KindDenied, "h", -1, ""},
		{"expired is accepted under WDAC", "wdac_compatible: true", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(p.sig(p.expired, "RSA")), Allowed, KindAllowedBySigner, "pca", 0, ""},
		{"expired lifetime-signing is refused under WDAC", "wdac_compatible: true", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(p.sig(p.lifetime, "RSA")), Blocked, KindNotAllowed, "", -1, "Lifetime Signing EKU"},
		{"deny signer wins over allow hash", "", []string{
			fmt.Sprintf("{id: h, action: allow, authenticode_sha256: %s}", hx(h1)),
			signerRule("leaked", "deny", "tbs: "+tbs(p.leaf)+", level: leaf")},
			signedPE(p.sig(p.leaf, "RSA")), Blocked, KindDenied, "leaked", 0, "denied by rule \"leaked\": signature 0"},
		{"deny matches an expired leaked certificate", "", []string{"{id: all, action: allow, all: true}", signerRule("leaked", "deny", "tbs: "+tbs(p.expired)+", level: leaf")},
			signedPE(p.sig(p.expired, "RSA")), Blocked, KindDenied, "leaked", 0, ""},
		{"deny matches ECDSA under WDAC", "wdac_compatible: true", []string{"{id: all, action: allow, all: true}", signerRule("leaked", "deny", "tbs: "+tbs(p.ecdsaLeaf)+", level: leaf")},
			signedPE(p.sig(p.ecdsaLeaf, "ECDSA")), Blocked, KindDenied, "leaked", 0, ""},
		{"a TLS certificate does not sign code", "", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(p.sig(p.tls, "RSA")), Blocked, KindNotAllowed, "", -1, `"www.example.com" is not for code signing`},
		{"a certificate without EKUs signs code", "", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(p.sig(p.noEKU, "RSA")), Allowed, KindAllowedBySigner, "pca", 0, ""},
		{"firmware checks no usage", "", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			func() Subject { s := signedPE(p.sig(p.tls, "RSA")); s.Scenario = ScenarioBoot; return s }(), Allowed, KindAllowedBySigner, "pca", 0, ""},
		{"any good signature of several admits", "", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			signedPE(p.sig(p.rogue, "RSA"), p.sig(p.leaf, "RSA")), Allowed, KindAllowedBySigner, "pca", 1, "signature 1"},
		{"a deny on any signature blocks", "", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter)), signerRule("rogue", "deny", "tbs: "+tbs(p.rogue))},
			signedPE(p.sig(p.leaf, "RSA"), p.sig(p.rogue, "RSA")), Blocked, KindDenied, "rogue", 1, ""},
		{"exception lifts the allow", "", []string{"{id: ms, action: allow, signer: {tbs: " + tbs(p.inter) + "}, except: [{file: {name: CDB.exe}}]}"},
			func() Subject {
				s := signedPE(p.sig(p.leaf, "RSA"))
				s.Attributes = &FileAttributes{OriginalFileName: "cdb.EXE"}
				return s
			}(),
			Blocked, KindNotAllowed, "", -1, `rule "ms" does not apply: exception file original_file_name "CDB.exe" matches`},
		{"exception does not match other files", "", []string{"{id: ms, action: allow, signer: {tbs: " + tbs(p.inter) + "}, except: [{file: {name: CDB.exe}}]}"},
			func() Subject {
				s := signedPE(p.sig(p.leaf, "RSA"))
				s.Attributes = &FileAttributes{OriginalFileName: "app.exe"}
				return s
			}(),
			Allowed, KindAllowedBySigner, "ms", 0, ""},
		{"signer limited to files", "", []string{signerRule("only-tool", "allow", "tbs: "+tbs(p.inter)+", files: [{name: tool.exe, min_version: 2.0}]")},
			func() Subject {
				s := signedPE(p.sig(p.leaf, "RSA"))
				s.Attributes = &FileAttributes{OriginalFileName: "tool.exe", FileVersion: &Version{1, 9, 0, 0}}
				return s
			}(), Blocked, KindNotAllowed, "", -1, "file attributes do not match"},
		{"file attribute allow rule", "", []string{"{id: f, action: allow, file: {name: tool.exe, min_version: 2.0, max_version: 3.0}}"},
			func() Subject {
				s := signedPE()
				s.Attributes = &FileAttributes{OriginalFileName: "TOOL.EXE", FileVersion: &Version{2, 5, 0, 0}}
				return s
			}(), Allowed, KindAllowedByFile, "f", -1, `file original_file_name "tool.exe" version >= 2.0.0.0 version <= 3.0.0.0`},
		{"signed but the caller did not verify: fail closed", "", []string{signerRule("pca", "allow", "tbs: "+tbs(p.inter))},
			func() Subject { s := signedPE(); s.Signed = true; return s }(), Blocked, KindMalformed, "", -1, "signatures were not computed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := "name: p\nversion: '1'"
			if tt.header != "" {
				header += "\n" + tt.header
			}
			pol := pol(t, header, tt.rules...)
			s, err := NewSet(SetOptions{Now: now}, pol)
			if err != nil {
				t.Fatal(err)
			}
			d := s.Evaluate(tt.sub)
			if d.Verdict != tt.verdict || d.Kind != tt.kind || d.Rule != tt.rule || d.Signature != tt.sig || !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("got %s/%s rule %q sig %d: %s\nwant %s/%s rule %q sig %d, reason containing %q",
					d.Verdict, d.Kind, d.Rule, d.Signature, d.Reason, tt.verdict, tt.kind, tt.rule, tt.sig, tt.reason)
			}
		})
	}
}

func trustedTSAIsMatchedByChain(p *pki) bool { return p.tsa.IssuedBy(p.inter) }

// TestSignaturesTheHostCounts judges files whose trusted signature sits
// where the host of the scenario does not look (signing.Signature.IgnoredBy,
// which signing/authenticode sets from the table's layout): an allow rule
// matches at most what the host counts, and says which signature it had to
// ignore and why; a deny rule matches every signature.
func TestSignaturesTheHostCounts(t *testing.T) {
	p := newPKI(t)
	at := func(index int, path []int, leaf *signing.Certificate) *signing.Signature {
		s := p.sig(leaf, "RSA")
		s.Index, s.Path = index, path
		// As signing/authenticode records it.
		if index > 0 {
			s.Ignore(signing.HostWindows, "Windows judges only the first WIN_CERTIFICATE entry")
		}
		if len(path) > 0 {
			s.Ignore(signing.HostUEFI, "UEFI firmware never reads nested signatures")
		}
		return s
	}
	// The first entry signed by a rogue, the second by the build signer;
	// the build signer nested in the rogue's signature.
	second := []*signing.Signature{at(0, []int{}, p.rogue), at(1, []int{}, p.leaf)}
	nested := []*signing.Signature{at(0, []int{}, p.rogue), at(0, []int{0}, p.leaf)}
	allow := signerRule("pca", "allow", "tbs: "+tbs(p.inter))
	deny := signerRule("leaked", "deny", "tbs: "+tbs(p.leaf)+", level: leaf")
	sub := func(sc Scenario, sigs []*signing.Signature) Subject {
		s := signedPE(sigs...)
		s.Scenario = sc
		return s
	}
	tests := []struct {
		name    string
		rules   []string
		sub     Subject
		verdict Verdict
		kind    ReasonKind
		sig     int
		reason  string
	}{
		{"second entry, user", []string{allow}, sub(ScenarioUser, second), Blocked, KindNotAllowed, -1,
			`signature 1 by "Build Signing" matches, but does not count in scenario user (windows): Windows judges only the first WIN_CERTIFICATE entry`},
		{"second entry, kernel", []string{allow}, sub(ScenarioKernel, second), Blocked, KindNotAllowed, -1, "does not count in scenario kernel (windows)"},
		{"second entry, boot", []string{allow}, sub(ScenarioBoot, second), Allowed, KindAllowedBySigner, 1, ""},
		{"nested, user", []string{allow}, sub(ScenarioUser, nested), Allowed, KindAllowedBySigner, 1, ""},
		{"nested, boot", []string{allow}, sub(ScenarioBoot, nested), Blocked, KindNotAllowed, -1,
			"does not count in scenario boot (uefi): UEFI firmware never reads nested signatures"},
		{"unknown scenario counts what every host counts", []string{allow}, sub("", second), Blocked, KindNotAllowed, -1, "does not count"},
		{"deny matches the second entry, user", []string{allow, deny}, sub(ScenarioUser, second), Blocked, KindDenied, 1, ""},
		{"deny matches the nested signature, boot", []string{allow, deny}, sub(ScenarioBoot, nested), Blocked, KindDenied, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSet(SetOptions{Now: func() time.Time { return testca.Epoch }}, pol(t, "name: p\nversion: '1'", tt.rules...))
			if err != nil {
				t.Fatal(err)
			}
			d := s.Evaluate(tt.sub)
			if d.Verdict != tt.verdict || d.Kind != tt.kind || d.Signature != tt.sig || !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("got %s/%s sig %d: %s\nwant %s/%s sig %d, reason containing %q", d.Verdict, d.Kind, d.Signature, d.Reason, tt.verdict, tt.kind, tt.sig, tt.reason)
			}
		})
	}
}

// TestSignerExceptionsMatchAsDenyRules: an allow rule's exception takes
// files away from it, so, like a deny rule, a signer exception matches
// every signature of the file, whether or not the host counts it, and
// whatever its dates, key type or usage: an exception for a leaked key
// applies to a file that also carries it beside an allowed signature.
func TestSignerExceptionsMatchAsDenyRules(t *testing.T) {
	p := newPKI(t)
	leaked := cert(t, p.ca.Leaf(t, testca.LeafOptions{CommonName: "Leaked Signing"}).Cert)
	at := func(index int, path []int, leaf *signing.Certificate, alg string) *signing.Signature {
		s := p.sig(leaf, alg)
		s.Index, s.Path = index, path
		if index > 0 {
			s.Ignore(signing.HostWindows, "Windows judges only the first WIN_CERTIFICATE entry")
		}
		return s
	}
	except := func(c *signing.Certificate) string {
		return "{id: pca, action: allow, signer: {tbs: " + tbs(p.inter) + "}, except: [{signer: {tbs: " + tbs(c) + ", level: leaf}}]}"
	}
	tests := []struct {
		name   string
		header string
		leaked *signing.Certificate
		sigs   []*signing.Signature
	}{
		{"in the second entry, which Windows does not count", "", leaked,
			[]*signing.Signature{at(0, []int{}, p.leaf, "RSA"), at(1, []int{}, leaked, "RSA")}},
		{"expired, nested", "", p.expired,
			[]*signing.Signature{at(0, []int{}, p.leaf, "RSA"), at(0, []int{0}, p.expired, "RSA")}},
		{"ECDSA under wdac_compatible, nested", "wdac_compatible: true", p.ecdsaLeaf,
			[]*signing.Signature{at(0, []int{}, p.leaf, "RSA"), at(0, []int{0}, p.ecdsaLeaf, "ECDSA")}},
		{"no code signing EKU, nested", "", p.tls,
			[]*signing.Signature{at(0, []int{}, p.leaf, "RSA"), at(0, []int{0}, p.tls, "RSA")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSet(SetOptions{Now: func() time.Time { return testca.Epoch }}, pol(t, "name: p\nversion: '1'\n"+tt.header, except(tt.leaked)))
			if err != nil {
				t.Fatal(err)
			}
			// The control: without the leaked signature the file is allowed.
			if d := s.Evaluate(signedPE(tt.sigs[0])); !d.Allowed() {
				t.Fatalf("control: %s: %s", d.Verdict, d.Reason)
			}
			d := s.Evaluate(signedPE(tt.sigs...))
			if d.Allowed() || !strings.Contains(d.Reason, "exception") {
				t.Errorf("%s: %s, want blocked by the exception", d.Verdict, d.Reason)
			}
		})
	}
}

func TestWellKnownRootNeedsTrustedCertificate(t *testing.T) {
	p := newPKI(t)
	policy := &Policy{ID: "w", Name: "w", Type: Base, Mode: Enforce, WDACCompatible: true, Rules: []Rule{{
		ID: "wk", Action: Allow, Signer: &SignerMatch{Level: LevelAny,
			Cert: CertRef{WellKnown: "99", WellKnownName: "Test Root CA"}}}}}
	sub := signedPE(p.sig(p.leaf, "RSA"))
	for _, tc := range []struct {
		trusted []*signing.Certificate
		want    Verdict
	}{{nil, Blocked}, {[]*signing.Certificate{p.inter}, Blocked}, {[]*signing.Certificate{p.root}, Allowed}} {
		s, err := NewSet(SetOptions{TrustedRoots: tc.trusted}, policy)
		if err != nil {
			t.Fatal(err)
		}
		if d := s.Evaluate(sub); d.Verdict != tc.want {
			t.Errorf("trusted %d certs: %s (%s), want %s", len(tc.trusted), d.Verdict, d.Reason, tc.want)
		}
	}
}

func TestSignerNeeds(t *testing.T) {
	p := newPKI(t)
	s, _ := NewSet(SetOptions{}, pol(t, "name: p", signerRule("pca", "allow", "tbs: "+tbs(p.inter)),
		"{id: f, action: allow, file: {name: a.exe}, paths: ['tools/**']}"))
	if n := s.Needs("bin/a.exe", FormatPE, ScenarioUser); !n.Signatures || n.Attributes || n.Digests.Len() != 0 {
		t.Errorf("bin/a.exe: %+v", n)
	}
	if n := s.Needs("tools/a.exe", FormatPE, ScenarioUser); !n.Signatures || !n.Attributes {
		t.Errorf("tools/a.exe: %+v", n)
	}
	if n := s.Needs("tools/a", FormatELF, ScenarioUser); !n.Signatures || n.Attributes {
		t.Errorf("tools/a (ELF): %+v", n)
	}
}

func TestSignerYAML(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "pca.pem")
	os.WriteFile(pemFile, testca.PEM(p.ca.Intermediate.Cert), 0o644)
	inline := strings.ReplaceAll(string(testca.PEM(p.ca.Root.Cert)), "\n", "\n        ")
	src := `format: csv-policy/v1
name: signers
version: "1"
wdac_compatible: true
timestamp_authorities:
  - tbs: ` + tbs(p.tsa) + `
rules:
  - id: by-file
    action: allow
    signer:
      certificate_file: pca.pem
      level: issuer
      publisher: Build Signing
      ekus: [1.3.6.1.5.5.7.3.3]
  - id: by-pem
    action: allow
    signer:
      certificate: |
        ` + inline + `
      level: root
      files: [{name: tool.exe, field: internal_name, min_version: "1.2"}]
    except:
      - authenticode_sha256: ` + hx(h2) + `
  - id: by-tbs
    action: deny
    signer: {tbs: ` + tbs(p.rogue) + `, level: leaf}
`
	readFile := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }
	pol, err := ParseWith([]byte(src), "signers.yaml", ParseOptions{ReadFile: readFile})
	if err != nil {
		t.Fatal(err)
	}
	r0, r1, r2 := pol.Rules[0].Signer, pol.Rules[1].Signer, pol.Rules[2].Signer
	if r0.Cert.Certificate == nil || r0.Cert.Certificate.SHA256 != p.inter.SHA256 || r0.Level != LevelIssuer || r0.Publisher != "Build Signing" {
		t.Errorf("by-file: %+v", r0)
	}
	if r1.Cert.Certificate == nil || r1.Cert.Certificate.SHA256 != p.root.SHA256 || r1.Level != LevelRoot ||
		len(r1.Files) != 1 || r1.Files[0].Field != InternalName || *r1.Files[0].MinVersion != (Version{1, 2, 0, 0}) {
		t.Errorf("by-pem: %+v", r1)
	}
	if len(pol.Rules[1].Except) != 1 || pol.Rules[1].Except[0].Hash == nil {
		t.Errorf("by-pem except: %+v", pol.Rules[1].Except)
	}
	if r2.Cert.Certificate != nil || r2.Cert.TBSHashHex() != tbs(p.rogue) || r2.Level != LevelLeaf {
		t.Errorf("by-tbs: %+v", r2)
	}
	if !pol.WDACCompatible || len(pol.TimestampAuthorities) != 1 {
		t.Errorf("policy options: wdac %v tsas %d", pol.WDACCompatible, len(pol.TimestampAuthorities))
	}
	if got := len(pol.Certificates()); got != 2 {
		t.Errorf("%d certificates named in full, want 2", got)
	}
	// Round trip (certificate_file becomes an inline certificate).
	out, err := MarshalYAML(pol)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out, "again.yaml")
	if err != nil {
		t.Fatalf("reading back: %v\n%s", err, out)
	}
	for i := range pol.Rules {
		a, b := pol.Rules[i], again.Rules[i]
		if a.Signer.Cert.TBSHashHex() != b.Signer.Cert.TBSHashHex() || a.Signer.Level != b.Signer.Level ||
			!reflect.DeepEqual(a.Signer.Files, b.Signer.Files) || len(a.Except) != len(b.Except) {
			t.Errorf("rule %d: %+v became %+v", i, a.Signer, b.Signer)
		}
	}
	// Without a file reader, certificate_file is refused with the line.
	if _, err := Parse([]byte(src), "signers.yaml"); err == nil || !strings.Contains(err.Error(), "signers.yaml:11:") || !strings.Contains(err.Error(), "without access to other files") {
		t.Errorf("no reader: %v", err)
	}
}

func (r CertRef) TBSHashHex() string { return strings.ToUpper(fmt.Sprintf("%x", r.TBSHash)) }

func TestSignerYAMLErrors(t *testing.T) {
	head := "format: csv-policy/v1\nname: x\nrules:\n"
	tests := []struct{ rule, want string }{
		{"  - {id: a, action: allow, signer: {level: leaf}}", "name the certificate with one of certificate, certificate_file, tbs"},
		{"  - {id: a, action: allow, signer: {tbs: 00, level: leaf}}", "want the hex SHA1, SHA256, SHA384 or SHA512"},
		{"  - {id: a, action: allow, signer: {tbs: " + strings.Repeat("ab", 32) + ", level: middle}}", `unknown level "middle"`},
		{"  - {id: a, action: allow, signer: {tbs: " + strings.Repeat("ab", 32) + ", ekus: [codeSigning]}}", `EKU "codeSigning" is not a dotted OID`},
		{"  - {id: a, action: allow, signer: {tbs: " + strings.Repeat("ab", 32) + ", certificate: x}}", "names the certificate twice"},
		{"  - {id: a, action: allow, signer: {certificate: not a cert}}", "malformed certificate"},
		{"  - {id: a, action: allow, file: {field: internal_name}}", "set a name or a version bound"},
		{"  - {id: a, action: allow, file: {name: x, min_version: 1.x}}", `"x" is not a number`},
		{"  - {id: a, action: deny, sha256: " + strings.Repeat("ab", 32) + ", except: [{file: {name: x}}]}", "only allow rules have exceptions"},
		{"  - {id: a, action: allow, sha256: " + strings.Repeat("ab", 32) + ", except: [{}]}", "exception 1: says nothing to match"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(head+tt.rule+"\n"), "x.yaml")
		if !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "x.yaml:4:") {
			t.Errorf("%s: err = %v, want %q at line 4", tt.rule, err, tt.want)
		}
	}
}

// TestReasonNamesKnownDigestsOnly: a boot component's signature carries
// no digest algorithm (the measurement's bank has it), and the reason
// says nothing of one rather than "unknown hash value 0".
func TestReasonNamesKnownDigestsOnly(t *testing.T) {
	p := newPKI(t)
	s, err := NewSet(SetOptions{Now: func() time.Time { return testca.Epoch }}, pol(t, "name: p", signerRule("pca", "allow", "tbs: "+tbs(p.inter))))
	if err != nil {
		t.Fatal(err)
	}
	boot := signedPE(p.sig(p.leaf, "RSA"))
	boot.Scenario = ScenarioBoot
	withDigest := p.sig(p.leaf, "RSA")
	withDigest.DigestAlgorithm = crypto.SHA256
	for sub, want := range map[*Subject]string{&boot: `signature 0 (RSA) by "Build Signing"`, func() *Subject { s := signedPE(withDigest); return &s }(): `signature 0 (RSA, SHA-256) by "Build Signing"`} {
		if d := s.Evaluate(*sub); !d.Allowed() || !strings.Contains(d.Reason, want) {
			t.Errorf("%s: %q, want it to contain %q", d.Verdict, d.Reason, want)
		}
	}
}
