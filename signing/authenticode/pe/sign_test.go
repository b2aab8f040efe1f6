package pe_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/binfmt"
	binpe "github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/pe"
	"github.com/codesignval/csv/signing/timestamp"
	"github.com/codesignval/csv/signing/timestamp/tsahttp"
)

// goBuilt cross-compiles a small Go program for Windows once per test
// binary (amd64: PE32+, 386: PE32), as the benchmark corpus's programs are
// made. It skips where go is absent or in -short mode.
var goBuilt struct {
	once  sync.Once
	files map[string][]byte
	err   error
}

func goWindowsPEs(t *testing.T) map[string][]byte {
	t.Helper()
	if testing.Short() {
		t.Skip("cross-compiling Go programs in -short mode")
	}
	goTool := testenv.Tool(t, "go")
	goBuilt.once.Do(func() {
		dir, err := os.MkdirTemp("", "csv-sign-gobuild")
		if err != nil {
			goBuilt.err = err
			return
		}
		defer os.RemoveAll(dir)
		src := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o600); err != nil {
			goBuilt.err = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.21\n"), 0o600); err != nil {
			goBuilt.err = err
			return
		}
		goBuilt.files = map[string][]byte{}
		for _, arch := range []string{"amd64", "386"} {
			out := filepath.Join(dir, arch+".exe")
			cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-buildid=", "-o", out, ".")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH="+arch, "CGO_ENABLED=0", "GOFLAGS=")
			if msg, err := cmd.CombinedOutput(); err != nil {
				goBuilt.err = fmt.Errorf("go build GOARCH=%s: %v\n%s", arch, err, msg)
				return
			}
			data, err := os.ReadFile(out)
			if err != nil {
				goBuilt.err = err
				return
			}
			goBuilt.files["go-"+arch] = data
		}
	})
	if goBuilt.err != nil {
		t.Fatal(goBuilt.err)
	}
	return goBuilt.files
}

// sharedUnsigned returns every unsigned PE file in ../shared/testdata/pe.
func sharedUnsigned(t *testing.T) map[string][]byte {
	t.Helper()
	dir := testenv.Shared(t, "testdata/pe")
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !binpe.IsPE(bytes.NewReader(data), int64(len(data))) {
			return nil
		}
		f, err := binpe.Parse(bytes.NewReader(data), int64(len(data)))
		if err == nil && !f.Signed() {
			rel, _ := filepath.Rel(dir, path)
			out[rel] = data
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no unsigned PE files in %s", dir)
	}
	return out
}

// codeOf is deterministic filler code of n bytes.
func codeOf(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*131 + i>>8)
	}
	return b
}

// TestSignPeers signs PE32 and PE32+ files of every size modulo 8 (overlay
// or not, spanning several stream buffers or one), Go-built programs and
// the unsigned third-party files with a test RSA leaf, and checks the file
// (layout, padding, checksum, digest of the unsigned file = digest of the
// signed one = SignResult.Digest), that our Verify accepts the signature
// with the digest and chain expected, and that osslsigncode verify accepts
// the file and agrees with its checksum.
func TestSignPeers(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	type tcase struct {
		name string
		in   []byte
		hash crypto.Hash
		opts authenticode.SignOptions
	}
	var tests []tcase
	for n := range 8 {
		tests = append(tests,
			tcase{name: fmt.Sprintf("pe32plus-overlay-%d", n), in: testbin.PE(testbin.PEOptions{Overlay: codeOf(n)})},
			tcase{name: fmt.Sprintf("pe32-overlay-%d", 1000+n), in: testbin.PE(testbin.PEOptions{PE32: true, Data: []byte("data"), Overlay: codeOf(1000 + n)})})
	}
	tests = append(tests,
		tcase{name: "pe32plus-no-checksum", in: testbin.PE(testbin.PEOptions{NoChecksum: true})},
		// 600 KiB of code and an odd overlay: the stream crosses buffer
		// boundaries and ends on an odd offset.
		tcase{name: "pe32plus-multi-buffer-odd", in: testbin.PE(testbin.PEOptions{Code: codeOf(600 << 10), Overlay: codeOf(12345)})},
		tcase{name: "pe32-sha384", in: testbin.PE(testbin.PEOptions{PE32: true, Overlay: codeOf(3)}), hash: crypto.SHA384},
		tcase{name: "pe32plus-sha512", in: testbin.PE(testbin.PEOptions{Overlay: codeOf(5)}), hash: crypto.SHA512},
		tcase{name: "description-and-url", in: testbin.PE(testbin.PEOptions{}),
			opts: authenticode.SignOptions{Description: "csv test program", URL: "https://example.com/csv"}},
	)
	t.Run("shared", func(t *testing.T) {
		for name, data := range sharedUnsigned(t) {
			t.Run(name, func(t *testing.T) { checkPeerSigning(t, p, s, data, crypto.SHA256, authenticode.SignOptions{}) })
		}
	})
	t.Run("go-built", func(t *testing.T) {
		for name, data := range goWindowsPEs(t) {
			t.Run(name, func(t *testing.T) { checkPeerSigning(t, p, s, data, crypto.SHA256, authenticode.SignOptions{}) })
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.hash
			if h == 0 {
				h = crypto.SHA256
			}
			opts := tt.opts
			opts.Hash = tt.hash
			out := checkPeerSigning(t, p, s, tt.in, h, opts)
			if opts.Description != "" {
				for _, want := range []string{"Text description: " + opts.Description, "URL description: " + opts.URL, "Microsoft Individual Code Signing purpose"} {
					if !strings.Contains(out, want) {
						t.Errorf("osslsigncode does not print %q:\n%s", want, out)
					}
				}
			}
		})
	}
}

