package pe_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/binfmt"
	binpe "github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/pe"
)

// digestsFor computes the Authenticode digests the table's signatures use
// (which also exercises DigestAlgorithms).
func digestsFor(t testing.TB, s *signedPE) map[crypto.Hash][]byte {
	t.Helper()
	m := map[crypto.Hash][]byte{}
	for _, h := range pe.DigestAlgorithms(s.table) {
		m[h] = s.digest(t, h)
	}
	return m
}

// verify runs Verify on the file with the digests its signatures need and
// checks the invariants every result must hold.
func verify(t testing.TB, s *signedPE, opts authenticode.VerifyOptions) []*signing.Signature {
	t.Helper()
	return verifyWith(t, s, digestsFor(t, s), opts)
}

func verifyWith(t testing.TB, s *signedPE, digests map[crypto.Hash][]byte, opts authenticode.VerifyOptions) []*signing.Signature {
	t.Helper()
	sigs, err := pe.Verify(s.table, s.pf.CertTable.Off, digests, opts)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	checkInvariants(t, sigs)
	return sigs
}

func checkInvariants(t testing.TB, sigs []*signing.Signature) {
	t.Helper()
	for _, s := range sigs {
		if s.Format != "authenticode" {
			t.Errorf("signature %d %v: Format %q", s.Index, s.Path, s.Format)
		}
		if s.Verified() && (s.Problem != nil || len(s.Chains) == 0 || len(s.Chains[0]) == 0) {
			t.Errorf("signature %d %v: Verified with Problem %v and %d chains", s.Index, s.Path, s.Problem, len(s.Chains))
		}
		if !s.Verified() && s.Problem == nil {
			t.Errorf("signature %d %v: not Verified and no Problem", s.Index, s.Path)
		}
		if ts := s.Timestamp; ts != nil && ts.Verified() && (ts.Problem != nil || len(ts.Chains) == 0) {
			t.Errorf("signature %d %v: timestamp Verified with Problem %v", s.Index, s.Path, ts.Problem)
		}
	}
}

// fingerprints names each certificate of a chain by the first bytes of its
// SHA256, for comparisons.
func fingerprints(chain []*signing.Certificate) []string {
	var out []string
	for _, c := range chain {
		out = append(out, hex.EncodeToString(c.SHA256[:6])+"("+c.CommonName()+")")
	}
	return out
}

func wantChain(t testing.TB, what string, got [][]*signing.Certificate, want ...*signing.Certificate) {
	t.Helper()
	if len(got) != 1 {
		t.Errorf("%s: %d chains, want 1: %v", what, len(got), got)
		return
	}
	if g, w := fingerprints(got[0]), fingerprints(want); !slices.Equal(g, w) {
		t.Errorf("%s: chain %v, want %v", what, g, w)
	}
}

// peFile is a Go-sized PE image (code plus data) for signing.
func peFile(size int) []byte {
	code := make([]byte, size)
	for i := range code {
		code[i] = byte(i*7 + i>>9)
	}
	return testbin.PE(testbin.PEOptions{Code: code, Data: []byte("data")})
}

// TestVerifyOsslsigncodeSignatures signs PE files with osslsigncode in
// every digest and key type it offers and checks that Verify accepts them,
// with the chain leaf → issuing CA → root when the root is supplied, and that
// osslsigncode agrees.
func TestVerifyOsslsigncodeSignatures(t *testing.T) {
	p := newPKI(t)
	rsaSigner := p.signer(t, testca.LeafOptions{})
	ecSigner := p.signer(t, testca.LeafOptions{CommonName: "Test ECDSA Signing", KeyType: testca.ECDSAP256})
	tests := []struct {
		name    string
		in      []byte
		signer  *signer
		hash    string
		want    crypto.Hash
		wantAlg string
	}{
		{"rsa-sha256", peFile(4096), rsaSigner, "sha256", crypto.SHA256, "RSA"},
		{"rsa-sha1", peFile(4096), rsaSigner, "sha1", crypto.SHA1, "RSA"},
		{"rsa-sha384", peFile(4096), rsaSigner, "sha384", crypto.SHA384, "RSA"},
		{"rsa-sha512", peFile(4096), rsaSigner, "sha512", crypto.SHA512, "RSA"},
		{"ecdsa-p256-sha256", peFile(4096), ecSigner, "sha256", crypto.SHA256, "ECDSA"},
		{"ecdsa-p256-sha1", peFile(4096), ecSigner, "sha1", crypto.SHA1, "ECDSA"},
		{"pe32-odd-overlay", testbin.PE(testbin.PEOptions{PE32: true, Overlay: []byte("odd")}), rsaSigner, "sha256", crypto.SHA256, "RSA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parseSignedPE(t, osslSign(t, tt.in, tt.signer, "-h", tt.hash))
			if got := pe.DigestAlgorithms(s.table); !slices.Equal(got, []crypto.Hash{tt.want}) {
				t.Errorf("DigestAlgorithms = %v, want [%v]", got, tt.want)
			}
			sigs := verify(t, s, authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}})
			if len(sigs) != 1 {
				t.Fatalf("%d signatures, want 1", len(sigs))
			}
			sig := sigs[0]
			if !sig.Verified() {
				t.Fatalf("not verified: %v", sig.Problem)
			}
			if sig.Index != 0 || len(sig.Path) != 0 || sig.Nested() {
				t.Errorf("Index %d, Path %v", sig.Index, sig.Path)
			}
			if sig.DigestAlgorithm != tt.want || !bytes.Equal(sig.Digest, s.digest(t, tt.want)) {
				t.Errorf("signed digest %v %x, want the file's %v digest", sig.DigestAlgorithm, sig.Digest, tt.want)
			}
			if sig.SignatureAlgorithm != tt.wantAlg {
				t.Errorf("SignatureAlgorithm %q, want %q", sig.SignatureAlgorithm, tt.wantAlg)
			}
			wantChain(t, "with the root", sig.Chains, tt.signer.cert, p.inter, p.root)
			if g, w := fingerprints(sig.Certificates), fingerprints([]*signing.Certificate{tt.signer.cert, p.inter}); !slices.Equal(g, w) {
				t.Errorf("embedded certificates %v, want %v", g, w)
			}
			if sig.Timestamp != nil {
				t.Errorf("a timestamp where none was made: %+v", sig.Timestamp)
			}
			// Without the root, the chain stops at the embedded issuing CA.
			sigs = verify(t, s, authenticode.VerifyOptions{})
			if !sigs[0].Verified() {
				t.Errorf("not verified without the root: %v", sigs[0].Problem)
			}
			wantChain(t, "without the root", sigs[0].Chains, tt.signer.cert, p.inter)
			if ok, out := osslVerifies(t, s.data, p.rootPEM); !ok {
				t.Errorf("osslsigncode verify refuses the file that Verify accepts:\n%s", out)
			}
		})
	}
}

// TestVerifyNested adds two nested signatures to a signed file with
// osslsigncode -nest and checks that all three are found, in order, with
// their paths, and verify; and that a nested signature whose digest the
// caller did not compute fails closed.
func TestVerifyNested(t *testing.T) {
	p := newPKI(t)
	a := p.signer(t, testca.LeafOptions{CommonName: "Outer Signer"})
	b := p.signer(t, testca.LeafOptions{CommonName: "Nested ECDSA Signer", KeyType: testca.ECDSAP256})
	c := p.signer(t, testca.LeafOptions{CommonName: "Nested SHA512 Signer"})
	data := osslSign(t, peFile(8192), a, "-h", "sha256")
	data = osslSign(t, data, b, "-nest", "-h", "sha1")
	data = osslSign(t, data, c, "-nest", "-h", "sha512")
	s := parseSignedPE(t, data)

	if got, want := pe.DigestAlgorithms(s.table), []crypto.Hash{crypto.SHA256, crypto.SHA1, crypto.SHA512}; !slices.Equal(got, want) {
		t.Errorf("DigestAlgorithms = %v, want %v", got, want)
	}
	sigs := verify(t, s, authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}})
	want := []struct {
		path   []int
		hash   crypto.Hash
		signer *signer
		alg    string
	}{
		{[]int{}, crypto.SHA256, a, "RSA"},
		{[]int{0}, crypto.SHA1, b, "ECDSA"},
		{[]int{1}, crypto.SHA512, c, "RSA"},
	}
	if len(sigs) != len(want) {
		t.Fatalf("%d signatures, want %d", len(sigs), len(want))
	}
	for i, w := range want {
		sig := sigs[i]
		if sig.Index != 0 || !slices.Equal(sig.Path, w.path) || sig.DigestAlgorithm != w.hash || sig.SignatureAlgorithm != w.alg {
			t.Errorf("signature %d: Index %d Path %v %v %s, want 0 %v %v %s", i, sig.Index, sig.Path, sig.DigestAlgorithm, sig.SignatureAlgorithm, w.path, w.hash, w.alg)
		}
		if !sig.Verified() {
			t.Errorf("signature %d %v: %v", i, sig.Path, sig.Problem)
		}
		wantChain(t, fmt.Sprintf("signature %d", i), sig.Chains, w.signer.cert, p.inter, p.root)
	}
	if ok, out := osslVerifies(t, s.data, p.rootPEM); !ok {
		t.Errorf("osslsigncode verify refuses the nested signatures:\n%s", out)
	}

	// Only the outer signature's digest computed: the nested ones fail closed.
	sigs = verifyWith(t, s, map[crypto.Hash][]byte{crypto.SHA256: s.digest(t, crypto.SHA256)}, authenticode.VerifyOptions{})
	if !sigs[0].Verified() {
		t.Errorf("outer signature: %v", sigs[0].Problem)
	}
	for _, sig := range sigs[1:] {
		if sig.Verified() || !errors.Is(sig.Problem, authenticode.ErrDigestNotComputed) {
			t.Errorf("nested signature %v without its digest: Verified %v, Problem %v", sig.Path, sig.Verified(), sig.Problem)
		}
	}
	if p := sigs[1].Problem.Error(); !strings.HasPrefix(p, "authenticode: nested signature 0.0: ") {
		t.Errorf("Problem %q does not name the nested signature", p)
	}
}

