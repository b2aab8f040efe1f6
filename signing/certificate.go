// Package signing is everything about signatures: the facts a verified (or
// unverified) signature establishes ([Signature], [Certificate]), certificate
// parsing that copes with real-world certificates, chain building, and key
// loading. The formats live in sub-packages: signing/authenticode (PE),
// signing/modsig (ELF appended signatures).
//
// The package knows nothing of policies: it says which certificates signed
// what, and whether the cryptography holds; package cipolicy decides whether
// that is allowed.
//
// # Security
//
// Certificates come from untrusted files. They are parsed with Go's
// crypto/x509 where it accepts them; where it refuses a real certificate
// (negative serial numbers, duplicate extensions, unhandled critical
// extensions are common in firmware and old CAs) the certificate is still
// identified by its raw bytes and the hash of its TBSCertificate, and its
// signature can still be checked with the issuer's key: the signature check
// is never skipped. Sizes are capped by internal/limits.
package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // SHA1 TBS hashes are what WDAC writes for SHA1-signed certificates.
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Certificate is what csv knows of one X.509 certificate. Parsed is nil when
// Go's crypto/x509 refuses the certificate; every other field is still set
// from the raw DER (except where noted).
type Certificate struct {
	Raw []byte
	// RawTBS is the DER TBSCertificate, RawSubject and RawIssuer the DER
	// names, RawSPKI the SubjectPublicKeyInfo.
	RawTBS, RawSubject, RawIssuer, RawSPKI []byte
	// SignatureAlgorithm is the OID of the algorithm the issuer signed
	// this certificate with (SignatureAlgorithmParams its DER parameters,
	// which RSA-PSS needs); Signature is that signature.
	SignatureAlgorithm       asn1.ObjectIdentifier
	SignatureAlgorithmParams []byte
	Signature                []byte
	// TBSHash is the hash of RawTBS with the digest of the certificate's own
	// signature algorithm (SHA1, SHA256, SHA384 or SHA512): the value WDAC
	// writes as a signer's CertRoot. TBSHashAlgorithm names the digest.
	TBSHash          []byte
	TBSHashAlgorithm crypto.Hash
	// SHA256 is the certificate's fingerprint.
	SHA256 [32]byte
	// SerialNumber may be negative (Go's x509 refuses those).
	SerialNumber *big.Int
	Subject      pkix.Name
	Issuer       pkix.Name
	NotBefore    time.Time
	NotAfter     time.Time
	// SubjectKeyID is the subject key identifier extension, if any.
	SubjectKeyID []byte
	// EKUs are the extended key usage OIDs, dotted; nil if the extension is
	// absent (which means any usage). EKUCritical says the extension is
	// marked critical.
	EKUs        []string
	EKUCritical bool
	// IsCA is the basic constraints CA flag; HasBasicConstraints says the
	// extension is present, and MaxPathLen is its path length constraint
	// (-1: none).
	IsCA                bool
	HasBasicConstraints bool
	MaxPathLen          int
	// KeyUsage is the key usage extension's bits (bit 0 is
	// digitalSignature, bit 5 keyCertSign); HasKeyUsage says it is present.
	KeyUsage    x509.KeyUsage
	HasKeyUsage bool
	// HasExtensions is false for a v1 certificate (or one with no
	// extensions).
	HasExtensions bool
	// PublicKey is the subject's public key (nil if of an unknown type).
	PublicKey crypto.PublicKey
	// Parsed is Go's parse of the certificate, nil if it refused it;
	// ParseError says why.
	Parsed     *x509.Certificate
	ParseError error
}

// Common OIDs.
var (
	OIDCodeSigning     = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 3}
	OIDLifetimeSigning = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 10, 3, 13}
	oidEKU             = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidSKID            = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidBasicCons       = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidKeyUsage        = asn1.ObjectIdentifier{2, 5, 29, 15}
	// OIDAnyEKU is anyExtendedKeyUsage.
	OIDAnyEKU = asn1.ObjectIdentifier{2, 5, 29, 37, 0}
	// OIDTimeStamping is id-kp-timeStamping.
	OIDTimeStamping = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}
)

// maxRSABits caps the RSA keys csv checks signatures with: a larger key
// costs seconds per check (hostile chains would exploit it) and no real CA
// uses one.
const maxRSABits = 8192