// checkPeerSigning signs in and runs every check; it returns osslsigncode's
// output.
func checkPeerSigning(t *testing.T, p *pki, s *signer, in []byte, h crypto.Hash, opts authenticode.SignOptions) string {
	t.Helper()
	out, res := signPE(t, in, s.leaf.Key, p.chainOf(s), opts)
	if len(res.Warnings) != 0 {
		t.Errorf("warnings for an RSA signature: %q", res.Warnings)
	}
	signed := checkSigned(t, in, out, res, h)
	sigs := verify(t, signed, authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}})
	if len(sigs) != 1 {
		t.Fatalf("%d signatures, want 1", len(sigs))
	}
	sig := sigs[0]
	if !sig.Verified() || sig.DigestAlgorithm != h || !bytes.Equal(sig.Digest, res.Digest) || sig.SignatureAlgorithm != "RSA" || sig.Timestamp != nil {
		t.Errorf("signature: verified %v (%v), %v %x (want %v %x), %s, timestamp %v", sig.Verified(), sig.Problem, sig.DigestAlgorithm, sig.Digest, h, res.Digest, sig.SignatureAlgorithm, sig.Timestamp)
	}
	wantChain(t, "signer", sig.Chains, s.cert, p.inter, p.root)
	return osslAccepts(t, signed, p.rootPEM)
}

// TestSignSignedAttributes reads back the signature's structure: the
// signed attributes are exactly contentType, SpcSpOpusInfo, SpcStatementType
// and messageDigest, in DER SET order, with the values Windows expects, and
// the certificates are the chain, leaf first.
func TestSignSignedAttributes(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	out, _ := signPE(t, testbin.PE(testbin.PEOptions{}), s.leaf.Key, p.chainOf(s), authenticode.SignOptions{Description: "Ünïcode ☃", URL: "https://example.com/"})
	der := parseSignedPE(t, out).pkcs7(t)

	attrs := at(t, der, signerInfoPath(siSignedAttrs)...)
	var encs [][]byte
	var oids []string
	for i := range children(t, der, attrs) {
		a := at(t, der, signerInfoPath(siSignedAttrs, i)...)
		encs = append(encs, a.bytes(der))
		var oid asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(at(t, der, signerInfoPath(siSignedAttrs, i, 0)...).bytes(der), &oid); err != nil {
			t.Fatal(err)
		}
		oids = append(oids, oid.String())
	}
	if !slices.IsSortedFunc(encs, bytes.Compare) {
		t.Error("signed attributes are not in DER SET order")
	}
	slices.Sort(oids)
	if want := []string{"1.2.840.113549.1.9.3", "1.2.840.113549.1.9.4", "1.3.6.1.4.1.311.2.1.11", "1.3.6.1.4.1.311.2.1.12"}; !slices.Equal(oids, want) {
		t.Errorf("signed attributes %v, want %v", oids, want)
	}
	for i := range encs {
		switch oids := at(t, der, signerInfoPath(siSignedAttrs, i, 0)...).bytes(der); {
		case bytes.Equal(oids, mustMarshal(t, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 12})):
			// SpcSpOpusInfo: [0] { [0] BMPString }, [1] { [0] IA5String }.
			want := []byte{0xa0, 0x14, 0x80, 0x12, 0, 0xdc, 0, 'n', 0, 0xef, 0, 'c', 0, 'o', 0, 'd', 0, 'e', 0, ' ', 0x26, 0x03}
			want = append(want, 0xa1, 0x16, 0x80, 0x14)
			want = append(want, "https://example.com/"...)
			if got := at(t, der, signerInfoPath(siSignedAttrs, i, 1, 0)...).contents(der); !bytes.Equal(got, want) {
				t.Errorf("SpcSpOpusInfo contents %x, want %x", got, want)
			}
		case bytes.Equal(oids, mustMarshal(t, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 11})):
			want := mustMarshal(t, []asn1.ObjectIdentifier{{1, 3, 6, 1, 4, 1, 311, 2, 1, 21}})
			if got := at(t, der, signerInfoPath(siSignedAttrs, i, 1, 0)...).bytes(der); !bytes.Equal(got, want) {
				t.Errorf("SpcStatementType %x, want %x", got, want)
			}
		}
	}
	// SpcPeImageData as osslsigncode writes it.
	wantPE := []byte{0x30, 0x26, 0x03, 0x02, 0x07, 0x80, 0xa0, 0x20, 0xa2, 0x1e, 0x80, 0x1c}
	for _, r := range "<<<Obsolete>>>" {
		wantPE = append(wantPE, 0, byte(r))
	}
	if got := at(t, der, 1, 0, 2, 1, 0, 0, 1).bytes(der); !bytes.Equal(got, wantPE) {
		t.Errorf("SpcPeImageData %x, want %x", got, wantPE)
	}
	var certs [][]byte
	for i := range children(t, der, at(t, der, pathCerts...)) {
		certs = append(certs, at(t, der, append(slices.Clone(pathCerts), i)...).bytes(der))
	}
	if len(certs) != 2 || !bytes.Equal(certs[0], s.leaf.Cert.Raw) || !bytes.Equal(certs[1], p.ca.Intermediate.Cert.Raw) {
		t.Errorf("%d certificates, want the leaf then the issuing CA", len(certs))
	}
}

// TestSignDeterministic: RSA signing gives the same bytes every time, and
// re-signing a file Sign made (replace) gives the same bytes again.
func TestSignDeterministic(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	in := testbin.PE(testbin.PEOptions{PE32: true, Overlay: codeOf(77)})
	opts := authenticode.SignOptions{Description: "same", URL: "https://example.com"}
	a, _ := signPE(t, in, s.leaf.Key, p.chainOf(s), opts)
	b, _ := signPE(t, in, s.leaf.Key, p.chainOf(s), opts)
	c, _ := signPE(t, a, s.leaf.Key, p.chainOf(s), opts)
	if !bytes.Equal(a, b) {
		t.Error("signing twice gave different bytes")
	}
	if !bytes.Equal(a, c) {
		t.Error("re-signing the signed file gave different bytes")
	}
	// Different input, different signature: the output depends on it.
	d, _ := signPE(t, testbin.PE(testbin.PEOptions{PE32: true, Overlay: codeOf(78)}), s.leaf.Key, p.chainOf(s), opts)
	if bytes.Equal(parseSignedPE(t, a).table, parseSignedPE(t, d).table) {
		t.Error("two files got the same signature")
	}
}