// TestVerifyTimestamps timestamps signatures with osslsigncode, RFC 3161
// with its built-in TSA and legacy Authenticode through a local time-stamp
// server, and checks the timestamp's kind, time, chain and verification, and
// that a tampered timestamp is reported without failing the signature.
func TestVerifyTimestamps(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	tsa := p.tsa(t)
	when := testca.Epoch.Add(36*time.Hour + 17*time.Second)
	tests := []struct {
		name string
		args []string
		kind string
		// tamper returns a copy of the signature with the timestamp broken.
		tamper func(t *testing.T, der []byte) []byte
		// replayed is the error when the timestamp of another signature is
		// moved into this one (its imprint or digest is of the other's
		// signature octets).
		replayed error
	}{
		{
			name: "rfc3161",
			args: []string{"-TSA-certs", tsa.files.Chain, "-TSA-key", tsa.files.Key, "-TSA-time", strconv.FormatInt(when.Unix(), 10)},
			kind: "rfc3161",
			tamper: func(t *testing.T, der []byte) []byte {
				// The token's signature: unsigned attribute 0, value 0, ContentInfo → SignedData → SignerInfo → signature.
				e := at(t, der, append(signerInfoPath(siUnsigned), 0, 1, 0, 1, 0, -1, 0, 5)...)
				der = bytes.Clone(der)
				der[e.off+e.hdr+7] ^= 0x40
				return der
			},
			replayed: authenticode.ErrTimestamp, // "message imprint ... is not the hash of the signature"
		},
		{
			name: "authenticode",
			args: []string{"-t", legacyTSA(t, tsa, []*x509.Certificate{tsa.leaf.Cert, p.ca.Intermediate.Cert}, when)},
			kind: "authenticode",
			tamper: func(t *testing.T, der []byte) []byte {
				// The countersignature's signingTime, inside its signed attributes.
				si := append(signerInfoPath(siUnsigned), 0, 1, 0)
				attrs := at(t, der, append(si, 3)...)
				for i := range children(t, der, attrs) {
					a := at(t, der, append(si, 3, i)...)
					if bytes.Equal(at(t, der, append(si, 3, i, 0)...).bytes(der), mustMarshal(t, asnSigningTime)) {
						der = bytes.Clone(der)
						der[a.end-3] ^= 0x01 // a digit of the seconds
						return der
					}
				}
				t.Fatal("no signingTime in the countersignature")
				return nil
			},
			replayed: authenticode.ErrSignedAttributes, // "messageDigest is ..."
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := parseSignedPE(t, osslSign(t, peFile(4096), s, append([]string{"-h", "sha256"}, tt.args...)...))
			opts := authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}}
			sigs := verify(t, file, opts)
			if len(sigs) != 1 || !sigs[0].Verified() {
				t.Fatalf("signature not verified: %+v", sigs)
			}
			ts := sigs[0].Timestamp
			if ts == nil {
				t.Fatal("no timestamp found")
			}
			if ts.Kind != tt.kind || !ts.Time.Equal(when) || !ts.Verified() {
				t.Errorf("timestamp %s at %v verified=%v (%v), want %s at %v verified", ts.Kind, ts.Time, ts.Verified(), ts.Problem, tt.kind, when)
			}
			wantChain(t, "timestamp", ts.Chains, tsa.cert, p.inter, p.root)
			// osslsigncode reports a timestamp's failure but does not fail on
			// it (as Verify does not fail the signature).
			const tsOK, tsFailed = "Timestamp Server Signature verification: ok", "Timestamp Server Signature verification: failed"
			if ok, out := osslVerifies(t, file.data, p.rootPEM, "-TSA-CAfile", p.rootPEM); !ok || !strings.Contains(out, tsOK) {
				t.Errorf("osslsigncode verify refuses the timestamped file:\n%s", out)
			}

			bad := file.withSignature(t, tt.tamper(t, file.pkcs7(t)))
			sigs = verify(t, bad, opts)
			if !sigs[0].Verified() {
				t.Errorf("a bad timestamp failed the signature: %v", sigs[0].Problem)
			}
			ts = sigs[0].Timestamp
			if ts == nil || ts.Verified() || !errors.Is(ts.Problem, authenticode.ErrTimestamp) || !errors.Is(ts.Problem, signing.ErrSignature) {
				t.Errorf("tampered timestamp: %+v, want not verified with ErrTimestamp and signing.ErrSignature", ts)
			}
			if _, out := osslVerifies(t, bad.data, p.rootPEM, "-TSA-CAfile", p.rootPEM); !strings.Contains(out, tsFailed) {
				t.Errorf("osslsigncode verify accepts the tampered timestamp:\n%s", out)
			}

			// A valid timestamp of another signature, moved into this one.
			other := parseSignedPE(t, osslSign(t, peFile(5000), s, append([]string{"-h", "sha256"}, tt.args...)...)).pkcs7(t)
			der := file.pkcs7(t)
			unsigned := signerInfoPath(siUnsigned)
			replay := file.withSignature(t, replace(t, der, at(t, other, unsigned...).bytes(other), unsigned...))
			sigs = verify(t, replay, opts)
			ts = sigs[0].Timestamp
			if !sigs[0].Verified() || ts == nil || ts.Verified() || !errors.Is(ts.Problem, tt.replayed) {
				t.Errorf("replayed timestamp: signature verified %v, timestamp %+v; want %v", sigs[0].Verified(), ts, tt.replayed)
			}
			if _, out := osslVerifies(t, replay.data, p.rootPEM, "-TSA-CAfile", p.rootPEM); !strings.Contains(out, tsFailed) {
				t.Errorf("osslsigncode verify accepts the replayed timestamp:\n%s", out)
			}
		})
	}
}

// TestVerifyTimestampFractionalTime checks that an RFC 3161 genTime with
// fractional seconds (Microsoft's TSAs write milliseconds, which cryptobyte's
// GeneralizedTime reader refuses) is read. Rewriting genTime breaks the
// token's messageDigest, which must be reported.
func TestVerifyTimestampFractionalTime(t *testing.T) {
	p := newPKI(t)
	tsa := p.tsa(t)
	f := parseSignedPE(t, osslSign(t, peFile(4096), p.signer(t, testca.LeafOptions{}), "-h", "sha256",
		"-TSA-certs", tsa.files.Chain, "-TSA-key", tsa.files.Key, "-TSA-time", strconv.FormatInt(testca.Epoch.Unix(), 10)))
	der := f.pkcs7(t)
	// unsigned attribute 0 → value → ContentInfo → [0] → SignedData → encapContentInfo → [0] → OCTET STRING (TSTInfo)
	path := append(signerInfoPath(siUnsigned), 0, 1, 0, 1, 0, 2, 1, 0)
	tst := at(t, der, path...).contents(der)
	tst = replace(t, tst, encode(cbasn1.GeneralizedTime, []byte(testca.Epoch.Format("20060102150405")+".125Z")), 4)
	sigs := verify(t, f.withSignature(t, replace(t, der, encode(cbasn1.OCTET_STRING, tst), path...)), authenticode.VerifyOptions{})
	ts := sigs[0].Timestamp
	if want := testca.Epoch.Add(125 * time.Millisecond); ts == nil || !ts.Time.Equal(want) {
		t.Fatalf("timestamp %+v, want time %v", ts, want)
	}
	if ts.Verified() || !errors.Is(ts.Problem, authenticode.ErrSignedAttributes) {
		t.Errorf("rewritten TSTInfo: Verified %v, Problem %v; want the messageDigest mismatch", ts.Verified(), ts.Problem)
	}
	if !sigs[0].Verified() {
		t.Errorf("signature: %v", sigs[0].Problem)
	}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVerifyTampered breaks one thing at a time in a valid signed file and
// checks that Verify names it, and that osslsigncode refuses the file too.
func TestVerifyTampered(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	good := parseSignedPE(t, osslSign(t, peFile(4096), s, "-h", "sha256"))
	if ok, out := osslVerifies(t, good.data, p.rootPEM); !ok {
		t.Fatalf("osslsigncode refuses the untampered file:\n%s", out)
	}
	der := good.pkcs7(t)
	// flip returns der with one byte of the element at path changed.
	flip := func(t *testing.T, at0 int, path ...int) []byte {
		e := at(t, der, path...)
		d := bytes.Clone(der)
		d[e.off+e.hdr+at0] ^= 0x01
		return d
	}
	// signedAttr returns the path of the signed attribute with oid.
	signedAttr := func(t *testing.T, oid asn1.ObjectIdentifier) []int {
		attrs := signerInfoPath(siSignedAttrs)
		for i := range children(t, der, at(t, der, attrs...)) {
			if bytes.Equal(at(t, der, append(attrs, i, 0)...).bytes(der), mustMarshal(t, oid)) {
				return append(attrs, i)
			}
		}
		t.Fatalf("no signed attribute %v", oid)
		return nil
	}
	tests := []struct {
		name   string
		file   func(t *testing.T) *signedPE
		want   error
		detail string // a substring of the Problem that says precisely what failed
	}{
		{
			name: "image byte flipped",
			file: func(t *testing.T) *signedPE {
				d := bytes.Clone(good.data)
				d[good.pf.Sections[0].PointerToRawData+100] ^= 0xff
				return parseSignedPE(t, d)
			},
			want:   authenticode.ErrDigestMismatch,
			detail: "signature 0: image digest mismatch: signed sha256 ",
		},
		{
			name: "signed image digest changed",
			file: func(t *testing.T) *signedPE {
				// SignedData → encapContentInfo → [0] → SpcIndirectDataContent → DigestInfo → digest
				return good.withSignature(t, flip(t, 3, 1, 0, 2, 1, 0, 1, 1))
			},
			want: authenticode.ErrDigestMismatch,
		},
		{
			name: "signature octets flipped",
			file: func(t *testing.T) *signedPE {
				return good.withSignature(t, flip(t, 20, signerInfoPath(siSignature)...))
			},
			want:   signing.ErrSignature,
			detail: "signature by \"Test Code Signing\" (RSA) over the signed attributes",
		},
		{
			name: "signingTime attribute changed",
			file: func(t *testing.T) *signedPE {
				return good.withSignature(t, flip(t, 4, append(signedAttr(t, asnSigningTime), 1, 0)...))
			},
			want: signing.ErrSignature,
		},
		{
			name: "messageDigest attribute changed",
			file: func(t *testing.T) *signedPE {
				return good.withSignature(t, flip(t, 5, append(signedAttr(t, asnMessageDigest), 1, 0)...))
			},
			want:   authenticode.ErrSignedAttributes,
			detail: "messageDigest is sha256 ",
		},
		{
			name: "contentType attribute removed",
			file: func(t *testing.T) *signedPE {
				return good.withSignature(t, replace(t, der, nil, signedAttr(t, asnContentType)...))
			},
			want:   authenticode.ErrSignedAttributes,
			detail: "no contentType attribute",
		},
		{
			name: "signer certificate removed",
			file: func(t *testing.T) *signedPE {
				return good.withSignature(t, replace(t, der, encode(cbasn1.Tag(0).Constructed().ContextSpecific(), p.ca.Intermediate.Cert.Raw), pathCerts...))
			},
			want:   authenticode.ErrSignerNotFound,
			detail: `issuer "CN=Test Issuing CA,O=csv tests", serial `,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.file(t)
			sigs := verify(t, f, authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}})
			if len(sigs) != 1 {
				t.Fatalf("%d signatures, want 1", len(sigs))
			}
			sig := sigs[0]
			if sig.Verified() || !errors.Is(sig.Problem, tt.want) {
				t.Errorf("Verified %v, Problem %v; want not verified with %v", sig.Verified(), sig.Problem, tt.want)
			}
			var se *authenticode.SignatureError
			if !errors.As(sig.Problem, &se) || se.Index != 0 {
				t.Errorf("Problem %v is not a *SignatureError for entry 0", sig.Problem)
			}
			if sig.Problem != nil && !strings.Contains(sig.Problem.Error(), tt.detail) {
				t.Errorf("Problem %q does not say %q", sig.Problem, tt.detail)
			}
			if ok, _ := osslVerifies(t, f.data, p.rootPEM); ok {
				t.Error("osslsigncode verify accepts the tampered file")
			}
		})
	}

	t.Run("digest not computed", func(t *testing.T) {
		for _, digests := range []map[crypto.Hash][]byte{nil, {crypto.SHA1: good.digest(t, crypto.SHA1)}, {crypto.SHA256: {}}} {
			sigs := verifyWith(t, good, digests, authenticode.VerifyOptions{})
			if sigs[0].Verified() || !errors.Is(sigs[0].Problem, authenticode.ErrDigestNotComputed) {
				t.Errorf("digests %v: Verified %v, Problem %v", digests, sigs[0].Verified(), sigs[0].Problem)
			}
		}
	})
	t.Run("table that cannot be split", func(t *testing.T) {
		table := bytes.Clone(good.table)
		table[0] ^= 0x80 // dwLength beyond the table
		sigs, err := pe.Verify(table, good.pf.CertTable.Off, digestsFor(t, good), authenticode.VerifyOptions{})
		if err == nil || sigs != nil {
			t.Errorf("Verify = %v, %v; want an error and no signatures", sigs, err)
		}
	})
}