func usableKey(pub crypto.PublicKey) bool {
	if k, ok := pub.(*rsa.PublicKey); ok {
		return k.N.BitLen() <= maxRSABits
	}
	return true
}

// CanIssue reports whether the certificate may sign other certificates: a
// CA by its basic constraints (or, leniently, a self-signed certificate with
// no extensions at all, as old v1 roots are), whose key usage, if present,
// allows certificate signing.
func (c *Certificate) CanIssue() bool { return c.IssueProblem() == "" }

// IssueProblem says why the certificate may not sign other certificates,
// for messages ("" when CanIssue).
func (c *Certificate) IssueProblem() string {
	switch {
	case c.HasKeyUsage && c.KeyUsage&x509.KeyUsageCertSign == 0:
		return "its key usage does not allow certificate signing"
	case c.HasBasicConstraints && !c.IsCA:
		return "its basic constraints say it is not a CA"
	case c.HasBasicConstraints:
		return ""
	case c.HasExtensions:
		return "it has no basic constraints extension, which a CA must have"
	case !c.SelfSigned():
		return "it is a v1 certificate (no extensions) that is not self-signed: only a v1 root counts as a CA"
	}
	return ""
}

// ErrCertificate is wrapped by errors about certificates that cannot be read
// even leniently. [ErrUnsupportedAlgorithm] is wrapped too when the
// certificate is well-formed but signed with an algorithm csv does not know
// (MD2, DSA, GOST): it cannot be identified by a TBS hash or checked.
var ErrCertificate = errors.New("signing: malformed certificate")

// ErrUnknownSignatureAlgorithm is [ErrUnsupportedAlgorithm].
//
// Deprecated: test for ErrUnsupportedAlgorithm.
var ErrUnknownSignatureAlgorithm = ErrUnsupportedAlgorithm

// ParseCertificate reads one DER certificate. It fails only if the outer
// structure cannot be read at all; a certificate Go's x509 refuses is
// returned with Parsed nil and ParseError set.
func ParseCertificate(der []byte) (*Certificate, error) {
	c := &Certificate{Raw: der, SHA256: sha256.Sum256(der)}
	in := cryptobyte.String(der)
	var cert cryptobyte.String
	var sigAlg cryptobyte.String
	var sig asn1.BitString
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, fmt.Errorf("%w: not a DER SEQUENCE", ErrCertificate)
	}
	var rawTBS cryptobyte.String
	if !cert.ReadASN1Element(&rawTBS, cbasn1.SEQUENCE) ||
		!cert.ReadASN1(&sigAlg, cbasn1.SEQUENCE) ||
		!readBitString(&cert, &sig) {
		return nil, fmt.Errorf("%w: truncated certificate", ErrCertificate)
	}
	if !cert.Empty() {
		return nil, fmt.Errorf("%w: %d bytes after the signature", ErrCertificate, len(cert))
	}
	c.RawTBS = rawTBS
	c.Signature = sig.RightAlign()
	if !sigAlg.ReadASN1ObjectIdentifier(&c.SignatureAlgorithm) {
		return nil, fmt.Errorf("%w: no signature algorithm", ErrCertificate)
	}
	if !sigAlg.Empty() {
		c.SignatureAlgorithmParams = append([]byte(nil), sigAlg...)
	}
	c.MaxPathLen = -1
	h, ok := tbsHashAlgorithm(c.SignatureAlgorithm)
	if !ok {
		if err := c.parseTBS(rawTBS); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: signature algorithm %v: %w", ErrCertificate, c.SignatureAlgorithm, ErrUnsupportedAlgorithm)
	}
	c.TBSHashAlgorithm = h
	hh := h.New()
	hh.Write(c.RawTBS)
	c.TBSHash = hh.Sum(nil)
	if err := c.parseTBS(rawTBS); err != nil {
		return nil, err
	}
	c.Parsed, c.ParseError = x509.ParseCertificate(der)
	if c.Parsed != nil {
		// Prefer Go's view where it has one.
		c.PublicKey = c.Parsed.PublicKey
		c.Subject, c.Issuer = c.Parsed.Subject, c.Parsed.Issuer
	}
	return c, nil
}

