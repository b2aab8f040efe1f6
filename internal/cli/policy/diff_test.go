package policy

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	authpe "github.com/codesignval/csv/signing/authenticode/pe"
	"github.com/codesignval/csv/signing/timestamp/tsahttp"
)

// judgeAt is when the trees are judged: two years after testca.Epoch, when
// the short-lived signing certificates below have expired and the CA's
// have not.
var judgeAt = testca.Epoch.AddDate(2, 0, 0)

// signPE signs img with key and chain (leaf first) through csv's own
// signer, optionally timestamped, and returns the signed bytes.
func signPE(t *testing.T, img []byte, key crypto.Signer, chain []*x509.Certificate, tsaURL string) []byte {
	t.Helper()
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "signed.exe"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var opts authenticode.SignOptions
	if tsaURL != "" {
		if opts.TSA, err = tsahttp.New(tsaURL, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := authpe.Sign(context.Background(), bytes.NewReader(img), int64(len(img)), out, key, chain, opts); err != nil {
		t.Fatalf("signing: %v", err)
	}
	signed, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// verdict validates dir with the policy files as csv validate does (the
// same loader, the policies' certificates completing chains) at judgeAt,
// and returns "PASSED", "FAILED" or the error that refused the policies.
func verdict(t *testing.T, dir string, policyFiles ...string) string {
	t.Helper()
	ps, err := cipolicy.LoadFiles(policyFiles)
	if err != nil {
		t.Fatalf("loading: %v", err)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{Now: func() time.Time { return judgeAt }}, ps...)
	if err != nil {
		return "refused: " + err.Error()
	}
	v, err := csv.NewValidator(set, csv.Options{Jobs: 2, Now: func() time.Time { return judgeAt }})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := v.Validate(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Files == 0 {
		t.Fatal("no binaries judged")
	}
	if rep.Failed() {
		var why []string
		for _, r := range rep.Results {
			if r.Decision.Fails() {
				why = append(why, r.Path+": "+r.Decision.Reason)
			}
		}
		t.Logf("FAILED: %s", strings.Join(why, "; "))
		return "FAILED"
	}
	return "PASSED"
}

// diffLoosens runs csv policy diff --fail-if-loosened OLD NEW and reports
// whether it failed (exit 1), with its output.
func diffLoosens(t *testing.T, old, new string) (bool, string) {
	t.Helper()
	var out bytes.Buffer
	err := RunDiff(&DiffOptions{IO: &cmdutil.IOStreams{Out: &out, ErrOut: &out}, Format: "text", FailIfLoosened: true, Old: old, New: new})
	switch code := cmdutil.ExitCode(err); code {
	case 0:
		return false, out.String()
	case 1:
		return true, out.String()
	default:
		t.Fatalf("policy diff: exit %d: %v\n%s", code, err, out.String())
	}
	return false, ""
}

// TestDiffLoosensAsValidateJudges builds, for each loosening change the
// review found policy diff missing, a tree whose verdict the change turns
// from FAILED (or refused) to PASSED under validate's own judgement, and
// checks that policy diff --fail-if-loosened fails on it.
func TestDiffLoosensAsValidateJudges(t *testing.T) {
	ca := testca.New(t)
	// Expired at judgeAt, valid when signed (now, and at the timestamp).
	expired := ca.Leaf(t, testca.LeafOptions{CommonName: "Old Signing", NotAfter: testca.Epoch.AddDate(1, 0, 0)})
	current := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing", NotAfter: testca.Epoch.AddDate(5, 0, 0)})
	root, inter := testca.PEM(ca.Root.Cert), testca.PEM(ca.Intermediate.Cert)
	interTBS := tbsOf(t, ca.Intermediate.Cert)
	app := testbin.PE(testbin.PEOptions{Overlay: []byte("app")})
	unsigned := testbin.PE(testbin.PEOptions{Overlay: []byte("unsigned")})
	unsignedHash := authenticodeHash(t, unsigned)
	ec := ca.Leaf(t, testca.LeafOptions{CommonName: "EC Signing", KeyType: testca.ECDSAP256, NotAfter: testca.Epoch.AddDate(5, 0, 0)})

	type tc struct {
		name     string
		tree     map[string][]byte
		setup    func(t *testing.T, tt *tc) // builds what needs a peer tool
		files    map[string]string          // policy files and certificates, by name
		old, new []string                   // policy files given to validate, old and new; the first of each is diffed
		wantOld  string                     // prefix of the old verdict
	}
	yaml := func(header string, rules ...string) string {
		return "format: csv-policy/v1\nname: app\nversion: \"1\"\n" + header + "rules:\n  - " + strings.Join(rules, "\n  - ") + "\n"
	}
	signerRule := "{id: pca, action: allow, signer: {tbs: " + interTBS + ", level: issuer}}"
	hashRule := func(id string) string {
		return fmt.Sprintf("{id: %s, action: allow, authenticode_sha256: %s}", id, unsignedHash)
	}
	otherRule := "{id: other, action: allow, sha256: " + strings.Repeat("ab", 32) + "}"
	tests := []tc{
		{
			name:    "wdac_compatible false to true",
			tree:    map[string][]byte{"app.exe": signPE(t, app, expired.Key, []*x509.Certificate{expired.Cert, ca.Intermediate.Cert}, "")},
			files:   map[string]string{"old.yaml": yaml("", signerRule), "new.yaml": yaml("wdac_compatible: true\n", signerRule)},
			old:     []string{"old.yaml"},
			new:     []string{"new.yaml"},
			wantOld: "FAILED",
		},
		{
			name: "certificate_file of a deny rule completes a chain for a root-level allow",
			// The signature carries the leaf alone: the chain reaches the
			// root only through an intermediate from somewhere else.
			tree: map[string][]byte{"app.exe": signPE(t, app, current.Key, []*x509.Certificate{current.Cert}, "")},
			files: map[string]string{
				"root.pem": string(root), "inter.pem": string(inter),
				"old.yaml": yaml("", "{id: root, action: allow, signer: {certificate_file: root.pem, level: root}}"),
				"new.yaml": yaml("", "{id: root, action: allow, signer: {certificate_file: root.pem, level: root}}",
					"{id: never, action: deny, signer: {certificate_file: inter.pem, level: leaf}}"),
			},
			old: []string{"old.yaml"}, new: []string{"new.yaml"}, wantOld: "FAILED",
		},
		{
			name:  "base to supplemental",
			tree:  map[string][]byte{"unsigned.exe": unsigned},
			files: map[string]string{"base.yaml": strings.Replace(yaml("id: base\n", otherRule), "name: app", "name: base", 1), "old.yaml": yaml("", hashRule("x")), "new.yaml": yaml("type: supplemental\nbase: base\n", hashRule("x"))},
			old:   []string{"old.yaml", "base.yaml"}, new: []string{"new.yaml", "base.yaml"}, wantOld: "FAILED",
		},
		{
			name: "a supplemental policy's base changed",
			tree: map[string][]byte{"unsigned.exe": unsigned},
			files: map[string]string{
				"b1.yaml":  strings.Replace(yaml("id: b1\n", hashRule("x")), "name: app", "name: b1", 1),
				"b2.yaml":  strings.Replace(yaml("id: b2\n", otherRule), "name: app", "name: b2", 1),
				"old.yaml": yaml("type: supplemental\nbase: b1\n", hashRule("x")),
				"new.yaml": yaml("type: supplemental\nbase: b2\n", hashRule("x")),
			},
			old: []string{"old.yaml", "b1.yaml", "b2.yaml"}, new: []string{"new.yaml", "b1.yaml", "b2.yaml"}, wantOld: "FAILED",
		},
		{
			name:  "Enabled:Allow Supplemental Policies added",
			tree:  map[string][]byte{"unsigned.exe": unsigned},
			files: map[string]string{"old.xml": wdacBase(""), "new.xml": wdacBase("Enabled:Allow Supplemental Policies"), "supp.xml": wdacSupplemental(unsignedHash)},
			old:   []string{"old.xml", "supp.xml"}, new: []string{"new.xml", "supp.xml"}, wantOld: "refused",
		},
		{
			name:  "key_types widened",
			tree:  map[string][]byte{"app.exe": signPE(t, app, ec.Key, []*x509.Certificate{ec.Cert, ca.Intermediate.Cert}, "")},
			files: map[string]string{"old.yaml": yaml("key_types: [rsa]\n", signerRule), "new.yaml": yaml("key_types: [rsa, ecdsa]\n", signerRule)},
			old:   []string{"old.yaml"}, new: []string{"new.yaml"}, wantOld: "FAILED",
		},
		{
			// strings.ToLower makes "İ" an "i"; no name comparison does.
			name: "an allow rule's name respelled in another case",
			tree: map[string][]byte{"installer.exe": testbin.VersionPE([]testbin.VersionResource{{Lang: 0x409,
				Tables: []testbin.VersionTable{{Key: "040904b0", Strings: [][2]string{{"OriginalFilename", "installer.exe"}}}}}})},
			files: map[string]string{"old.yaml": yaml("", "{id: i, action: allow, file: {name: İnstaller.exe}}"), "new.yaml": yaml("", "{id: i, action: allow, file: {name: installer.exe}}")},
			old:   []string{"old.yaml"}, new: []string{"new.yaml"}, wantOld: "FAILED",
		},
		{
			name:  "digest_algorithms widened",
			tree:  map[string][]byte{"unsigned.exe": unsigned},
			files: map[string]string{"old.yaml": yaml("digest_algorithms: [sha256]\n", "{id: h, action: allow, authenticode_sha1: "+authenticodeSHA1(t, unsigned)+"}"), "new.yaml": yaml("digest_algorithms: [sha1, sha256]\n", "{id: h, action: allow, authenticode_sha1: "+authenticodeSHA1(t, unsigned)+"}")},
			old:   []string{"old.yaml"}, new: []string{"new.yaml"}, wantOld: "FAILED",
		},
	}
	tests = append(tests, tc{
		name: "timestamp_authorities added",
		// Timestamped now by an independent TSA (OpenSSL's), while the
		// signing certificate was valid.
		setup: func(t *testing.T, tt *tc) {
			tsa := ca.TSA(t)
			url := testca.OpenSSLTSA(t, testenv.Tool(t, "openssl"), tsa, tsa.Cert, ca.Intermediate.Cert)
			tt.tree = map[string][]byte{"app.exe": signPE(t, app, expired.Key, []*x509.Certificate{expired.Cert, ca.Intermediate.Cert}, url)}
			tt.files["new.yaml"] = yaml("timestamp_authorities: [{tbs: "+tbsOf(t, tsa.Cert)+"}]\n", signerRule)
		},
		files:   map[string]string{"old.yaml": yaml("", signerRule)},
		old:     []string{"old.yaml"},
		new:     []string{"new.yaml"},
		wantOld: "FAILED",
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t, &tt)
			}
			dir := t.TempDir()
			tree := filepath.Join(dir, "build")
			for name, data := range tt.tree {
				write(t, filepath.Join(tree, name), string(data))
			}
			pol := filepath.Join(dir, "policies")
			for name, data := range tt.files {
				write(t, filepath.Join(pol, name), data)
			}
			in := func(names []string) []string {
				var out []string
				for _, n := range names {
					out = append(out, filepath.Join(pol, n))
				}
				return out
			}
			if got := verdict(t, tree, in(tt.old)...); !strings.HasPrefix(got, tt.wantOld) {
				t.Fatalf("old policy: %s, want %s", got, tt.wantOld)
			}
			if got := verdict(t, tree, in(tt.new)...); got != "PASSED" {
				t.Fatalf("new policy: %s, want PASSED", got)
			}
			loosens, out := diffLoosens(t, in(tt.old)[0], in(tt.new)[0])
			if !loosens || !strings.Contains(out, "(loosens)") {
				t.Errorf("policy diff --fail-if-loosened passed a change that admits a blocked file:\n%s", out)
			}
			t.Log(out)
		})
	}
}

// TestDiffLoosensBeyondValidate: changes that let Windows run more while
// csv's own verdict stays (it judges user-mode code with or without
// Enabled:UMCI) still count as loosening.
func TestDiffLoosensBeyondValidate(t *testing.T) {
	dir := t.TempDir()
	unsigned := testbin.PE(testbin.PEOptions{Overlay: []byte("unsigned")})
	write(t, filepath.Join(dir, "build", "unsigned.exe"), string(unsigned))
	for _, tt := range []struct {
		name, old, new, want string
	}{
		{"Enabled:UMCI removed", wdacBase("Enabled:UMCI"), wdacBase(""), `~ user_mode: "enforced" -> "not enforced"  (loosens`},
		{"Enabled:Managed Installer added", wdacBase("Enabled:UMCI"), wdacBase("Enabled:UMCI", "Enabled:Managed Installer"), `"enabled:managed installer" added`},
		{"an option csv does not know", wdacBase("Enabled:UMCI"), wdacBase("Enabled:UMCI", "Enabled:Something New"), `"enabled:something new" added`},
		{"Required:WHQL removed", wdacBase("Enabled:UMCI", "Required:WHQL"), wdacBase("Enabled:UMCI"), `"required:whql" removed`},
		{"a base policy's id", wdacBase("Enabled:UMCI"), strings.ReplaceAll(wdacBase("Enabled:UMCI"), wdacBaseID, "{33333333-3333-3333-3333-333333333333}"), "decides which supplemental policies extend it"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			old := write(t, filepath.Join(dir, "old.xml"), tt.old)
			new := write(t, filepath.Join(dir, "new.xml"), tt.new)
			if o, n := verdict(t, filepath.Join(dir, "build"), old), verdict(t, filepath.Join(dir, "build"), new); o != "FAILED" || n != "FAILED" {
				t.Errorf("validate: %s then %s, want FAILED both (csv judges user-mode code either way)", o, n)
			}
			loosens, out := diffLoosens(t, old, new)
			if !loosens || !strings.Contains(out, tt.want) {
				t.Errorf("diff does not loosen with %q:\n%s", tt.want, out)
			}
		})
	}
	// Tightening passes --fail-if-loosened.
	old := write(t, filepath.Join(dir, "old.xml"), wdacBase("Enabled:UMCI", "Enabled:Managed Installer"))
	new := write(t, filepath.Join(dir, "new.xml"), wdacBase("Enabled:UMCI", "Required:WHQL"))
	if loosens, out := diffLoosens(t, old, new); loosens {
		t.Errorf("a tightening change loosens:\n%s", out)
	}
}

