package ps_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"hash"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/ps"
	"github.com/codesignval/csv/signing/timestamp"
	"github.com/codesignval/csv/signing/timestamp/tsahttp"
)

// utf16le encodes s as UTF-16LE with a byte order mark.
func utf16le(s string) []byte {
	u := utf16.Encode([]rune("\ufeff" + s))
	out := make([]byte, 2*len(u))
	for i, c := range u {
		out[2*i], out[2*i+1] = byte(c), byte(c>>8)
	}
	return out
}

// scripts are the kinds and encodings the peers are checked on.
var scripts = []struct {
	name string
	data []byte
}{
	{"crlf.ps1", []byte("Write-Host \"hello\"\r\nGet-Date\r\n")},
	{"lf.ps1", []byte("param($x)\nWrite-Output $x\n")},
	{"noeol.psm1", []byte("function Get-Thing { 42 }")},
	{"data.psd1", []byte("@{ ModuleVersion = '1.0' }\r\n")},
	{"types.ps1xml", []byte("<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<Types></Types>\r\n")},
	{"view.cdxml", []byte("<PowerShellMetadata/>\r\n")},
	{"bom.ps1", []byte("\ufeffWrite-Host \"grüße, 世界 🎉\"\r\n")},
	{"wide.ps1", utf16le("Write-Host \"grüße, 世界 🎉\"\r\n")},
	{"wide.ps1xml", utf16le("<Types><!-- é --></Types>\r\n")},
}

func syntax(t testing.TB, name string) ps.Syntax {
	t.Helper()
	s, ok := ps.SyntaxOf(name)
	if !ok {
		t.Fatalf("%s: not a script", name)
	}
	return s
}

