package cms

import (
	"bytes"
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/signing"
)

// SerialNumber returns the signer's serial number (nil when the SignerInfo
// names its signer by subject key identifier), negative ones included.
func (si *SignerInfo) SerialNumber() *big.Int {
	if si.Serial == nil {
		return nil
	}
	n := new(big.Int).SetBytes(si.Serial)
	if si.Serial[0]&0x80 != 0 { // two's complement negative
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(si.Serial))*8))
	}
	return n
}

// Matches reports whether c is the certificate the SignerInfo names: by
// subject key identifier, or by issuer (raw DER) and serial number
// (negative serials included, as signing.ParseCertificate reads them).
func (si *SignerInfo) Matches(c *signing.Certificate) bool {
	if si.SubjectKeyID != nil {
		return len(c.SubjectKeyID) > 0 && bytes.Equal(c.SubjectKeyID, si.SubjectKeyID)
	}
	return c.SerialNumber != nil && bytes.Equal(c.RawIssuer, si.Issuer) && c.SerialNumber.Cmp(si.SerialNumber()) == 0
}

// FindSigner returns the first of certs the SignerInfo names, or nil.
func (si *SignerInfo) FindSigner(certs []*signing.Certificate) *signing.Certificate {
	for _, c := range certs {
		if si.Matches(c) {
			return c
		}
	}
	return nil
}

// SignerName describes the signer identifier, for messages: "subject key
// identifier ..." or "issuer "CN=...", serial ...".
func (si *SignerInfo) SignerName() string {
	if si.SubjectKeyID != nil {
		return fmt.Sprintf("subject key identifier %x", si.SubjectKeyID)
	}
	return fmt.Sprintf("issuer %q, serial %s", NameString(si.Issuer), si.SerialNumber().Text(16))
}

// SignerNotFound is the error for a SignerInfo none of n certificates
// matches (wrapping signing.ErrSignerNotFound).
func (si *SignerInfo) SignerNotFound(n int) error {
	return signing.Errorf(signing.ErrSignerNotFound, "cms: signer certificate not found: %s is not among the %d embedded certificates", si.SignerName(), n)
}

// NameString renders a DER Name for messages (hex if it does not parse).
func NameString(der []byte) string {
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &rdn); err == nil && len(rest) == 0 {
		return rdn.String()
	}
	return "0x" + hex.EncodeToString(der)
}

// DigestHash returns the hash of the SignerInfo's digest algorithm, as
// signing.DigestAlgorithm accepts it (MD5 and unknown OIDs are refused).
func (si *SignerInfo) DigestHash() (crypto.Hash, error) {
	return DigestHash(si.DigestAlgorithm.OID)
}

// DigestHash returns the hash a digest algorithm OID names, as
// signing.DigestAlgorithm accepts it.
func DigestHash(oid OID) (crypto.Hash, error) {
	o, ok := oid.decode()
	if !ok {
		return 0, signing.Errorf(signing.ErrUnsupportedAlgorithm, "cms: unsupported algorithm: digest algorithm %s", oid)
	}
	return signing.DigestAlgorithm(o)
}

// Scheme returns what the SignerInfo's signature algorithm means (signing.SignatureAlgorithm, from package signing's one table): the
// key kind and the hash the signature is made through (the digest
// algorithm's for a key-only OID such as rsaEncryption).
func (si *SignerInfo) Scheme() (kind string, h crypto.Hash, err error) {
	oid, ok := si.SignatureAlgorithm.OID.decode()
	if !ok {
		return "", 0, signing.Errorf(signing.ErrUnsupportedAlgorithm, "cms: unsupported algorithm: bad signature algorithm OID")
	}
	digest, _ := si.DigestHash()
	return signing.SignatureAlgorithm(oid, si.pssParams(), digest)
}

func (si *SignerInfo) pssParams() []byte {
	if si.SignatureAlgorithm.OID.Equal(OIDRSAPSS) {
		return si.SignatureAlgorithm.Params
	}
	return nil
}

// SignatureKind names the signature algorithm's key kind as
// signing.Signature.SignatureAlgorithm does: RSA, RSA-PSS, ECDSA, Ed25519,
// or "unknown (OID)".
func (si *SignerInfo) SignatureKind() string {
	oid, ok := si.SignatureAlgorithm.OID.decode()
	if !ok {
		return "unknown"
	}
	kind, _, err := signing.SignatureAlgorithm(oid, nil, crypto.SHA256)
	if kind == "" && err != nil {
		return "unknown (" + oid.String() + ")"
	}
	return kind
}

