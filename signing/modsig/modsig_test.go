package modsig

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/cms"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// pki is the test PKI, made once per test binary: RSA key generation is
// slow under -race.
type pki struct {
	ca                *testca.CA
	rsa, ec           *testca.Cert // leaves without a subject key identifier (as testca makes them)
	rsaKeyID, ecKeyID *testca.Cert // the same keys, in leaves with one
	other             *testca.CA   // an unrelated CA
	otherLeaf         *testca.Cert
}

var (
	pkiOnce sync.Once
	thePKI  *pki
)

func testPKI(t testing.TB) *pki {
	t.Helper()
	pkiOnce.Do(func() {
		p := &pki{ca: testca.New(t)}
		p.rsa = p.ca.Leaf(t, testca.LeafOptions{CommonName: "Module Signer RSA"})
		p.ec = p.ca.Leaf(t, testca.LeafOptions{CommonName: "Module Signer ECDSA", KeyType: testca.ECDSAP256})
		p.rsaKeyID = issue(t, p.ca, "Module Signer RSA (key id)", p.rsa.Key, 1001, []byte("rsa-key-identifier-1"))
		p.ecKeyID = issue(t, p.ca, "Module Signer ECDSA (key id)", p.ec.Key, 1002, []byte("ec-key-identifier-22"))
		p.other = testca.New(t)
		p.otherLeaf = p.other.Leaf(t, testca.LeafOptions{CommonName: "Someone Else"})
		thePKI = p
	})
	if thePKI == nil {
		t.Fatal("test PKI setup failed")
	}
	return thePKI
}

// issue makes a leaf signed by ca's intermediate for key, with a chosen
// serial number and subject key identifier (skid may be nil).
func issue(t testing.TB, ca *testca.CA, cn string, key crypto.Signer, serial int64, skid []byte) *testca.Cert {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{Organization: []string{"csv tests"}, CommonName: cn},
		NotBefore:             testca.Epoch.AddDate(-1, 0, 0),
		NotAfter:              testca.Epoch.AddDate(2, 0, 0),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Intermediate.Cert, key.Public(), ca.Intermediate.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testca.Cert{Cert: c, Key: key}
}

func certs(t testing.TB, cs ...*x509.Certificate) []*signing.Certificate {
	t.Helper()
	var out []*signing.Certificate
	for _, c := range cs {
		sc, err := signing.ParseCertificate(c.Raw)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sc)
	}
	return out
}

func sum(h crypto.Hash, b []byte) []byte {
	hh := h.New()
	hh.Write(b)
	return hh.Sum(nil)
}

var module = testbin.ELF(testbin.ELFOptions{})

// signModule returns file with an appended signature by leaf.
func signModule(t testing.TB, file []byte, leaf *testca.Cert, opts SignOptions) []byte {
	t.Helper()
	h := opts.Hash
	if h == 0 {
		h = crypto.SHA256
	}
	trailer, err := Sign(sum(h, file), leaf.Cert, leaf.Key, opts)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return append(append([]byte(nil), file...), trailer...)
}