// TestSignReplace re-signs files signed by others: osslsigncode's (one
// signature, and one with nested signatures) and the third-party signed
// files. The result holds one WIN_CERTIFICATE, ours, verified; the image
// digest is unchanged; and for osslsigncode's file, the output is
// byte-identical to signing the unsigned original (both pad the same way).
func TestSignReplace(t *testing.T) {
	p := newPKI(t)
	ours := p.signer(t, testca.LeafOptions{CommonName: "Our Signer"})
	theirs := p.signer(t, testca.LeafOptions{CommonName: "Their Signer"})
	other := p.signer(t, testca.LeafOptions{CommonName: "Their ECDSA Signer", KeyType: testca.ECDSAP256})
	unsigned := testbin.PE(testbin.PEOptions{Overlay: codeOf(13)})
	single := osslSign(t, unsigned, theirs, "-h", "sha1", "-n", "theirs")
	nested := osslSign(t, osslSign(t, unsigned, theirs, "-h", "sha256"), other, "-nest", "-h", "sha384")

	fresh, _ := signPE(t, unsigned, ours.leaf.Key, p.chainOf(ours), authenticode.SignOptions{})
	check := func(t *testing.T, in []byte) []byte {
		t.Helper()
		out, res := signPE(t, in, ours.leaf.Key, p.chainOf(ours), authenticode.SignOptions{})
		signed := checkSigned(t, in, out, res, crypto.SHA256)
		if n := len(signed.entries(t)); n != 1 {
			t.Errorf("%d WIN_CERTIFICATE entries, want 1", n)
		}
		sigs := verify(t, signed, authenticode.VerifyOptions{})
		if len(sigs) != 1 || !sigs[0].Verified() || sigs[0].Signer().CommonName() != "Our Signer" {
			t.Fatalf("signatures after replacing: %d, first %+v", len(sigs), sigs[0])
		}
		osslAccepts(t, signed, p.rootPEM)
		return out
	}
	for name, in := range map[string][]byte{"osslsigncode": single, "osslsigncode-nested": nested} {
		t.Run(name, func(t *testing.T) {
			if out := check(t, in); !bytes.Equal(out, fresh) {
				t.Error("re-signing osslsigncode's file differs from signing the unsigned file")
			}
		})
	}
	t.Run("shared", func(t *testing.T) {
		dir := testenv.Shared(t, "testdata/pe")
		for _, name := range []string{"uthenticode/32-pegoat-authenticode.exe", "uthenticode/64-pegoat-authenticode.exe",
			"uthenticode/32-pegoat-authenticode-nested.exe", "uthenticode/32-pegoat-authenticode_duplicated.exe",
			"authenticode-rs/tiny32.signed.efi", "authenticode-rs/tiny64.signed.efi"} {
			t.Run(name, func(t *testing.T) {
				in, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				check(t, in)
			})
		}
	})
}

