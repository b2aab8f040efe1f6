package cms_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/cms"
)

var (
	sha256Alg = cms.AlgorithmIdentifier{OID: cms.NewOID(2, 16, 840, 1, 101, 3, 4, 2, 1), Params: cms.NULL}
	rsaAlg    = cms.AlgorithmIdentifier{OID: cms.OIDRSAEncryption, Params: cms.NULL}
	unknown   = cms.NewOID(1, 3, 6, 1, 4, 1, 99999, 7)
)

func octets(b []byte) []byte {
	var bb cryptobyte.Builder
	bb.AddASN1OctetString(b)
	return bb.BytesOrPanic()
}

// signed makes a SignedData of content (id-data, encapsulated) signed over
// signed attributes by leaf, with the chain and the unsigned attributes
// given; edit may change the SignedData template before it is encoded.
func signed(t *testing.T, leaf *testca.Cert, chain [][]byte, content []byte, unsigned [][]byte, edit func(*cms.SignedDataTemplate)) []byte {
	t.Helper()
	md := sha256.Sum256(content)
	ct, err := cms.NewAttribute(cms.OIDContentType, cms.OIDData)
	if err != nil {
		t.Fatal(err)
	}
	mda, err := cms.NewAttribute(cms.OIDMessageDigest, octets(md[:]))
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := cms.SignedAttributes(mda, ct)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(attrs)
	sig, err := leaf.Key.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	si, err := cms.MarshalSignerInfo(cms.SignerInfoTemplate{Version: 1, Issuer: leaf.Cert.RawIssuer, SerialNumber: leaf.Cert.SerialNumber,
		DigestAlgorithm: sha256Alg, SignatureAlgorithm: rsaAlg, SignedAttributes: attrs, Signature: sig, UnsignedAttributes: unsigned})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := cms.SignedDataTemplate{Version: 1, DigestAlgorithms: []cms.AlgorithmIdentifier{sha256Alg},
		ContentType: cms.OIDData, Content: octets(content), Certificates: chain, SignerInfos: [][]byte{si}}
	if edit != nil {
		edit(&tmpl)
	}
	der, err := cms.MarshalSignedData(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func parseCert(t *testing.T, c *testca.Cert) *signing.Certificate {
	t.Helper()
	sc, err := signing.ParseCertificate(c.Cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestRoundTrip parses what Marshal writes and checks the signer's
// signature and signed attributes with the SignerInfo's methods; then
// that a flipped content byte fails the messageDigest, and another
// certificate does not match the signer.
func TestRoundTrip(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	content := []byte("content")
	der := signed(t, leaf, [][]byte{leaf.Cert.Raw, ca.Intermediate.Cert.Raw}, content, nil, nil)
	sd, err := cms.Parse(der, cms.ParseOptions{Offset: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !sd.ContentType.Equal(cms.OIDData) || !sd.OctetString || !bytes.Equal(sd.Content, content) || len(sd.Certificates) != 2 || len(sd.SignerInfos) != 1 {
		t.Fatalf("parsed %+v", sd)
	}
	if off := sd.OffsetOf(sd.Content); off <= 100 || off >= 100+int64(len(der)) || !bytes.Equal(der[off-100:][:len(content)], content) {
		t.Errorf("OffsetOf(content) = %d", off)
	}
	si := &sd.SignerInfos[0]
	signer := si.FindSigner([]*signing.Certificate{parseCert(t, ca.Intermediate), parseCert(t, leaf)})
	if signer == nil || !bytes.Equal(signer.Raw, leaf.Cert.Raw) {
		t.Fatalf("FindSigner = %v", signer)
	}
	if err := si.CheckSignedAttributes(cms.OIDData, sd.Digested); err != nil {
		t.Errorf("CheckSignedAttributes: %v", err)
	}
	if err := si.CheckSignature(signer); err != nil {
		t.Errorf("CheckSignature: %v", err)
	}
	if kind, h, err := si.Scheme(); kind != "RSA" || h != crypto.SHA256 || err != nil {
		t.Errorf("Scheme = %s %v %v", kind, h, err)
	}
	if err := si.CheckSignedAttributes(cms.OIDData, []byte("contenT")); !errors.Is(err, signing.ErrSignedAttributes) {
		t.Errorf("other content: %v, want ErrSignedAttributes", err)
	}
	if err := si.CheckSignedAttributes(cms.OIDSignedData, sd.Digested); !errors.Is(err, signing.ErrSignedAttributes) {
		t.Errorf("other content type: %v, want ErrSignedAttributes", err)
	}
	other := ca.Leaf(t, testca.LeafOptions{CommonName: "Other"})
	if c := si.FindSigner([]*signing.Certificate{parseCert(t, other)}); c != nil {
		t.Errorf("another certificate matches the signer")
	}
	if err := si.CheckSignature(parseCert(t, other)); !errors.Is(err, signing.ErrSignature) {
		t.Errorf("another key: %v, want ErrSignature", err)
	}
}

// TestParseRefuses checks what Parse refuses, that errors are
// *signing.MalformedError values naming an offset in the input (shifted by
// ParseOptions.Offset), and which wrap signing.ErrLimit.
func TestParseRefuses(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	good := signed(t, leaf, [][]byte{leaf.Cert.Raw}, []byte("content"), nil, nil)
	bigUnknown, err := cms.NewAttribute(unknown, octets(make([]byte, limits.MaxUnknownUnsignedAttributes)))
	if err != nil {
		t.Fatal(err)
	}
	smallUnknown, err := cms.NewAttribute(unknown, octets(make([]byte, 16)))
	if err != nil {
		t.Fatal(err)
	}
	var attrCert cryptobyte.Builder
	attrCert.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {})
		b.AddASN1BitString([]byte{1})
	})
	// 0x06 then 200 bytes that all continue an arc: not an OID.
	notAnOID := append([]byte{0x06, 0x81, 200}, bytes.Repeat([]byte{0xff}, 200)...)
	arcs := []int{1, 3, 6, 1, 4, 1}
	for len(cms.NewOID(arcs...)) < 200 {
		arcs = append(arcs, 1<<27)
	}
	longOID := cms.NewOID(arcs...)
	badType, err := cms.NewAttribute(append([]byte{0x06, 0x02, 0x2a}, 0x80), octets(nil))
	if err != nil {
		t.Fatal(err)
	}
	tooMany := make([][]byte, cms.MaxCertificates+1)
	for i := range tooMany {
		tooMany[i] = leaf.Cert.Raw
	}
	for _, tc := range []struct {
		name  string
		der   []byte
		opts  cms.ParseOptions
		limit bool
	}{
		{name: "trailing byte", der: append(bytes.Clone(good), 0)},
		{name: "trailing junk with padding allowed", der: append(bytes.Clone(good), 0, 1), opts: cms.ParseOptions{ZeroPadding: true}},
		{name: "not SignedData", der: good[4:]},
		{name: "attribute certificate", der: signed(t, leaf, [][]byte{attrCert.BytesOrPanic()}, nil, nil, nil)},
		{name: "33 certificates", der: signed(t, leaf, tooMany, nil, nil, nil), limit: true},
		{name: "1 KiB of unknown unsigned attributes", der: signed(t, leaf, nil, nil, [][]byte{bigUnknown}, nil), limit: true},
		{name: "digest algorithm with parameters", der: signed(t, leaf, nil, nil, nil, func(sd *cms.SignedDataTemplate) {
			sd.DigestAlgorithms = []cms.AlgorithmIdentifier{{OID: sha256Alg.OID, Params: octets([]byte("nobody signed this"))}}
		})},
		// The OID of an algorithm no signature covers: old modsig refused
		// one that is not an OID; a long one, valid or not, is a place for
		// data nobody signed.
		{name: "digest algorithm that is not an OID", der: signed(t, leaf, nil, nil, nil, func(sd *cms.SignedDataTemplate) {
			sd.DigestAlgorithms = []cms.AlgorithmIdentifier{{OID: notAnOID, Params: cms.NULL}}
		})},
		{name: "digest algorithm with a 200-byte OID", der: signed(t, leaf, nil, nil, nil, func(sd *cms.SignedDataTemplate) {
			sd.DigestAlgorithms = []cms.AlgorithmIdentifier{{OID: longOID, Params: cms.NULL}}
		})},
		{name: "unsigned attribute whose type is not an OID", der: signed(t, leaf, nil, nil, [][]byte{badType}, nil)},
		{name: "SignerInfo digest algorithm that is not an OID", der: withSignerAlgorithms(t, good, notAnOID, nil)},
		{name: "SignerInfo signature algorithm with a 200-byte OID", der: withSignerAlgorithms(t, good, nil, longOID)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Offset = 1000
			sd, err := cms.Parse(tc.der, tc.opts)
			var me *signing.MalformedError
			if sd != nil || !errors.As(err, &me) || !errors.Is(err, signing.ErrMalformed) || errors.Is(err, signing.ErrLimit) != tc.limit {
				t.Fatalf("Parse = %v, %v; want a *signing.MalformedError (cap: %v)", sd, err, tc.limit)
			}
			if me.Offset < 1000 || me.Offset > 1000+int64(len(tc.der)) {
				t.Errorf("offset %d is outside the input [1000, %d]", me.Offset, 1000+len(tc.der))
			}
		})
	}
	// What the options allow.
	for name, opts := range map[string]struct {
		der  []byte
		opts cms.ParseOptions
	}{
		"zero padding":                           {append(bytes.Clone(good), 0, 0, 0), cms.ParseOptions{ZeroPadding: true}},
		"attribute certificate":                  {signed(t, leaf, [][]byte{attrCert.BytesOrPanic()}, nil, nil, nil), cms.ParseOptions{AttributeCertificates: true}},
		"a read unsigned attribute over the cap": {signed(t, leaf, nil, nil, [][]byte{bigUnknown}, nil), cms.ParseOptions{ReadUnsigned: []cms.OID{unknown}}},
		"a small unknown unsigned attribute":     {signed(t, leaf, nil, nil, [][]byte{smallUnknown}, nil), cms.ParseOptions{}},
	} {
		if _, err := cms.Parse(opts.der, opts.opts); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// withSignerAlgorithms re-encodes the one SignerInfo of der with its digest
// or signature algorithm OID replaced (nil: kept); no signature covers
// either.
func withSignerAlgorithms(t *testing.T, der []byte, digest, signature cms.OID) []byte {
	t.Helper()
	sd, err := cms.Parse(der, cms.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	si := sd.SignerInfos[0]
	da, sa := si.DigestAlgorithm, si.SignatureAlgorithm
	if digest != nil {
		da.OID = digest
	}
	if signature != nil {
		sa.OID = signature
	}
	raw, err := cms.MarshalSignerInfo(cms.SignerInfoTemplate{Version: 1, Issuer: si.Issuer, SerialNumber: si.SerialNumber(),
		DigestAlgorithm: da, SignatureAlgorithm: sa, SignedAttributes: si.SignedAttributesSET(), Signature: si.Signature})
	if err != nil {
		t.Fatal(err)
	}
	out, err := cms.MarshalSignedData(cms.SignedDataTemplate{Version: 1, DigestAlgorithms: sd.DigestAlgorithms,
		ContentType: sd.ContentType, Content: octets(sd.Content), SignerInfos: [][]byte{raw}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDigestHash checks that the CMS layer refuses MD5 and unknown digest
// algorithms through package signing's table.
func TestDigestHash(t *testing.T) {
	if h, err := cms.DigestHash(sha256Alg.OID); h != crypto.SHA256 || err != nil {
		t.Errorf("SHA-256: %v, %v", h, err)
	}
	for _, oid := range []cms.OID{cms.NewOID(1, 2, 840, 113549, 2, 5), unknown, {0x06, 0x00}} {
		if _, err := cms.DigestHash(oid); !errors.Is(err, signing.ErrUnsupportedAlgorithm) {
			t.Errorf("%v: %v, want ErrUnsupportedAlgorithm", oid, err)
		}
	}
}

// FuzzParse feeds arbitrary DER to Parse and ParseSignerInfo. Invariants:
// no panic (a recovered one is signing.ErrInternal, which fails too), an
// error is a *signing.MalformedError inside the input and comes with a nil
// result, and every field of a result lies in the input.
func FuzzParse(f *testing.F) {
	ca := testca.New(f)
	leaf := ca.Leaf(f, testca.LeafOptions{})
	ecLeaf := ca.Leaf(f, testca.LeafOptions{KeyType: testca.ECDSAP256})
	for _, der := range [][]byte{
		signedF(f, leaf, [][]byte{leaf.Cert.Raw, ca.Intermediate.Cert.Raw}),
		signedF(f, ecLeaf, nil),
		notAnOIDF(f, signedF(f, leaf, nil)),
	} {
		f.Add(der, false)
		f.Add(der, true)
	}
	f.Fuzz(func(t *testing.T, der []byte, padding bool) {
		opts := cms.ParseOptions{Offset: 7, ZeroPadding: padding, AttributeCertificates: padding, MaxSignature: 1024}
		in := func(b []byte) bool {
			off := int64(cap(der) - cap(b))
			return len(b) == 0 || (off >= 0 && off+int64(len(b)) <= int64(len(der)))
		}
		sd, err := cms.Parse(der, opts)
		if errors.Is(err, signing.ErrInternal) {
			t.Fatalf("recovered panic: %v", err)
		}
		if err != nil {
			var me *signing.MalformedError
			if sd != nil || !errors.As(err, &me) || me.Offset < 7 || me.Offset > 7+int64(len(der)) {
				t.Fatalf("Parse = %v, %v", sd, err)
			}
			return
		}
		if !in(sd.Content) || !in(sd.ContentType) {
			t.Fatal("content outside the input")
		}
		for _, c := range sd.Certificates {
			if !in(c) {
				t.Fatal("certificate outside the input")
			}
		}
		for _, si := range sd.SignerInfos {
			if !in(si.Raw) || !in(si.Signature) || !in(si.SignedAttrsRaw) {
				t.Fatal("SignerInfo outside the input")
			}
			if _, err := cms.ParseSignerInfo(si.Raw, opts); err != nil {
				t.Fatalf("a SignerInfo Parse read does not parse alone: %v", err)
			}
		}
	})
}

func signedF(f *testing.F, leaf *testca.Cert, chain [][]byte) []byte {
	md := sha256.Sum256([]byte("content"))
	ct, _ := cms.NewAttribute(cms.OIDContentType, cms.OIDData)
	mda, _ := cms.NewAttribute(cms.OIDMessageDigest, octets(md[:]))
	attrs, _ := cms.SignedAttributes(ct, mda)
	h := sha256.Sum256(attrs)
	sig, err := leaf.Key.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		f.Fatal(err)
	}
	si, err := cms.MarshalSignerInfo(cms.SignerInfoTemplate{Version: 1, Issuer: leaf.Cert.RawIssuer, SerialNumber: leaf.Cert.SerialNumber,
		DigestAlgorithm: sha256Alg, SignatureAlgorithm: rsaAlg, SignedAttributes: attrs, Signature: sig})
	if err != nil {
		f.Fatal(err)
	}
	der, err := cms.MarshalSignedData(cms.SignedDataTemplate{Version: 1, DigestAlgorithms: []cms.AlgorithmIdentifier{sha256Alg},
		ContentType: cms.OIDData, Certificates: chain, SignerInfos: [][]byte{si}})
	if err != nil {
		f.Fatal(err)
	}
	return der
}

// notAnOIDF re-encodes der (one SignerInfo) with a digestAlgorithms entry
// whose OID is not an OID, a shape Parse refuses.
func notAnOIDF(f *testing.F, der []byte) []byte {
	sd, err := cms.Parse(der, cms.ParseOptions{})
	if err != nil {
		f.Fatal(err)
	}
	bad := cms.AlgorithmIdentifier{OID: append([]byte{0x06, 0x04}, 0xff, 0xff, 0xff, 0xff), Params: cms.NULL}
	out, err := cms.MarshalSignedData(cms.SignedDataTemplate{Version: 1, DigestAlgorithms: []cms.AlgorithmIdentifier{sha256Alg, bad},
		ContentType: sd.ContentType, SignerInfos: [][]byte{sd.SignerInfos[0].Raw}})
	if err != nil {
		f.Fatal(err)
	}
	return out
}
