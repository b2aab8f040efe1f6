package cli_test

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/codesignval/csv/internal/cli"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/internal/testenv/scriptcmd"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/modsig"
)

// runMainEnv, set to 1, makes the test binary run csv (cli.Main) with its
// arguments: for tests that signal a csv process.
const runMainEnv = "CSV_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(cli.Main())
	}
	// The tests that run csv in this process must not write GitHub's
	// annotations because they run under GitHub Actions: those that test
	// them set the variables themselves.
	for _, v := range []string{"GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_WORKSPACE"} {
		os.Unsetenv(v)
	}
	testscript.Main(m, map[string]func(){
		"csv": func() { os.Exit(cli.Main()) },
	})
}

// TestScripts runs the end-to-end scenarios in testdata/script: one file
// per scenario, each pinning exit codes and output.
func TestScripts(t *testing.T) {
	root := testenv.RepoRoot(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			e.Setenv("REPO", root)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":  scriptcmd.Status,
			"mkpe":    cmdMkPE,
			"mkelf":   cmdMkELF,
			"mkfifo":  cmdMkfifo,
			"mkpki":   cmdMkPKI,
			"tsa":     cmdTSA,
			"signelf": cmdSignELF,
			"mkwdac":  cmdMkWDAC,
			"flip":    cmdFlip,
		},
		RequireExplicitExec: true,
	})
}

// mkpe [-pe32] [-overlay N] [-truncate N] [-code HEX-BYTE] FILE: write a
// small valid PE image (see internal/testbin).
func cmdMkPE(ts *testscript.TestScript, neg bool, args []string) {
	fs := flag.NewFlagSet("mkpe", flag.ContinueOnError)
	pe32 := fs.Bool("pe32", false, "PE32 instead of PE32+")
	overlay := fs.Int("overlay", 0, "bytes of overlay")
	truncate := fs.Int("truncate", 0, "keep only this many bytes")
	code := fs.Int("code", -1, "return this value (mov eax, N; ret)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || neg {
		ts.Fatalf("usage: mkpe [-pe32] [-overlay N] [-truncate N] [-code N] FILE")
	}
	o := testbin.PEOptions{PE32: *pe32, Overlay: make([]byte, *overlay)}
	if *code >= 0 {
		o.Code = []byte{0xb8, byte(*code), byte(*code >> 8), 0, 0, 0xc3}
	}
	writeFixture(ts, fs.Arg(0), testbin.PE(o), *truncate)
}

// mkelf [-32] [-extra N] [-truncate N] FILE: write a small valid ELF.
func cmdMkELF(ts *testscript.TestScript, neg bool, args []string) {
	fs := flag.NewFlagSet("mkelf", flag.ContinueOnError)
	c32 := fs.Bool("32", false, "ELFCLASS32")
	extra := fs.Int("extra", 0, "bytes appended")
	truncate := fs.Int("truncate", 0, "keep only this many bytes")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || neg {
		ts.Fatalf("usage: mkelf [-32] [-extra N] [-truncate N] FILE")
	}
	extraBytes := make([]byte, *extra)
	for i := range extraBytes {
		extraBytes[i] = byte(i)
	}
	writeFixture(ts, fs.Arg(0), testbin.ELF(testbin.ELFOptions{Class32: *c32, Extra: extraBytes}), *truncate)
}

func writeFixture(ts *testscript.TestScript, name string, data []byte, truncate int) {
	if truncate > 0 && truncate < len(data) {
		data = data[:truncate]
	}
	p := ts.MkAbs(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		ts.Fatalf("%v", err)
	}
	if err := os.WriteFile(p, data, 0o755); err != nil {
		ts.Fatalf("%v", err)
	}
}

// flip FILE STRING: change the first byte of STRING's first occurrence
// in FILE (a name the test wrote into a package, where the bytes lie).
func cmdFlip(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg || args[1] == "" {
		ts.Fatalf("usage: flip FILE STRING")
	}
	p := ts.MkAbs(args[0])
	data, err := os.ReadFile(p)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	i := bytes.Index(data, []byte(args[1]))
	if i < 0 {
		ts.Fatalf("flip: %q is not in %s", args[1], args[0])
	}
	data[i] ^= 1
	if err := os.WriteFile(p, data, 0o644); err != nil {
		ts.Fatalf("%v", err)
	}
}