const wdacBaseID = "{44444444-4444-4444-4444-444444444444}"

// wdacBase is a SiPolicy base policy with the options, allowing nothing
// but a hash no file has.
func wdacBase(opts ...string) string {
	var rules strings.Builder
	for _, o := range opts {
		if o != "" {
			fmt.Fprintf(&rules, "<Rule><Option>%s</Option></Rule>", o)
		}
	}
	return fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?>
<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy" PolicyType="Base Policy">
  <VersionEx>1.0.0.0</VersionEx>
  <PolicyID>%[1]s</PolicyID>
  <BasePolicyID>%[1]s</BasePolicyID>
  <PlatformID>{2E07F7E4-194C-4D20-B7C9-6F44A6C5A234}</PlatformID>
  <Rules>%[2]s</Rules>
  <EKUs />
  <FileRules><Allow ID="ID_ALLOW_NONE" FriendlyName="none Hash Sha256" Hash="%[3]s" /></FileRules>
  <Signers />
  <SigningScenarios>
    <SigningScenario Value="12" ID="ID_SIGNINGSCENARIO_WINDOWS" FriendlyName="user">
      <ProductSigners><FileRulesRef><FileRuleRef RuleID="ID_ALLOW_NONE" /></FileRulesRef></ProductSigners>
    </SigningScenario>
  </SigningScenarios>
  <UpdatePolicySigners />
</SiPolicy>
`, wdacBaseID, rules.String(), strings.Repeat("CD", 32))
}

// wdacSupplemental extends wdacBase with an allow rule for an Authenticode
// SHA256 hash.
func wdacSupplemental(hash string) string {
	return fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?>
<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy" PolicyType="Supplemental Policy">
  <VersionEx>1.0.0.0</VersionEx>
  <PolicyID>{55555555-5555-5555-5555-555555555555}</PolicyID>
  <BasePolicyID>%s</BasePolicyID>
  <PlatformID>{2E07F7E4-194C-4D20-B7C9-6F44A6C5A234}</PlatformID>
  <Rules />
  <EKUs />
  <FileRules><Allow ID="ID_ALLOW_X" FriendlyName="x Hash Sha256" Hash="%s" /></FileRules>
  <Signers />
  <SigningScenarios>
    <SigningScenario Value="12" ID="ID_SIGNINGSCENARIO_WINDOWS" FriendlyName="user">
      <ProductSigners><FileRulesRef><FileRuleRef RuleID="ID_ALLOW_X" /></FileRulesRef></ProductSigners>
    </SigningScenario>
  </SigningScenarios>
</SiPolicy>
`, wdacBaseID, strings.ToUpper(hash))
}

func tbsOf(t *testing.T, c *x509.Certificate) string {
	t.Helper()
	sc, err := signing.ParseCertificate(c.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return sc.TBSHashHex()
}

// authenticodeHash returns a PE's Authenticode SHA256 as inspect computes
// it.
func authenticodeHash(t *testing.T, img []byte) string {
	t.Helper()
	return digestOf(t, img, cipolicy.AuthenticodeSHA256)
}

func authenticodeSHA1(t *testing.T, img []byte) string {
	t.Helper()
	return digestOf(t, img, cipolicy.AuthenticodeSHA1)
}

func digestOf(t *testing.T, img []byte, alg cipolicy.HashAlgorithm) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.exe")
	write(t, path, string(img))
	in := csv.InspectFile(context.Background(), path, make([]byte, 1<<16), csv.InspectOptions{})
	if in.Err != nil {
		t.Fatal(in.Err)
	}
	v := in.Digests.Get(alg)
	if v == nil {
		t.Fatalf("no %s digest", alg)
	}
	return fmt.Sprintf("%x", v)
}