// TestSignAppend nests signatures: ours in ours (twice: the second goes
// after the first in the same attribute), ours in osslsigncode's signatures
// with a timestamp and with a nested signature already, and ours in the
// first of two WIN_CERTIFICATE entries. Every signature that verified before
// still does, ours verifies at the expected path, the digest is unchanged,
// and osslsigncode counts every signature.
func TestSignAppend(t *testing.T) {
	p := newPKI(t)
	a := p.signer(t, testca.LeafOptions{CommonName: "Signer A"})
	b := p.signer(t, testca.LeafOptions{CommonName: "Signer B"})
	c := p.signer(t, testca.LeafOptions{CommonName: "Signer C", KeyType: testca.ECDSAP256})
	tsa := p.tsa(t)
	in := testbin.PE(testbin.PEOptions{PE32: true, Overlay: codeOf(21)})
	roots := authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}}

	t.Run("ours-in-ours", func(t *testing.T) {
		first, res := signPE(t, in, a.leaf.Key, p.chainOf(a), authenticode.SignOptions{})
		second, res2 := signPE(t, first, b.leaf.Key, p.chainOf(b), authenticode.SignOptions{Append: true, Hash: crypto.SHA512})
		third, res3 := signPE(t, second, c.leaf.Key, p.chainOf(c), authenticode.SignOptions{Append: true})
		checkSigned(t, in, first, res, crypto.SHA256)
		checkSigned(t, first, second, res2, crypto.SHA512)
		s := checkSigned(t, second, third, res3, crypto.SHA256)
		if n := len(s.entries(t)); n != 1 {
			t.Errorf("%d entries, want 1", n)
		}
		sigs := verify(t, s, roots)
		want := []struct {
			path []int
			who  *signer
			hash crypto.Hash
		}{{[]int{}, a, crypto.SHA256}, {[]int{0}, b, crypto.SHA512}, {[]int{1}, c, crypto.SHA256}}
		if len(sigs) != len(want) {
			t.Fatalf("%d signatures, want %d", len(sigs), len(want))
		}
		for i, w := range want {
			if !sigs[i].Verified() || !slices.Equal(sigs[i].Path, w.path) || sigs[i].DigestAlgorithm != w.hash {
				t.Errorf("signature %d: path %v, %v, verified %v (%v); want path %v, %v", i, sigs[i].Path, sigs[i].DigestAlgorithm, sigs[i].Verified(), sigs[i].Problem, w.path, w.hash)
			}
			wantChain(t, fmt.Sprintf("signature %d", i), sigs[i].Chains, w.who.cert, p.inter, p.root)
		}
		// The outer signature is untouched: same signed attributes and
		// signature octets.
		before, after := parseSignedPE(t, first).pkcs7(t), s.pkcs7(t)
		for _, child := range []int{siSignedAttrs, siSignature} {
			if !bytes.Equal(at(t, before, signerInfoPath(child)...).bytes(before), at(t, after, signerInfoPath(child)...).bytes(after)) {
				t.Errorf("SignerInfo child %d of the outer signature changed", child)
			}
		}
		if got := nestedValues(t, s); !slices.Equal(got, []int{2}) {
			t.Errorf("SPC_NESTED_SIGNATURE attributes holding %v values, want one holding 2", got)
		}
		out := osslAccepts(t, s, p.rootPEM)
		if !strings.Contains(out, "Number of verified signatures: 3") {
			t.Errorf("osslsigncode does not verify 3 signatures:\n%s", out)
		}
	})

	t.Run("in-osslsigncode-timestamped-and-nested", func(t *testing.T) {
		tsArgs := []string{"-TSA-certs", tsa.files.Chain, "-TSA-key", tsa.files.Key, "-TSA-time", fmt.Sprint(testca.Epoch.Unix())}
		theirs := osslSign(t, in, a, append([]string{"-h", "sha256"}, tsArgs...)...)
		theirs = osslSign(t, theirs, c, "-nest", "-h", "sha1")
		out, res := signPE(t, theirs, b.leaf.Key, p.chainOf(b), authenticode.SignOptions{Append: true})
		s := checkSigned(t, theirs, out, res, crypto.SHA256)
		sigs := verify(t, s, roots)
		if len(sigs) != 3 {
			t.Fatalf("%d signatures, want 3", len(sigs))
		}
		for i, who := range []*signer{a, c, b} {
			if !sigs[i].Verified() || !slices.Equal(sigs[i].Path, [][]int{{}, {0}, {1}}[i]) || sigs[i].Signer() != nil && sigs[i].Signer().CommonName() != who.cert.CommonName() {
				t.Errorf("signature %d: path %v, verified %v (%v), signer %v", i, sigs[i].Path, sigs[i].Verified(), sigs[i].Problem, sigs[i].Signer())
			}
		}
		if got := nestedValues(t, s); !slices.Equal(got, []int{2}) {
			t.Errorf("SPC_NESTED_SIGNATURE attributes holding %v values, want one holding 2 (ours appended to osslsigncode's)", got)
		}
		if ts := sigs[0].Timestamp; ts == nil || !ts.Verified() {
			t.Errorf("the outer signature's timestamp: %+v", ts)
		}
		out2 := osslAccepts(t, s, p.rootPEM, "-TSA-CAfile", p.rootPEM)
		if !strings.Contains(out2, "Number of verified signatures: 3") {
			t.Errorf("osslsigncode does not verify 3 signatures:\n%s", out2)
		}
	})

	t.Run("two-entries", func(t *testing.T) {
		// uthenticode's file carries the same SHA1 signature in two
		// WIN_CERTIFICATE entries (osslsigncode cannot read it).
		in, err := os.ReadFile(filepath.Join(testenv.Shared(t, "testdata/pe"), "uthenticode/32-pegoat-authenticode_duplicated.exe"))
		if err != nil {
			t.Fatal(err)
		}
		orig := parseSignedPE(t, in)
		before := verify(t, orig, authenticode.VerifyOptions{})
		out, res := signPE(t, in, b.leaf.Key, p.chainOf(b), authenticode.SignOptions{Append: true})
		s := checkSigned(t, in, out, res, crypto.SHA256)
		oe, ne := orig.entries(t), s.entries(t)
		if len(ne) != 2 {
			t.Fatalf("%d entries, want 2", len(ne))
		}
		if oe[1].Length != ne[1].Length || !bytes.Equal(oe[1].Data, ne[1].Data) {
			t.Error("the second entry changed")
		}
		sigs := verify(t, s, authenticode.VerifyOptions{})
		if len(sigs) != 3 || len(before) != 2 {
			t.Fatalf("%d signatures (%d before), want 3", len(sigs), len(before))
		}
		if sigs[0].Verified() != before[0].Verified() || sigs[2].Verified() != before[1].Verified() || sigs[2].Index != 1 {
			t.Errorf("the existing signatures' results changed: %v %v, before %v %v", sigs[0].Problem, sigs[2].Problem, before[0].Problem, before[1].Problem)
		}
		if sigs[1].Index != 0 || !slices.Equal(sigs[1].Path, []int{0}) || !sigs[1].Verified() || sigs[1].Signer().CommonName() != "Signer B" {
			t.Errorf("our nested signature: index %d path %v verified %v (%v)", sigs[1].Index, sigs[1].Path, sigs[1].Verified(), sigs[1].Problem)
		}
	})

	t.Run("past-the-unsigned-attributes-cap", func(t *testing.T) {
		// Each append nests one more signature in the first one's
		// unsigned attributes: Sign refuses the one that would take them
		// past limits.MaxUnsignedAttributes, which Verify would refuse.
		out, _ := signPE(t, in, a.leaf.Key, p.chainOf(a), authenticode.SignOptions{})
		for n := 1; ; n++ {
			next, _, err := trySign(t, out, b.leaf.Key, p.chainOf(b), authenticode.SignOptions{Append: true})
			if err != nil {
				if !errors.Is(err, authenticode.ErrLimit) || !strings.Contains(err.Error(), "bytes of unsigned attributes") {
					t.Fatalf("append %d: %v, want the unsigned attributes cap", n, err)
				}
				if n < 10 {
					t.Errorf("refused after %d appends: the cap bites too early (real files nest one or two)", n)
				}
				break
			}
			out = next
			if n > authenticode.MaxSignatures {
				t.Fatal("no cap reached")
			}
		}
		if sigs := verify(t, parseSignedPE(t, out), roots); !sigs[len(sigs)-1].Verified() {
			t.Errorf("the last file Sign wrote does not verify: %v", sigs[len(sigs)-1].Problem)
		}
	})

	t.Run("unsigned", func(t *testing.T) {
		out, res := signPE(t, in, b.leaf.Key, p.chainOf(b), authenticode.SignOptions{Append: true})
		s := checkSigned(t, in, out, res, crypto.SHA256)
		if !slices.Contains(res.Warnings, authenticode.WarningAppendUnsigned) {
			t.Errorf("warnings %q, want %q", res.Warnings, authenticode.WarningAppendUnsigned)
		}
		if sigs := verify(t, s, authenticode.VerifyOptions{}); len(sigs) != 1 || !sigs[0].Verified() {
			t.Errorf("signatures: %+v", sigs)
		}
	})
}