// inspect parses data and computes its digests and signatures, as the
// pipeline does in one pass.
func inspect(t testing.TB, name string, data []byte, certs []*signing.Certificate) (*ps.Script, map[crypto.Hash][]byte, []*signing.Signature, error) {
	t.Helper()
	s, err := ps.Parse(bytes.NewReader(data), int64(len(data)), syntax(t, name))
	if err != nil {
		return nil, nil, nil, err
	}
	hh := map[crypto.Hash]hash.Hash{}
	var list []hash.Hash
	for _, h := range append(authenticode.DigestAlgorithms(s), crypto.SHA256, crypto.SHA1) {
		if hh[h] == nil {
			hh[h] = h.New()
			list = append(list, hh[h])
		}
	}
	d := s.NewDigester(list...)
	for i := 0; i < len(data); i += 7 { // odd chunks: runes and units split across writes
		if _, err := d.Write(data[i:min(i+7, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Err(); err != nil {
		return s, nil, nil, err
	}
	sums := map[crypto.Hash][]byte{}
	for h, w := range hh {
		sums[h] = w.Sum(nil)
	}
	sigs, err := ps.Verify(s, sums, authenticode.VerifyOptions{Certificates: certs})
	return s, sums, sigs, err
}

// pki is a test CA with the PEM files osslsigncode reads.
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
	for _, c := range []*x509.Certificate{ca.Root.Cert} {
		sc, err := signing.ParseCertificate(c.Raw)
		if err != nil {
			t.Fatal(err)
		}
		p.certs = append(p.certs, sc)
	}
	return p
}

func (p *pki) signer(t testing.TB, appendSig bool) *authenticode.Signer {
	t.Helper()
	s, err := authenticode.NewSigner(p.leaf.Key, []*x509.Certificate{p.leaf.Cert, p.ca.Intermediate.Cert}, authenticode.SignOptions{Append: appendSig})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// csvSign signs data with csv.
func csvSign(t testing.TB, p *pki, name string, data []byte, appendSig bool) []byte {
	t.Helper()
	var out bytes.Buffer
	if _, err := ps.Sign(context.Background(), bytes.NewReader(data), int64(len(data)), syntax(t, name), &out, p.signer(t, appendSig)); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out.Bytes()
}

// osslEnv is the environment without proxies.
func osslEnv() []string {
	return testenv.NoProxyEnv()
}

// osslSign signs data (named name: osslsigncode tells scripts by their
// extension) with osslsigncode.
func osslSign(t testing.TB, p *pki, name string, data []byte, args ...string) []byte {
	t.Helper()
	ossl := testenv.Tool(t, "osslsigncode")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in-"+name), filepath.Join(dir, "out-"+name)
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"sign", "-certs", p.files.Chain, "-key", p.files.Key}, args...)
	argv = append(argv, "-in", in, "-out", out)
	cmd := exec.Command(ossl, argv...)
	cmd.Env = osslEnv()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("osslsigncode %s: %v\n%s", strings.Join(argv, " "), err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var calculated = regexp.MustCompile(`Calculated message digest\s*:\s*([0-9A-Fa-f]+)`)

// osslVerify runs osslsigncode verify on data; it returns whether it
// accepts it and the digests it calculated.
func osslVerify(t testing.TB, p *pki, name string, data []byte) (bool, []string, string) {
	t.Helper()
	ossl := testenv.Tool(t, "osslsigncode")
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ossl, "verify", "-CAfile", p.files.Root, "-time", strconv.FormatInt(testca.Epoch.Unix(), 10), "-in", path)
	cmd.Env = osslEnv()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running osslsigncode: %v", err)
	}
	var digests []string
	for _, m := range calculated.FindAllStringSubmatch(string(out), -1) {
		digests = append(digests, strings.ToLower(m[1]))
	}
	return err == nil, digests, string(out)
}

// tamper changes one character of the script's text: the case of its
// first letter.
func tamper(data []byte) []byte {
	out := bytes.Clone(data)
	for i, c := range out {
		if 'a' <= c|0x20 && c|0x20 <= 'z' {
			out[i] ^= 0x20
			return out
		}
	}
	panic("no letter")
}

// TestPeerSignsCSVVerifies: osslsigncode signs each kind and encoding;
// csv finds the signature valid over the digest osslsigncode calculates,
// which is the unsigned script's; one changed character breaks it for
// both.
func TestPeerSignsCSVVerifies(t *testing.T) {
	p := newPKI(t)
	for _, sc := range scripts {
		t.Run(sc.name, func(t *testing.T) {
			signed := osslSign(t, p, sc.name, sc.data)
			s, sums, sigs, err := inspect(t, sc.name, signed, p.certs)
			if err != nil {
				t.Fatal(err)
			}
			if !s.Signed() || len(sigs) != 1 || !sigs[0].Verified() {
				t.Fatalf("signed %v, signatures %+v", s.Signed(), sigs)
			}
			if len(sigs[0].Chains) == 0 || sigs[0].Chains[0][len(sigs[0].Chains[0])-1].SHA256 != p.certs[0].SHA256 {
				t.Errorf("no chain to the root: %+v", sigs[0].Chains)
			}
			if why := sigs[0].IgnoredBy[signing.HostWindows]; why != "" {
				t.Errorf("Windows would not count it: %s", why)
			}
			ok, digests, out := osslVerify(t, p, sc.name, signed)
			if !ok || len(digests) != 1 || digests[0] != hex.EncodeToString(sums[crypto.SHA256]) {
				t.Fatalf("osslsigncode (ok %v) calculated %v, csv %x\n%s", ok, digests, sums[crypto.SHA256], out)
			}
			// The unsigned script's digest is the signed one's: a hash rule
			// written before signing still matches.
			if _, unsigned, _, err := inspect(t, sc.name, sc.data, nil); err != nil || !bytes.Equal(unsigned[crypto.SHA256], sums[crypto.SHA256]) {
				t.Errorf("unsigned digest %x (%v), signed %x", unsigned[crypto.SHA256], err, sums[crypto.SHA256])
			}
			bad := tamper(signed)
			_, _, sigs, err = inspect(t, sc.name, bad, p.certs)
			if err != nil || len(sigs) != 1 || sigs[0].Verified() || !errors.Is(sigs[0].Problem, signing.ErrDigestMismatch) {
				t.Errorf("tampered: %v, %+v", err, sigs)
			}
			if ok, _, _ := osslVerify(t, p, sc.name, bad); ok {
				t.Errorf("osslsigncode accepts the tampered script")
			}
		})
	}
}

// TestCSVSignsPeerVerifies: what csv signs, osslsigncode verifies, with
// the digest csv signed; a changed character fails both; a signature
// replaced and one appended (nested) verify too.
func TestCSVSignsPeerVerifies(t *testing.T) {
	p := newPKI(t)
	for _, sc := range scripts {
		t.Run(sc.name, func(t *testing.T) {
			signed := csvSign(t, p, sc.name, sc.data, false)
			if !bytes.HasPrefix(signed, sc.data) {
				t.Fatalf("the text changed")
			}
			_, sums, sigs, err := inspect(t, sc.name, signed, p.certs)
			if err != nil || len(sigs) != 1 || !sigs[0].Verified() {
				t.Fatalf("csv: %v %+v", err, sigs)
			}
			ok, digests, out := osslVerify(t, p, sc.name, signed)
			if !ok || len(digests) != 1 || digests[0] != hex.EncodeToString(sums[crypto.SHA256]) {
				t.Fatalf("osslsigncode refuses (or calculates %v, csv %x):\n%s", digests, sums[crypto.SHA256], out)
			}
			if ok, _, _ := osslVerify(t, p, sc.name, tamper(signed)); ok {
				t.Errorf("osslsigncode accepts the tampered script")
			}
			// Re-signing replaces the block: the text is unchanged.
			again := csvSign(t, p, sc.name, signed, false)
			if s, _, sigs, err := inspect(t, sc.name, again, p.certs); err != nil || len(sigs) != 1 || s.Content != int64(len(sc.data)) {
				t.Fatalf("re-signed: %v %+v", err, sigs)
			}
			// Appending nests csv's signature in osslsigncode's.
			nested := csvSign(t, p, sc.name, osslSign(t, p, sc.name, sc.data), true)
			_, _, sigs, err = inspect(t, sc.name, nested, p.certs)
			if err != nil || len(sigs) != 2 || !sigs[0].Verified() || !sigs[1].Verified() || len(sigs[1].Path) != 1 {
				t.Fatalf("nested: %v %+v", err, sigs)
			}
			if sigs[1].IgnoredBy[signing.HostWindows] == "" {
				t.Errorf("a nested signature counts for Windows")
			}
			if ok, _, out := osslVerify(t, p, sc.name, nested); !ok || !strings.Contains(out, "Number of verified signatures: 2") {
				t.Errorf("osslsigncode on the nested signature:\n%s", out)
			}
		})
	}
}

// TestMalformed: what the block allows and nothing else.
func TestMalformed(t *testing.T) {
	p := newPKI(t)
	text := []byte("Write-Host 1\r\n")
	signed := csvSign(t, p, "a.ps1", text, false)
	xml := csvSign(t, p, "a.ps1xml", []byte("<Types/>\r\n"), false)
	block := signed[len(text):]
	lines := strings.Split(string(block), "\r\n")
	for _, tc := range []struct {
		name string
		file string
		data []byte
		// resign: csv sign replaces the block (whose signature is not
		// read) rather than refuse the script.
		resign bool
	}{
		{"truncated", "a.ps1", signed[:len(signed)-40], false},
		{"no end line", "a.ps1", []byte(strings.Join(lines[:len(lines)-2], "\r\n") + "\r\n"), false},
		{"text after the end line", "a.ps1", append(bytes.Clone(signed), "Remove-Item -Recurse C:\\\r\n"...), false},
		{"blank line after the end line", "a.ps1", append(bytes.Clone(signed), "\r\n"...), false},
		{"bad base64", "a.ps1", bytes.Replace(signed, []byte("# MII"), []byte("# M!I"), 1), false},
		{"base64 that does not decode", "a.ps1", bytes.Replace(signed, []byte("# MII"), []byte("# MI="), 1), false},
		{"not a comment", "a.ps1", bytes.Replace(signed, []byte("\r\n# MII"), []byte("\r\nMII"), 1), false},
		{"mixed line breaks", "a.ps1", bytes.Replace(signed, []byte("\r\n# MII"), []byte("\n# MII"), 1), false},
		{"second block", "a.ps1", append(append([]byte("x\r\n"), block...), block...), false},
		{"begin line after a utf-8 bom", "a.ps1", append([]byte("\ufeff# SIG # Begin signature block\r\nWrite-Host 1"), block...), false},
		{"begin line after a utf-16 bom", "a.ps1", utf16le("# SIG # Begin signature block\r\nWrite-Host 1\r\n"), false},
		{"block only", "a.ps1", block, false},
		{"not a signature", "a.ps1", append(bytes.Clone(text), "\r\n# SIG # Begin signature block\r\n# AAAA\r\n# SIG # End signature block\r\n"...), true},
		{"xml truncated", "a.ps1xml", xml[:len(xml)-30], false},
		{"no bom, not ascii", "a.ps1", []byte("Write-Host \"grüße\"\r\n"), false},
		{"no bom, a nul byte", "a.ps1", []byte("W\x00r\x00i\x00t\x00e\x00-\x00H\x00o\x00s\x00t\x00 \x001\x00\r\x00\n\x00"), false},
		{"invalid utf-8", "a.ps1", []byte("\ufeffWrite-Host \xff\r\n"), false},
		{"utf-16be", "a.ps1", []byte{0xfe, 0xff, 0, 'x'}, false},
		{"odd utf-16", "a.ps1", []byte{0xff, 0xfe, 'x', 0, 'y'}, false},
		{"utf-32le", "a.ps1", []byte{0xff, 0xfe, 0, 0, 'x', 0, 0, 0}, false},
		{"unpaired surrogate", "a.ps1", []byte{0xff, 0xfe, 'x', 0, 0x00, 0xd8, 'y', 0}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := inspect(t, tc.file, tc.data, p.certs)
			var me *signing.MalformedError
			if !errors.As(err, &me) || !errors.Is(err, signing.ErrMalformed) {
				t.Fatalf("error %v (%T), want a *signing.MalformedError", err, err)
			}
			if me.Offset < 0 || me.Offset > int64(len(tc.data)) {
				t.Errorf("offset %d in a %d-byte file", me.Offset, len(tc.data))
			}
			// Nothing csv cannot verify is signed either.
			var out bytes.Buffer
			if _, err := ps.Sign(context.Background(), bytes.NewReader(tc.data), int64(len(tc.data)), syntax(t, tc.file), &out, p.signer(t, false)); (err == nil) != tc.resign {
				t.Errorf("sign: %v", err)
			}
		})
	}
}

// TestBeginLineInStringIsText: a begin line's words elsewhere than at a
// line's start are text.
func TestBeginLineInStringIsText(t *testing.T) {
	p := newPKI(t)
	text := []byte("$m = '# SIG # Begin signature block'\r\n  # SIG # Begin signature block\r\n")
	signed := csvSign(t, p, "a.ps1", text, false)
	if _, _, sigs, err := inspect(t, "a.ps1", signed, p.certs); err != nil || len(sigs) != 1 || !sigs[0].Verified() {
		t.Fatalf("%v %+v", err, sigs)
	}
}

// TestDigestIsUTF16: the digest is that of the text as UTF-16LE, computed
// here from Go's own encoder: the same for the UTF-8 and the UTF-16 file.
func TestDigestIsUTF16(t *testing.T) {
	text := "\ufeffWrite-Host \"grüße, 世界 🎉\"\r\n"
	want := sha256.Sum256(utf16le(text[len("\ufeff"):]))
	for name, data := range map[string][]byte{"utf-8": []byte(text), "utf-16": utf16le(text[len("\ufeff"):])} {
		s, err := ps.Parse(bytes.NewReader(data), int64(len(data)), ps.SyntaxHash)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Digest(bytes.NewReader(data), crypto.SHA256)
		if err != nil || !bytes.Equal(got, want[:]) {
			t.Errorf("%s: %x (%v), want %x", name, got, err, want)
		}
	}
}

// FuzzDigest compares the Digester, fed in chunks of any size, with the
// SIP hash computed here from Go's own UTF-16 encoder, on UTF-8 text with
// a byte order mark: the same digest, and an error exactly when the text
// is not UTF-8 or a line of it (the first after the byte order mark)
// begins a signature block.
func FuzzDigest(f *testing.F) {
	f.Add([]byte("Write-Host 'é'\r\n# SIG # Begin signature block\r\n"), uint8(3))
	f.Add([]byte("a\n# SIG # Begin signature bloc"), uint8(0))
	f.Add([]byte("# SIG # Begin signature block\r\n"), uint8(2))
	f.Add([]byte("\xff\r\n"), uint8(1))
	f.Add([]byte("🎉 世界\r\n  # SIG # Begin signature block\n"), uint8(6))
	f.Fuzz(func(t *testing.T, text []byte, chunk uint8) {
		data := append([]byte("\ufeff"), text...)
		s, err := ps.Parse(bytes.NewReader(data), int64(len(data)), ps.SyntaxHash)
		if err != nil || s.Signed() {
			return
		}
		h := sha256.New()
		d := s.NewDigester(h)
		for i := 0; i < len(data); i += int(chunk) + 1 {
			d.Write(data[i:min(i+int(chunk)+1, len(data))])
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		begins := false
		for _, line := range strings.Split(string(text), "\n") { // the first line without the byte order mark
			begins = begins || strings.HasPrefix(line, "# SIG # Begin signature block")
		}
		if bad := !utf8.Valid(data) || begins; (d.Err() != nil) != bad {
			t.Fatalf("error %v, want one: %v", d.Err(), bad)
		}
		if d.Err() == nil {
			if want := sha256.Sum256(utf16le(string(text))); !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatalf("digest %x, want %x", h.Sum(nil), want)
			}
		}
	})
}

// TestBlockSizes: a block past the first tail csv reads (64 KiB) is read
// whole, in UTF-8 and UTF-16; one past the cap is refused as a limit.
func TestBlockSizes(t *testing.T) {
	for _, tc := range []struct {
		der   int
		wide  bool
		limit bool
	}{{100, false, false}, {70 << 10, false, false}, {70 << 10, true, false}, {3 << 20, false, true}} {
		der := bytes.Repeat([]byte{0x30}, tc.der)
		enc := ps.UTF8
		if tc.wide {
			enc = ps.UTF16LE
		}
		text := []byte("x")
		if tc.wide {
			text = utf16le("x")
		}
		data := append(text, ps.EncodeBlock(ps.SyntaxHash, enc, der)...)
		s, err := ps.Parse(bytes.NewReader(data), int64(len(data)), ps.SyntaxHash)
		if tc.limit {
			if !errors.Is(err, signing.ErrLimit) || !errors.Is(err, signing.ErrMalformed) {
				t.Errorf("%d bytes: %v", tc.der, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(s.Block(), der) || s.Content != int64(len(text)) {
			t.Errorf("%d bytes (wide %v): %v", tc.der, tc.wide, err)
		}
	}
}

// TestTimestamps: a script's signature carries its RFC 3161 timestamp as a
// PE file's does, both ways: csv verifies the token osslsigncode asked an
// independent TSA (OpenSSL's responder) for, and a token csv asked for
// over its own signature.
func TestTimestamps(t *testing.T) {
	openssl := testenv.Tool(t, "openssl")
	p := newPKI(t)
	tsa := p.ca.TSA(t)
	url := testca.OpenSSLTSA(t, openssl, tsa, tsa.Cert, p.ca.Intermediate.Cert)
	text := []byte("Write-Host 'stamped'\r\n")
	client, err := tsahttp.New(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := authenticode.NewSigner(p.leaf.Key, []*x509.Certificate{p.leaf.Cert, p.ca.Intermediate.Cert}, authenticode.SignOptions{TSA: client})
	if err != nil {
		t.Fatal(err)
	}
	var byCSV bytes.Buffer
	if _, err := ps.Sign(context.Background(), bytes.NewReader(text), int64(len(text)), ps.SyntaxHash, &byCSV, s); err != nil {
		t.Fatal(err)
	}
	for name, signed := range map[string][]byte{"osslsigncode": osslSign(t, p, "a.ps1", text, "-ts", url), "csv": byCSV.Bytes()} {
		_, _, sigs, err := inspect(t, "a.ps1", signed, p.certs)
		if err != nil || len(sigs) != 1 || !sigs[0].Verified() {
			t.Fatalf("%s: %v %+v", name, err, sigs)
		}
		if ts := sigs[0].Timestamp; ts == nil || !ts.Verified() || ts.Kind != timestamp.KindRFC3161 {
			t.Errorf("%s: timestamp %+v", name, ts)
		}
	}
}