// withUnsigned returns der (an osslsigncode signature without unsigned
// attributes) with attrs as its SignerInfo's unsigned attributes.
func withUnsigned(t testing.TB, der []byte, attrs ...[]byte) []byte {
	t.Helper()
	return insertChild(t, der, encode(cbasn1.Tag(1).Constructed().ContextSpecific(), bytes.Join(attrs, nil)), pathSignerInfo...)
}

// attr is a DER Attribute with one value.
func attr(t testing.TB, oid asn1.ObjectIdentifier, value []byte) []byte {
	t.Helper()
	return encode(cbasn1.SEQUENCE, append(mustMarshal(t, oid), encode(cbasn1.SET, value)...))
}

// withSignedDataField returns der with field (a whole DER element) placed
// among the SignedData's fields before the one at position before.
func withSignedDataField(t testing.TB, der, field []byte, before int) []byte {
	t.Helper()
	sd := at(t, der, 1, 0)
	var contents []byte
	for i, c := range children(t, der, sd) {
		if i == before {
			contents = append(contents, field...)
		}
		contents = append(contents, c.bytes(der)...)
	}
	return replace(t, der, encode(sd.tag, contents), 1, 0)
}

// TestVerifyMalformedTables checks that a certificate table holding
// anything but well-formed Authenticode signatures makes Verify (and
// CheckTable) fail, so that the file is malformed whatever its signatures
// say: data no signature covers must not ride along (the CVE-2013-3900
// class). Each hostile table is built from a good signature, next to which
// or in which it smuggles data; osslsigncode is the oracle where OpenSSL
// reads the structure (it refuses a table of several entries outright, and
// PKCS#7 that does not parse), and where csv is stricter than OpenSSL (caps
// on what OpenSSL accepts as well-formed), the case says so.
func TestVerifyMalformedTables(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	tsa := p.tsa(t)
	good := parseSignedPE(t, osslSign(t, peFile(4096), s, "-h", "sha256"))
	stamped := parseSignedPE(t, osslSign(t, peFile(4096), s, "-h", "sha256",
		"-TSA-certs", tsa.files.Chain, "-TSA-key", tsa.files.Key, "-TSA-time", strconv.FormatInt(testca.Epoch.Unix(), 10)))
	legacy := parseSignedPE(t, osslSign(t, peFile(4096), s, "-h", "sha256", "-t", legacyTSA(t, tsa, []*x509.Certificate{tsa.leaf.Cert}, testca.Epoch)))
	der, stampedDER, legacyDER := good.pkcs7(t), stamped.pkcs7(t), legacy.pkcs7(t)
	junk := bytes.Repeat([]byte("junk"), 1024)
	// 3 KB under the SPC_NESTED_SIGNATURE type, which Verify reads in an
	// Authenticode SignerInfo and nowhere else.
	nestedJunk := encode(cbasn1.Tag(1).Constructed().ContextSpecific(),
		attr(t, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 4, 1}, encode(cbasn1.OCTET_STRING, junk[:3072])))
	mz := append([]byte("MZ\x90\x00"), junk[:4092]...)
	notCert := encode(cbasn1.SEQUENCE, encode(cbasn1.OCTET_STRING, junk))
	unknownOID := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}

	type oracle int
	const (
		osslRefuses oracle = iota
		osslAccepts        // OpenSSL reads it as well-formed: csv's cap is stricter
	)
	tests := []struct {
		name   string
		file   func(t *testing.T) *signedPE
		want   error // errors.Is target; nil: a *binfmt.MalformedError from splitting the table
		says   string
		oracle oracle
	}{
		{
			name: "second entry of 4 KB junk",
			file: func(t *testing.T) *signedPE {
				return good.withTable(t, append(bytes.Clone(good.table), makeTable(pkcs7Entry(junk))...))
			},
			says: "WIN_CERTIFICATE 1: bCertificate is not a DER SEQUENCE",
		},
		{
			name: "second entry of type X509 starting with MZ",
			file: func(t *testing.T) *signedPE {
				return good.withTable(t, append(bytes.Clone(good.table), makeTable(tableEntry{revision: binpe.CertRevision2_0, typ: binpe.CertTypeX509, data: mz})...))
			},
			says: "WIN_CERTIFICATE 1: revision 0x0200, type X509",
		},
		{
			name: "the only entry of type X509",
			file: func(t *testing.T) *signedPE {
				return good.withTable(t, makeTable(tableEntry{revision: binpe.CertRevision2_0, typ: binpe.CertTypeX509, data: s.leaf.Cert.Raw}))
			},
			says: "type X509",
		},
		{
			name: "revision 1.0 entry",
			file: func(t *testing.T) *signedPE {
				return good.withTable(t, makeTable(tableEntry{revision: binpe.CertRevision1_0, typ: binpe.CertTypePKCSSignedData, data: der}))
			},
			says: "revision 0x0100",
		},
		{
			name: "truncated PKCS#7",
			file: func(t *testing.T) *signedPE { return good.withSignature(t, der[:len(der)/2]) },
			says: "bCertificate is not a DER SEQUENCE",
		},
		{
			name:   "data after the signature inside the entry",
			file:   func(t *testing.T) *signedPE { return good.withSignature(t, append(bytes.Clone(der), mz...)) },
			says:   "bytes after the signature are not zero padding",
			oracle: osslAccepts, // d2i_PKCS7 stops at the end of the DER: osslsigncode misses this CVE-2013-3900 shape
		},
		{
			name: "16 bytes of zero padding",
			file: func(t *testing.T) *signedPE {
				return good.withTable(t, makeTable(pkcs7Entry(append(bytes.Clone(der), make([]byte, 16+(-len(der)&7))...))))
			},
			says:   "past the 8-byte boundary",
			oracle: osslAccepts, // d2i_PKCS7 stops at the end of the DER
		},
		{
			name: "second entry that is DER but not a signature",
			file: func(t *testing.T) *signedPE {
				return good.withTable(t, append(bytes.Clone(good.table), makeTable(pkcs7Entry(notCert))...))
			},
			want: authenticode.ErrMalformed,
			says: "signature 1: malformed PKCS#7 at offset …: ContentInfo has no content type",
		},
		{
			name: "two SignerInfos",
			file: func(t *testing.T) *signedPE {
				si := at(t, der, pathSignerInfo...).bytes(der)
				return good.withSignature(t, insertChild(t, der, si, 1, 0, -1))
			},
			want: authenticode.ErrMalformed,
			says: "2 SignerInfos",
		},
		{
			name: "junk in the certificate set",
			file: func(t *testing.T) *signedPE { return good.withSignature(t, insertChild(t, der, notCert, pathCerts...)) },
			want: authenticode.ErrMalformed,
			says: "an embedded certificate cannot be read",
		},
		{
			name: "a certificate with data after its signature",
			file: func(t *testing.T) *signedPE {
				root := p.ca.Root.Cert.Raw
				return good.withSignature(t, insertChild(t, der, insertChild(t, root, encode(cbasn1.OCTET_STRING, junk[:256])), pathCerts...))
			},
			want: authenticode.ErrMalformed,
			says: "an embedded certificate cannot be read: certificate 2: signing: malformed certificate: 260 bytes after the signature",
		},
		{
			name: "an other-format certificate in the certificate set",
			file: func(t *testing.T) *signedPE {
				other := encode(cbasn1.Tag(3).Constructed().ContextSpecific(), append(mustMarshal(t, unknownOID), junk[:64]...))
				return good.withSignature(t, insertChild(t, der, other, pathCerts...))
			},
			want: authenticode.ErrMalformed,
			says: "neither a certificate nor an attribute certificate",
		},
		{
			name: "junk CRL",
			file: func(t *testing.T) *signedPE {
				crls := encode(cbasn1.Tag(1).Constructed().ContextSpecific(), notCert)
				return good.withSignature(t, withSignedDataField(t, der, crls, 4))
			},
			want: authenticode.ErrMalformed,
			says: "CRL 0 of the crls field is not a CertificateList",
		},
		{
			name: "3 KB unknown unsigned attribute",
			file: func(t *testing.T) *signedPE {
				return good.withSignature(t, withUnsigned(t, der, attr(t, unknownOID, encode(cbasn1.OCTET_STRING, junk[:3072]))))
			},
			want:   authenticode.ErrLimit,
			says:   "bytes of unsigned attributes csv does not read",
			oracle: osslAccepts,
		},
		{
			// A 1 KiB placeholder meant to be filled with data after
			// signing ("personalised" installers): what the cap is for.
			name: "osslsigncode -addUnauthenticatedBlob",
			file: func(t *testing.T) *signedPE {
				return parseSignedPE(t, osslSign(t, peFile(4096), s, "-h", "sha256", "-addUnauthenticatedBlob"))
			},
			want:   authenticode.ErrLimit,
			says:   "1041 bytes of unsigned attributes csv does not read (at most 1024",
			oracle: osslAccepts,
		},
		{
			// Nothing reads a time-stamp token's unsigned attributes,
			// whatever their type.
			name: "3 KB in the RFC 3161 token's unsigned attributes",
			file: func(t *testing.T) *signedPE {
				return stamped.withSignature(t, insertChild(t, stampedDER, nestedJunk, signerInfoPath(siUnsigned, 0, 1, 0, 1, 0, -1, 0)...))
			},
			want:   authenticode.ErrLimit,
			says:   "the RFC 3161 timestamp: malformed PKCS#7 at offset …: 3088 bytes of unsigned attributes csv does not read",
			oracle: osslAccepts,
		},
		{
			name: "3 KB in the countersignature's unsigned attributes",
			file: func(t *testing.T) *signedPE {
				return legacy.withSignature(t, insertChild(t, legacyDER, nestedJunk, signerInfoPath(siUnsigned, 0, 1, 0)...))
			},
			want:   authenticode.ErrLimit,
			says:   "the countersignature: malformed PKCS#7 at offset …: 3088 bytes of unsigned attributes csv does not read",
			oracle: osslAccepts,
		},
		{
			name: "unsigned attribute that is not an Attribute",
			file: func(t *testing.T) *signedPE {
				return good.withSignature(t, withUnsigned(t, der, encode(cbasn1.OCTET_STRING, junk[:64])))
			},
			want: authenticode.ErrMalformed,
			says: "bad attribute in the unsigned attributes",
		},
		{
			name: "two RFC 3161 timestamps",
			file: func(t *testing.T) *signedPE {
				ts := at(t, stampedDER, signerInfoPath(siUnsigned, 0)...).bytes(stampedDER)
				return stamped.withSignature(t, insertChild(t, stampedDER, ts, signerInfoPath(siUnsigned)...))
			},
			want:   authenticode.ErrMalformed,
			says:   "more than one 1.3.6.1.4.1.311.3.3.1 unsigned attribute",
			oracle: osslAccepts,
		},
		{
			name: "RFC 3161 timestamp that is not a token",
			file: func(t *testing.T) *signedPE {
				return good.withSignature(t, withUnsigned(t, der, attr(t, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 3, 3, 1}, notCert)))
			},
			want:   authenticode.ErrMalformed,
			says:   "the RFC 3161 timestamp: malformed PKCS#7 at offset …: ContentInfo has no content type",
			oracle: osslAccepts, // osslsigncode reports a broken timestamp, and passes
		},
		{
			name: "nested signature that is not a signature",
			file: func(t *testing.T) *signedPE {
				return good.withSignature(t, withUnsigned(t, der, attr(t, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 4, 1}, notCert)))
			},
			want:   authenticode.ErrMalformed,
			says:   "nested signature 0.0: malformed PKCS#7 at offset …: ContentInfo has no content type",
			oracle: osslAccepts, // osslsigncode skips a nested signature it cannot read
		},
		{
			name: "digest algorithm with parameters",
			file: func(t *testing.T) *signedPE {
				alg := algorithm(t, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, encode(cbasn1.OCTET_STRING, junk[:512]))
				return good.withSignature(t, replace(t, der, encode(cbasn1.SET, alg), 1, 0, 1))
			},
			want:   authenticode.ErrMalformed,
			says:   "digestAlgorithms 2.16.840.1.101.3.4.2.1 has 516 bytes of parameters",
			oracle: osslAccepts,
		},
		{
			name: "4 KB signature octets",
			file: func(t *testing.T) *signedPE {
				return good.withSignature(t, replace(t, der, encode(cbasn1.OCTET_STRING, junk), signerInfoPath(siSignature)...))
			},
			want: authenticode.ErrLimit,
			says: "a 4096-byte signature",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.file(t)
			sigs, err := pe.Verify(f.table, f.pf.CertTable.Off, digestsFor(t, good), authenticode.VerifyOptions{})
			checkErr := pe.CheckTable(f.table, f.pf.CertTable.Off, nil)
			if sigs != nil || err == nil {
				t.Fatalf("Verify = %d signatures, %v; want no signatures and an error", len(sigs), err)
			}
			if checkErr == nil || checkErr.Error() != err.Error() {
				t.Errorf("CheckTable = %v, Verify = %v; want the same error", checkErr, err)
			}
			if tt.want == nil {
				var me *binfmt.MalformedError
				if !errors.As(err, &me) {
					t.Errorf("error %v is not a *binfmt.MalformedError", err)
				}
			} else {
				var me *signing.MalformedError
				var se *authenticode.SignatureError
				if !errors.As(err, &me) || !errors.As(err, &se) || !errors.Is(err, tt.want) || me.Offset < f.pf.CertTable.Off {
					t.Errorf("error %v is not a *signing.MalformedError at an entry's offset of a *SignatureError wrapping %v", err, tt.want)
				}
			}
			if !containsInOrder(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
			ok, out := osslVerifies(t, f.data, p.rootPEM)
			switch {
			case tt.oracle == osslRefuses && ok:
				t.Errorf("osslsigncode accepts it:\n%s", out)
			case tt.oracle == osslAccepts && !ok:
				t.Logf("osslsigncode refuses it too: the case could say so:\n%s", out)
			}
		})
	}
	// The good files themselves pass, and so does one that carries a
	// certificate signed with an algorithm csv does not know (old chains
	// carry MD2-signed roots): well-formed, left out of chain building.
	md2Root := replace(t, p.ca.Root.Cert.Raw, algorithm(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 2}, []byte{5, 0}), 1)
	withMD2 := good.withSignature(t, insertChild(t, der, md2Root, pathCerts...))
	for _, f := range []*signedPE{good, stamped, legacy, withMD2} {
		if err := pe.CheckTable(f.table, f.pf.CertTable.Off, nil); err != nil {
			t.Errorf("CheckTable of a good signature: %v", err)
		}
	}
	if sigs := verify(t, withMD2, authenticode.VerifyOptions{}); !sigs[0].Verified() || len(sigs[0].Certificates) != 2 {
		t.Errorf("with an MD2-signed certificate: verified %v (%v), %d certificates", sigs[0].Verified(), sigs[0].Problem, len(sigs[0].Certificates))
	}
}