func find(t testing.TB, file []byte) *Appended {
	t.Helper()
	a, err := Find(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	if a == nil {
		t.Fatal("Find: no signature found")
	}
	return a
}

// verify runs Find and Verify over file, hashing the signed prefix.
func verify(t testing.TB, file []byte, candidates []*signing.Certificate) (*Appended, *signing.Signature) {
	t.Helper()
	a := find(t, file)
	return a, a.Verify(sum(a.DigestAlgorithm, file[:a.SignedLen]), candidates)
}

func chainNames(chain []*signing.Certificate) string {
	var names []string
	for _, c := range chain {
		names = append(names, c.CommonName())
	}
	return strings.Join(names, " > ")
}

func TestRoundTrip(t *testing.T) {
	p := testPKI(t)
	for _, tc := range []struct {
		name    string
		leaf    *testca.Cert
		opts    SignOptions
		wantAlg string
	}{
		{"rsa-sha256", p.rsa, SignOptions{}, "RSA"},
		{"rsa-sha384", p.rsa, SignOptions{Hash: crypto.SHA384}, "RSA"},
		{"rsa-sha512", p.rsa, SignOptions{Hash: crypto.SHA512}, "RSA"},
		{"rsa-sha256-keyid", p.rsaKeyID, SignOptions{UseKeyID: true}, "RSA"},
		{"rsa-sha512-keyid", p.rsaKeyID, SignOptions{Hash: crypto.SHA512, UseKeyID: true}, "RSA"},
		{"rsa-sha256-attrs", p.rsa, SignOptions{SignedAttributes: true}, "RSA"},
		{"ecdsa-sha256", p.ec, SignOptions{}, "ECDSA"},
		{"ecdsa-sha512", p.ec, SignOptions{Hash: crypto.SHA512}, "ECDSA"},
		{"ecdsa-sha256-keyid", p.ecKeyID, SignOptions{UseKeyID: true}, "ECDSA"},
		{"ecdsa-sha512-keyid", p.ecKeyID, SignOptions{Hash: crypto.SHA512, UseKeyID: true}, "ECDSA"},
		{"ecdsa-sha384-attrs-keyid", p.ecKeyID, SignOptions{Hash: crypto.SHA384, UseKeyID: true, SignedAttributes: true}, "ECDSA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantHash := tc.opts.Hash
			if wantHash == 0 {
				wantHash = crypto.SHA256
			}
			signed := signModule(t, module, tc.leaf, tc.opts)
			a := find(t, signed)
			if a.SignedLen != int64(len(module)) {
				t.Errorf("SignedLen = %d, want %d", a.SignedLen, len(module))
			}
			if want := signed[len(module) : len(signed)-trailerLen]; !bytes.Equal(a.PKCS7, want) {
				t.Errorf("PKCS7 is not the blob between the module and the trailer")
			}
			if a.DigestAlgorithm != wantHash {
				t.Errorf("DigestAlgorithm = %v, want %v", a.DigestAlgorithm, wantHash)
			}
			if a.SignedAttributes != tc.opts.SignedAttributes {
				t.Errorf("SignedAttributes = %v, want %v", a.SignedAttributes, tc.opts.SignedAttributes)
			}
			digest := sum(wantHash, module)
			for _, withRoot := range []bool{false, true} {
				// otherLeaf may share the RSA leaf's issuer name and serial
				// (see TestVerifyProblems): it comes first, so the key
				// decides.
				cands := certs(t, p.otherLeaf.Cert, tc.leaf.Cert, p.ca.Intermediate.Cert)
				wantChain := tc.leaf.Cert.Subject.CommonName + " > Test Issuing CA"
				if withRoot {
					cands = append(cands, certs(t, p.ca.Root.Cert)...)
					wantChain += " > Test Root CA"
				}
				s := a.Verify(digest, cands)
				if !s.Verified() || s.Problem != nil {
					t.Fatalf("Verify: Verified=%v Problem=%v", s.Verified(), s.Problem)
				}
				if s.Format != "modsig" || s.Index != 0 || s.DigestAlgorithm != wantHash || s.SignatureAlgorithm != tc.wantAlg {
					t.Errorf("Signature = {%q %d %v %q}, want {modsig 0 %v %q}", s.Format, s.Index, s.DigestAlgorithm, s.SignatureAlgorithm, wantHash, tc.wantAlg)
				}
				if !bytes.Equal(s.Digest, digest) {
					t.Errorf("Digest = %X, want %X", s.Digest, digest)
				}
				if s.Signer() == nil || !bytes.Equal(s.Signer().Raw, tc.leaf.Cert.Raw) {
					t.Fatalf("signer is not the leaf")
				}
				if len(s.Chains) != 1 || chainNames(s.Chains[0]) != wantChain {
					t.Errorf("chains = %d, first %q; want %q", len(s.Chains), chainNames(s.Chains[0]), wantChain)
				}
			}
		})
	}
}

