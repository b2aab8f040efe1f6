package modsig

import (
	"bytes"
	"crypto"
	"encoding/asn1"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The peers: openssl cms (on the machine) and the kernel's own sign-file
// (Debian: apt-get install linux-kbuild-6.1, which puts it at
// /usr/lib/linux-kbuild-6.1/scripts/sign-file).

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// opensslVerify runs openssl cms -verify over a detached signature. The
// PKCS#7 carries no certificates, so the signer comes from -certfile. OpenSSL
// 3.0 builds the chain only from the PKCS#7's own certificates and the
// -CAfile store, not from -certfile, so the store holds the intermediate and
// the root; the chain must still end at the self-signed root (no
// -partial_chain). -attime pins the test PKI's epoch; -purpose any because
// the leaf is a code-signing certificate, not S/MIME.
func opensslVerify(t *testing.T, openssl, dir string, p7, content []byte, leaf, cas string) (string, error) {
	t.Helper()
	sig := writeFile(t, dir, "sig.p7", p7)
	prefix := writeFile(t, dir, "prefix.bin", content)
	return run(t, openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", prefix,
		"-certfile", leaf, "-CAfile", cas, "-purpose", "any",
		"-attime", fmt.Sprint(testca.Epoch.Unix()), "-out", os.DevNull)
}

// TestOpenSSLVerifiesSign: openssl accepts what Sign makes, over exactly
// the signed prefix, and refuses it when one byte of the prefix changes.
func TestOpenSSLVerifiesSign(t *testing.T) {
	openssl := testenv.Tool(t, "openssl")
	p := testPKI(t)
	for _, tc := range []struct {
		name string
		leaf *testca.Cert
		opts SignOptions
	}{
		{"rsa-sha256", p.rsa, SignOptions{}},
		{"rsa-sha512-keyid", p.rsaKeyID, SignOptions{Hash: crypto.SHA512, UseKeyID: true}},
		{"rsa-sha256-attrs", p.rsa, SignOptions{SignedAttributes: true}},
		{"ecdsa-sha256", p.ec, SignOptions{}},
		{"ecdsa-sha384-keyid", p.ecKeyID, SignOptions{Hash: crypto.SHA384, UseKeyID: true}},
		{"ecdsa-sha512-attrs", p.ec, SignOptions{Hash: crypto.SHA512, SignedAttributes: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			leaf := writeFile(t, dir, "leaf.pem", testca.PEM(tc.leaf.Cert))
			cas := writeFile(t, dir, "cas.pem", testca.PEM(p.ca.Intermediate.Cert, p.ca.Root.Cert))
			signed := signModule(t, module, tc.leaf, tc.opts)
			a := find(t, signed)
			prefix := signed[:a.SignedLen]
			out, err := opensslVerify(t, openssl, dir, a.PKCS7, prefix, leaf, cas)
			if err != nil || !strings.Contains(out, "Verification successful") {
				t.Fatalf("openssl cms -verify: %v\n%s", err, out)
			}
			bad := append([]byte(nil), prefix...)
			bad[len(bad)/2] ^= 0x80
			out, err = opensslVerify(t, openssl, dir, a.PKCS7, bad, leaf, cas)
			if err == nil || !strings.Contains(out, "content verify error") {
				t.Fatalf("openssl cms -verify accepted a changed prefix, or failed for another reason: %v\n%s", err, out)
			}
		})
	}

	// The chain check is live: with only the intermediate in the store
	// (no root), or another CA's certificates, the same signature fails.
	dir := t.TempDir()
	leaf := writeFile(t, dir, "leaf.pem", testca.PEM(p.rsa.Cert))
	a := find(t, signModule(t, module, p.rsa, SignOptions{}))
	for name, cas := range map[string][]byte{
		"intermediate only": testca.PEM(p.ca.Intermediate.Cert),
		"another CA":        testca.PEM(p.other.Intermediate.Cert, p.other.Root.Cert),
	} {
		out, err := opensslVerify(t, openssl, dir, a.PKCS7, module, leaf, writeFile(t, dir, "cas.pem", cas))
		if err == nil || !strings.Contains(out, "certificate verify error") {
			t.Errorf("openssl cms -verify, %s in -CAfile: %v\n%s", name, err, out)
		}
	}
}

// TestVerifyOpenSSLSignatures: Verify accepts what openssl cms -sign makes,
// including signed attributes it adds by default (signingTime,
// smimeCapabilities) and embedded certificates.
func TestVerifyOpenSSLSignatures(t *testing.T) {
	openssl := testenv.Tool(t, "openssl")
	p := testPKI(t)
	for _, tc := range []struct {
		name      string
		leaf      *testca.Cert
		args      []string
		hash      crypto.Hash
		attrs     bool
		embedded  int // certificates openssl embeds
		keyID     bool
		algorithm string
	}{
		{"rsa-noattr-nocerts", p.rsa, []string{"-md", "sha256", "-noattr", "-nocerts"}, crypto.SHA256, false, 0, false, "RSA"},
		{"rsa-attrs-certs", p.rsa, []string{"-md", "sha384"}, crypto.SHA384, true, 1, false, "RSA"},
		{"rsa-pss", p.rsa, []string{"-md", "sha256", "-noattr", "-nocerts", "-keyopt", "rsa_padding_mode:pss"}, crypto.SHA256, false, 0, false, "RSA-PSS"},
		{"ecdsa-keyid-attrs", p.ecKeyID, []string{"-md", "sha512", "-keyid", "-nocerts"}, crypto.SHA512, true, 0, true, "ECDSA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := p.ca.WriteFiles(t, dir, tc.leaf)
			leaf := writeFile(t, dir, "leaf.pem", testca.PEM(tc.leaf.Cert))
			content := writeFile(t, dir, "module.ko", module)
			sig := filepath.Join(dir, "sig.p7")
			args := append([]string{"cms", "-sign", "-binary", "-in", content, "-signer", leaf, "-inkey", files.Key, "-outform", "DER", "-out", sig}, tc.args...)
			if out, err := run(t, openssl, args...); err != nil {
				t.Fatalf("openssl cms -sign: %v\n%s", err, out)
			}
			p7, err := os.ReadFile(sig)
			if err != nil {
				t.Fatal(err)
			}
			file := appendTrailer(module, p7, pkeyIDPKCS7)
			a := find(t, file)
			if a.DigestAlgorithm != tc.hash || a.SignedAttributes != tc.attrs || len(a.certs) != tc.embedded || (a.si.SubjectKeyID != nil) != tc.keyID {
				t.Errorf("Find: hash %v attrs %v certs %d keyID %X", a.DigestAlgorithm, a.SignedAttributes, len(a.certs), a.si.SubjectKeyID)
			}
			cands := certs(t, tc.leaf.Cert, p.ca.Intermediate.Cert)
			if tc.embedded > 0 {
				cands = certs(t, p.ca.Intermediate.Cert) // the leaf comes from the PKCS#7
			}
			s := a.Verify(sum(tc.hash, module), cands)
			if !s.Verified() || s.SignatureAlgorithm != tc.algorithm || len(s.Certificates) != tc.embedded {
				t.Fatalf("Verify: Verified=%v Problem=%v algorithm %q certificates %d", s.Verified(), s.Problem, s.SignatureAlgorithm, len(s.Certificates))
			}
			if got := chainNames(s.Chains[0]); got != tc.leaf.Cert.Subject.CommonName+" > Test Issuing CA" {
				t.Errorf("chain %q", got)
			}
			bad := append([]byte(nil), module...)
			bad[3] ^= 1
			if s := a.Verify(sum(tc.hash, bad), cands); s.Verified() {
				t.Error("a changed module verified")
			}
		})
	}
}