// containsInOrder reports whether s holds the parts of want separated by
// "…" (where messages name offsets that depend on the fixtures), in order.
func containsInOrder(s, want string) bool {
	for _, part := range strings.Split(want, "…") {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return true
}

// TestVerifyRogueSigner checks that a signature by a self-signed key outside
// the test PKI verifies (its cryptography holds) but its chain does not reach
// the test root: trust is the policy's decision, made on Chains.
func TestVerifyRogueSigner(t *testing.T) {
	p := newPKI(t)
	rogue := p.signer(t, testca.LeafOptions{CommonName: "Rogue", SelfSigned: true})
	f := parseSignedPE(t, osslSign(t, peFile(4096), rogue, "-h", "sha256"))
	sigs := verify(t, f, authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root, p.inter}})
	if len(sigs) != 1 || !sigs[0].Verified() {
		t.Fatalf("rogue signature: %+v", sigs)
	}
	wantChain(t, "rogue", sigs[0].Chains, rogue.cert)
	for _, chain := range sigs[0].Chains {
		for _, c := range chain {
			if c.SHA256 == p.root.SHA256 || c.SHA256 == p.inter.SHA256 {
				t.Errorf("the rogue chain reaches %q", c.CommonName())
			}
		}
	}
	if ok, _ := osslVerifies(t, f.data, p.rootPEM); ok {
		t.Error("osslsigncode verify accepts the rogue signer with the test root")
	}
}

// resign replaces the SignerInfo's signature algorithm and signature: sign
// gets the DER signed attributes re-tagged as a SET.
func resign(t testing.TB, der, sigAlg []byte, sign func(data []byte) []byte) []byte {
	t.Helper()
	data := bytes.Clone(at(t, der, signerInfoPath(siSignedAttrs)...).bytes(der))
	data[0] = 0x31
	der = replace(t, der, encode(cbasn1.OCTET_STRING, sign(data)), signerInfoPath(siSignature)...)
	return replace(t, der, sigAlg, signerInfoPath(siSigAlg)...)
}

func algorithm(t testing.TB, oid asn1.ObjectIdentifier, params []byte) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddBytes(params)
	})
	return b.BytesOrPanic()
}

func pssParams(t testing.TB, h asn1.ObjectIdentifier, salt int64) []byte {
	t.Helper()
	null := []byte{5, 0}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(algorithm(t, h, null)) })
		b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddBytes(algorithm(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}, algorithm(t, h, null)))
		})
		b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(salt) })
	})
	return b.BytesOrPanic()
}