// TestSignerIdentifier checks that the SignerInfo names the signer the way
// the options ask: a certificate with the same key and another serial is
// the signer only under UseKeyID.
func TestSignerIdentifier(t *testing.T) {
	p := testPKI(t)
	digest := sum(crypto.SHA256, module)
	byIAS := find(t, signModule(t, module, p.rsa, SignOptions{}))
	byKeyID := find(t, signModule(t, module, p.rsaKeyID, SignOptions{UseKeyID: true}))
	if s := byIAS.Verify(digest, certs(t, p.rsaKeyID.Cert)); !errors.Is(s.Problem, ErrNoSigner) {
		t.Errorf("issuer+serial signature, same-key certificate with another serial: Problem = %v, want ErrNoSigner", s.Problem)
	}
	if s := byKeyID.Verify(digest, certs(t, p.rsa.Cert)); !errors.Is(s.Problem, ErrNoSigner) || !strings.Contains(s.Problem.Error(), "subject key identifier 7273612D") {
		t.Errorf("key-id signature, certificate without a key id: Problem = %v, want ErrNoSigner naming the key id", s.Problem)
	}
	if byKeyID.si.Issuer != nil || !bytes.Equal(byKeyID.si.SubjectKeyID, p.rsaKeyID.Cert.SubjectKeyId) {
		t.Errorf("key-id SignerInfo parsed as issuer %X key id %X", byKeyID.si.Issuer, byKeyID.si.SubjectKeyID)
	}
}

