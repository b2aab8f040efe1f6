package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

// mint issues a certificate from parent (self-signed when parent is nil).
type mintOpts struct {
	name     string
	isCA     bool
	noBC     bool // no basic constraints
	pathLen  int  // -1: none
	keyUsage x509.KeyUsage
	sigAlg   x509.SignatureAlgorithm
	v1       bool // no extensions at all
}

type minted struct {
	cert *Certificate
	x    *x509.Certificate
	key  crypto.Signer
}

var serial int64

func mint(t *testing.T, o mintOpts, parent *minted) *minted {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var signer crypto.Signer = key
	if o.sigAlg == x509.SHA256WithRSAPSS {
		signer = rsaKey2048(t)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: o.name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		SignatureAlgorithm: o.sigAlg,
	}
	if !o.v1 {
		tmpl.KeyUsage = o.keyUsage
		if !o.noBC {
			tmpl.BasicConstraintsValid = true
			tmpl.IsCA = o.isCA
			if o.pathLen >= 0 {
				tmpl.MaxPathLen = o.pathLen
				tmpl.MaxPathLenZero = o.pathLen == 0
			} else {
				tmpl.MaxPathLen = -1
			}
		}
	}
	issuer, issuerKey := tmpl, signer
	if parent != nil {
		issuer, issuerKey = parent.x, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, signer.Public(), issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	if o.v1 {
		der = stripExtensions(t, der, issuerKey)
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &minted{cert: c, x: x, key: signer}
}

var rsaKey *rsa.PrivateKey

func rsaKey2048(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	if rsaKey == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		rsaKey = k
	}
	return rsaKey
}

// stripExtensions re-creates a self-signed certificate as version 1 with no
// extensions (Go's x509 always writes some; old roots have none).
func stripExtensions(t *testing.T, der []byte, key crypto.Signer) []byte {
	t.Helper()
	x, _ := x509.ParseCertificate(der)
	tbs := struct {
		Serial    *big.Int
		Alg       pkix.AlgorithmIdentifier
		Issuer    asn1RawValue
		Validity  struct{ NotBefore, NotAfter time.Time }
		Subject   asn1RawValue
		PublicKey asn1RawValue
	}{x.SerialNumber, pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA256}, asn1RawValue{FullBytes: x.RawIssuer},
		struct{ NotBefore, NotAfter time.Time }{x.NotBefore.UTC(), x.NotAfter.UTC()}, asn1RawValue{FullBytes: x.RawSubject}, asn1RawValue{FullBytes: x.RawSubjectPublicKeyInfo}}
	tbsDER, err := asn1Marshal(tbs)
	if err != nil {
		t.Fatal(err)
	}
	return signTBS(t, tbsDER, key)
}

// TestBuildChainsNeedsCAs is the impersonation a security review found: an
// ordinary end-entity certificate issued by a trusted CA must not issue a
// certificate of its own ("Contoso Ltd") that chains to that CA.
func TestBuildChainsNeedsCAs(t *testing.T) {
	root := mint(t, mintOpts{name: "Root", isCA: true, pathLen: -1, keyUsage: x509.KeyUsageCertSign}, nil)
	ca := mint(t, mintOpts{name: "Issuing CA", isCA: true, pathLen: 0, keyUsage: x509.KeyUsageCertSign}, root)
	mallory := mint(t, mintOpts{name: "Mallory", pathLen: -1, keyUsage: x509.KeyUsageDigitalSignature}, ca)
	forged := mint(t, mintOpts{name: "Contoso Ltd", pathLen: -1, keyUsage: x509.KeyUsageDigitalSignature}, mallory)
	good := mint(t, mintOpts{name: "Contoso Ltd", pathLen: -1, keyUsage: x509.KeyUsageDigitalSignature}, ca)
	all := []*Certificate{root.cert, ca.cert, mallory.cert}

	if chains := BuildChains(good.cert, all); len(chains) != 1 || len(chains[0]) != 3 {
		t.Fatalf("good leaf: %d chains", len(chains))
	}
	if chains := BuildChains(forged.cert, all); len(chains) != 1 || len(chains[0]) != 1 {
		t.Errorf("a certificate issued by an end-entity certificate chains %d deep", len(chains[0]))
	}
	// CA flag set but key usage without keyCertSign: not an issuer.
	noSign := mint(t, mintOpts{name: "No Sign CA", isCA: true, pathLen: -1, keyUsage: x509.KeyUsageDigitalSignature}, root)
	leaf2 := mint(t, mintOpts{name: "leaf2", pathLen: -1}, noSign)
	if chains := BuildChains(leaf2.cert, []*Certificate{noSign.cert, root.cert}); len(chains[0]) != 1 {
		t.Errorf("a CA without keyCertSign issued a chain of %d", len(chains[0]))
	}
	// Path length 0 on the issuing CA: no CA may sit below it.
	sub := mint(t, mintOpts{name: "Sub CA", isCA: true, pathLen: -1, keyUsage: x509.KeyUsageCertSign}, ca)
	leaf3 := mint(t, mintOpts{name: "leaf3", pathLen: -1}, sub)
	for _, ch := range BuildChains(leaf3.cert, []*Certificate{sub.cert, ca.cert, root.cert}) {
		if len(ch) > 2 {
			t.Errorf("path length 0 ignored: chain of %d", len(ch))
		}
	}
	// A v1 self-signed root (no extensions) still issues.
	v1 := mint(t, mintOpts{name: "Old Root", v1: true}, nil)
	if v1.cert.HasExtensions || !v1.cert.CanIssue() {
		t.Fatalf("v1 root: extensions %v, can issue %v", v1.cert.HasExtensions, v1.cert.CanIssue())
	}
	under := mint(t, mintOpts{name: "under v1", pathLen: -1}, v1)
	if chains := BuildChains(under.cert, []*Certificate{v1.cert}); len(chains[0]) != 2 {
		t.Errorf("v1 root: chain of %d", len(chains[0]))
	}
	// An extension-bearing certificate without basic constraints is not a CA.
	noBC := mint(t, mintOpts{name: "No BC", noBC: true, keyUsage: x509.KeyUsageCertSign}, root)
	if noBC.cert.CanIssue() {
		t.Error("a certificate without basic constraints may issue")
	}
}