// SignerDigests returns the hashes the SignerInfo's signature goes through
// besides content (the hash of the content the caller judges): its digest
// algorithm (content into the messageDigest attribute) and the hash its
// signature algorithm names (the signed attributes), each once and where
// it is not content.
func (si *SignerInfo) SignerDigests(content crypto.Hash) []crypto.Hash {
	var out []crypto.Hash
	add := func(h crypto.Hash) {
		if h != 0 && h != content && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	if h, err := si.DigestHash(); err == nil {
		add(h)
	}
	if oid, ok := si.SignatureAlgorithm.OID.decode(); ok {
		add(signing.SignatureHash(oid, si.pssParams()))
	}
	return out
}

// CheckSignedAttributes checks that the SignerInfo has signed attributes,
// each type at most once, that contentType (if wantType is not nil) is
// wantType and that messageDigest is the hash of content with the
// SignerInfo's digest algorithm. Errors wrap signing.ErrSignedAttributes
// (or signing.ErrUnsupportedAlgorithm).
func (si *SignerInfo) CheckSignedAttributes(wantType OID, content []byte) error {
	return si.checkSignedAttributes(wantType, content, nil)
}

// CheckSignedAttributesDigest is CheckSignedAttributes for a content
// digest the caller computed (with the SignerInfo's digest algorithm): its
// messageDigest must be digest.
func (si *SignerInfo) CheckSignedAttributesDigest(wantType OID, digest []byte) error {
	return si.checkSignedAttributes(wantType, nil, digest)
}

func (si *SignerInfo) checkSignedAttributes(wantType OID, content, sum []byte) error {
	if si.SignedAttrsRaw == nil {
		return signing.Errorf(signing.ErrSignedAttributes, "cms: bad signed attributes: none")
	}
	for i, a := range si.SignedAttrs {
		for _, b := range si.SignedAttrs[:i] {
			if a.Type.Equal(b.Type) {
				return signing.Errorf(signing.ErrSignedAttributes, "cms: bad signed attributes: attribute %s appears more than once", a.Type)
			}
		}
	}
	if wantType != nil {
		a, ok := si.SignedAttrs.Find(OIDContentType)
		if !ok {
			return signing.Errorf(signing.ErrSignedAttributes, "cms: bad signed attributes: no contentType attribute")
		}
		v, ok := a.Single()
		if !ok {
			return signing.Errorf(signing.ErrSignedAttributes, "cms: bad signed attributes: contentType attribute does not hold exactly one value")
		}
		if !OID(v).Equal(wantType) {
			return signing.Errorf(signing.ErrSignedAttributes, "cms: bad signed attributes: contentType attribute is %s, want %s", OID(v), wantType)
		}
	}
	h, err := si.DigestHash()
	if err != nil {
		return fmt.Errorf("SignerInfo digest algorithm: %w", err)
	}
	if sum == nil {
		hh := h.New()
		hh.Write(content)
		sum = hh.Sum(nil)
	}
	if _, ok := si.SignedAttrs.Find(OIDMessageDigest); !ok {
		return signing.Errorf(signing.ErrSignedAttributes, "cms: bad signed attributes: no messageDigest attribute")
	}
	md, ok := si.MessageDigest()
	if !ok {
		return signing.Errorf(signing.ErrSignedAttributes, "cms: bad signed attributes: messageDigest attribute is not one OCTET STRING")
	}
	if !bytes.Equal(sum, md) {
		return signing.Errorf(signing.ErrSignedAttributes, "cms: bad signed attributes: messageDigest is %s %x, the signed content hashes to %x", HashName(h), md, sum)
	}
	return nil
}

// MessageDigest returns the value of the messageDigest signed attribute
// when there is exactly one, holding one OCTET STRING.
func (si *SignerInfo) MessageDigest() ([]byte, bool) {
	a, ok := si.SignedAttrs.Find(OIDMessageDigest)
	if !ok {
		return nil, false
	}
	v, ok := a.Single()
	var md []byte
	if ok {
		s := cryptobyte.String(v)
		ok = s.ReadASN1Bytes(&md, cbasn1.OCTET_STRING) && s.Empty()
	}
	return md, ok
}

// SignedAttributesSET returns the DER the signature covers when the
// SignerInfo has signed attributes: the attributes re-tagged as a SET OF
// (RFC 5652 5.4), a copy.
func (si *SignerInfo) SignedAttributesSET() []byte {
	data := bytes.Clone(si.SignedAttrsRaw)
	data[0] = 0x31
	return data
}

// CheckSignature checks the SignerInfo's signature over its signed
// attributes (re-tagged as a SET) with cert's key: RSA PKCS#1 v1.5,
// RSA-PSS, ECDSA or Ed25519, through the hash its signature algorithm
// names (the digest algorithm's for a key-only OID). Errors wrap
// signing.ErrSignature or signing.ErrUnsupportedAlgorithm.
func (si *SignerInfo) CheckSignature(cert *signing.Certificate) error {
	if si.SignedAttrsRaw == nil {
		return signing.Errorf(signing.ErrSignedAttributes, "cms: bad signed attributes: no signed attributes to check a signature over")
	}
	if cert.PublicKey == nil {
		return signing.Errorf(signing.ErrSignature, "cms: signature does not verify: the signer certificate %q has a public key of an unsupported type", cert.CommonName())
	}
	kind, h, err := si.Scheme()
	if err == nil {
		err = signing.CheckDigestSignature(cert.PublicKey, kind, h, si.SignedAttributesSET(), si.Signature)
	}
	if err != nil {
		return fmt.Errorf("signature by %q (%s) over the signed attributes: %w", cert.CommonName(), si.SignatureKind(), err)
	}
	return nil
}

// CheckDigestSignature checks a signature made without signed attributes,
// directly over a content digest the caller computed (kernel module
// signatures are), with cert's key. kind and h are the signature
// algorithm's (Scheme). Errors wrap signing.ErrSignature.
func (si *SignerInfo) CheckDigestSignature(cert *signing.Certificate, kind string, h crypto.Hash, digest []byte) error {
	return signing.CheckPrecomputed(cert.PublicKey, kind, h, digest, si.Signature)
}

// HashName names a hash as messages do: sha256, sha1.
func HashName(h crypto.Hash) string {
	return strings.ToLower(strings.ReplaceAll(h.String(), "-", ""))
}