func TestVerifyProblems(t *testing.T) {
	p := testPKI(t)
	good := certs(t, p.rsa.Cert, p.ec.Cert, p.ca.Intermediate.Cert, p.ca.Root.Cert)
	// A certificate that claims the RSA leaf's issuer and serial number but
	// holds another key: only the signature check can tell it apart.
	rogue := issue(t, p.ca, "Impostor", p.otherLeaf.Key, p.rsa.Cert.SerialNumber.Int64(), nil)
	// The signer's own key and serial number, but issued by the root: the
	// issuer differs, so it is not the certificate the SignerInfo names.
	rootIssued := &testca.CA{Intermediate: p.ca.Root}
	sameKeyOtherIssuer := issue(t, rootIssued, "Module Signer RSA", p.rsa.Key, p.rsa.Cert.SerialNumber.Int64(), nil)
	if !bytes.Equal(rogue.Cert.RawIssuer, p.rsa.Cert.RawIssuer) {
		t.Fatal("rogue certificate does not share the issuer")
	}

	flip := func(b []byte, i int) []byte {
		b = append([]byte(nil), b...)
		b[i] ^= 0x01
		return b
	}
	rsaSigned := signModule(t, module, p.rsa, SignOptions{})
	ecSigned := signModule(t, module, p.ec, SignOptions{})
	attrSigned := signModule(t, module, p.rsa, SignOptions{SignedAttributes: true})
	sigEnd := len(rsaSigned) - trailerLen // the signature value ends the PKCS#7
	collideErr, collideText := signing.ErrSignature, `key of "CN=Someone Else`
	if !bytes.Equal(p.otherLeaf.Cert.RawIssuer, p.rsa.Cert.RawIssuer) || p.otherLeaf.Cert.SerialNumber.Cmp(p.rsa.Cert.SerialNumber) != 0 {
		collideErr, collideText = ErrNoSigner, "" // testca changed: no collision any more
	}

	for _, tc := range []struct {
		name       string
		file       []byte
		digest     func(a *Appended, file []byte) []byte // default: hash of the signed prefix
		candidates []*signing.Certificate
		wantErr    error
		wantText   string
		wantChain  bool
	}{
		{name: "prefix byte flipped", file: flip(rsaSigned, 100), candidates: good, wantErr: signing.ErrSignature, wantChain: true},
		{name: "prefix byte flipped ecdsa", file: flip(ecSigned, 0), candidates: good, wantErr: signing.ErrSignature},
		{name: "prefix byte flipped, signed attributes", file: flip(attrSigned, 7), candidates: good, wantErr: ErrDigestMismatch, wantText: "signed messageDigest"},
		{name: "signature byte flipped", file: flip(rsaSigned, sigEnd-10), candidates: good, wantErr: signing.ErrSignature},
		{name: "signature byte flipped, signed attributes", file: flip(attrSigned, len(attrSigned)-trailerLen-10), candidates: good, wantErr: signing.ErrSignature},
		{
			name: "wrong candidate", file: rsaSigned, candidates: certs(t, p.ec.Cert, p.ecKeyID.Cert, p.other.Intermediate.Cert),
			wantErr: ErrNoSigner, wantText: fmt.Sprintf(`issuer "CN=Test Issuing CA,O=csv tests" serial %#x) is not among the 3 certificates supplied`, p.rsa.Cert.SerialNumber),
		},
		{
			// testca names every CA alike and counts serials from the same
			// start: the other CA's leaf has the signer's issuer name and
			// serial number, and only its key tells it apart.
			name: "same issuer name and serial from another CA", file: rsaSigned, candidates: certs(t, p.otherLeaf.Cert),
			wantErr: collideErr, wantText: collideText,
		},
		{name: "same key and serial, other issuer", file: rsaSigned, candidates: certs(t, sameKeyOtherIssuer.Cert), wantErr: ErrNoSigner},
		{name: "no candidates", file: rsaSigned, candidates: nil, wantErr: ErrNoSigner, wantText: "is not among the 0 certificates supplied"},
		{name: "impostor with the signer's issuer and serial", file: rsaSigned, candidates: certs(t, rogue.Cert), wantErr: signing.ErrSignature, wantText: "Impostor"},
		{
			name: "digest of the wrong size", file: rsaSigned, candidates: good, wantErr: ErrDigestMismatch,
			digest: func(a *Appended, file []byte) []byte { return sum(crypto.SHA512, file[:a.SignedLen]) },
		},
		{
			name: "digest of the whole file", file: rsaSigned, candidates: good, wantErr: signing.ErrSignature,
			digest: func(a *Appended, file []byte) []byte { return sum(crypto.SHA256, file) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := find(t, tc.file)
			d := sum(a.DigestAlgorithm, tc.file[:a.SignedLen])
			if tc.digest != nil {
				d = tc.digest(a, tc.file)
			}
			s := a.Verify(d, tc.candidates)
			if s.Verified() {
				t.Fatal("Verified = true")
			}
			if !errors.Is(s.Problem, tc.wantErr) {
				t.Fatalf("Problem = %v, want %v", s.Problem, tc.wantErr)
			}
			if !strings.Contains(s.Problem.Error(), tc.wantText) || !strings.HasPrefix(s.Problem.Error(), "modsig: ") {
				t.Errorf("Problem = %q, want it to start with \"modsig: \" and contain %q", s.Problem, tc.wantText)
			}
			if tc.wantChain && (s.Signer() == nil || s.Signer().CommonName() != "Module Signer RSA") {
				t.Errorf("an unverified signature still reports its matching certificate; got %v", s.Signer())
			}
		})
	}

	// Several certificates match the identifier: the one whose key
	// verifies is the signer, whatever the order.
	s := find(t, rsaSigned).Verify(sum(crypto.SHA256, module), certs(t, rogue.Cert, p.rsa.Cert))
	if !s.Verified() || s.Signer().CommonName() != "Module Signer RSA" {
		t.Errorf("impostor before the signer: Verified=%v Problem=%v", s.Verified(), s.Problem)
	}
}