// nestedValues returns, for each SPC_NESTED_SIGNATURE attribute in the
// first entry's outer SignerInfo, the number of values it holds.
func nestedValues(t *testing.T, s *signedPE) []int {
	t.Helper()
	der := s.pkcs7(t)
	oid := mustMarshal(t, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 4, 1})
	var out []int
	path := signerInfoPath(siUnsigned)
	for i := range children(t, der, at(t, der, path...)) {
		attr := append(slices.Clone(path), i)
		if bytes.Equal(at(t, der, append(attr, 0)...).bytes(der), oid) {
			out = append(out, len(children(t, der, at(t, der, append(attr, 1)...))))
		}
	}
	return out
}

// TestSignECDSA: an ECDSA leaf signs (ecdsa-with-SHA256/384), our verifier
// and osslsigncode accept it, and the result warns that WDAC ignores it.
func TestSignECDSA(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{KeyType: testca.ECDSAP256})
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
		t.Run(h.String(), func(t *testing.T) {
			in := testbin.PE(testbin.PEOptions{Overlay: codeOf(9)})
			out, res := signPE(t, in, s.leaf.Key, p.chainOf(s), authenticode.SignOptions{Hash: h})
			if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "WDAC") || res.Warnings[0] != authenticode.WarningECDSA {
				t.Errorf("warnings %q, want one about WDAC", res.Warnings)
			}
			signed := checkSigned(t, in, out, res, h)
			sigs := verify(t, signed, authenticode.VerifyOptions{})
			if len(sigs) != 1 || !sigs[0].Verified() || sigs[0].SignatureAlgorithm != "ECDSA" || sigs[0].DigestAlgorithm != h {
				t.Fatalf("signature: %+v", sigs[0])
			}
			wantOID := map[crypto.Hash]asn1.ObjectIdentifier{crypto.SHA256: {1, 2, 840, 10045, 4, 3, 2}, crypto.SHA384: {1, 2, 840, 10045, 4, 3, 3}}[h]
			der := signed.pkcs7(t)
			if got := at(t, der, signerInfoPath(siSigAlg)...).bytes(der); !bytes.Equal(got, mustMarshal(t, pkix.AlgorithmIdentifier{Algorithm: wantOID})) {
				t.Errorf("signature algorithm %x, want %v", got, wantOID)
			}
			osslAccepts(t, signed, p.rootPEM)
		})
	}
}

// TestSignTimestamp countersigns through a local RFC 3161 TSA: Verify
// finds the token verified, at the TSA's time, with the TSA's chain, and so
// does osslsigncode; a nested signature gets its own timestamp. A TSA that
// refuses, answers for another request (nonce), for other data (imprint),
// with a bad signature, no token, an HTTP error or garbage makes Sign fail
// with ErrTimestamp.
func TestSignTimestamp(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	tsaSigner := p.tsa(t)
	when := testca.Epoch.Add(50*time.Hour + 7*time.Second)
	tsa := newRFC3161TSA(t, tsaSigner, []*x509.Certificate{tsaSigner.leaf.Cert, p.ca.Intermediate.Cert}, when)
	in := testbin.PE(testbin.PEOptions{Overlay: codeOf(3)})
	opts := authenticode.SignOptions{TSA: tsaAt(t, tsa.URL)}

	checkTS := func(t *testing.T, sig *signing.Signature) {
		t.Helper()
		ts := sig.Timestamp
		if ts == nil || ts.Kind != authenticode.TimestampRFC3161 || !ts.Verified() || !ts.Time.Equal(when) {
			t.Fatalf("timestamp %+v, want a verified RFC 3161 timestamp at %v", ts, when)
		}
		wantChain(t, "timestamp", ts.Chains, tsaSigner.cert, p.inter, p.root)
	}
	const tsOK = "Timestamp Server Signature verification: ok"

	out, res := signPE(t, in, s.leaf.Key, p.chainOf(s), opts)
	signed := checkSigned(t, in, out, res, crypto.SHA256)
	sigs := verify(t, signed, authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}})
	if len(sigs) != 1 || !sigs[0].Verified() {
		t.Fatalf("signatures %+v", sigs)
	}
	checkTS(t, sigs[0])
	if got := osslAccepts(t, signed, p.rootPEM, "-TSA-CAfile", p.rootPEM); !strings.Contains(got, tsOK) {
		t.Errorf("osslsigncode does not accept the timestamp:\n%s", got)
	}

	t.Run("nested", func(t *testing.T) {
		other := p.signer(t, testca.LeafOptions{CommonName: "Nested"})
		out2, res2 := signPE(t, out, other.leaf.Key, p.chainOf(other), authenticode.SignOptions{Append: true, TSA: tsaAt(t, tsa.URL)})
		signed := checkSigned(t, out, out2, res2, crypto.SHA256)
		sigs := verify(t, signed, authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}})
		if len(sigs) != 2 || !sigs[0].Verified() || !sigs[1].Verified() {
			t.Fatalf("signatures %+v", sigs)
		}
		checkTS(t, sigs[0])
		checkTS(t, sigs[1])
		if got := osslAccepts(t, signed, p.rootPEM, "-TSA-CAfile", p.rootPEM); strings.Count(got, tsOK) != 2 {
			t.Errorf("osslsigncode does not accept both timestamps:\n%s", got)
		}
	})

	t.Run("openssl-ts-responder", func(t *testing.T) {
		// OpenSSL's RFC 3161 responder (openssl ts -reply) as the TSA: an
		// independent reading of our request. It stamps the current time.
		url := testca.OpenSSLTSA(t, testenv.Tool(t, "openssl"), tsaSigner.leaf, tsaSigner.leaf.Cert, p.ca.Intermediate.Cert)
		before := time.Now().Add(-2 * time.Second)
		out, res := signPE(t, in, s.leaf.Key, p.chainOf(s), authenticode.SignOptions{TSA: tsaAt(t, url)})
		after := time.Now().Add(2 * time.Second)
		signed := checkSigned(t, in, out, res, crypto.SHA256)
		sigs := verify(t, signed, authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}})
		if len(sigs) != 1 || !sigs[0].Verified() {
			t.Fatalf("signatures %+v", sigs)
		}
		ts := sigs[0].Timestamp
		if ts == nil || ts.Kind != authenticode.TimestampRFC3161 || !ts.Verified() || ts.Time.Before(before) || ts.Time.After(after) {
			t.Fatalf("timestamp %+v, want a verified RFC 3161 timestamp between %v and %v", ts, before, after)
		}
		wantChain(t, "timestamp", ts.Chains, tsaSigner.cert, p.inter, p.root)
		if time.Now().Before(s.leaf.Cert.NotAfter) { // osslsigncode checks the signer at the timestamp's time
			if got := osslAccepts(t, signed, p.rootPEM, "-TSA-CAfile", p.rootPEM); !strings.Contains(got, tsOK) {
				t.Errorf("osslsigncode does not accept OpenSSL's timestamp:\n%s", got)
			}
		}
	})

	for _, mode := range []string{tsaReject, tsaWrongNonce, tsaNoNonce, tsaWrongImprint, tsaBadSignature, tsaNoToken, tsaHTTPError, tsaGarbage} {
		t.Run("refused/"+mode, func(t *testing.T) {
			tsa := newRFC3161TSA(t, tsaSigner, []*x509.Certificate{tsaSigner.leaf.Cert, p.ca.Intermediate.Cert}, when)
			tsa.setMode(mode)
			_, _, err := trySign(t, in, s.leaf.Key, p.chainOf(s), authenticode.SignOptions{TSA: tsaAt(t, tsa.URL)})
			if !errors.Is(err, authenticode.ErrTimestamp) || tsa.count() != 1 {
				t.Errorf("err = %v after %d requests, want ErrTimestamp after 1", err, tsa.count())
			}
		})
	}
}