func readBitString(s *cryptobyte.String, out *asn1.BitString) bool {
	var b cryptobyte.String
	if !s.ReadASN1(&b, cbasn1.BIT_STRING) || len(b) == 0 || b[0] > 7 || (len(b) == 1 && b[0] != 0) {
		return false
	}
	padding := int(b[0])
	out.Bytes = b[1:]
	out.BitLength = len(out.Bytes)*8 - padding
	return true
}

// parseTBS reads the fields csv needs from a TBSCertificate, leniently: a
// negative serial number, a duplicate extension or an unknown critical
// extension does not stop it.
func (c *Certificate) parseTBS(rawTBS []byte) error {
	tbs := cryptobyte.String(rawTBS)
	var body cryptobyte.String
	if !tbs.ReadASN1(&body, cbasn1.SEQUENCE) {
		return fmt.Errorf("%w: bad TBSCertificate", ErrCertificate)
	}
	// version [0] EXPLICIT INTEGER DEFAULT v1
	if body.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		var v cryptobyte.String
		if !body.ReadASN1(&v, cbasn1.Tag(0).Constructed().ContextSpecific()) {
			return fmt.Errorf("%w: bad version", ErrCertificate)
		}
	}
	var serial cryptobyte.String
	if !body.ReadASN1(&serial, cbasn1.INTEGER) || len(serial) == 0 {
		return fmt.Errorf("%w: bad serial number", ErrCertificate)
	}
	c.SerialNumber = new(big.Int).SetBytes(serial)
	if serial[0]&0x80 != 0 { // two's complement negative
		c.SerialNumber.Sub(c.SerialNumber, new(big.Int).Lsh(big.NewInt(1), uint(len(serial))*8))
	}
	var alg, issuer, validity, subject, spki cryptobyte.String
	if !body.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!body.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
		!body.ReadASN1(&validity, cbasn1.SEQUENCE) ||
		!body.ReadASN1Element(&subject, cbasn1.SEQUENCE) ||
		!body.ReadASN1Element(&spki, cbasn1.SEQUENCE) {
		return fmt.Errorf("%w: truncated TBSCertificate", ErrCertificate)
	}
	c.RawIssuer, c.RawSubject, c.RawSPKI = issuer, subject, spki
	c.Subject, c.Issuer = parseName(subject), parseName(issuer)
	c.NotBefore, c.NotAfter = readTime(&validity), readTime(&validity)
	if pub, err := x509.ParsePKIXPublicKey(spki); err == nil && usableKey(pub) {
		c.PublicKey = pub
	}
	// issuerUniqueID [1], subjectUniqueID [2]: skip.
	for _, tag := range []cbasn1.Tag{cbasn1.Tag(1).ContextSpecific(), cbasn1.Tag(2).ContextSpecific()} {
		if body.PeekASN1Tag(tag) {
			var skip cryptobyte.String
			body.ReadASN1(&skip, tag)
		}
	}
	extTag := cbasn1.Tag(3).Constructed().ContextSpecific()
	if !body.PeekASN1Tag(extTag) {
		return nil
	}
	var exts, seq cryptobyte.String
	if !body.ReadASN1(&exts, extTag) || !exts.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return nil // extensions unreadable: identified by TBS hash and raw bytes still
	}
	seen := map[string]bool{}
	c.HasExtensions = !seq.Empty()
	for !seq.Empty() {
		var ext, value cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !seq.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&oid) {
			return nil
		}
		var crit bool
		if ext.PeekASN1Tag(cbasn1.BOOLEAN) {
			ext.ReadASN1Boolean(&crit)
		}
		if !ext.ReadASN1(&value, cbasn1.OCTET_STRING) {
			return nil
		}
		key := oid.String()
		if seen[key] {
			continue // a duplicate extension: the first one counts
		}
		seen[key] = true
		switch {
		case oid.Equal(oidEKU):
			var list cryptobyte.String
			c.EKUs, c.EKUCritical = []string{}, crit
			if value.ReadASN1(&list, cbasn1.SEQUENCE) {
				for !list.Empty() {
					var e asn1.ObjectIdentifier
					if !list.ReadASN1ObjectIdentifier(&e) {
						break
					}
					c.EKUs = append(c.EKUs, e.String())
				}
			}
		case oid.Equal(oidSKID):
			var id cryptobyte.String
			if value.ReadASN1(&id, cbasn1.OCTET_STRING) {
				c.SubjectKeyID = id
			}
		case oid.Equal(oidBasicCons):
			var bc cryptobyte.String
			if !value.ReadASN1(&bc, cbasn1.SEQUENCE) {
				break
			}
			c.HasBasicConstraints = true
			if bc.PeekASN1Tag(cbasn1.BOOLEAN) {
				bc.ReadASN1Boolean(&c.IsCA)
			}
			var pl int64
			if bc.PeekASN1Tag(cbasn1.INTEGER) && bc.ReadASN1Int64WithTag(&pl, cbasn1.INTEGER) && pl >= 0 && pl < 1<<20 {
				c.MaxPathLen = int(pl)
			}
		case oid.Equal(oidKeyUsage):
			var bits asn1.BitString
			if readBitString(&value, &bits) {
				c.HasKeyUsage = true
				for i := 0; i < 9; i++ {
					if bits.At(i) != 0 {
						c.KeyUsage |= 1 << uint(i)
					}
				}
			}
		}
	}
	return nil
}