// rewrite re-encodes the SignedData of p7, letting edit change its
// signerInfos SET, and returns a file with the new blob appended.
func rewriteSignerInfos(t testing.TB, file []byte, edit func(sis []byte) []byte) []byte {
	t.Helper()
	a := find(t, file)
	in := cryptobyte.String(a.PKCS7)
	var ci, wrap, sd cryptobyte.String
	var oid cryptobyte.String
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) ||
		!ci.ReadASN1(&wrap, tagExplicit0) || !wrap.ReadASN1(&sd, cbasn1.SEQUENCE) {
		t.Fatal("cannot take the PKCS#7 apart")
	}
	var version, algs, encap, sis cryptobyte.String
	if !sd.ReadASN1Element(&version, cbasn1.INTEGER) || !sd.ReadASN1Element(&algs, cbasn1.SET) ||
		!sd.ReadASN1Element(&encap, cbasn1.SEQUENCE) || !sd.ReadASN1(&sis, cbasn1.SET) {
		t.Fatal("cannot take the SignedData apart")
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(oid)
		b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddBytes(version)
				b.AddBytes(algs)
				b.AddBytes(encap)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(edit(sis)) })
			})
		})
	})
	return appendTrailer(file[:a.SignedLen], b.BytesOrPanic(), pkeyIDPKCS7)
}

func appendTrailer(content, p7 []byte, idType byte) []byte {
	out := append(append([]byte(nil), content...), p7...)
	out = append(out, 0, 0, idType, 0, 0, 0, 0, 0)
	out = binary.BigEndian.AppendUint32(out, uint32(len(p7)))
	return append(out, Magic...)
}

func TestFindMalformed(t *testing.T) {
	p := testPKI(t)
	signed := signModule(t, module, p.rsa, SignOptions{})
	a := find(t, signed)
	p7 := a.PKCS7
	n := int64(len(module))
	tOff := int64(len(signed) - trailerLen)
	withTrailer := func(mod func(t []byte)) []byte {
		f := append([]byte(nil), signed...)
		mod(f[tOff:])
		return f
	}
	setLen := func(v uint32) []byte { return withTrailer(func(t []byte) { binary.BigEndian.PutUint32(t[8:], v) }) }
	sha256OID := []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}
	unknownOID := []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x7f}
	notAnOID := []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x81}

	for _, tc := range []struct {
		name    string
		file    []byte
		wantOff int64
		want    error  // what the *signing.MalformedError wraps besides signing.ErrMalformed
		says    string // what its Reason says
	}{
		{"sig_len beyond the file", setLen(uint32(len(signed))), tOff + 8, nil, "leaves no signed content"},
		{"sig_len the whole content", setLen(uint32(tOff)), tOff + 8, nil, "leaves no signed content"},
		{"sig_len 0xffffffff", setLen(0xffffffff), tOff + 8, nil, "leaves no signed content"},
		{"sig_len zero", setLen(0), tOff + 8, nil, "sig_len is zero"},
		{"sig_len over the cap", append(make([]byte, 2*maxSignatureLen), setLen(maxSignatureLen+1)...), 2*maxSignatureLen + tOff + 8, signing.ErrLimit, "exceeds the 65536-byte cap"},
		{"sig_len one short", setLen(uint32(len(p7) - 1)), n + 1, nil, "does not parse"},
		{"sig_len one long", setLen(uint32(len(p7) + 1)), n - 1, nil, "does not parse"},
		{"id_type X509", withTrailer(func(t []byte) { t[2] = 1 }), tOff + 2, nil, "id_type 1 is not PKEY_ID_PKCS7"},
		{"id_type PGP", withTrailer(func(t []byte) { t[2] = 0 }), tOff + 2, nil, "id_type 0"},
		{"algo set", withTrailer(func(t []byte) { t[0] = 1 }), tOff, nil, "must be zero"},
		{"padding set", withTrailer(func(t []byte) { t[7] = 1 }), tOff, nil, "must be zero"},
		{"magic only", []byte(Magic), 0, nil, "no room"},
		{"magic and less than a module_signature", append(make([]byte, 11), Magic...), 0, nil, "no room"},
		{"no content", append([]byte{0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1}, Magic...), 8, nil, "leaves no signed content"},
		{"garbage PKCS#7", appendTrailer(module, bytes.Repeat([]byte{0xff}, 300), pkeyIDPKCS7), n, nil, "PKCS#7 does not parse"},
		{"trailing byte in the PKCS#7", appendTrailer(module, append(append([]byte(nil), p7...), 0), pkeyIDPKCS7), n + int64(len(p7)), nil, "1 bytes follow"},
		{"unknown digest algorithm", appendTrailer(module, bytes.ReplaceAll(p7, sha256OID, unknownOID), pkeyIDPKCS7), n + int64(bytes.LastIndex(p7, sha256OID)) - 2, nil, "unknown digest algorithm 2.16.840.1.101.3.4.2.127"},
		// The first is digestAlgorithms', which no signature covers: modsig's
		// own parser refused an OID that is not one before the CMS layer.
		{"digestAlgorithms entry that is not an OID", appendTrailer(module, bytes.Replace(p7, sha256OID, notAnOID, 1), pkeyIDPKCS7), n + int64(bytes.Index(p7, sha256OID)) - 2, nil, "digestAlgorithms OID is not a valid OBJECT IDENTIFIER"},
		{"two SignerInfos", rewriteSignerInfos(t, signed, func(sis []byte) []byte { return append(append([]byte(nil), sis...), sis...) }), -1, nil, "more than one SignerInfo"},
		{"no SignerInfo", rewriteSignerInfos(t, signed, func([]byte) []byte { return nil }), -1, nil, "no SignerInfo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Find(bytes.NewReader(tc.file), int64(len(tc.file)))
			if a != nil {
				t.Errorf("Find returned a signature with the error")
			}
			var fe *signing.MalformedError
			if !errors.As(err, &fe) || fe.Format != Format || !errors.Is(err, signing.ErrMalformed) {
				t.Fatalf("Find error = %v, want a *signing.MalformedError in an appended signature", err)
			}
			if (tc.want != nil && !errors.Is(err, tc.want)) || !strings.HasPrefix(err.Error(), "modsig: ") {
				t.Errorf("error %q is not a modsig error wrapping %v", err, tc.want)
			}
			if !strings.Contains(fe.Reason, tc.says) {
				t.Errorf("Reason %q does not say %q", fe.Reason, tc.says)
			}
			if tc.wantOff >= 0 && fe.Offset != tc.wantOff {
				t.Errorf("Offset = %#x, want %#x (%v)", fe.Offset, tc.wantOff, err)
			}
			if fe.Offset < 0 || fe.Offset >= int64(len(tc.file)) {
				t.Errorf("Offset %#x is outside the file", fe.Offset)
			}
		})
	}
}