// TestVerifyTSA: a token's TSA is trusted only with a time-stamping
// certificate (the timeStamping EKU alone, critical) chaining to a root
// given; a certificate without any EKU, or with the EKU not critical, is
// refused even under the right root.
func TestVerifyTSA(t *testing.T) {
	p := newPKI(t)
	other := newPKI(t)
	sig := []byte("signature")
	token := func(tsa *signer) *authenticode.TimestampToken {
		t.Helper()
		srv := newRFC3161TSA(t, tsa, []*x509.Certificate{tsa.leaf.Cert, p.ca.Intermediate.Cert}, testca.Epoch)
		resp, _, err := tsahttp.Request(t.Context(), srv.URL, nil, sig)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := authenticode.VerifyTimestampResponse(resp, sig)
		if err != nil {
			t.Fatal(err)
		}
		if !tok.Time.Equal(testca.Epoch) || !tok.Signer.Equal(tsa.leaf.Cert) {
			t.Fatalf("token %+v", tok)
		}
		return tok
	}
	roots := []*x509.Certificate{p.ca.Root.Cert}
	if err := token(p.tsa(t)).VerifyTSA(roots); err != nil {
		t.Errorf("a proper TSA: %v", err)
	}
	var unknown x509.UnknownAuthorityError
	if err := token(p.tsa(t)).VerifyTSA([]*x509.Certificate{other.ca.Root.Cert}); !errors.As(err, &unknown) || !strings.Contains(err.Error(), "not trusted") {
		t.Errorf("a TSA under another root: %v", err)
	}
	// A certificate that is not a TSA's (RFC 3161: the timeStamping EKU
	// alone, critical) cannot answer at all: the one rule
	// (timestamp.CheckCertificate) refuses its tokens wherever
	// they are read, before any question of trust.
	for name, o := range badTSAs {
		tsa := p.signer(t, o)
		srv := newRFC3161TSA(t, tsa, []*x509.Certificate{tsa.leaf.Cert, p.ca.Intermediate.Cert}, testca.Epoch)
		if _, _, err := tsahttp.Request(t.Context(), srv.URL, nil, sig); !errors.Is(err, signing.ErrNotTimestamping) {
			t.Errorf("%s: RequestTimestamp: %v, want ErrNotTimestamping", name, err)
		}
		resp, err := srv.respond(timestampRequest(t, sig), tsaOK, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := authenticode.VerifyTimestampResponse(resp, sig); !errors.Is(err, signing.ErrNotTimestamping) || !errors.Is(err, authenticode.ErrTimestamp) {
			t.Errorf("%s: VerifyTimestampResponse: %v, want ErrTimestamp and ErrNotTimestamping", name, err)
		}
	}
}

// badTSAs are certificates that are not a TSA's as RFC 3161 (2.3) wants:
// the timeStamping EKU alone, in a critical extension.
var badTSAs = map[string]testca.LeafOptions{
	"no EKU":               {CommonName: "No EKU", EKUs: []x509.ExtKeyUsage{}},
	"EKU not critical":     {CommonName: "Soft TSA", EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}},
	"code signing EKU too": {CommonName: "Both", EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping, x509.ExtKeyUsageCodeSigning}},
}

// timestampRequest is a DER TimeStampReq for the SHA-256 of data, asking
// for the TSA's certificates.
func timestampRequest(t testing.TB, data []byte) []byte {
	t.Helper()
	h := sha256.Sum256(data)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(asnSHA256)
				b.AddASN1NULL()
			})
			b.AddASN1OctetString(h[:])
		})
		b.AddASN1Boolean(true)
	})
	return b.BytesOrPanic()
}

