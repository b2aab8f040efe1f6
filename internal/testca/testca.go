// Package testca mints a throw-away PKI for tests: a root CA, an issuing
// (intermediate) CA and code-signing leaf certificates, with RSA or ECDSA
// keys, and writes them as PEM files for peer tools such as osslsigncode and
// openssl. Nothing here is for production use.
package testca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// TB is the part of testing.TB the helpers use, so that test harnesses
// (testscript commands) can use them too.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// KeyType selects a key algorithm.
type KeyType int

// Key types.
const (
	RSA2048 KeyType = iota
	ECDSAP256
	RSA3072
)

// Cert is a certificate with its private key.
type Cert struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// CA is a root and an intermediate CA.
type CA struct {
	Root         *Cert
	Intermediate *Cert
	serial       int64
	mu           sync.Mutex
}

// Epoch is the fixed time tests sign at; certificates are valid from one
// year before it to ten years after.
var Epoch = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

var (
	keyCache   = map[KeyType][]crypto.Signer{}
	keyCacheMu sync.Mutex
)

// key returns the n-th cached key of type kt: RSA key generation is slow, and
// tests need distinct keys, not fresh ones per run.
func key(t TB, kt KeyType, n int) crypto.Signer {
	t.Helper()
	keyCacheMu.Lock()
	defer keyCacheMu.Unlock()
	for len(keyCache[kt]) <= n {
		var k crypto.Signer
		var err error
		switch kt {
		case RSA2048:
			k, err = rsa.GenerateKey(rand.Reader, 2048)
		case RSA3072:
			k, err = rsa.GenerateKey(rand.Reader, 3072)
		case ECDSAP256:
			k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		}
		if err != nil {
			t.Fatalf("testca: generating key: %v", err)
		}
		keyCache[kt] = append(keyCache[kt], k)
	}
	return keyCache[kt][n]
}

var keyIndex = map[KeyType]int{}

func nextKey(t TB, kt KeyType) crypto.Signer {
	t.Helper()
	keyCacheMu.Lock()
	n := keyIndex[kt]
	keyIndex[kt]++
	keyCacheMu.Unlock()
	return key(t, kt, n)
}

// New returns a root CA "Test Root CA" and an intermediate "Test Issuing CA",
// both RSA.
func New(t TB) *CA {
	t.Helper()
	ca := &CA{serial: 1}
	rootKey := nextKey(t, RSA2048)
	root := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"csv tests"}, CommonName: "Test Root CA"},
		NotBefore:             Epoch.AddDate(-1, 0, 0),
		NotAfter:              Epoch.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	ca.Root = ca.sign(t, root, nil, rootKey)
	interKey := nextKey(t, RSA2048)
	inter := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"csv tests"}, CommonName: "Test Issuing CA"},
		NotBefore:             Epoch.AddDate(-1, 0, 0),
		NotAfter:              Epoch.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	ca.Intermediate = ca.sign(t, inter, ca.Root, interKey)
	return ca
}

// LeafOptions describe a leaf certificate. The zero value is an RSA
// code-signing certificate valid around Epoch.
type LeafOptions struct {
	CommonName string // default "Test Code Signing"
	KeyType    KeyType
	// EKUs replaces the default code-signing EKU; UnknownEKUs adds OIDs.
	EKUs        []x509.ExtKeyUsage
	UnknownEKUs []asn1OID
	NotBefore   time.Time
	NotAfter    time.Time
	// SelfSigned makes a certificate outside this CA (a rogue signer).
	SelfSigned bool
	// CommonNames, if set, are the subject's common names, in order, in
	// place of CommonName (a subject with several: "CN=Evil, CN=Build").
	CommonNames []string
	// SubjectKeyID adds a subject key identifier made by RFC 5280's first
	// method (SHA-1 of the public key's bits), as OpenSSL and evmctl make
	// it: Linux's keyrings find IMA keys by it.
	SubjectKeyID bool
}

type asn1OID = []int