func TestFindUnsigned(t *testing.T) {
	p := testPKI(t)
	signed := signModule(t, module, p.rsa, SignOptions{})
	for _, tc := range []struct {
		name string
		file []byte
	}{
		{"unsigned ELF", module},
		{"unsigned 32-bit ELF without sections", testbin.ELF(testbin.ELFOptions{Class32: true, NoSections: true})},
		{"empty", nil},
		{"shorter than the magic", []byte("~Module signature")},
		{"truncated magic", signed[:len(signed)-1]},
		{"magic without its newline", append(append([]byte(nil), signed[:len(signed)-1]...), '~')},
		{"magic not at the end", append(append([]byte(nil), signed...), 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Find(bytes.NewReader(tc.file), int64(len(tc.file)))
			if a != nil || err != nil {
				t.Errorf("Find = %v, %v; want nil, nil", a, err)
			}
		})
	}
}

// countingReader records what Find reads.
type countingReader struct {
	r     io.ReaderAt
	bytes int64
	min   int64
	fail  bool
}

var errDiskOnFire = errors.New("disk on fire")

func (c *countingReader) ReadAt(b []byte, off int64) (int, error) {
	if c.fail {
		return 0, errDiskOnFire
	}
	c.bytes += int64(len(b))
	c.min = min(c.min, off)
	return c.r.ReadAt(b, off)
}