func readTime(s *cryptobyte.String) time.Time {
	var t time.Time
	switch {
	case s.PeekASN1Tag(cbasn1.UTCTime):
		s.ReadASN1UTCTime(&t)
	case s.PeekASN1Tag(cbasn1.GeneralizedTime):
		s.ReadASN1GeneralizedTime(&t)
	}
	return t
}

func parseName(der []byte) pkix.Name {
	var rdn pkix.RDNSequence
	var n pkix.Name
	if rest, err := asn1.Unmarshal(der, &rdn); err == nil && len(rest) == 0 {
		n.FillFromRDNSequence(&rdn)
	}
	return n
}

// tbsHashAlgorithm is the digest WDAC hashes a certificate's TBS with: that
// of the certificate's signature algorithm. RSA-PSS and Ed25519 certificates
// get SHA256; MD5-signed ones SHA1 (their hashes are not written: this only
// identifies them).
func tbsHashAlgorithm(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	a, ok := lookupSignatureAlgorithm(oid)
	switch {
	case !ok || a.keyOnly:
		return 0, false
	case a.hash == crypto.MD5:
		return crypto.SHA1, true
	case a.hash == 0:
		return crypto.SHA256, true
	}
	return a.hash, true
}

var _ = sha1.New // keep the import: crypto.SHA1 must be linked in

// CommonName returns the subject's CN.
func (c *Certificate) CommonName() string { return c.Subject.CommonName }

// TBSHashHex is TBSHash in upper-case hex, as WDAC writes CertRoot values.
func (c *Certificate) TBSHashHex() string { return strings.ToUpper(hex.EncodeToString(c.TBSHash)) }

// HasEKU reports whether the certificate's EKU extension lists oid (false
// when it has no EKU extension).
func (c *Certificate) HasEKU(oid string) bool {
	if c.EKUs == nil {
		return false
	}
	for _, e := range c.EKUs {
		if e == oid {
			return true
		}
	}
	return false
}

// PublicKeyAlgorithm names the key type: RSA, ECDSA, Ed25519 or unknown.
func (c *Certificate) PublicKeyAlgorithm() string {
	switch c.PublicKey.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "ECDSA"
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return "unknown"
}

// SelfSigned reports whether the certificate names itself as issuer and its
// signature verifies with its own key.
func (c *Certificate) SelfSigned() bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignedBy(c) == nil
}

// IssuedBy reports whether parent's subject is c's issuer (by DER bytes).
func (c *Certificate) IssuedBy(parent *Certificate) bool {
	return bytes.Equal(c.RawIssuer, parent.RawSubject)
}

// CheckSignedBy checks c's signature with parent's public key. It works on
// the raw TBS bytes, so it also checks certificates Go's x509 refuses.
func (c *Certificate) CheckSignedBy(parent *Certificate) error {
	if parent.PublicKey == nil {
		return fmt.Errorf("%w: issuer %q has a public key of an unsupported type", ErrSignature, parent.Subject.CommonName)
	}
	return CheckSignature(parent.PublicKey, c.SignatureAlgorithm, c.SignatureAlgorithmParams, c.RawTBS, c.Signature)
}