// Leaf issues a leaf certificate from the intermediate CA.
func (ca *CA) Leaf(t TB, o LeafOptions) *Cert {
	t.Helper()
	if o.CommonName == "" {
		o.CommonName = "Test Code Signing"
	}
	if o.EKUs == nil {
		o.EKUs = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = Epoch.AddDate(-1, 0, 0)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = Epoch.AddDate(2, 0, 0)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"csv tests"}, CommonName: o.CommonName},
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           o.EKUs,
	}
	for _, oid := range o.UnknownEKUs {
		tmpl.UnknownExtKeyUsage = append(tmpl.UnknownExtKeyUsage, oid)
	}
	for _, cn := range o.CommonNames {
		// ExtraNames replace the CommonName field.
		tmpl.Subject.ExtraNames = append(tmpl.Subject.ExtraNames, pkix.AttributeTypeAndValue{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: cn})
	}
	k := nextKey(t, o.KeyType)
	if o.SubjectKeyID {
		tmpl.SubjectKeyId = SubjectKeyID(t, k.Public())
	}
	if o.SelfSigned {
		return ca.sign(t, tmpl, nil, k)
	}
	return ca.sign(t, tmpl, ca.Intermediate, k)
}

func (ca *CA) sign(t TB, tmpl *x509.Certificate, parent *Cert, k crypto.Signer) *Cert {
	t.Helper()
	ca.mu.Lock()
	ca.serial++
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(ca.serial)
	}
	ca.mu.Unlock()
	p, pk := tmpl, k
	if parent != nil {
		p, pk = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p, k.Public(), pk)
	if err != nil {
		t.Fatalf("testca: creating certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testca: parsing certificate: %v", err)
	}
	return &Cert{Cert: c, Key: k}
}

// SANURI is the URI subject alternative name of [CA.SANLeaf]'s
// certificates.
const SANURI = "https://github.com/codesignval/csv/.ci/build-signing"

// SANLeaf issues, from ca's intermediate, a code signing certificate "Build
// Signing With SAN" for key (a new ECDSA P-256 key if nil) with the URI
// subject alternative name SANURI, which sigstore-go and cosign need, valid
// from an hour before the real current time (which they verify at) to a
// year after it.
func (ca *CA) SANLeaf(t TB, key crypto.Signer) *Cert {
	t.Helper()
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatalf("testca: generating key: %v", err)
		}
		key = k
	}
	u, err := url.Parse(SANURI)
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"csv tests"}, CommonName: "Build Signing With SAN"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
	}
	return ca.sign(t, tmpl, ca.Intermediate, key)
}

// PEM encodes certificates as PEM.
func PEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// KeyPEM encodes a private key as PKCS#8 PEM.
func KeyPEM(t TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatalf("testca: marshalling key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Files are PEM files of a leaf for peer tools.
type Files struct {
	Key   string // the leaf's private key
	Chain string // the leaf and the intermediate CA
	Root  string // the root CA (a CA file for verifiers)
}

// WriteFiles writes the leaf's key, its chain and the root to dir.
func (ca *CA) WriteFiles(t TB, dir string, leaf *Cert) Files {
	t.Helper()
	f := Files{Key: filepath.Join(dir, "leaf.key"), Chain: filepath.Join(dir, "chain.pem"), Root: filepath.Join(dir, "root.pem")}
	chain := []*x509.Certificate{leaf.Cert}
	if leaf.Cert.Issuer.String() == ca.Intermediate.Cert.Subject.String() {
		chain = append(chain, ca.Intermediate.Cert)
	}
	for path, data := range map[string][]byte{f.Key: KeyPEM(t, leaf.Key), f.Chain: PEM(chain...), f.Root: PEM(ca.Root.Cert)} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatalf("testca: %v", err)
		}
	}
	return f
}

// SubjectKeyID returns RFC 5280's first-method key identifier of pub: the
// SHA-1 of its subjectPublicKey BIT STRING's bits.
func SubjectKeyID(t TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("testca: marshalling public key: %v", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		t.Fatalf("testca: parsing public key: %v", err)
	}
	sum := sha1.Sum(spki.PublicKey.Bytes) //nolint:gosec // RFC 5280's key identifier is SHA-1
	return sum[:]
}