func TestFindReadsOnlyTheTrailer(t *testing.T) {
	p := testPKI(t)
	big := append(bytes.Repeat([]byte{0x90}, 1<<20), module...)
	signed := signModule(t, big, p.ec, SignOptions{})
	cr := &countingReader{r: bytes.NewReader(signed), min: 1 << 62}
	a, err := Find(cr, int64(len(signed)))
	if err != nil || a == nil {
		t.Fatalf("Find = %v, %v", a, err)
	}
	if want := int64(trailerLen + len(a.PKCS7)); cr.bytes != want || cr.min != a.SignedLen {
		t.Errorf("Find read %d bytes from offset %d; want %d from %d", cr.bytes, cr.min, want, a.SignedLen)
	}

	cr = &countingReader{r: bytes.NewReader(signed), fail: true}
	if a, err := Find(cr, int64(len(signed))); a != nil || !errors.Is(err, errDiskOnFire) {
		t.Errorf("failing reader: Find = %v, %v", a, err)
	}
	// A file shorter than its stated size.
	if a, err := Find(bytes.NewReader(signed[:100]), int64(len(signed))); a != nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short reader: Find = %v, %v; want io.ErrUnexpectedEOF", a, err)
	}
}

func TestSignErrors(t *testing.T) {
	p := testPKI(t)
	d := sum(crypto.SHA256, module)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name    string
		digest  []byte
		cert    *x509.Certificate
		signer  crypto.Signer
		opts    SignOptions
		wantErr error
		want    string
	}{
		{"key of another certificate", d, p.rsa.Cert, p.ec.Key, SignOptions{}, signing.ErrSigner, "not the public key"},
		{"digest of the wrong size", d, p.rsa.Cert, p.rsa.Key, SignOptions{Hash: crypto.SHA512}, signing.ErrDigestNotComputed, "the digest is 32 bytes"},
		{"SHA-1", d[:20], p.rsa.Cert, p.rsa.Key, SignOptions{Hash: crypto.SHA1}, signing.ErrUnsupportedAlgorithm, "not supported"},
		{"key id without a subject key identifier", d, p.rsa.Cert, p.rsa.Key, SignOptions{UseKeyID: true}, signing.ErrSigner, "no subject key identifier"},
		{"no certificate", d, nil, p.rsa.Key, SignOptions{}, signing.ErrSigner, "needs a certificate"},
		{"Ed25519", d, selfSigned(t, edKey), edKey, SignOptions{}, signing.ErrUnsupportedAlgorithm, "not supported"},
		{"signer that makes bad signatures", d, p.rsa.Cert, badSigner{p.rsa.Key}, SignOptions{}, signing.ErrSigner, "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Sign(tc.digest, tc.cert, tc.signer, tc.opts)
			if !errors.Is(err, tc.wantErr) || out != nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "modsig: ") {
				t.Errorf("Sign = %d bytes, %v; want an error saying %q", len(out), err, tc.want)
			}
		})
	}
}

// badSigner has the right public key but corrupts its signatures, as a
// misconfigured HSM might.
type badSigner struct{ crypto.Signer }

func (b badSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := b.Signer.Sign(r, digest, opts)
	if err == nil {
		sig[len(sig)/2] ^= 1
	}
	return sig, err
}

