package appx_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testappx"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/appx"
)

type pki struct {
	leaf  *testca.Cert
	chain []*x509.Certificate
	files testca.Files
	certs []*signing.Certificate
}

func newPKI(t testing.TB, o testca.LeafOptions) *pki {
	t.Helper()
	ca := testca.New(t)
	leaf := ca.Leaf(t, o)
	p := &pki{leaf: leaf, chain: []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, files: ca.WriteFiles(t, t.TempDir(), leaf)}
	sc, err := signing.ParseCertificate(ca.Root.Cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	p.certs = []*signing.Certificate{sc}
	return p
}

// payload is incompressible enough to span several deflated blocks.
func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(16))
	}
	return b
}

// bigData is in app.exe's .data section: tests find it to change a byte.
var bigData = payload(200_000, 7)

func files() []testappx.File {
	return []testappx.File{
		{Name: "app.exe", Data: testbin.PE(testbin.PEOptions{Data: bigData})},
		{Name: "lib/helper.dll", Data: testbin.PE(testbin.PEOptions{PE32: true}), Store: true},
		{Name: "Assets/logo%20big.png", Data: payload(70_000, 9), Store: true},
	}
}

func build(t testing.TB, o testappx.Options) []byte {
	t.Helper()
	if o.Files == nil {
		o.Files = files()
	}
	return testappx.Build(t, o)
}

// inspect parses data, checks its block map, computes its digests and
// verifies its signature.
func inspect(t testing.TB, data []byte, certs []*signing.Certificate) (*appx.Package, map[crypto.Hash][]byte, []*signing.Signature, error) {
	t.Helper()
	p, err := appx.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, nil, nil, err
	}
	if err := p.CheckBlockMap(); err != nil {
		return p, nil, nil, err
	}
	sums, err := p.Digests(append(authenticode.DigestAlgorithms(p), crypto.SHA256)...)
	if err != nil {
		return p, nil, nil, err
	}
	if !p.Signed() {
		return p, sums, nil, nil
	}
	sigs, err := appx.Verify(p, sums, authenticode.VerifyOptions{Certificates: certs})
	return p, sums, sigs, err
}

// tags splits a blob into its tagged digests.
func tags(t testing.TB, blob []byte, h crypto.Hash) map[string]string {
	t.Helper()
	if string(blob[:4]) != "APPX" {
		t.Fatalf("blob %x", blob)
	}
	out := map[string]string{}
	for b := blob[4:]; len(b) > 0; b = b[4+h.Size():] {
		out[string(b[:4])] = hex.EncodeToString(b[4 : 4+h.Size()])
	}
	return out
}

func flip(data []byte, i int) []byte {
	out := bytes.Clone(data)
	out[i] ^= 1
	return out
}

func counted(sig *signing.Signature) bool {
	return sig.Verified() && sig.IgnoredBy[signing.HostWindows] == ""
}

// TestPeerSignsCSVVerifies: osslsigncode signs packages of several
// layouts (data descriptors, SHA-384 and SHA-512 block maps, a code
// integrity catalog); csv checks the block map, computes each tagged
// digest as osslsigncode does and finds the signature valid and counted
// by Windows; a changed byte in a member is refused by both.
func TestPeerSignsCSVVerifies(t *testing.T) {
	p := newPKI(t, testca.LeafOptions{})
	for _, tc := range []struct {
		name string
		o    testappx.Options
	}{
		{"plain", testappx.Options{}},
		{"descriptors", testappx.Options{DataDescriptor: true}},
		{"sha384", testappx.Options{HashMethod: crypto.SHA384}},
		{"sha512-ci", testappx.Options{HashMethod: crypto.SHA512, CodeIntegrity: payload(3000, 3)}},
		{"zip64", testappx.Options{Zip64: true, DataDescriptor: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unsigned := build(t, tc.o)
			if _, _, _, err := inspect(t, unsigned, nil); err != nil {
				t.Fatalf("unsigned: %v", err)
			}
			signed := testappx.Sign(t, p.files, unsigned)
			pkg, sums, sigs, err := inspect(t, signed, p.certs)
			if err != nil {
				t.Fatal(err)
			}
			h := pkg.BlockMap.HashMethod
			if len(sigs) != 1 || !counted(sigs[0]) || sigs[0].DigestAlgorithm != h {
				t.Fatalf("signatures %+v (ignored: %v)", sigs, sigs[0].IgnoredBy)
			}
			ok, peer, out := testappx.Verify(t, p.files, signed)
			if !ok {
				t.Fatalf("osslsigncode refuses its own package:\n%s", out)
			}
			mine := tags(t, sums[h], h)
			want := 4
			if tc.o.CodeIntegrity != nil {
				want = 5
			}
			if len(peer) != want || len(mine) != want {
				t.Fatalf("osslsigncode computed %v, csv %v", peer, mine)
			}
			for tag, d := range peer {
				if mine[tag] != d {
					t.Errorf("%s: osslsigncode %s, csv %s", tag, d, mine[tag])
				}
			}
			// A changed byte of app.exe (deflated: its CRC no longer
			// matches, and AXPC changes).
			exe := pkg.Entry("app.exe")
			bad := flip(signed, int(exe.Data+exe.CompressedSize/2))
			if _, _, _, err := inspect(t, bad, p.certs); !errors.Is(err, signing.ErrMalformed) {
				t.Errorf("changed app.exe: csv %v", err)
			}
			if ok, _, _ := testappx.Verify(t, p.files, bad); ok {
				t.Errorf("changed app.exe: osslsigncode accepts it")
			}
		})
	}
}