func TestRSAPSSCertificates(t *testing.T) {
	root := mint(t, mintOpts{name: "PSS Root", isCA: true, pathLen: -1, keyUsage: x509.KeyUsageCertSign, sigAlg: x509.SHA256WithRSAPSS}, nil)
	if !root.cert.SelfSigned() {
		t.Error("an RSA-PSS self-signed certificate does not verify")
	}
}

func TestMD5Refused(t *testing.T) {
	oidMD5WithRSA := []int{1, 2, 840, 113549, 1, 1, 4}
	err := CheckSignature(&rsaKey2048(t).PublicKey, oidMD5WithRSA, nil, []byte("x"), []byte("sig"))
	if !errors.Is(err, ErrSignature) {
		t.Errorf("MD5: %v", err)
	}
}

func TestHugeRSAKeysAreNotUsed(t *testing.T) {
	k := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 16383), E: 65537}
	if usableKey(k) {
		t.Error("a 16384-bit RSA key is used")
	}
	if !usableKey(&rsaKey2048(t).PublicKey) {
		t.Error("a 2048-bit RSA key is refused")
	}
}

type asn1RawValue = asn1.RawValue

func asn1Marshal(v any) ([]byte, error) { return asn1.Marshal(v) }

var oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}

// signTBS wraps a TBSCertificate into a certificate signed by key (ECDSA).
func signTBS(t *testing.T, tbsDER []byte, key crypto.Signer) []byte {
	t.Helper()
	h := sha256.Sum256(tbsDER)
	sig, err := key.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(struct {
		TBS asn1.RawValue
		Alg pkix.AlgorithmIdentifier
		Sig asn1.BitString
	}{asn1.RawValue{FullBytes: tbsDER}, pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA256}, asn1.BitString{Bytes: sig, BitLength: len(sig) * 8}})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestChainEnd checks what ChainEnd says of where BuildChains stopped.
func TestChainEnd(t *testing.T) {
	root := mint(t, mintOpts{name: "Root", isCA: true, pathLen: -1, keyUsage: x509.KeyUsageCertSign}, nil)
	notCA := mint(t, mintOpts{name: "Not A CA", pathLen: -1, keyUsage: x509.KeyUsageCertSign}, root)
	noCertSign := mint(t, mintOpts{name: "No CertSign", isCA: true, pathLen: -1, keyUsage: x509.KeyUsageDigitalSignature}, root)
	noBC := mint(t, mintOpts{name: "No BC", noBC: true, pathLen: -1}, root)
	pathZero := mint(t, mintOpts{name: "Path Zero", isCA: true, pathLen: 0, keyUsage: x509.KeyUsageCertSign}, root)
	sub := mint(t, mintOpts{name: "Sub CA", isCA: true, pathLen: -1, keyUsage: x509.KeyUsageCertSign}, pathZero)
	tests := []struct {
		name       string
		leaf       *minted
		candidates []*Certificate
		want       string
	}{
		{"complete", mint(t, mintOpts{name: "Leaf", pathLen: -1}, root), []*Certificate{root.cert}, ""},
		{"self-signed", root, nil, ""},
		{"issuer not supplied", mint(t, mintOpts{name: "Leaf", pathLen: -1}, root), nil, `the chain stops at "Leaf": its issuer "CN=Root" is not among the certificates supplied`},
		{"issuer not a CA", mint(t, mintOpts{name: "Leaf", pathLen: -1}, notCA), []*Certificate{notCA.cert, root.cert},
			`the chain stops at "Leaf": its issuer "Not A CA" cannot issue certificates: its basic constraints say it is not a CA`},
		{"issuer without keyCertSign", mint(t, mintOpts{name: "Leaf", pathLen: -1}, noCertSign), []*Certificate{noCertSign.cert},
			`"No CertSign" cannot issue certificates: its key usage does not allow certificate signing`},
		{"issuer without basic constraints", mint(t, mintOpts{name: "Leaf", pathLen: -1}, noBC), []*Certificate{noBC.cert},
			`"No BC" cannot issue certificates: it has no basic constraints extension`},
		{"issuer's key does not verify", mint(t, mintOpts{name: "Leaf", pathLen: -1}, root),
			[]*Certificate{mint(t, mintOpts{name: "Root", isCA: true, pathLen: -1, keyUsage: x509.KeyUsageCertSign}, nil).cert},
			`the chain stops at "Leaf": the key of "Root", named as its issuer, does not verify its signature`},
		{"path length", mint(t, mintOpts{name: "Leaf", pathLen: -1}, sub), []*Certificate{sub.cert, pathZero.cert, root.cert},
			`the chain stops at "Sub CA": its issuer "Path Zero" allows 0 CA certificates below it (path length constraint), the chain has 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chains := BuildChains(tt.leaf.cert, tt.candidates)
			if len(chains) != 1 {
				t.Fatalf("%d chains", len(chains))
			}
			if got := ChainEnd(chains[0], tt.candidates); !strings.Contains(got, tt.want) || (tt.want == "") != (got == "") {
				t.Errorf("ChainEnd = %q, want %q", got, tt.want)
			}
		})
	}
}