// TestSignRefusals: Sign refuses, before writing anything, a key that is
// not the leaf's, a leaf without the code signing EKU, an empty or broken
// chain, key types and digests Authenticode does not use, inputs that are
// not PE files or whose certificate table is malformed, and (with Append)
// a first entry it cannot nest in.
func TestSignRefusals(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	other := p.signer(t, testca.LeafOptions{CommonName: "Other"})
	serverAuth := p.signer(t, testca.LeafOptions{EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	noEKU := p.signer(t, testca.LeafOptions{EKUs: []x509.ExtKeyUsage{}})
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(4242), Subject: pkix.Name{CommonName: "Ed25519 Signer"},
		NotBefore: testca.Epoch.AddDate(-1, 0, 0), NotAfter: testca.Epoch.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}, p.ca.Intermediate.Cert, edPub, p.ca.Intermediate.Key)
	if err != nil {
		t.Fatal(err)
	}
	edCert, err := x509.ParseCertificate(edDER)
	if err != nil {
		t.Fatal(err)
	}

	unsigned := testbin.PE(testbin.PEOptions{Overlay: codeOf(5)})
	signed, _ := signPE(t, unsigned, s.leaf.Key, p.chainOf(s), authenticode.SignOptions{})
	sp := parseSignedPE(t, signed)
	// withTable returns signed with its certificate table replaced by
	// table and the directory entry's size set to size.
	withTable := func(table []byte, size uint32) []byte {
		out := append(bytes.Clone(signed[:sp.pf.CertTable.Off]), table...)
		binary.LittleEndian.PutUint32(out[sp.pf.CertDirOffset+4:], size)
		return out
	}
	badLength := bytes.Clone(sp.table)
	binary.LittleEndian.PutUint32(badLength, uint32(len(badLength)+8)) // dwLength past the table
	stray := append(bytes.Clone(sp.table), 1, 2, 3, 4)
	x509Entry := makeTable(tableEntry{revision: binpe.CertRevision2_0, typ: binpe.CertTypeX509, data: s.leaf.Cert.Raw})
	garbage := makeTable(pkcs7Entry([]byte{0x30, 0x03, 0x02, 0x01, 0x01}))
	junkSecond := append(bytes.Clone(sp.table), makeTable(pkcs7Entry(bytes.Repeat([]byte("junk"), 1024)))...)

	malformed := func(err error) bool {
		var me *binfmt.MalformedError
		return errors.As(err, &me)
	}
	is := func(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }
	chain := p.chainOf(s)
	tests := []struct {
		name    string
		in      []byte
		key     crypto.Signer
		chain   []*x509.Certificate
		opts    authenticode.SignOptions
		wantErr func(error) bool
		wantMsg string
	}{
		{"key-not-the-leafs", unsigned, other.leaf.Key, chain, authenticode.SignOptions{}, is(authenticode.ErrSigner), "is not the key of certificate"},
		{"chain-not-leaf-first", unsigned, s.leaf.Key, []*x509.Certificate{p.ca.Intermediate.Cert, s.leaf.Cert}, authenticode.SignOptions{}, is(authenticode.ErrSigner), "code signing"},
		{"leaf-server-auth-only", unsigned, serverAuth.leaf.Key, p.chainOf(serverAuth), authenticode.SignOptions{}, is(authenticode.ErrSigner), "code signing extended key usage"},
		{"leaf-without-eku", unsigned, noEKU.leaf.Key, p.chainOf(noEKU), authenticode.SignOptions{}, is(authenticode.ErrSigner), "code signing extended key usage"},
		{"empty-chain", unsigned, s.leaf.Key, nil, authenticode.SignOptions{}, is(authenticode.ErrSigner), "no certificate chain"},
		{"nil-certificate", unsigned, s.leaf.Key, []*x509.Certificate{s.leaf.Cert, nil}, authenticode.SignOptions{}, is(authenticode.ErrSigner), "nil"},
		{"nil-key", unsigned, nil, chain, authenticode.SignOptions{}, is(authenticode.ErrSigner), "no key"},
		{"ed25519", unsigned, edKey, []*x509.Certificate{edCert, p.ca.Intermediate.Cert}, authenticode.SignOptions{}, is(authenticode.ErrUnsupportedAlgorithm), "ed25519"},
		{"sha1", unsigned, s.leaf.Key, chain, authenticode.SignOptions{Hash: crypto.SHA1}, is(authenticode.ErrUnsupportedAlgorithm), "SHA-1"},
		{"md5", unsigned, s.leaf.Key, chain, authenticode.SignOptions{Hash: crypto.MD5}, is(authenticode.ErrUnsupportedAlgorithm), "MD5"},
		{"url-not-ascii", unsigned, s.leaf.Key, chain, authenticode.SignOptions{URL: "https://exämple.com"}, func(err error) bool { return err != nil }, "IA5String"},
		{"description-not-utf8", unsigned, s.leaf.Key, chain, authenticode.SignOptions{Description: "\xff"}, func(err error) bool { return err != nil }, "UTF-8"},
		{"not-a-pe", testbin.ELF(testbin.ELFOptions{}), s.leaf.Key, chain, authenticode.SignOptions{}, malformed, "MZ"},
		{"data-after-the-table", append(bytes.Clone(signed), "appended"...), s.leaf.Key, chain, authenticode.SignOptions{}, malformed, "not at the end of the file"},
		{"table-size-past-eof", withTable(sp.table, uint32(len(sp.table)+8)), s.leaf.Key, chain, authenticode.SignOptions{}, malformed, "past the end of the file"},
		{"entry-length-past-the-table", withTable(badLength, uint32(len(badLength))), s.leaf.Key, chain, authenticode.SignOptions{}, malformed, "exceeds"},
		{"entry-length-past-the-table-append", withTable(badLength, uint32(len(badLength))), s.leaf.Key, chain, authenticode.SignOptions{Append: true}, malformed, "exceeds"},
		{"stray-bytes-after-the-entries", withTable(stray, uint32(len(stray))), s.leaf.Key, chain, authenticode.SignOptions{}, malformed, "stray bytes"},
		{"append-to-x509-entry", withTable(x509Entry, uint32(len(x509Entry))), s.leaf.Key, chain, authenticode.SignOptions{Append: true}, malformed, "type X509"},
		{"second-entry-of-junk", withTable(junkSecond, uint32(len(junkSecond))), s.leaf.Key, chain, authenticode.SignOptions{}, malformed, "WIN_CERTIFICATE 1: bCertificate is not a DER SEQUENCE"},
		{"append-to-garbage", withTable(garbage, uint32(len(garbage))), s.leaf.Key, chain, authenticode.SignOptions{Append: true}, is(authenticode.ErrMalformed), "append"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out discard
			res, err := pe.Sign(context.Background(), bytes.NewReader(tt.in), int64(len(tt.in)), &out, tt.key, tt.chain, tt.opts)
			if err == nil || res != nil || !tt.wantErr(err) {
				t.Fatalf("Sign = %v, %v", res, err)
			}
			if !strings.HasPrefix(err.Error(), "authenticode: sign: ") || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.wantMsg)) {
				t.Errorf("error %q does not start with \"authenticode: sign: \" or does not mention %q", err, tt.wantMsg)
			}
			if out.n != 0 {
				t.Errorf("%d bytes written before refusing", out.n)
			}
		})
	}
	// The replace path of a well-formed signed file is still fine.
	if _, _, err := trySign(t, signed, s.leaf.Key, chain, authenticode.SignOptions{}); err != nil {
		t.Errorf("re-signing the well-formed file: %v", err)
	}
}