// mkpki DIR: write a test PKI: root.pem, inter.pem, chain.pem (leaf,
// intermediate and root), partial-chain.pem (leaf and intermediate: it does
// not reach the root), leaf.pem and leaf.key ("Build Signing"), ec.key and
// ec-chain.pem (an ECDSA leaf), rogue.key and rogue.pem (self-signed, same
// name as the leaf), noeku.key and noeku-chain.pem (a TLS server
// certificate), expired.key and expired-chain.pem.
func cmdMkPKI(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: mkpki DIR")
	}
	t := tsT{ts}
	ca := testca.New(t)
	dir := ts.MkAbs(args[0])
	os.MkdirAll(dir, 0o755)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing"})
	ec := ca.Leaf(t, testca.LeafOptions{CommonName: "EC Signing", KeyType: testca.ECDSAP256})
	rogue := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing", SelfSigned: true})
	noEKU := ca.Leaf(t, testca.LeafOptions{CommonName: "Web Server", EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	expired := ca.Leaf(t, testca.LeafOptions{CommonName: "Old Signing",
		NotBefore: testca.Epoch.AddDate(-1, 0, 0), NotAfter: testca.Epoch.AddDate(0, -6, 0)})
	files := map[string][]byte{
		"noeku-chain.pem":   testca.PEM(noEKU.Cert, ca.Intermediate.Cert),
		"noeku.key":         testca.KeyPEM(t, noEKU.Key),
		"expired-chain.pem": testca.PEM(expired.Cert, ca.Intermediate.Cert),
		"expired.key":       testca.KeyPEM(t, expired.Key),
		"root.pem":          testca.PEM(ca.Root.Cert),
		"inter.pem":         testca.PEM(ca.Intermediate.Cert),
		"chain.pem":         testca.PEM(leaf.Cert, ca.Intermediate.Cert, ca.Root.Cert),
		"partial-chain.pem": testca.PEM(leaf.Cert, ca.Intermediate.Cert),
		"leaf.pem":          testca.PEM(leaf.Cert),
		"leaf.key":          testca.KeyPEM(t, leaf.Key),
		"ec-chain.pem":      testca.PEM(ec.Cert, ca.Intermediate.Cert, ca.Root.Cert),
		"ec.key":            testca.KeyPEM(t, ec.Key),
		"rogue.pem":         testca.PEM(rogue.Cert),
		"rogue.key":         testca.KeyPEM(t, rogue.Key),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			ts.Fatalf("%v", err)
		}
	}
}

// signelf CERT KEY FILE: append a kernel-format signature.
func cmdSignELF(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 || neg {
		ts.Fatalf("usage: signelf CERT KEY FILE")
	}
	cert, key := loadPair(ts, ts.MkAbs(args[0]), ts.MkAbs(args[1]))
	p := ts.MkAbs(args[2])
	data, err := os.ReadFile(p)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	d := sha256.Sum256(data)
	trailer, err := modsig.Sign(d[:], cert, key, modsig.SignOptions{})
	if err != nil {
		ts.Fatalf("%v", err)
	}
	os.WriteFile(p, append(data, trailer...), 0o755)
}

func loadPair(ts *testscript.TestScript, certPath, keyPath string) (*x509.Certificate, crypto.Signer) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	cblk, _ := pem.Decode(cb)
	kblk, _ := pem.Decode(kb)
	if cblk == nil || kblk == nil {
		ts.Fatalf("not PEM")
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kblk.Bytes)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	return cert, k.(crypto.Signer)
}