// signFileTool finds the kernel's sign-file: on PATH, or where Debian's
// linux-kbuild-* packages put it.
func signFileTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("sign-file"); err == nil {
		return p
	}
	if m, _ := filepath.Glob("/usr/lib/linux-kbuild-*/scripts/sign-file"); len(m) > 0 {
		return m[len(m)-1]
	}
	why := "sign-file is not installed (apt-get install linux-kbuild-6.1 provides /usr/lib/linux-kbuild-6.1/scripts/sign-file)"
	if os.Getenv("CSV_REQUIRE_PEERS") == "1" {
		t.Fatalf("required by CSV_REQUIRE_PEERS=1: %s", why)
	}
	t.Skip(why)
	return ""
}

func runSignFile(t *testing.T, tool string, leaf *testca.Cert, hash string, keyID bool) []byte {
	t.Helper()
	dir := t.TempDir()
	key := writeFile(t, dir, "signing_key.pem", testca.KeyPEM(t, leaf.Key))
	cert := writeFile(t, dir, "signing_key.x509", testca.PEM(leaf.Cert))
	mod := writeFile(t, dir, "module.ko", module)
	args := []string{hash, key, cert, mod}
	if keyID {
		args = append([]string{"-k"}, args...)
	}
	if out, err := run(t, tool, args...); err != nil {
		t.Fatalf("sign-file %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	signed, err := os.ReadFile(mod)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// TestSignFileIdentical: for RSA keys (PKCS#1 v1.5 signatures are
// deterministic) Sign's output is byte for byte what sign-file appends.
func TestSignFileIdentical(t *testing.T) {
	tool := signFileTool(t)
	p := testPKI(t)
	for _, tc := range []struct {
		hash  string
		h     crypto.Hash
		keyID bool
	}{
		{"sha256", crypto.SHA256, false},
		{"sha384", crypto.SHA384, false},
		{"sha512", crypto.SHA512, false},
		{"sha256", crypto.SHA256, true},
		{"sha512", crypto.SHA512, true},
	} {
		t.Run(fmt.Sprintf("%s-keyid=%v", tc.hash, tc.keyID), func(t *testing.T) {
			leaf := p.rsa
			if tc.keyID {
				leaf = p.rsaKeyID
			}
			want := runSignFile(t, tool, leaf, tc.hash, tc.keyID)
			got := signModule(t, module, leaf, SignOptions{Hash: tc.h, UseKeyID: tc.keyID})
			if !bytes.Equal(got, want) {
				t.Fatalf("Sign differs from sign-file\n got %X\nwant %X", got[len(module):], want[len(module):])
			}
		})
	}
}

// TestSignFileECDSA: ECDSA signatures are randomised, so Verify checks
// sign-file's, and the two PKCS#7 blobs must be equal but for the
// signature value.
func TestSignFileECDSA(t *testing.T) {
	tool := signFileTool(t)
	p := testPKI(t)
	for _, tc := range []struct {
		hash  string
		h     crypto.Hash
		keyID bool
	}{
		{"sha256", crypto.SHA256, false},
		{"sha384", crypto.SHA384, true},
	} {
		t.Run(fmt.Sprintf("%s-keyid=%v", tc.hash, tc.keyID), func(t *testing.T) {
			leaf := p.ec
			if tc.keyID {
				leaf = p.ecKeyID
			}
			theirs := runSignFile(t, tool, leaf, tc.hash, tc.keyID)
			_, s := verify(t, theirs, certs(t, leaf.Cert, p.ca.Intermediate.Cert, p.ca.Root.Cert))
			if !s.Verified() || s.SignatureAlgorithm != "ECDSA" || s.DigestAlgorithm != tc.h {
				t.Fatalf("Verify(sign-file's signature): Verified=%v Problem=%v", s.Verified(), s.Problem)
			}
			ours := signModule(t, module, leaf, SignOptions{Hash: tc.h, UseKeyID: tc.keyID})
			if a, b := blankSignature(t, theirs), blankSignature(t, ours); !bytes.Equal(a, b) {
				t.Fatalf("structure differs from sign-file's\n got %X\nwant %X", b, a)
			}
		})
	}
}

// blankSignature returns file's PKCS#7 with the signature value replaced by
// a fixed one.
func blankSignature(t *testing.T, file []byte) []byte {
	t.Helper()
	out := rewriteSignerInfos(t, file, func(sis []byte) []byte {
		s := cryptobyte.String(sis)
		var si cryptobyte.String
		if !s.ReadASN1(&si, 0x30) {
			t.Fatal("no SignerInfo")
		}
		var elems [][]byte
		for !si.Empty() {
			var e cryptobyte.String
			if !si.ReadAnyASN1Element(&e, nil) {
				t.Fatal("bad SignerInfo")
			}
			elems = append(elems, e)
		}
		elems[len(elems)-1] = []byte{0x04, 0x01, 0x00}
		b := cryptobyte.NewBuilder(nil)
		b.AddASN1(0x30, func(b *cryptobyte.Builder) {
			for _, e := range elems {
				b.AddBytes(e)
			}
		})
		return b.BytesOrPanic()
	})
	return find(t, out).PKCS7
}

// rewriteSignedData re-encodes the SignedData of file's signature with its
// fields (version, digestAlgorithms, encapContentInfo, [certificates],
// [crls], signerInfos, each a whole DER element) changed by edit, and
// returns the file with the new blob appended.
func rewriteSignedData(t testing.TB, file []byte, edit func(fields [][]byte) [][]byte) []byte {
	t.Helper()
	a := find(t, file)
	in := cryptobyte.String(a.PKCS7)
	var ci, wrap, sd, oid cryptobyte.String
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) ||
		!ci.ReadASN1(&wrap, tagExplicit0) || !wrap.ReadASN1(&sd, cbasn1.SEQUENCE) {
		t.Fatal("cannot take the PKCS#7 apart")
	}
	var fields [][]byte
	for !sd.Empty() {
		var f cryptobyte.String
		if !sd.ReadAnyASN1Element(&f, nil) {
			t.Fatal("cannot take the SignedData apart")
		}
		fields = append(fields, f)
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(oid)
		b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, f := range edit(fields) {
					b.AddBytes(f)
				}
			})
		})
	})
	return appendTrailer(file[:a.SignedLen], b.BytesOrPanic(), pkeyIDPKCS7)
}