func selfSigned(t testing.TB, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "self"}, NotBefore: testca.Epoch, NotAfter: testca.Epoch.AddDate(1, 0, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSignTwice documents what re-signing does (sign-file does the same):
// a second signature is appended and covers the first; Find sees the outer
// one only.
func TestSignTwice(t *testing.T) {
	p := testPKI(t)
	once := signModule(t, module, p.rsa, SignOptions{})
	twice := signModule(t, once, p.ec, SignOptions{})
	a, s := verify(t, twice, certs(t, p.rsa.Cert, p.ec.Cert))
	if a.SignedLen != int64(len(once)) || !s.Verified() || s.Signer().CommonName() != "Module Signer ECDSA" {
		t.Errorf("SignedLen = %d (want %d), Verified = %v, signer %v", a.SignedLen, len(once), s.Verified(), s.Signer())
	}
	// Stripping to SignedLen recovers the singly signed file.
	inner := find(t, twice[:a.SignedLen])
	if inner.SignedLen != int64(len(module)) {
		t.Errorf("inner SignedLen = %d, want %d", inner.SignedLen, len(module))
	}
}

// TestSignedAttributesChecks checks Verify's handling of signed attributes
// that the signer signed but that are inconsistent.
func TestSignedAttributesChecks(t *testing.T) {
	p := testPKI(t)
	digest := sum(crypto.SHA256, module)
	attr := func(oid []int, value func(b *cryptobyte.Builder)) []byte {
		b := cryptobyte.NewBuilder(nil)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddASN1(cbasn1.SET, value)
		})
		return b.BytesOrPanic()
	}
	ctData := attr(oidContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData) })
	ctOther := attr(oidContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidSignedData) })
	md := attr(oidMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(digest) })
	for _, tc := range []struct {
		name  string
		attrs [][]byte
		want  error
	}{
		{"consistent", [][]byte{ctData, md}, nil},
		{"no contentType", [][]byte{md}, ErrSignedAttributes},
		{"no messageDigest", [][]byte{ctData}, ErrSignedAttributes},
		{"two messageDigests", [][]byte{ctData, md, md}, ErrSignedAttributes},
		{"contentType not data", [][]byte{ctOther, md}, ErrSignedAttributes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := signWithAttributes(t, module, p.rsa, tc.attrs)
			_, s := verify(t, file, certs(t, p.rsa.Cert))
			if s.Verified() != (tc.want == nil) || !errors.Is(s.Problem, tc.want) {
				t.Errorf("Verified = %v, Problem = %v; want %v", s.Verified(), s.Problem, tc.want)
			}
		})
	}
}

// signWithAttributes signs file with RSA over arbitrary signed attributes,
// using Sign for the rest of the structure.
func signWithAttributes(t *testing.T, file []byte, leaf *testca.Cert, attrs [][]byte) []byte {
	t.Helper()
	set := cryptobyte.NewBuilder(nil)
	set.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, a := range attrs {
			b.AddBytes(a)
		}
	})
	setDER := set.BytesOrPanic()
	sig, err := leaf.Key.Sign(rand.Reader, sum(crypto.SHA256, setDER), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	base := signModule(t, file, leaf, SignOptions{})
	return rewriteSignerInfos(t, base, func(sis []byte) []byte {
		s := cryptobyte.String(sis)
		var si, version, sid, dalg, salg cryptobyte.String
		if !s.ReadASN1(&si, cbasn1.SEQUENCE) || !si.ReadASN1Element(&version, cbasn1.INTEGER) ||
			!si.ReadASN1Element(&sid, cbasn1.SEQUENCE) || !si.ReadASN1Element(&dalg, cbasn1.SEQUENCE) ||
			!si.ReadASN1Element(&salg, cbasn1.SEQUENCE) {
			t.Fatal("cannot take the SignerInfo apart")
		}
		b := cryptobyte.NewBuilder(nil)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(version)
			b.AddBytes(sid)
			b.AddBytes(dalg)
			b.AddUint8(0xa0)
			b.AddBytes(setDER[1:])
			b.AddBytes(salg)
			b.AddASN1OctetString(sig)
		})
		return b.BytesOrPanic()
	})
}

// DER tags and OIDs the tests build signatures with.
var (
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	tagExplicit0     = cbasn1.Tag(0).Constructed().ContextSpecific()
	tagImplicit1     = cbasn1.Tag(1).Constructed().ContextSpecific()
)

func TestECDSADigestMismatchInAlgorithm(t *testing.T) {
	// An ecdsa-with-SHA384 signatureAlgorithm with a SHA-256 digest
	// algorithm is refused rather than checked with either hash.
	p := testPKI(t)
	signed := signModule(t, module, p.ec, SignOptions{})
	a := find(t, signed)
	a.si.SignatureAlgorithm.OID = cms.NewOID(1, 2, 840, 10045, 4, 3, 3) // ecdsa-with-SHA384
	s := a.Verify(sum(crypto.SHA256, module), certs(t, p.ec.Cert))
	if s.Verified() || !errors.Is(s.Problem, ErrUnsupported) {
		t.Errorf("Verified = %v, Problem = %v; want ErrUnsupported", s.Verified(), s.Problem)
	}
}