// mkwdac OUT CERT [audit]: write a WDAC SiPolicy XML base policy allowing,
// in the user-mode scenario, files whose chain holds CERT (by TBS hash).
func cmdMkWDAC(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 || neg {
		ts.Fatalf("usage: mkwdac OUT CERT [audit]")
	}
	cb, err := os.ReadFile(ts.MkAbs(args[1]))
	if err != nil {
		ts.Fatalf("%v", err)
	}
	blk, _ := pem.Decode(cb)
	c, err := signing.ParseCertificate(blk.Bytes)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	opts := "<Rule><Option>Enabled:UMCI</Option></Rule>"
	if len(args) > 2 && args[2] == "audit" {
		opts += "<Rule><Option>Enabled:Audit Mode</Option></Rule>"
	}
	xml := fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?>
<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy" PolicyType="Base Policy">
  <VersionEx>10.0.0.1</VersionEx>
  <PlatformID>{2E07F7E4-194C-4D20-B7C9-6F44A6C5A234}</PlatformID>
  <PolicyID>{11111111-2222-3333-4444-555555555555}</PolicyID>
  <BasePolicyID>{11111111-2222-3333-4444-555555555555}</BasePolicyID>
  <Rules>%s</Rules>
  <EKUs />
  <FileRules />
  <Signers>
    <Signer ID="ID_SIGNER_BUILD" Name="Test Issuing CA">
      <CertRoot Type="TBS" Value="%s" />
    </Signer>
  </Signers>
  <SigningScenarios>
    <SigningScenario Value="131" ID="ID_SIGNINGSCENARIO_DRIVERS" FriendlyName="Kernel">
      <ProductSigners />
    </SigningScenario>
    <SigningScenario Value="12" ID="ID_SIGNINGSCENARIO_UMCI" FriendlyName="User">
      <ProductSigners>
        <AllowedSigners>
          <AllowedSigner SignerId="ID_SIGNER_BUILD" />
        </AllowedSigners>
      </ProductSigners>
    </SigningScenario>
  </SigningScenarios>
  <UpdatePolicySigners />
  <CiSigners />
  <HvciOptions>0</HvciOptions>
  <Settings>
    <Setting Provider="PolicyInfo" Key="Information" ValueName="Name">
      <Value><String>Build signers</String></Value>
    </Setting>
  </Settings>
</SiPolicy>
`, opts, c.TBSHashHex())
	if err := os.WriteFile(ts.MkAbs(args[0]), []byte(xml), 0o644); err != nil {
		ts.Fatalf("%v", err)
	}
}

// tsT adapts a TestScript to testing.TB's helpers that testca uses.
type tsT struct{ ts *testscript.TestScript }

func (t tsT) Helper()                           {}
func (t tsT) Fatalf(format string, args ...any) { t.ts.Fatalf(format, args...) }
func (t tsT) Errorf(format string, args ...any) { t.ts.Logf(format, args...) }
func (t tsT) Cleanup(f func())                  { t.ts.Defer(f) }
func (t tsT) TempDir() string {
	d, err := os.MkdirTemp(t.ts.Getenv("WORK"), "tmp")
	if err != nil {
		t.ts.Fatalf("%v", err)
	}
	return d
}

// tsa DIR: start an RFC 3161 time-stamping authority (OpenSSL's responder
// with a TSA certificate of a PKI of its own) for the rest of the script;
// its URL is $TSA_URL, its root DIR/tsa-root.pem.
func cmdTSA(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: tsa DIR")
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		ts.Fatalf("tsa: openssl is not installed")
	}
	t := tsT{ts}
	ca := testca.New(t)
	cert := ca.TSA(t)
	dir := ts.MkAbs(args[0])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		ts.Fatalf("%v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tsa-root.pem"), testca.PEM(ca.Root.Cert), 0o644); err != nil {
		ts.Fatalf("%v", err)
	}
	ts.Setenv("TSA_URL", testca.OpenSSLTSA(t, openssl, cert, cert.Cert, ca.Intermediate.Cert))
}

// mkfifo FILE: make a named pipe.
func cmdMkfifo(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: mkfifo FILE")
	}
	if err := mkfifo(ts.MkAbs(args[0])); err != nil {
		ts.Fatalf("mkfifo: %v", err)
	}
}
