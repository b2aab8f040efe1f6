package powershell_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/csv/format/formattest"
	"github.com/codesignval/csv/csv/format/powershell"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

type pki struct {
	ca    *testca.CA
	leaf  *testca.Cert
	files testca.Files
	certs []*signing.Certificate
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	p := &pki{ca: ca, leaf: leaf, files: ca.WriteFiles(t, t.TempDir(), leaf)}
	root, err := signing.ParseCertificate(ca.Root.Cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	p.certs = []*signing.Certificate{root}
	return p
}

func (p *pki) sign(t testing.TB, name string, data []byte, appendSig bool) []byte {
	t.Helper()
	return formattest.SignNamed(t, powershell.Handler{}, name, data, &format.SignOptions{Key: p.leaf.Key,
		Chain: []*x509.Certificate{p.leaf.Cert, p.ca.Intermediate.Cert}, Append: appendSig})
}

func osslEnv() []string {
	return testenv.NoProxyEnv()
}

// ossl runs osslsigncode on a file named name holding data (sign writes
// out-NAME); it returns the output file (sign) and what it printed.
func ossl(t testing.TB, name string, data []byte, args ...string) ([]byte, string, bool) {
	t.Helper()
	tool := testenv.Tool(t, "osslsigncode")
	dir := t.TempDir()
	in, out := filepath.Join(dir, name), filepath.Join(dir, "out-"+name)
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	argv := append(args, "-in", in)
	if args[0] == "sign" {
		argv = append(argv, "-out", out)
	}
	cmd := exec.Command(tool, argv...)
	cmd.Env = osslEnv()
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	signed, _ := os.ReadFile(out)
	return signed, string(b), err == nil
}

func (p *pki) osslSign(t testing.TB, name string, data []byte) []byte {
	t.Helper()
	signed, out, ok := ossl(t, name, data, "sign", "-certs", p.files.Chain, "-key", p.files.Key)
	if !ok {
		t.Fatalf("osslsigncode sign: %s", out)
	}
	return signed
}

var calculated = regexp.MustCompile(`Calculated message digest\s*:\s*([0-9A-Fa-f]+)`)

// osslVerify returns whether osslsigncode verifies data and the digest it
// calculated.
func (p *pki) osslVerify(t testing.TB, name string, data []byte) (bool, string, string) {
	t.Helper()
	_, out, ok := ossl(t, name, data, "verify", "-CAfile", p.files.Root, "-time", strconv.FormatInt(testca.Epoch.Unix(), 10))
	m := calculated.FindStringSubmatch(out)
	if m == nil {
		return ok, "", out
	}
	return ok, strings.ToLower(m[1]), out
}

// TestSniff: scripts are told by their names, whatever they hold, as
// Windows reads the names: without the dots and spaces that end them.
func TestSniff(t *testing.T) {
	for name, want := range map[string]bool{
		"a.ps1": true, "A.PS1": true, "m.psm1": true, "d.psd1": true, "t.Ps1Xml": true, "c.psc1": true, "x.cdxml": true,
		"run.ps1.": true, "run.ps1 ": true, "run.PS1. . ": true, `dir\run.psm1.`: true, "run.p\u017f1": true,
		"a.ps1.txt": false, "ps1": false, "a.js": false, "a.vbs": false, "a.exe": false, "": false,
	} {
		if got := formattest.SniffNamed(powershell.Handler{}, name, []byte("MZ")); got != want {
			t.Errorf("%q: Sniff = %v", name, got)
		}
	}
}

// TestPeers: the handler verifies what osslsigncode signs over the SIP
// hash osslsigncode calculates (reported as authenticode_sha256), and
// osslsigncode verifies what the handler signs, a signature nested in
// osslsigncode's included.
func TestPeers(t *testing.T) {
	p := newPKI(t)
	for name, text := range map[string][]byte{
		"a.ps1":      []byte("Write-Host 'hello'\r\n"),
		"b.ps1xml":   []byte("<Types/>\r\n"),
		"bom.psm1":   []byte("\ufefffunction f { 'é' }\n"),
		"wide.psd1":  {0xff, 0xfe, '@', 0, '{', 0, '}', 0, '\r', 0, '\n', 0},
		"plain.psc1": []byte("<PSConsoleFile/>"),
	} {
		t.Run(name, func(t *testing.T) {
			for signer, signed := range map[string][]byte{"osslsigncode": p.osslSign(t, name, text), "csv": p.sign(t, name, text, false)} {
				res := formattest.InspectNamed(powershell.Handler{}, name, signed, cipolicy.AllNeeds(), p.certs)
				formattest.CheckInvariants(t, res, cipolicy.AllNeeds())
				if res.Err != nil || len(res.Facts.Signatures) != 1 || !res.Facts.Signatures[0].Verified() {
					t.Fatalf("%s: %v %+v", signer, res.Err, res.Facts.Signatures)
				}
				ok, digest, out := p.osslVerify(t, name, signed)
				if !ok || digest != hex.EncodeToString(res.Digests.Get(cipolicy.AuthenticodeSHA256)) {
					t.Fatalf("%s: osslsigncode (ok %v) calculated %s, csv %x:\n%s", signer, ok, digest, res.Digests.Get(cipolicy.AuthenticodeSHA256), out)
				}
				info := res.Facts.Info.(*powershell.Info)
				if info.Text != int64(len(text)) || info.BlockSize != int64(len(signed)-len(text)) {
					t.Errorf("%s: info %+v", signer, info)
				}
			}
			nested := p.sign(t, name, p.osslSign(t, name, text), true)
			if ok, _, out := p.osslVerify(t, name, nested); !ok || !strings.Contains(out, "Number of verified signatures: 2") {
				t.Errorf("nested:\n%s", out)
			}
			res := formattest.InspectNamed(powershell.Handler{}, name, nested, cipolicy.AllNeeds(), p.certs)
			if res.Err != nil || len(res.Facts.Signatures) != 2 {
				t.Errorf("nested: %v %+v", res.Err, res.Facts.Signatures)
			}
		})
	}
}

// TestUnsigned: an unsigned script's SIP hash is its signed copy's, so a
// hash rule written for it still matches once it is signed.
func TestUnsigned(t *testing.T) {
	p := newPKI(t)
	text := []byte("Get-ChildItem\r\n")
	need := cipolicy.Needs{Digests: cipolicy.NewDigestSet(cipolicy.AuthenticodeSHA256, cipolicy.AuthenticodeSHA1)}
	un := formattest.InspectNamed(powershell.Handler{}, "a.ps1", text, need, nil)
	signed := formattest.InspectNamed(powershell.Handler{}, "a.ps1", p.osslSign(t, "a.ps1", text), need, nil)
	if un.Err != nil || signed.Err != nil || un.Facts.Signed || !signed.Facts.Signed {
		t.Fatalf("%v %v", un.Err, signed.Err)
	}
	for _, a := range []cipolicy.HashAlgorithm{cipolicy.AuthenticodeSHA256, cipolicy.AuthenticodeSHA1} {
		if u := un.Digests.Get(a); len(u) != a.Size() || !bytes.Equal(u, signed.Digests.Get(a)) {
			t.Errorf("%s: unsigned %x, signed %x", a, u, signed.Digests.Get(a))
		}
	}
}

// TestMalformed: a malformed script is a *format.MalformedError however
// little the policy asks, and the SIP hash of text csv does not accept is
// not reported.
func TestMalformed(t *testing.T) {
	p := newPKI(t)
	signed := p.sign(t, "a.ps1", []byte("Write-Host 1\r\n"), false)
	for name, data := range map[string][]byte{
		"truncated":   signed[:len(signed)-20],
		"text after":  append(bytes.Clone(signed), "Stop-Computer\r\n"...),
		"bad base64":  bytes.Replace(signed, []byte("\r\n# MII"), []byte("\r\n# M*I"), 1),
		"no bom":      []byte("'ü'\r\n"),
		"not a block": []byte("x\r\n# SIG # Begin signature block\r\n# MAA=\r\n# SIG # End signature block\r\n"),
	} {
		for _, need := range []cipolicy.Needs{{}, {Digests: cipolicy.NewDigestSet(cipolicy.AuthenticodeSHA256)}, cipolicy.AllNeeds()} {
			res := formattest.InspectNamed(powershell.Handler{}, "a.ps1", data, need, p.certs)
			var me *format.MalformedError
			if !errors.As(res.Err, &me) || me.Format != cipolicy.FormatPowerShell || !errors.Is(res.Err, signing.ErrMalformed) {
				t.Errorf("%s (%v): %v (%T)", name, need, res.Err, res.Err)
				continue
			}
			// The text of "not a block" is fine: its SIP hash is the text's.
			if name != "not a block" && res.Digests.Get(cipolicy.AuthenticodeSHA256) != nil {
				t.Errorf("%s: a malformed script has a SIP hash", name)
			}
		}
	}
}

// FuzzInspect runs the handler on arbitrary bytes under each kind of
// name: an error is a *format.MalformedError, never a panic.
func FuzzInspect(f *testing.F) {
	p := newPKI(f)
	text := []byte("Write-Host 'hello'\r\n")
	signed := p.sign(f, "a.ps1", text, false)
	wide := []byte{0xff, 0xfe, 'x', 0, '\r', 0, '\n', 0}
	for _, seed := range [][]byte{text, signed, signed[:len(signed)/2], signed[:len(signed)-3], p.sign(f, "a.ps1", wide, false),
		p.sign(f, "a.ps1", signed, true), p.sign(f, "a.ps1xml", []byte("<Types/>"), false), []byte("\ufeffé\n"), {0xff, 0xfe, 0, 0, 'x', 0, 0, 0}, nil} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, xml bool) {
		name := "f.ps1"
		if xml {
			name = "f.ps1xml"
		}
		res := formattest.InspectNamed(powershell.Handler{}, name, data, cipolicy.AllNeeds(), p.certs)
		formattest.CheckInvariants(t, res, cipolicy.AllNeeds())
	})
}

