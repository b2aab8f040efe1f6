package csv

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format/powershell"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
)

// TestScriptsEndToEnd: PowerShell scripts through the whole pipeline. A
// script osslsigncode signed is allowed by a signer rule, a changed
// character blocks it, an unsigned script is blocked as unsigned unless a
// hash rule with its SIP hash allows it (the hash csv policy new writes,
// which osslsigncode's signature of the same text carries), a malformed
// block is blocked as malformed; csv sign signs scripts, and its output is
// allowed. Windows Script Host scripts are judged by their SHA256, a
// signature block they carry reported as one csv does not verify.
func TestScriptsEndToEnd(t *testing.T) {
	ossl := testenv.Tool(t, "osslsigncode")
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Script Signing"})
	keys := t.TempDir()
	f := ca.WriteFiles(t, keys, leaf)
	text := []byte("Write-Host 'install'\r\n")
	dir := tree(t, map[string][]byte{
		"unsigned.ps1":       text,
		"hashed.psm1":        []byte("function Get-X { 1 }\n"),
		"raw/signed.ps1":     text,
		"raw/types.ps1xml":   []byte("<Types/>\r\n"),
		"notes.txt":          []byte("not a script\n"),
		"tool.js":            []byte("WScript.Echo(1);\r\n"),
		"hashed.vbs":         []byte("WScript.Echo 2\r\n"),
		"signed.wsf":         []byte("<job><script>x</script>\r\n<signature>\r\n** SIG ** Begin signature block\r\n** SIG ** MIIA\r\n** SIG ** End signature block\r\n</signature></job>\r\n"),
		"malformed/cut.ps1":  nil,
		"malformed/tail.ps1": nil,
	})
	sign := func(in, out string) []byte {
		t.Helper()
		if b, err := exec.Command(ossl, "sign", "-certs", f.Chain, "-key", f.Key, "-in", in, "-out", out).CombinedOutput(); err != nil {
			t.Fatalf("osslsigncode: %v\n%s", err, b)
		}
		b, _ := os.ReadFile(out)
		return b
	}
	signed := sign(filepath.Join(dir, "raw/signed.ps1"), filepath.Join(dir, "signed.ps1"))
	sign(filepath.Join(dir, "raw/types.ps1xml"), filepath.Join(dir, "types.ps1xml"))
	os.RemoveAll(filepath.Join(dir, "raw"))
	os.WriteFile(filepath.Join(dir, "tampered.ps1"), bytes.Replace(signed, []byte("install"), []byte("Install"), 1), 0o644)
	os.WriteFile(filepath.Join(dir, "malformed/cut.ps1"), signed[:len(signed)-30], 0o644)
	os.WriteFile(filepath.Join(dir, "malformed/tail.ps1"), append(bytes.Clone(signed), "Stop-Computer\r\n"...), 0o644)

	// The SIP hash of hashed.psm1, as csv policy new writes it.
	gen, err := GeneratePolicy(context.Background(), GenerateOptions{Level: LevelHash, Name: "gen"}, filepath.Join(dir, "hashed.psm1"))
	if err != nil || len(gen.Policy.Rules) != 1 || gen.Policy.Rules[0].Hash == nil || gen.Policy.Rules[0].Hash.Algorithm != cipolicy.AuthenticodeSHA256 {
		t.Fatalf("generate: %v %+v", err, gen)
	}
	inter := sigCert(t, ca.Intermediate.Cert)
	set := policyFor(t,
		fmt.Sprintf("{id: build-ca, action: allow, signer: {tbs: %s, level: issuer}}", inter.TBSHashHex()),
		fmt.Sprintf("{id: hashed, action: allow, authenticode_sha256: %x}", gen.Policy.Rules[0].Hash.Value),
		fmt.Sprintf("{id: vbs, action: allow, sha256: %s}", sha([]byte("WScript.Echo 2\r\n"))))
	rep := validate(t, set, Options{}, dir)
	want := map[string]string{
		"signed.ps1":         "allowed/allowed-by-signer",
		"types.ps1xml":       "allowed/allowed-by-signer",
		"hashed.psm1":        "allowed/allowed-by-hash",
		"unsigned.ps1":       "blocked/unsigned",
		"tampered.ps1":       "blocked/not-allowed",
		"malformed/cut.ps1":  "blocked/malformed",
		"malformed/tail.ps1": "blocked/malformed",
		// Windows Script Host scripts: judged by their SHA256 only.
		"tool.js":    "blocked/unsigned",
		"hashed.vbs": "allowed/allowed-by-hash",
		"signed.wsf": "blocked/not-allowed",
	}
	got := map[string]Result{}
	for _, r := range rep.Results {
		got[r.Path] = r
	}
	for path, w := range want {
		r, ok := got[path]
		if !ok {
			t.Errorf("%s: not judged", path)
			continue
		}
		wantFormat := cipolicy.FormatPowerShell
		if !strings.Contains(path, ".ps") {
			wantFormat = cipolicy.FormatWSH
		}
		if s := fmt.Sprintf("%s/%s", r.Decision.Verdict, r.Decision.Kind); s != w || r.Format != wantFormat {
			t.Errorf("%s: %s %s (%s), want %s", path, r.Format, s, r.Decision.Reason, w)
		}
	}
	if !strings.Contains(got["signed.wsf"].Decision.Reason, "csv does not verify Windows Script Host signatures") {
		t.Errorf("signed.wsf: %s", got["signed.wsf"].Decision.Reason)
	}
	var me *MalformedBinaryError
	if !errors.As(got["malformed/tail.ps1"].Err, &me) || me.Format != cipolicy.FormatPowerShell || me.Offset <= 0 {
		t.Errorf("tail: %v", got["malformed/tail.ps1"].Err)
	}
	if len(rep.Results) != len(want) || len(rep.Skipped) != 1 {
		t.Errorf("%d judged, %d skipped", len(rep.Results), len(rep.Skipped))
	}
	// The unsigned script's SIP hash is the one osslsigncode signed.
	if u, s := got["unsigned.ps1"].Digests.Get(cipolicy.AuthenticodeSHA256), got["signed.ps1"].Signatures[0].Digest; !bytes.Equal(u, s) {
		t.Errorf("unsigned SIP hash %x, osslsigncode signed %x", u, s)
	}
	if _, ok := got["signed.ps1"].Info.(*powershell.Info); !ok {
		t.Errorf("info %T", got["signed.ps1"].Info)
	}

	// csv sign signs the unsigned scripts (in place), and they pass.
	out := t.TempDir()
	if _, err := Sign(context.Background(), SignOptions{Key: leaf.Key, Chain: []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, Out: out},
		filepath.Join(dir, "unsigned.ps1")); err != nil {
		t.Fatal(err)
	}
	rep = validate(t, set, Options{}, out)
	if len(rep.Results) != 1 || rep.Results[0].Decision.Kind != cipolicy.KindAllowedBySigner {
		t.Fatalf("signed by csv: %+v", rep.Results)
	}
}