// TestCSVSignsPeerVerifies: what csv signs osslsigncode verifies, with
// the digests csv computes; csv verifies it too; re-signing replaces the
// signature; a changed byte (a stored member, the manifest) is refused by
// both.
func TestCSVSignsPeerVerifies(t *testing.T) {
	p := newPKI(t, testca.LeafOptions{})
	for _, tc := range []struct {
		name string
		o    testappx.Options
	}{
		{"plain", testappx.Options{}},
		{"descriptors-ci", testappx.Options{DataDescriptor: true, CodeIntegrity: payload(5000, 4)}},
		{"sha384", testappx.Options{HashMethod: crypto.SHA384}},
		{"zip64", testappx.Options{Zip64: true, DataDescriptor: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unsigned := build(t, tc.o)
			signed := csvSign(t, p, unsigned, tc.o.HashMethod)
			pkg, sums, sigs, err := inspect(t, signed, p.certs)
			if err != nil {
				t.Fatal(err)
			}
			if len(sigs) != 1 || !counted(sigs[0]) {
				t.Fatalf("csv's own signature: %+v", sigs)
			}
			h := pkg.BlockMap.HashMethod
			ok, peer, out := testappx.Verify(t, p.files, signed)
			if !ok {
				t.Fatalf("osslsigncode refuses csv's package:\n%s", out)
			}
			mine := tags(t, sums[h], h)
			for tag, d := range peer {
				if mine[tag] != d {
					t.Errorf("%s: osslsigncode %s, csv %s", tag, d, mine[tag])
				}
			}
			// Signing again (csv over csv's, csv over osslsigncode's)
			// replaces the signature.
			for _, again := range [][]byte{csvSign(t, p, signed, tc.o.HashMethod), csvSign(t, p, testappx.Sign(t, p.files, unsigned), tc.o.HashMethod)} {
				if ok, _, out := testappx.Verify(t, p.files, again); !ok || strings.Count(string(again), "AppxSignature.p7x") != 2 {
					t.Fatalf("re-signed: osslsigncode %v\n%s", ok, out)
				}
				if _, _, sigs, err := inspect(t, again, p.certs); err != nil || len(sigs) != 1 || !counted(sigs[0]) {
					t.Fatalf("re-signed: csv %v %+v", err, sigs)
				}
			}
			logo := pkg.Entry("Assets/logo%20big.png")
			man := pkg.Entry("AppxManifest.xml")
			bm := pkg.Entry("AppxBlockMap.xml")
			for what, i := range map[string]int64{"stored member": logo.Data + 5, "manifest": man.Data + 3, "block map header": bm.Local + 10, "block map": bm.Data + bm.CompressedSize/2} {
				bad := flip(signed, int(i))
				_, _, sigs, err := inspect(t, bad, p.certs)
				if err != nil && !errors.Is(err, signing.ErrMalformed) {
					t.Errorf("%s changed: %v", what, err)
				}
				if err == nil && (len(sigs) != 1 || counted(sigs[0])) {
					t.Errorf("%s changed: csv accepts it", what)
				}
				if err == nil && !errors.Is(sigs[0].Problem, signing.ErrDigestMismatch) {
					t.Errorf("%s changed: %v", what, sigs[0].Problem)
				}
				if ok, _, _ := testappx.Verify(t, p.files, bad); ok {
					t.Errorf("%s changed: osslsigncode accepts it", what)
				}
			}
		})
	}
}