// TestVerifySignatureEncodings re-signs osslsigncode signatures with Go's
// crypto in the encodings osslsigncode does not write (RSA-PSS, the
// sha256WithRSAEncryption and ecdsa-with-SHA256 OIDs, a subject key
// identifier as signer identifier, a negative serial number on a
// certificate Go's x509 refuses), checking that each verifies, and that a
// wrong algorithm does not.
func TestVerifySignatureEncodings(t *testing.T) {
	p := newPKI(t)
	rsaS := p.signer(t, testca.LeafOptions{})
	ecS := p.signer(t, testca.LeafOptions{KeyType: testca.ECDSAP256})
	rsaFile := parseSignedPE(t, osslSign(t, peFile(4096), rsaS, "-h", "sha256"))
	ecFile := parseSignedPE(t, osslSign(t, peFile(4096), ecS, "-h", "sha256"))
	rsaKey, ecKey := rsaS.leaf.Key.(*rsa.PrivateKey), ecS.leaf.Key.(*ecdsa.PrivateKey)
	null := []byte{5, 0}
	sum := func(h crypto.Hash, data []byte) []byte {
		hh := h.New()
		hh.Write(data)
		return hh.Sum(nil)
	}
	must := func(b []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name     string
		file     *signedPE
		der      func(t *testing.T, der []byte) []byte
		want     error // nil: verified
		wantAlg  string
		wantLeaf func(t *testing.T, sig *signing.Signature)
		ossl     bool // osslsigncode can check this encoding
	}{
		{
			name: "rsa-pss sha256",
			file: rsaFile,
			der: func(t *testing.T, der []byte) []byte {
				return resign(t, der, algorithm(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}, pssParams(t, asnSHA256, 32)), func(d []byte) []byte {
					return must(rsa.SignPSS(rand.Reader, rsaKey, crypto.SHA256, sum(crypto.SHA256, d), &rsa.PSSOptions{SaltLength: 32}))
				})
			},
			wantAlg: "RSA-PSS",
			ossl:    false, // OpenSSL's PKCS7_signatureVerify checks PKCS#1 v1.5 padding only
		},
		{
			name: "rsa-pss parameters name another hash",
			file: rsaFile,
			der: func(t *testing.T, der []byte) []byte {
				return resign(t, der, algorithm(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}, pssParams(t, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, 32)), func(d []byte) []byte {
					return must(rsa.SignPSS(rand.Reader, rsaKey, crypto.SHA256, sum(crypto.SHA256, d), &rsa.PSSOptions{SaltLength: 32}))
				})
			},
			want:    signing.ErrSignature,
			wantAlg: "RSA-PSS",
		},
		{
			name: "sha256WithRSAEncryption",
			file: rsaFile,
			der: func(t *testing.T, der []byte) []byte {
				return resign(t, der, algorithm(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, null), func(d []byte) []byte {
					return must(rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, sum(crypto.SHA256, d)))
				})
			},
			wantAlg: "RSA",
			ossl:    true,
		},
		{
			name: "sha384WithRSAEncryption over a SHA384 hash while the SignerInfo says SHA256",
			file: rsaFile,
			der: func(t *testing.T, der []byte) []byte {
				return resign(t, der, algorithm(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}, null), func(d []byte) []byte {
					return must(rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA384, sum(crypto.SHA384, d)))
				})
			},
			wantAlg: "RSA", // the signature algorithm's own hash signs; the SignerInfo's digests the content
		},
		{
			name: "md5WithRSAEncryption",
			file: rsaFile,
			der: func(t *testing.T, der []byte) []byte {
				return resign(t, der, algorithm(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 4}, null), func(d []byte) []byte {
					return must(rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.MD5, sum(crypto.MD5, d)))
				})
			},
			want:    authenticode.ErrUnsupportedAlgorithm,
			wantAlg: "RSA",
		},
		{
			name: "ecdsa-with-SHA256",
			file: ecFile,
			der: func(t *testing.T, der []byte) []byte {
				return resign(t, der, algorithm(t, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}, nil), func(d []byte) []byte {
					return must(ecdsa.SignASN1(rand.Reader, ecKey, sum(crypto.SHA256, d)))
				})
			},
			wantAlg: "ECDSA",
			ossl:    true,
		},
		{
			name: "id-ecPublicKey with the SignerInfo digest",
			file: ecFile,
			der: func(t *testing.T, der []byte) []byte {
				return resign(t, der, algorithm(t, asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}, nil), func(d []byte) []byte {
					return must(ecdsa.SignASN1(rand.Reader, ecKey, sum(crypto.SHA256, d)))
				})
			},
			wantAlg: "ECDSA",
			ossl:    true,
		},
		{
			name: "ecdsa key with an RSA algorithm",
			file: ecFile,
			der: func(t *testing.T, der []byte) []byte {
				return replace(t, der, algorithm(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}, null), signerInfoPath(siSigAlg)...)
			},
			want:    signing.ErrSignature,
			wantAlg: "RSA",
		},
		{
			name: "subject key identifier",
			file: rsaFile,
			der: func(t *testing.T, der []byte) []byte {
				// Re-issue the leaf with a subject key identifier (testca
				// leaves have none) and name the signer by it.
				tmpl := *rsaS.leaf.Cert
				tmpl.SubjectKeyId = []byte("test subject key id")
				cert, err := x509.CreateCertificate(rand.Reader, &tmpl, p.ca.Intermediate.Cert, rsaKey.Public(), p.ca.Intermediate.Key)
				if err != nil {
					t.Fatal(err)
				}
				der = replaceCert(t, der, rsaS.leaf.Cert.Raw, cert)
				return replace(t, der, encode(cbasn1.Tag(0).ContextSpecific(), tmpl.SubjectKeyId), signerInfoPath(siSID)...)
			},
			wantAlg: "RSA",
			ossl:    false, // OpenSSL's PKCS7 decoder wants issuerAndSerialNumber: "Type=PKCS7_ISSUER_AND_SERIAL: wrong tag"
		},
		{
			name: "subject key identifier of no certificate",
			file: rsaFile,
			der: func(t *testing.T, der []byte) []byte {
				return replace(t, der, encode(cbasn1.Tag(0).ContextSpecific(), []byte("no such key")), signerInfoPath(siSID)...)
			},
			want:    authenticode.ErrSignerNotFound,
			wantAlg: "RSA",
		},
		{
			name: "negative serial number",
			file: rsaFile,
			der: func(t *testing.T, der []byte) []byte {
				// Re-issue the leaf with serial -255 (Go's x509 refuses
				// it), signed by the issuing CA, and name it so.
				serial := encode(cbasn1.INTEGER, []byte{0xff, 0x01})
				leaf := rsaS.leaf.Cert.Raw
				tbs := replace(t, at(t, leaf, 0).bytes(leaf), serial, 1)
				sig := must(p.ca.Intermediate.Key.Sign(rand.Reader, sum(crypto.SHA256, tbs), crypto.SHA256))
				cert := replace(t, replace(t, leaf, tbs, 0), encode(cbasn1.BIT_STRING, append([]byte{0}, sig...)), 2)
				der = replaceCert(t, der, leaf, cert)
				return replace(t, der, serial, signerInfoPath(siSID, 1)...)
			},
			wantAlg: "RSA",
			wantLeaf: func(t *testing.T, sig *signing.Signature) {
				leaf := sig.Signer()
				if leaf.SerialNumber.Int64() != -255 || leaf.Parsed != nil {
					t.Errorf("signer serial %v, parsed by Go's x509: %v; want -255, refused", leaf.SerialNumber, leaf.Parsed != nil)
				}
				if len(sig.Chains) != 1 || len(sig.Chains[0]) != 3 {
					t.Errorf("chain %v, want leaf, issuing CA, root", sig.Chains)
				}
			},
			ossl: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.file.withSignature(t, tt.der(t, tt.file.pkcs7(t)))
			sigs := verify(t, f, authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}})
			if len(sigs) != 1 {
				t.Fatalf("%d signatures", len(sigs))
			}
			sig := sigs[0]
			if sig.SignatureAlgorithm != tt.wantAlg {
				t.Errorf("SignatureAlgorithm %q, want %q", sig.SignatureAlgorithm, tt.wantAlg)
			}
			if tt.want == nil {
				if !sig.Verified() {
					t.Fatalf("not verified: %v", sig.Problem)
				}
				if tt.wantLeaf != nil {
					tt.wantLeaf(t, sig)
				}
				if tt.ossl {
					if ok, out := osslVerifies(t, f.data, p.rootPEM); !ok {
						t.Errorf("osslsigncode refuses it:\n%s", out)
					}
				}
				return
			}
			if sig.Verified() || !errors.Is(sig.Problem, tt.want) {
				t.Errorf("Verified %v, Problem %v; want %v", sig.Verified(), sig.Problem, tt.want)
			}
		})
	}
}

// TestVerifySignerDigests: the hashes a signer signs through besides the
// image hash (the SignerInfo's digest algorithm, the hash its signature
// algorithm names) are recorded, so that a policy refusing SHA-1 refuses a
// SHA-256 image hash whose signer digests with SHA-1.
func TestVerifySignerDigests(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	f := parseSignedPE(t, osslSign(t, peFile(4096), s, "-h", "sha256"))
	key := s.leaf.Key.(*rsa.PrivateKey)
	sum := func(h crypto.Hash, data []byte) []byte {
		hh := h.New()
		hh.Write(data)
		return hh.Sum(nil)
	}
	signWith := func(h crypto.Hash) func([]byte) []byte {
		return func(d []byte) []byte {
			sig, err := rsa.SignPKCS1v15(rand.Reader, key, h, sum(h, d))
			if err != nil {
				t.Fatal(err)
			}
			return sig
		}
	}
	null := []byte{5, 0}
	tests := []struct {
		name string
		der  func(der []byte) []byte
		want []crypto.Hash
	}{
		{"osslsigncode -h sha256", func(der []byte) []byte { return der }, nil},
		{"sha1WithRSAEncryption over the signed attributes", func(der []byte) []byte {
			return resign(t, der, algorithm(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}, null), signWith(crypto.SHA1))
		}, []crypto.Hash{crypto.SHA1}},
		{"a SHA-1 SignerInfo digest", func(der []byte) []byte {
			// The messageDigest attribute becomes the SHA-1 of the
			// content, and rsaEncryption signs with the SignerInfo's digest.
			content := at(t, der, 1, 0, 2, 1, 0).contents(der)
			attrs := signerInfoPath(siSignedAttrs)
			for i := range children(t, der, at(t, der, attrs...)) {
				if bytes.Equal(at(t, der, append(attrs, i, 0)...).bytes(der), mustMarshal(t, asnMessageDigest)) {
					der = replace(t, der, encode(cbasn1.OCTET_STRING, sum(crypto.SHA1, content)), append(attrs, i, 1, 0)...)
				}
			}
			der = replace(t, der, algorithm(t, asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, null), signerInfoPath(siDigestAlg)...)
			return resign(t, der, algorithm(t, asnRSAEncryption, null), signWith(crypto.SHA1))
		}, []crypto.Hash{crypto.SHA1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sigs := verify(t, f.withSignature(t, tt.der(f.pkcs7(t))), authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}})
			if len(sigs) != 1 || !sigs[0].Verified() {
				t.Fatalf("signatures %+v", sigs)
			}
			if sigs[0].DigestAlgorithm != crypto.SHA256 || !slices.Equal(sigs[0].SignerDigests, tt.want) {
				t.Errorf("DigestAlgorithm %v, SignerDigests %v; want SHA-256, %v", sigs[0].DigestAlgorithm, sigs[0].SignerDigests, tt.want)
			}
		})
	}
}

// replaceCert replaces the embedded certificate old with cert.
func replaceCert(t testing.TB, der, old, cert []byte) []byte {
	t.Helper()
	for i := range children(t, der, at(t, der, pathCerts...)) {
		if bytes.Equal(at(t, der, append(pathCerts, i)...).bytes(der), old) {
			return replace(t, der, cert, append(pathCerts, i)...)
		}
	}
	t.Fatal("certificate not embedded")
	return nil
}

// nest returns outer with inner added as SPC_NESTED_SIGNATURE values (one
// attribute) in its SignerInfo, which must have no unsigned attributes.
func nest(t testing.TB, outer []byte, inner ...[]byte) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 4, 1})
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				for _, in := range inner {
					b.AddBytes(in)
				}
			})
		})
	})
	return insertChild(t, outer, b.BytesOrPanic(), pathSignerInfo...)
}

// TestVerifyLimits nests signatures deeper and wider than the caps and
// checks that Verify examines up to the caps and refuses the table past
// them: signatures it does not examine are bytes nothing vouches for.
func TestVerifyLimits(t *testing.T) {
	p := newPKI(t)
	f := parseSignedPE(t, osslSign(t, peFile(4096), p.signer(t, testca.LeafOptions{}), "-h", "sha256"))
	base := f.pkcs7(t)
	limited := func(t *testing.T, table []byte, says string) {
		t.Helper()
		sigs, err := pe.Verify(table, f.pf.CertTable.Off, digestsFor(t, f), authenticode.VerifyOptions{})
		var me *signing.MalformedError
		if sigs != nil || !errors.As(err, &me) || !errors.Is(err, authenticode.ErrLimit) || !strings.Contains(err.Error(), says) {
			t.Errorf("Verify = %d signatures, %v; want a *signing.MalformedError wrapping ErrLimit saying %q", len(sigs), err, says)
		}
	}

	t.Run("depth", func(t *testing.T) {
		der := base
		for range authenticode.MaxNestingDepth {
			der = nest(t, base, der)
		}
		// At the cap: every signature is examined.
		sigs := verify(t, f.withSignature(t, der), authenticode.VerifyOptions{})
		if len(sigs) != authenticode.MaxNestingDepth+1 {
			t.Fatalf("%d signatures, want %d", len(sigs), authenticode.MaxNestingDepth+1)
		}
		for i, sig := range sigs {
			if len(sig.Path) != i || (i > 0 && sig.Path[i-1] != 0) || !sig.Verified() {
				t.Errorf("signature %d: Path %v, Verified %v (%v)", i, sig.Path, sig.Verified(), sig.Problem)
			}
		}
		// One level more: refused.
		limited(t, makeTable(pkcs7Entry(nest(t, base, der))), "nested signatures deeper than 8 levels")
	})
	t.Run("count", func(t *testing.T) {
		// Entries of 20 nested signatures each, within the unsigned
		// attributes cap: the table's signatures past MaxSignatures are
		// refused.
		inner := make([][]byte, 20)
		for i := range inner {
			inner[i] = base
		}
		wide := nest(t, base, inner...)
		var entries []tableEntry
		for range 3 {
			entries = append(entries, pkcs7Entry(wide))
		}
		sigs := verify(t, f.withTable(t, makeTable(entries...)), authenticode.VerifyOptions{})
		if len(sigs) != 63 {
			t.Fatalf("%d signatures, want 63", len(sigs))
		}
		limited(t, makeTable(append(entries, pkcs7Entry(base), pkcs7Entry(base))...), "more than 64 signatures in the table")
		if got := pe.DigestAlgorithms(makeTable(append(entries, pkcs7Entry(wide))...)); !slices.Equal(got, []crypto.Hash{crypto.SHA256}) {
			t.Errorf("DigestAlgorithms = %v", got)
		}
	})
	t.Run("unsigned attributes", func(t *testing.T) {
		inner := make([][]byte, 40)
		for i := range inner {
			inner[i] = base
		}
		limited(t, makeTable(pkcs7Entry(nest(t, base, inner...))), "bytes of unsigned attributes (at most 65536)")
	})
}