// TestSignExpect: with the digests validation saw, a script is signed; a
// script whose SIP hash (or, when appending, whole SHA256) differs is not.
func TestSignExpect(t *testing.T) {
	p := newPKI(t)
	text := []byte("Write-Host 'release'\r\n")
	res := formattest.InspectNamed(powershell.Handler{}, "a.ps1", text, cipolicy.Needs{Digests: cipolicy.NewDigestSet(cipolicy.AuthenticodeSHA256)}, nil)
	sip := res.Digests.Get(cipolicy.AuthenticodeSHA256)
	sign := func(data []byte, expect cipolicy.Digests, appendSig bool) error {
		f, err := os.Create(filepath.Join(t.TempDir(), "out"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 64<<10)
		r := bytes.NewReader(data)
		n, _ := r.Read(buf[:min(len(data), format.SniffSize)])
		file := format.NewFile(r, int64(len(data)), buf, n)
		file.Name = "a.ps1"
		_, err = powershell.Handler{}.Sign(context.Background(), file, f, &format.SignOptions{Key: p.leaf.Key,
			Chain: []*x509.Certificate{p.leaf.Cert, p.ca.Intermediate.Cert}, Expect: expect, Append: appendSig})
		return err
	}
	if err := sign(text, cipolicy.Digests{cipolicy.AuthenticodeSHA256: sip}, false); err != nil {
		t.Fatalf("as validated: %v", err)
	}
	if err := sign([]byte("Write-Host 'Release'\r\n"), cipolicy.Digests{cipolicy.AuthenticodeSHA256: sip}, false); !errors.Is(err, format.ErrChanged) {
		t.Errorf("changed text: %v", err)
	}
	signed := p.sign(t, "a.ps1", text, false)
	if err := sign(signed, cipolicy.Digests{cipolicy.AuthenticodeSHA256: sip, cipolicy.SHA256: make([]byte, 32)}, true); !errors.Is(err, format.ErrChanged) {
		t.Errorf("append to a changed signature: %v", err)
	}
}