// element encodes a DER element.
func element(tag cbasn1.Tag, contents ...[]byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(tag, func(b *cryptobyte.Builder) {
		for _, c := range contents {
			b.AddBytes(c)
		}
	})
	return b.BytesOrPanic()
}

// TestFindRefusesUnverifiedPayloads puts data that no signature covers in
// the places a module signature has for it (unsigned attributes, the
// certificate set, the CRLs, algorithm parameters) and checks that Find
// refuses each: sign-file writes none of them and the kernel reads none.
// openssl cms -verify is the oracle: it refuses what does not parse; what
// it accepts as well-formed, csv refuses by its caps (the case says so).
func TestFindRefusesUnverifiedPayloads(t *testing.T) {
	openssl := testenv.Tool(t, "openssl")
	p := testPKI(t)
	signed := signModule(t, module, p.rsa, SignOptions{})
	junk := bytes.Repeat([]byte("junk"), 768)
	notCert := element(cbasn1.SEQUENCE, element(cbasn1.OCTET_STRING, junk[:256]))
	unknownOID, err := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7})
	if err != nil {
		t.Fatal(err)
	}
	// withUnsigned gives the SignerInfo unsigned attributes.
	withUnsigned := func(attrs ...[]byte) []byte {
		return rewriteSignerInfos(t, signed, func(sis []byte) []byte {
			s := cryptobyte.String(sis)
			var si cryptobyte.String
			if !s.ReadASN1(&si, cbasn1.SEQUENCE) {
				t.Fatal("no SignerInfo")
			}
			return element(cbasn1.SEQUENCE, si, element(tagImplicit1, attrs...))
		})
	}
	// before inserts field before the signerInfos.
	before := func(field []byte) []byte {
		return rewriteSignedData(t, signed, func(f [][]byte) [][]byte {
			return append(f[:len(f)-1:len(f)-1], field, f[len(f)-1])
		})
	}
	tests := []struct {
		name       string
		file       []byte
		want       error // what the *signing.MalformedError wraps besides signing.ErrMalformed
		opensslOKs bool  // openssl reads it as well-formed
	}{
		{"3 KB unsigned attribute", withUnsigned(element(cbasn1.SEQUENCE, unknownOID, element(cbasn1.SET, element(cbasn1.OCTET_STRING, junk)))),
			signing.ErrLimit, true}, // over limits.MaxUnknownUnsignedAttributes
		{"unsigned attribute that is not an Attribute", withUnsigned(element(cbasn1.OCTET_STRING, junk[:64])), nil, false},
		{"junk in the certificate set", before(element(tagExplicit0, notCert)), nil, false},
		{"attribute certificate in the certificate set", before(element(tagExplicit0, element(cbasn1.Tag(1).Constructed().ContextSpecific(), junk[:64]))), nil, true},
		{"junk CRL", before(element(tagImplicit1, notCert)), nil, false},
		{"digest algorithm with parameters", rewriteSignedData(t, signed, func(f [][]byte) [][]byte {
			f[1] = element(cbasn1.SET, element(cbasn1.SEQUENCE, []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}, element(cbasn1.OCTET_STRING, junk[:512])))
			return f
		}), nil, true},
	}
	dir := t.TempDir()
	leaf := writeFile(t, dir, "leaf.pem", testca.PEM(p.rsa.Cert))
	cas := writeFile(t, dir, "cas.pem", testca.PEM(p.ca.Intermediate.Cert, p.ca.Root.Cert))
	if out, err := opensslVerify(t, openssl, dir, find(t, signed).PKCS7, module, leaf, cas); err != nil {
		t.Fatalf("openssl refuses the untouched signature: %v\n%s", err, out)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Find(bytes.NewReader(tc.file), int64(len(tc.file)))
			// The problem is in the PKCS#7, which the unsigned module
			// precedes and the trailer follows.
			var fe *signing.MalformedError
			if a != nil || !errors.As(err, &fe) || (tc.want != nil && !errors.Is(err, tc.want)) ||
				fe.Offset < int64(len(module)) || fe.Offset >= int64(len(tc.file)-trailerLen) {
				t.Errorf("Find = %v, %v; want a *signing.MalformedError in the PKCS#7 wrapping %v", a, err, tc.want)
			}
			p7 := tc.file[len(module) : len(tc.file)-trailerLen]
			out, err := opensslVerify(t, openssl, dir, p7, module, leaf, cas)
			if ok := err == nil; ok != tc.opensslOKs {
				t.Errorf("openssl cms -verify accepts it: %v, want %v:\n%s", ok, tc.opensslOKs, out)
			}
		})
	}
}