// TestVerifyChainChecks builds the table that makes chain building cost the
// most: each entry's certificate set holds 31 CA certificates that share
// the name of the signer's issuer, none of whose keys signed it, so that
// each search makes 31 signature checks (with RSA-8192 keys and a large
// exponent, or P-521, each costs milliseconds: 64 such entries took 6 to 9 s,
// 10 s with timestamps). Four entries are within MaxChainChecks; a fifth
// makes the table malformed with ErrTooManyChainChecks, with or without a
// cache that already holds the chains (whether a table is over the cap must
// not depend on what was verified before), while CheckTable, which builds
// no chains, accepts it.
func TestVerifyChainChecks(t *testing.T) {
	p := newPKI(t)
	good := parseSignedPE(t, osslSign(t, peFile(4096), p.signer(t, testca.LeafOptions{}), "-h", "sha256"))
	base := good.pkcs7(t)
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	x := pkix.Name{CommonName: "Shared Issuer Name"}
	mint := func(serial int64, subject pkix.Name, ca bool, pub *ecdsa.PublicKey, by *ecdsa.PrivateKey) []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: subject, NotBefore: testca.Epoch.AddDate(-1, 0, 0), NotAfter: testca.Epoch.AddDate(1, 0, 0),
			IsCA: ca, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, &x509.Certificate{Subject: x}, pub, by)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	stranger := key()
	var cas []byte
	for i := range 31 {
		cas = append(cas, mint(int64(100+i), x, true, &key().PublicKey, stranger)...)
	}
	entry := func(i int) tableEntry {
		leaf := mustCert(t, mint(int64(1000+i), pkix.Name{CommonName: "Signer " + strconv.Itoa(i)}, false, &key().PublicKey, stranger))
		der := replace(t, base, encode(cbasn1.Tag(0).Constructed().ContextSpecific(), append(bytes.Clone(leaf.Raw), cas...)), pathCerts...)
		sid := encode(cbasn1.SEQUENCE, append(bytes.Clone(leaf.RawIssuer), mustMarshal(t, leaf.SerialNumber)...))
		return pkcs7Entry(replace(t, der, sid, signerInfoPath(siSID)...))
	}
	var entries []tableEntry
	for i := range 5 {
		entries = append(entries, entry(i))
	}
	within, over := good.withTable(t, makeTable(entries[:4]...)), good.withTable(t, makeTable(entries...))
	cache := authenticode.NewCertCache()
	for _, opts := range []authenticode.VerifyOptions{{}, {Cache: cache}, {Cache: cache}} {
		if sigs, err := pe.Verify(within.table, within.pf.CertTable.Off, digestsFor(t, within), opts); err != nil || len(sigs) != 4 {
			t.Fatalf("4 entries: %d signatures, %v", len(sigs), err)
		}
		sigs, err := pe.Verify(over.table, over.pf.CertTable.Off, digestsFor(t, over), opts)
		var se *authenticode.SignatureError
		if sigs != nil || !errors.As(err, &se) || !errors.Is(err, authenticode.ErrTooManyChainChecks) || !errors.Is(err, authenticode.ErrLimit) || se.Index != 4 {
			t.Errorf("5 entries: %d signatures, %v; want a *SignatureError at entry 4 wrapping ErrTooManyChainChecks", len(sigs), err)
		}
	}
	if err := pe.CheckTable(over.table, over.pf.CertTable.Off, cache); err != nil {
		t.Errorf("CheckTable: %v", err)
	}
}

// TestCertCache verifies files concurrently with one cache (and with the zero
// CertCache) and checks the results are those without a cache, that the
// embedded certificates were parsed once (every result shares them), that
// cached chains follow the candidates supplied, and that uncached results do
// not alias the table.
func TestCertCache(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	files := []*signedPE{
		parseSignedPE(t, osslSign(t, peFile(4096), s, "-h", "sha256")),
		parseSignedPE(t, osslSign(t, peFile(5000), s, "-h", "sha1")),
	}
	for _, cache := range []*authenticode.CertCache{authenticode.NewCertCache(), {}} {
		opts := authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}, Cache: cache}
		results := make([][]*signing.Signature, 16)
		errs := make([]error, len(results))
		var wg sync.WaitGroup
		for i := range results {
			f := files[i%len(files)]
			digests := digestsFor(t, f)
			wg.Go(func() { results[i], errs[i] = pe.Verify(f.table, f.pf.CertTable.Off, digests, opts) })
		}
		wg.Wait()
		for i, sigs := range results {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if len(sigs) != 1 || !sigs[0].Verified() {
				t.Fatalf("result %d: %+v", i, sigs)
			}
			wantChain(t, "cached", sigs[0].Chains, s.cert, p.inter, p.root)
			if sigs[0].Certificates[0] != results[0][0].Certificates[0] {
				t.Errorf("result %d: the leaf was parsed again", i)
			}
		}
	}
	// The cached chains depend on the candidates: without the root, the
	// same signer's chain ends at the issuing CA.
	cache := authenticode.NewCertCache()
	for _, withRoot := range []bool{true, false, true} {
		opts := authenticode.VerifyOptions{Cache: cache}
		want := []*signing.Certificate{s.cert, p.inter}
		if withRoot {
			opts.Certificates = []*signing.Certificate{p.root}
			want = append(want, p.root)
		}
		wantChain(t, fmt.Sprintf("cached, root supplied %v", withRoot), verify(t, files[0], opts)[0].Chains, want...)
	}

	// Without a cache, results do not share (or alias) anything.
	a, b := verify(t, files[0], authenticode.VerifyOptions{}), verify(t, files[0], authenticode.VerifyOptions{})
	if a[0].Certificates[0] == b[0].Certificates[0] {
		t.Error("two uncached calls share a certificate")
	}
	table := bytes.Clone(files[0].table)
	sigs, err := pe.Verify(table, 0, digestsFor(t, files[0]), authenticode.VerifyOptions{})
	if err != nil || !sigs[0].Verified() {
		t.Fatal(err, sigs)
	}
	clear(table)
	if !bytes.Equal(sigs[0].Certificates[0].Raw, s.leaf.Cert.Raw) || sigs[0].Signer().CommonName() != "Test Code Signing" {
		t.Error("the result aliases the table")
	}
}

// sharedFile is what the sources of ../shared/testdata/pe say about a file.
type sharedFile struct {
	unsigned bool
	entries  int
	// sigs lists the signatures: path, algorithm, hex digest ("" = not
	// published; it must still match the file).
	sigs []sharedSig
}

type sharedSig struct {
	path   []int
	hash   crypto.Hash
	digest string
	signer string // the signer's CN
}

var sharedFiles = map[string]sharedFile{
	"uthenticode/32-pegoat.exe":              {unsigned: true},
	"uthenticode/32-pegoat-authenticode.exe": {entries: 1, sigs: []sharedSig{{[]int{}, crypto.SHA1, "6663dd7c24fa84fce7f16e0b02689952c06cfa22", "contact@trailofbits.com"}}},
	"uthenticode/32-pegoat-authenticode_duplicated.exe": {entries: 2, sigs: []sharedSig{
		{[]int{}, crypto.SHA1, "6663dd7c24fa84fce7f16e0b02689952c06cfa22", "contact@trailofbits.com"},
		{[]int{}, crypto.SHA1, "6663dd7c24fa84fce7f16e0b02689952c06cfa22", "contact@trailofbits.com"},
	}},
	"uthenticode/32-pegoat-authenticode-nested.exe": {entries: 1, sigs: []sharedSig{
		{[]int{}, crypto.SHA1, "ce134ce4cc3658ae91097e7ef80b081d5ac5ca47", "A SHA-1 cert"},
		{[]int{0}, crypto.SHA256, "", "A SHA-256 cert"},
	}},
	"uthenticode/64-pegoat-authenticode.exe": {entries: 1, sigs: []sharedSig{{[]int{}, crypto.SHA1, "2559e91a60953a5e16f9650f5f88953a2cca5425", "contact@trailofbits.com"}}},
	"uthenticode/64-pegoat-authenticode-nested.exe": {entries: 1, sigs: []sharedSig{
		{[]int{}, crypto.SHA1, "ea2b45435e6bb48eba7f84f416b6dfce87a2831c", "A SHA-1 cert"},
		{[]int{0}, crypto.SHA256, "", "A SHA-256 cert"},
	}},
	"authenticode-rs/tiny32.efi":        {unsigned: true},
	"authenticode-rs/tiny64.efi":        {unsigned: true},
	"authenticode-rs/tiny32.signed.efi": {entries: 1, sigs: []sharedSig{{[]int{}, crypto.SHA256, "4f5b3633fc51d9447beb5c546e9ae6e58d6eb42d1e96d623dc168d97013c08a8", "TestKey"}}},
	"authenticode-rs/tiny64.signed.efi": {entries: 1, sigs: []sharedSig{{[]int{}, crypto.SHA256, "a82d7e4f091c44ec75d97746b3461c8ea9151e2313f8e9a4330432ee5f25b2ae", "TestKey"}}},
}

// TestVerifySharedFiles verifies every real signed file in
// ../shared/testdata/pe against what its source publishes. All signatures
// verify: their signers are self-signed test certificates, which is a
// question of trust (the policy's), not of verification.
func TestVerifySharedFiles(t *testing.T) {
	dir := testenv.Shared(t, "testdata/pe")
	paths, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	seen := 0
	for _, path := range paths {
		if strings.HasSuffix(path, ".pem") || strings.HasSuffix(path, ".md") {
			continue
		}
		rel := filepath.ToSlash(strings.TrimPrefix(path, dir+string(filepath.Separator)))
		want, ok := sharedFiles[rel]
		if !ok {
			t.Errorf("%s: no expectations in sharedFiles; add them", rel)
			continue
		}
		seen++
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			pf, err := binpe.Parse(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if want.unsigned {
				if pf.Signed() {
					t.Error("signed, but its source says it is not")
				}
				return
			}
			f := parseSignedPE(t, data)
			if n := len(f.entries(t)); n != want.entries {
				t.Errorf("%d WIN_CERTIFICATE entries, want %d", n, want.entries)
			}
			sigs := verify(t, f, authenticode.VerifyOptions{})
			if len(sigs) != len(want.sigs) {
				t.Fatalf("%d signatures, want %d", len(sigs), len(want.sigs))
			}
			for i, w := range want.sigs {
				sig := sigs[i]
				if !sig.Verified() {
					t.Errorf("signature %d: %v", i, sig.Problem)
					continue
				}
				if !slices.Equal(sig.Path, w.path) || sig.DigestAlgorithm != w.hash || (w.digest != "" && hex.EncodeToString(sig.Digest) != w.digest) {
					t.Errorf("signature %d: Path %v %v %x, want %v %v %s", i, sig.Path, sig.DigestAlgorithm, sig.Digest, w.path, w.hash, w.digest)
				}
				if cn := sig.Signer().CommonName(); cn != w.signer {
					t.Errorf("signature %d: signer %q, want %q", i, cn, w.signer)
				}
			}
			if strings.HasPrefix(rel, "authenticode-rs/tiny") {
				pemData, err := os.ReadFile(filepath.Join(dir, "authenticode-rs", "test_key_public.pem"))
				if err != nil {
					t.Fatal(err)
				}
				block, _ := pem.Decode(pemData) // a certificate, despite its name
				if block == nil {
					t.Fatal("test_key_public.pem holds no PEM block")
				}
				if got, want := sigs[0].Signer().RawSPKI, mustCert(t, block.Bytes).RawSPKI; !bytes.Equal(got, want) {
					t.Errorf("signer key differs from the one in test_key_public.pem")
				}
			}
		})
	}
	if seen != len(sharedFiles) {
		t.Errorf("found %d of the %d files sharedFiles describes in %s", seen, len(sharedFiles), dir)
	}
}