// pssSigner signs with RSA-PSS whatever it is asked, as a misconfigured
// KMS might; lyingSigner claims one key and signs with another.
type pssSigner struct{ k *rsa.PrivateKey }

func (s pssSigner) Public() crypto.PublicKey { return s.k.Public() }
func (s pssSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return rsa.SignPSS(r, s.k, opts.HashFunc(), digest, nil)
}

type lyingSigner struct {
	claimed crypto.PublicKey
	real    crypto.Signer
}

func (s lyingSigner) Public() crypto.PublicKey { return s.claimed }
func (s lyingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.real.Sign(r, digest, opts)
}

// TestSignChecksItsSignature: a signer whose signatures do not verify with
// the certificate's key (another scheme, another key) makes Sign fail
// instead of writing a file that no verifier accepts.
func TestSignChecksItsSignature(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	other := p.signer(t, testca.LeafOptions{CommonName: "Other"})
	ec := p.signer(t, testca.LeafOptions{KeyType: testca.ECDSAP256})
	ec2 := p.signer(t, testca.LeafOptions{KeyType: testca.ECDSAP256})
	in := testbin.PE(testbin.PEOptions{})
	for name, tt := range map[string]struct {
		key   crypto.Signer
		chain []*x509.Certificate
	}{
		"rsa-pss":         {pssSigner{s.leaf.Key.(*rsa.PrivateKey)}, p.chainOf(s)},
		"rsa-other-key":   {lyingSigner{s.leaf.Cert.PublicKey, other.leaf.Key}, p.chainOf(s)},
		"ecdsa-other-key": {lyingSigner{ec.leaf.Cert.PublicKey, ec2.leaf.Key}, p.chainOf(ec)},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := trySign(t, in, tt.key, tt.chain, authenticode.SignOptions{})
			if !errors.Is(err, authenticode.ErrSigner) || !errors.Is(err, signing.ErrSignature) {
				t.Errorf("err = %v, want ErrSigner and signing.ErrSignature", err)
			}
		})
	}
}

// cancelReader cancels ctx once the stream has read past the headers.
type cancelReader struct {
	r      io.ReaderAt
	cancel context.CancelFunc
	read   int64
}

func (c *cancelReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.read += int64(n)
	if len(p) > 4096 {
		c.cancel()
	}
	return n, err
}

// TestSignStops: a context cancelled mid-stream stops Sign after the
// current buffer, and input shorter than its stated size fails.
func TestSignStops(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	in := testbin.PE(testbin.PEOptions{Overlay: make([]byte, 4<<20)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cr := &cancelReader{r: bytes.NewReader(in), cancel: cancel}
	var out discard
	_, err := pe.Sign(ctx, cr, int64(len(in)), &out, s.leaf.Key, p.chainOf(s), authenticode.SignOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if cr.read > 1<<20 || out.n > 1<<20 {
		t.Errorf("read %d and wrote %d bytes of %d after the cancellation", cr.read, out.n, len(in))
	}

	short := testbin.PE(testbin.PEOptions{})
	_, err = pe.Sign(context.Background(), bytes.NewReader(short), int64(len(short))+100, &discard{}, s.leaf.Key, p.chainOf(s), authenticode.SignOptions{})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short input: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestSignMemoryDoesNotGrowWithFileSize signs a 256 MiB (sparse) PE and
// checks that it allocates a small fraction of that: the image streams
// through a fixed buffer.
func TestSignMemoryDoesNotGrowWithFileSize(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes 256 MiB")
	}
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	path := filepath.Join(t.TempDir(), "big.exe")
	if err := os.WriteFile(path, testbin.PE(testbin.PEOptions{}), 0o600); err != nil {
		t.Fatal(err)
	}
	const size = 256 << 20
	if err := os.Truncate(path, size); err != nil { // a zero overlay
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chain := p.chainOf(s)
	var out discard
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err := pe.Sign(context.Background(), f, size, &out, s.leaf.Key, chain, authenticode.SignOptions{})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != out.n || res.Size < size {
		t.Errorf("Size %d, wrote %d", res.Size, out.n)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("signing a %d MiB file allocated %d KiB", size>>20, alloc>>10)
	if alloc > 1<<20 {
		t.Errorf("signing a %d MiB file allocated %d KiB, want under 1 MiB", size>>20, alloc>>10)
	}
	// The patched header: the directory entry points at the table right
	// after the image, and the table ends the file (binpe.Parse checks it).
	pf, err := binpe.Parse(sparseReader{prefix: out.head[:], size: res.Size}, res.Size)
	if err != nil {
		t.Fatal(err)
	}
	if pf.CertTable.Off != size || pf.CertTable.End() != res.Size {
		t.Errorf("certificate table [%#x, %#x), want [%#x, %#x)", pf.CertTable.Off, pf.CertTable.End(), size, res.Size)
	}
}

// tsaAt is the TSA at url, over HTTP.
func tsaAt(t testing.TB, url string) timestamp.TSA {
	t.Helper()
	c, err := tsahttp.New(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