func csvSign(t testing.TB, p *pki, data []byte, h crypto.Hash) []byte {
	t.Helper()
	if h == 0 {
		h = crypto.SHA256
	}
	s, err := authenticode.NewSigner(p.leaf.Key, p.chain, authenticode.SignOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := appx.Sign(context.Background(), bytes.NewReader(data), int64(len(data)), &out, s, p.leaf.Cert.RawSubject, appx.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != int64(out.Len()) {
		t.Fatalf("size %d, wrote %d", res.Size, out.Len())
	}
	return out.Bytes()
}

// TestPublisher: a package whose manifest names another publisher than
// the signer's subject verifies but is not counted for Windows, which
// refuses to install it; csv sign refuses to sign it.
func TestPublisher(t *testing.T) {
	p := newPKI(t, testca.LeafOptions{})
	for _, pub := range []string{"CN=Someone Else, O=csv tests", "O=csv tests, CN=Test Code Signing", "CN=Test Code Signing"} {
		unsigned := build(t, testappx.Options{Publisher: pub})
		signed := testappx.Sign(t, p.files, unsigned)
		_, _, sigs, err := inspect(t, signed, p.certs)
		if err != nil || len(sigs) != 1 || !sigs[0].Verified() || !strings.Contains(sigs[0].IgnoredBy[signing.HostWindows], "Publisher") {
			t.Errorf("%q: %v %+v", pub, err, sigs)
		}
		s, _ := authenticode.NewSigner(p.leaf.Key, p.chain, authenticode.SignOptions{Hash: crypto.SHA256})
		_, err = appx.Sign(context.Background(), bytes.NewReader(unsigned), int64(len(unsigned)), &bytes.Buffer{}, s, p.leaf.Cert.RawSubject, appx.SignOptions{})
		if !errors.Is(err, appx.ErrPublisher) {
			t.Errorf("%q: csv sign: %v", pub, err)
		}
	}
	// Quoted values and spacing as Windows writes them.
	q := newPKI(t, testca.LeafOptions{CommonName: `Contoso, Ltd "Tools"`})
	pub := `CN="Contoso, Ltd ""Tools""",O=csv tests`
	signed := testappx.Sign(t, q.files, build(t, testappx.Options{Publisher: pub}))
	if _, _, sigs, err := inspect(t, signed, q.certs); err != nil || len(sigs) != 1 || !counted(sigs[0]) {
		t.Errorf("quoted publisher: %v %+v", err, sigs)
	}
}

// TestBlockMapRefusals: a block map that does not describe the package
// makes it malformed, naming the member; osslsigncode, which does not
// read the block map, signs such packages, and csv still refuses them.
func TestBlockMapRefusals(t *testing.T) {
	p := newPKI(t, testca.LeafOptions{})
	firstFile := func(s string) (string, string) {
		i := strings.Index(s, "<File ")
		j := strings.Index(s, "</File>") + len("</File>")
		return s[i:j], s[:i] + s[j:]
	}
	for _, tc := range []struct {
		name string
		edit func(string) string
		want error
	}{
		{"unlisted member", func(s string) string { _, rest := firstFile(s); return rest }, appx.ErrBlockMap},
		{"listed missing", func(s string) string {
			return strings.Replace(s, "</BlockMap>", `<File Name="ghost.dll" Size="0" LfhSize="39"></File></BlockMap>`, 1)
		}, appx.ErrBlockMap},
		{"duplicate", func(s string) string {
			f, _ := firstFile(s)
			return strings.Replace(s, "</BlockMap>", f+"</BlockMap>", 1)
		}, appx.ErrBlockMap},
		{"size", func(s string) string {
			return strings.Replace(s, `Name="lib\helper.dll" Size="`, `Name="lib\helper.dll" Size="1`, 1)
		}, appx.ErrBlockMap},
		{"lfhsize", func(s string) string { return strings.Replace(s, `LfhSize="37"`, `LfhSize="38"`, 1) }, appx.ErrBlockMap},
		{"hash", func(s string) string {
			i := strings.Index(s, `<Block Hash="`) + len(`<Block Hash="`)
			c := "A"
			if s[i] == 'A' {
				c = "B"
			}
			return s[:i] + c + s[i+1:]
		}, signing.ErrDigestMismatch},
		{"block size", func(s string) string { return strings.Replace(s, `" Size="`, `" Size="1`, 1) }, appx.ErrBlockMap},
		{"dtd", func(s string) string {
			return strings.Replace(s, "<BlockMap ", `<!DOCTYPE BlockMap [<!ENTITY x "y">]><BlockMap `, 1)
		}, appx.ErrBlockMap},
		{"hash method", func(s string) string { return strings.Replace(s, "xmlenc#sha256", "xmldsig#sha1", 1) }, appx.ErrBlockMap},
		{"unknown element", func(s string) string {
			return strings.Replace(s, "</BlockMap>", `<Extra/></BlockMap>`, 1)
		}, appx.ErrBlockMap},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := build(t, testappx.Options{EditBlockMap: tc.edit})
			// Where osslsigncode can read the hash method, it signs it.
			if tc.name != "hash method" && tc.name != "dtd" {
				data = testappx.Sign(t, p.files, data)
			}
			_, _, _, err := inspect(t, data, p.certs)
			var me *signing.MalformedError
			if !errors.Is(err, tc.want) || !errors.As(err, &me) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestZipRefusals: what the digests could not cover makes the package
// malformed.
func TestZipRefusals(t *testing.T) {
	p := newPKI(t, testca.LeafOptions{})
	signed := testappx.Sign(t, p.files, build(t, testappx.Options{}))
	pkg, err := appx.Parse(bytes.NewReader(signed), int64(len(signed)))
	if err != nil {
		t.Fatal(err)
	}
	sig := pkg.Entry(appx.SignatureName)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"appended", append(bytes.Clone(signed), "trailing"...)},
		{"cut", signed[:len(signed)-1]},
		{"gap", func() []byte {
			// The signature's record moved 4 bytes on (its central record
			// and the end record pointing at it).
			b := append(bytes.Clone(signed[:sig.Local]), 0, 0, 0, 0)
			b = append(b, signed[sig.Local:]...)
			return b
		}()},
		{"empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := appx.Parse(bytes.NewReader(tc.data), int64(len(tc.data)))
			if !errors.Is(err, signing.ErrMalformed) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// extract returns a member's uncompressed bytes (stdlib's reading).
func extract(t testing.TB, data []byte, e *appx.Entry) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if f.Name == e.Name {
			r, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("no %s", e.Name)
	return nil
}

// TestBundle: osslsigncode signs a bundle with the bundle SIP; csv counts
// it, and what csv signs osslsigncode verifies.
func TestBundle(t *testing.T) {
	p := newPKI(t, testca.LeafOptions{})
	unsigned := build(t, testappx.Options{Bundle: true})
	for who, signed := range map[string][]byte{"osslsigncode": testappx.Sign(t, p.files, unsigned), "csv": csvSign(t, p, unsigned, 0)} {
		pkg, _, sigs, err := inspect(t, signed, p.certs)
		if err != nil || !pkg.Bundle || len(sigs) != 1 || !counted(sigs[0]) {
			t.Fatalf("%s: %v %+v", who, err, sigs)
		}
		if ok, _, out := testappx.Verify(t, p.files, signed); !ok {
			t.Fatalf("%s: osslsigncode refuses it:\n%s", who, out)
		}
	}
	// A bundle's signature names the bundle SIP: the same signature over
	// a package (its bundle manifest renamed) is not counted.
	signed := testappx.Sign(t, p.files, unsigned)
	renamed := bytes.ReplaceAll(signed, []byte(appx.BundleManifestName), []byte("AppxMetadata/AppxBundleManifesX.xml"))
	pkg, err := appx.Parse(bytes.NewReader(renamed), int64(len(renamed)))
	if err != nil || pkg.Bundle {
		t.Fatalf("%v %v", err, pkg)
	}
	sums, _ := pkg.Digests(crypto.SHA256)
	sigs, err := appx.Verify(pkg, sums, authenticode.VerifyOptions{Certificates: p.certs})
	if err != nil || len(sigs) != 1 || !strings.Contains(sigs[0].IgnoredBy[signing.HostWindows], "SIP") {
		t.Fatalf("%v %+v", err, sigs)
	}
}

// TestDeclaredSizeCaps: a member declaring more than deflate can expand
// its compressed bytes to is refused before anything is decompressed (or
// allocated for it).
func TestDeclaredSizeCaps(t *testing.T) {
	data := build(t, testappx.Options{})
	pkg, err := appx.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(data)
	// The central record's uncompressed size: 3 GiB from a few KiB.
	cd := bytes.LastIndex(bad, []byte("app.exe")) - 46
	if pkg.Entry("app.exe") == nil || string(bad[cd:cd+4]) != "PK\x01\x02" {
		t.Fatal("no central record")
	}
	binary.LittleEndian.PutUint32(bad[cd+24:], 3<<30)
	_, err = appx.Parse(bytes.NewReader(bad), int64(len(bad)))
	if !errors.Is(err, signing.ErrLimit) || !errors.Is(err, signing.ErrMalformed) {
		t.Fatalf("got %v", err)
	}
}