// debianEFI returns the directory scripts/fetch-debian-efi.sh unpacked
// Debian's signed shim and GRUB into ($CSV_DEBIAN_EFI, default
// /tmp/csv-debian-efi), or skips.
func debianEFI(t *testing.T, rel string) string {
	t.Helper()
	dir := os.Getenv("CSV_DEBIAN_EFI")
	if dir == "" {
		dir = "/tmp/csv-debian-efi"
	}
	path := filepath.Join(dir, rel)
	if _, err := os.Stat(path); err != nil {
		why := fmt.Sprintf("%s is absent: run scripts/fetch-debian-efi.sh %s (or set CSV_DEBIAN_EFI)", path, dir)
		if os.Getenv("CSV_REQUIRE_PEERS") == "1" {
			t.Fatalf("required by CSV_REQUIRE_PEERS=1: %s", why)
		}
		t.Skip(why)
	}
	return path
}

const (
	debianShim = "usr/lib/shim/shimx64.efi.signed"
	debianGrub = "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
)

func readSignedPE(t *testing.T, path string) *signedPE {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseSignedPE(t, data)
}

// TestVerifyDebianShim checks Debian's shim, which Microsoft signed twice
// (two WIN_CERTIFICATE entries: the UEFI CA 2011 and the UEFI CA 2023
// chains, each with an RFC 3161 timestamp), and that the 2011 signature
// chains to Microsoft's UEFI CA 2011 certificate as Secure Boot db holds it.
func TestVerifyDebianShim(t *testing.T) {
	f := readSignedPE(t, debianEFI(t, debianShim))
	uefiCA := mustCert(t, mustRead(t, filepath.Join(testenv.Shared(t, "testdata/eventlogs/go-tpm-tools/secure-boot"), "MicCorUEFCA2011_2011-06-27.crt")))
	sigs := verify(t, f, authenticode.VerifyOptions{Certificates: []*signing.Certificate{uefiCA}})
	if len(f.entries(t)) != 2 || len(sigs) != 2 {
		t.Fatalf("%d entries, %d signatures; want 2 and 2", len(f.entries(t)), len(sigs))
	}
	for i, wantCA := range []string{"Microsoft Corporation UEFI CA 2011", "Microsoft UEFI CA 2023"} {
		sig := sigs[i]
		if !sig.Verified() || sig.Index != i {
			t.Errorf("signature %d (Index %d): %v", i, sig.Index, sig.Problem)
			continue
		}
		if len(sig.Chains) != 1 || len(sig.Chains[0]) != 2 || sig.Chains[0][1].CommonName() != wantCA {
			t.Errorf("signature %d: chain %v, want the signer and %q", i, fingerprints(sig.Chains[0]), wantCA)
		}
		if ts := sig.Timestamp; ts == nil || ts.Kind != "rfc3161" || !ts.Verified() || ts.Time.Before(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("signature %d: timestamp %+v, want a verified RFC 3161 timestamp", i, ts)
		}
	}
	if ca := sigs[0].Chains[0][1]; ca.SHA256 != uefiCA.SHA256 {
		t.Errorf("the 2011 chain ends at %q %x, not at MicCorUEFCA2011_2011-06-27.crt", ca.CommonName(), ca.SHA256)
	}
}

// TestVerifyDebianGrub checks Debian's GRUB, signed by Debian's Secure Boot
// signer, whose CA Go's x509 refuses (an unhandled critical Netscape
// extension): the chain is still built and the CA's signature on the signer
// still checked. The CA is taken from shim, which embeds it as its vendor
// certificate.
func TestVerifyDebianGrub(t *testing.T) {
	f := readSignedPE(t, debianEFI(t, debianGrub))
	shim := mustRead(t, debianEFI(t, debianShim))
	ca := findCertificate(t, shim, "Debian Secure Boot CA")
	sigs := verify(t, f, authenticode.VerifyOptions{Certificates: []*signing.Certificate{ca}})
	if len(sigs) != 1 || !sigs[0].Verified() {
		t.Fatalf("grub: %+v", sigs)
	}
	sig := sigs[0]
	if cn := sig.Signer().CommonName(); !strings.HasPrefix(cn, "Debian Secure Boot Signer") {
		t.Errorf("signer %q", cn)
	}
	wantChain(t, "grub", sig.Chains, sig.Signer(), ca)

	// Go's verifier refuses this chain; BuildChains checks the signatures
	// on the raw certificates instead.
	roots := x509.NewCertPool()
	if ca.Parsed != nil {
		roots.AddCert(ca.Parsed)
	}
	if sig.Signer().Parsed == nil {
		t.Fatal("Go's x509 refuses the grub signer")
	}
	if _, err := sig.Signer().Parsed.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testca.Epoch, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Error("Go's x509 verifies the grub chain: this test no longer covers the lenient path")
	}

	// osslsigncode agrees, with the CA as its CA file.
	caFile := filepath.Join(t.TempDir(), "debian-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, out := osslVerifies(t, f.data, caFile); !ok {
		t.Errorf("osslsigncode refuses grub with the Debian CA:\n%s", out)
	}
	// And a tampered image is refused by both.
	bad := bytes.Clone(f.data)
	bad[f.pf.Sections[0].PointerToRawData+64] ^= 1
	bf := parseSignedPE(t, bad)
	if sigs := verify(t, bf, authenticode.VerifyOptions{}); sigs[0].Verified() || !errors.Is(sigs[0].Problem, authenticode.ErrDigestMismatch) {
		t.Errorf("tampered grub: %+v", sigs[0])
	}
	if ok, _ := osslVerifies(t, bad, caFile); ok {
		t.Error("osslsigncode accepts tampered grub")
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// findCertificate finds the DER certificate with the subject CN cn in data
// (shim embeds its vendor certificate in a section).
func findCertificate(t testing.TB, data []byte, cn string) *signing.Certificate {
	t.Helper()
	for i := bytes.Index(data, []byte(cn)); i >= 0; {
		for start := i; start >= 0 && start > i-4096; start-- {
			if data[start] != 0x30 || data[start+1] != 0x82 {
				continue
			}
			var der cryptobyte.String
			s := cryptobyte.String(data[start:])
			if !s.ReadASN1Element(&der, cbasn1.SEQUENCE) {
				continue
			}
			if c, err := signing.ParseCertificate(der); err == nil && c.CommonName() == cn {
				return c
			}
		}
		next := bytes.Index(data[i+1:], []byte(cn))
		if next < 0 {
			break
		}
		i += 1 + next
	}
	t.Fatalf("no certificate for %q found", cn)
	return nil
}

// TestDigestAlgorithms checks the algorithms found in tables that are not
// (all) signatures.
func TestDigestAlgorithms(t *testing.T) {
	tests := []struct {
		name  string
		table []byte
		want  []crypto.Hash
	}{
		{"empty", nil, nil},
		{"garbage", []byte("not a certificate table at all"), nil},
		{"X509 entry", makeTable(tableEntry{revision: binpe.CertRevision2_0, typ: binpe.CertTypeX509, data: []byte{0x30, 0}}), nil},
		{"unparsable PKCS#7", makeTable(pkcs7Entry([]byte{0x30, 0x03, 1, 2, 3})), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pe.DigestAlgorithms(tt.table); !slices.Equal(got, tt.want) {
				t.Errorf("DigestAlgorithms = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("nested real file", func(t *testing.T) {
		f := readSignedPE(t, filepath.Join(testenv.Shared(t, "testdata/pe"), "uthenticode", "64-pegoat-authenticode-nested.exe"))
		if got, want := pe.DigestAlgorithms(f.table), []crypto.Hash{crypto.SHA1, crypto.SHA256}; !slices.Equal(got, want) {
			t.Errorf("DigestAlgorithms = %v, want %v", got, want)
		}
	})
}

// BenchmarkVerify measures verification of a signed Go-sized PE's table
// (the digest is precomputed, as the pipeline's single pass does): an RSA
// signature with leaf and issuing CA embedded and the root supplied, with
// and without an RFC 3161 timestamp, with and without a certificate cache.
func BenchmarkVerify(b *testing.B) {
	p := newPKI(b)
	s := p.signer(b, testca.LeafOptions{})
	tsa := p.tsa(b)
	in := peFile(8 << 20)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"plain", nil},
		{"rfc3161", []string{"-TSA-certs", tsa.files.Chain, "-TSA-key", tsa.files.Key, "-TSA-time", strconv.FormatInt(testca.Epoch.Unix(), 10)}},
	} {
		f := parseSignedPE(b, osslSign(b, in, s, append([]string{"-h", "sha256"}, c.args...)...))
		digests := digestsFor(b, f)
		for _, cached := range []bool{false, true} {
			opts := authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}}
			name := c.name + "/uncached"
			if cached {
				opts.Cache, name = authenticode.NewCertCache(), c.name+"/cached"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := cpuTime(b)
				for b.Loop() {
					sigs, err := pe.Verify(f.table, f.pf.CertTable.Off, digests, opts)
					if err != nil || !sigs[0].Verified() {
						b.Fatal(err, sigs[0].Problem)
					}
				}
				b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
			})
		}
	}
}

// TestVerifyTimestampAuthorityEKU timestamps signatures with certificates
// that are not TSAs as RFC 3161 wants (the timeStamping EKU alone,
// critical): an RFC 3161 token made by the test TSA and embedded by hand
// (OpenSSL's responder, and so osslsigncode's, refuses such certificates),
// and a legacy countersignature through osslsigncode -t. The timestamp is
// not verified, and says why; the signature itself still is. A proper TSA
// passes both ways.
func TestVerifyTimestampAuthorityEKU(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	good := parseSignedPE(t, osslSign(t, peFile(4096), s, "-h", "sha256"))
	der := good.pkcs7(t)
	sigOctets := at(t, der, signerInfoPath(siSignature)...).contents(der)
	tsas := map[string]*signer{"proper TSA": p.tsa(t)}
	for name, o := range badTSAs {
		tsas[name] = p.signer(t, o)
	}
	for name, tsa := range tsas {
		chain := []*x509.Certificate{tsa.leaf.Cert, p.ca.Intermediate.Cert}
		srv := newRFC3161TSA(t, tsa, chain, testca.Epoch)
		resp, err := srv.respond(timestampRequest(t, sigOctets), tsaOK, 1)
		if err != nil {
			t.Fatal(err)
		}
		token := at(t, resp, 1).bytes(resp)
		files := map[string]*signedPE{
			"rfc3161":      good.withSignature(t, withUnsigned(t, der, attr(t, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 3, 3, 1}, token))),
			"authenticode": parseSignedPE(t, osslSign(t, peFile(4096), s, "-h", "sha256", "-t", legacyTSA(t, tsa, chain, testca.Epoch))),
		}
		for kind, f := range files {
			sigs := verify(t, f, authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}})
			ts := sigs[0].Timestamp
			if !sigs[0].Verified() || ts == nil || ts.Kind != kind {
				t.Fatalf("%s, %s: signature verified %v (%v), timestamp %+v", name, kind, sigs[0].Verified(), sigs[0].Problem, ts)
			}
			if name == "proper TSA" {
				if !ts.Verified() {
					t.Errorf("%s, %s: %v", name, kind, ts.Problem)
				}
				continue
			}
			if ts.Verified() || !errors.Is(ts.Problem, signing.ErrNotTimestamping) || !errors.Is(ts.Problem, authenticode.ErrTimestamp) {
				t.Errorf("%s, %s: timestamp verified %v, problem %v; want ErrNotTimestamping", name, kind, ts.Verified(), ts.Problem)
			}
		}
	}
}

// TestVerifyWhichHostsCount checks what Verify records of where each
// signature sits: Windows counts the first entry and the signatures nested
// one level in it; UEFI firmware counts every entry's own signature and no
// nested one. Debian's shim, where present, is the real two-entry case.
func TestVerifyWhichHostsCount(t *testing.T) {
	p := newPKI(t)
	f := parseSignedPE(t, osslSign(t, peFile(4096), p.signer(t, testca.LeafOptions{}), "-h", "sha256"))
	base := f.pkcs7(t)
	deep := nest(t, base, nest(t, base, base)) // paths [], [0], [0 0]
	sigs := verify(t, f.withTable(t, makeTable(pkcs7Entry(deep), pkcs7Entry(base))), authenticode.VerifyOptions{})
	want := []struct {
		index         int
		path          []int
		windows, uefi string // substrings of why the host ignores it; "" counts
	}{
		{0, []int{}, "", ""},
		{0, []int{0}, "", "never the signatures nested in it"},
		{0, []int{0, 0}, "cannot establish that it reads deeper ones", "never the signatures nested in it"},
		{1, []int{}, "Windows judges only the first WIN_CERTIFICATE entry", ""},
	}
	if len(sigs) != len(want) {
		t.Fatalf("%d signatures, want %d", len(sigs), len(want))
	}
	for i, w := range want {
		s := sigs[i]
		if s.Index != w.index || !slices.Equal(s.Path, w.path) || !s.Verified() {
			t.Fatalf("signature %d: %d %v verified %v", i, s.Index, s.Path, s.Verified())
		}
		for host, sub := range map[signing.Host]string{signing.HostWindows: w.windows, signing.HostUEFI: w.uefi} {
			got := s.IgnoredBy[host]
			if (sub == "") != (got == "") || !strings.Contains(got, sub) {
				t.Errorf("signature %d %v, %s: ignored %q, want %q", w.index, w.path, host, got, sub)
			}
		}
	}

	t.Run("shim", func(t *testing.T) {
		sigs := verify(t, readSignedPE(t, debianEFI(t, debianShim)), authenticode.VerifyOptions{})
		if len(sigs) != 2 || sigs[0].IgnoredBy != nil || sigs[1].IgnoredBy[signing.HostWindows] == "" || sigs[1].IgnoredBy[signing.HostUEFI] != "" {
			t.Errorf("shim: ignored by %v and %v; want the 2023 signature (entry 1) ignored by Windows only", sigs[0].IgnoredBy, sigs[1].IgnoredBy)
		}
	})
}

// TestVerifyNestedUnderAFailedPrimary nests the trusted build signer's
// signature of a file in a primary signature Windows does not accept: one
// over another image (any signature can be lifted from another file), or
// one whose data type csv cannot establish Windows accepts. Windows judges
// the primary signature first, and csv cannot establish that it reads the
// secondary signatures of a primary that fails: the nested one must not
// count for Windows (before, it admitted the file in the user scenario),
// and the reason says so; under a primary that verifies, it counts.
func TestVerifyNestedUnderAFailedPrimary(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	rogue := p.signer(t, testca.LeafOptions{CommonName: "Rogue", SelfSigned: true})
	good := parseSignedPE(t, osslSign(t, peFile(4096), s, "-h", "sha256"))
	build := good.pkcs7(t)
	rogueHere := parseSignedPE(t, osslSign(t, peFile(4096), rogue, "-h", "sha256")).pkcs7(t)
	rogueElsewhere := parseSignedPE(t, osslSign(t, peFile(5000), rogue, "-h", "sha256")).pkcs7(t)
	rogueDataType := withDataType(t, rogueHere, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 21}, rogue.leaf.Key.(*rsa.PrivateKey))

	pol, err := cipolicy.Parse([]byte("format: csv-policy/v1\nname: p\nversion: '1'\nrules:\n  - {id: pca, action: allow, signer: {tbs: "+p.inter.TBSHashHex()+", level: issuer}}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{Now: func() time.Time { return testca.Epoch }}, pol)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		primary []byte
		why     string // why Windows ignores the nested signature; "" counts
	}{
		{"primary over another image", rogueElsewhere, "the signature it is nested in does not verify (image digest mismatch"},
		{"primary of another data type", rogueDataType, "Windows does not count the signature it is nested in, and csv cannot establish that it reads the signatures nested in one it does not count: its SpcIndirectDataContent data type is 1.3.6.1.4.1.311.2.1.21"},
		{"primary that verifies", rogueHere, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sigs := verify(t, good.withSignature(t, nest(t, tc.primary, build)), authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}})
			if len(sigs) != 2 || !sigs[1].Verified() || sigs[1].IgnoredBy[signing.HostUEFI] == "" {
				t.Fatalf("signatures: %+v", sigs)
			}
			if got := sigs[1].IgnoredBy[signing.HostWindows]; (tc.why == "") != (got == "") || !strings.HasPrefix(got, tc.why) {
				t.Errorf("the nested signature: ignored by Windows %q, want %q", got, tc.why)
			}
			d := set.Evaluate(cipolicy.Subject{Path: "app.exe", Format: cipolicy.FormatPE, Scenario: cipolicy.ScenarioUser, Signed: true, Signatures: sigs})
			if d.Allowed() != (tc.why == "") || (tc.why != "" && !strings.Contains(d.Reason, "does not count in scenario user (windows): "+tc.why)) {
				t.Errorf("user scenario: %s: %s", d.Verdict, d.Reason)
			}
		})
	}
}

// withDataType returns der (an osslsigncode RSA SHA-256 signature) with the
// SpcIndirectDataContent's data type replaced by oid and re-signed by key,
// as a signer that writes another data type over the right digest would:
// the messageDigest attribute and the signature are those of the new
// content.
func withDataType(t testing.TB, der []byte, oid asn1.ObjectIdentifier, key *rsa.PrivateKey) []byte {
	t.Helper()
	// SignedData → encapContentInfo → [0] → SpcIndirectDataContent → data → type
	der = replace(t, der, mustMarshal(t, oid), 1, 0, 2, 1, 0, 0, 0)
	content := at(t, der, 1, 0, 2, 1, 0).contents(der)
	md := sha256.Sum256(content)
	attrs := signerInfoPath(siSignedAttrs)
	for i := range children(t, der, at(t, der, attrs...)) {
		if bytes.Equal(at(t, der, append(attrs, i, 0)...).bytes(der), mustMarshal(t, asnMessageDigest)) {
			der = replace(t, der, encode(cbasn1.OCTET_STRING, md[:]), append(attrs, i, 1, 0)...)
		}
	}
	return resign(t, der, algorithm(t, asnRSAEncryption, []byte{5, 0}), func(d []byte) []byte {
		h := sha256.Sum256(d)
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	})
}

// TestVerifyOtherDataType checks a signature whose SpcIndirectDataContent
// data type is 1.3.6.1.4.1.311.2.1.21 (SPC_INDIVIDUAL_SP_KEY_PURPOSE_OBJID,
// a statement type where SPC_PE_IMAGE_DATAOBJ belongs, as a Linux
// distribution's signed EFI application carries) over the right image
// digest: it verifies, as osslsigncode and EDK2's AuthenticodeVerify (the
// firmware's and shim's) accept it, and Windows does not count it, which
// csv cannot establish it accepts. A policy then admits it in the boot
// scenario and blocks it in the user scenario, saying why. The signature
// must still verify in every other respect: over another image, it does
// not.
func TestVerifyOtherDataType(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	good := parseSignedPE(t, osslSign(t, peFile(4096), s, "-h", "sha256"))
	f := good.withSignature(t, withDataType(t, good.pkcs7(t), asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 21}, s.leaf.Key.(*rsa.PrivateKey)))
	sigs := verify(t, f, authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}})
	if len(sigs) != 1 || !sigs[0].Verified() {
		t.Fatalf("signatures: %+v", sigs)
	}
	const why = "its SpcIndirectDataContent data type is 1.3.6.1.4.1.311.2.1.21 (SPC_INDIVIDUAL_SP_KEY_PURPOSE_OBJID), not SPC_PE_IMAGE_DATAOBJ (1.3.6.1.4.1.311.2.1.15): csv cannot establish that Windows accepts it"
	if got := sigs[0].IgnoredBy[signing.HostWindows]; !strings.HasPrefix(got, why) || sigs[0].IgnoredBy[signing.HostUEFI] != "" {
		t.Errorf("ignored by %v, want Windows only: %q", sigs[0].IgnoredBy, why)
	}
	if ok, out := osslVerifies(t, f.data, p.rootPEM); !ok {
		t.Errorf("osslsigncode refuses it:\n%s", out)
	}

	// The policy: boot (firmware) admits it, user (Windows) does not.
	pol, err := cipolicy.Parse([]byte("format: csv-policy/v1\nname: p\nversion: '1'\nrules:\n  - {id: pca, action: allow, signer: {tbs: "+p.inter.TBSHashHex()+", level: issuer}}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{Now: func() time.Time { return testca.Epoch }}, pol)
	if err != nil {
		t.Fatal(err)
	}
	for sc, want := range map[cipolicy.Scenario]bool{cipolicy.ScenarioBoot: true, cipolicy.ScenarioUser: false, cipolicy.ScenarioKernel: false} {
		d := set.Evaluate(cipolicy.Subject{Path: "app.efi", Format: cipolicy.FormatPE, Scenario: sc, Signed: true, Signatures: sigs})
		if d.Allowed() != want || (!want && !strings.Contains(d.Reason, "(windows): "+why)) {
			t.Errorf("scenario %s: %s: %s", sc, d.Verdict, d.Reason)
		}
	}

	// Over another image, the digest does not match: not verified.
	other := parseSignedPE(t, osslSign(t, peFile(5000), s, "-h", "sha256")).withSignature(t, withDataType(t, good.pkcs7(t), asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 21}, s.leaf.Key.(*rsa.PrivateKey)))
	if sigs := verify(t, other, authenticode.VerifyOptions{}); sigs[0].Verified() || !errors.Is(sigs[0].Problem, authenticode.ErrDigestMismatch) {
		t.Errorf("over another image: verified %v (%v)", sigs[0].Verified(), sigs[0].Problem)
	}
	if ok, _ := osslVerifies(t, other.data, p.rootPEM); ok {
		t.Error("osslsigncode accepts it over another image")
	}
}
