// Package cms reads, checks and writes the CMS (RFC 5652) and PKCS#7
// SignedData structures that every signature format csv knows is built
// on: Authenticode signatures and the signatures nested in them, kernel
// module signatures, RFC 3161 time-stamp tokens and legacy Authenticode
// countersignatures. It is a thin layer over
// golang.org/x/crypto/cryptobyte, not a PKCS#7 library: smallstep/pkcs7
// defaults to SHA-1, needs Go's crypto/x509 to accept every certificate (it
// refuses some real ones) and knows none of Authenticode's quirks (a
// messageDigest over the SpcIndirectDataContent without its SEQUENCE
// header, nested signatures, two kinds of timestamp in unsigned
// attributes), and sassoftware/relic verifies Authenticode but does not walk
// nested signatures and reads the whole file itself, while csv hashes each
// file once in a streaming pass and verifies from the signature and
// precomputed digests.
//
// [Parse] reads a ContentInfo holding a SignedData (and [ParseSignerInfo] a
// lone SignerInfo, as a countersignature is); [SignerInfo] methods match
// the signer's certificate by issuer and serial number or subject key
// identifier ([SignerInfo.FindSigner]), check the signed attributes
// ([SignerInfo.CheckSignedAttributes]) and the signature
// ([SignerInfo.CheckSignature]), with package signing's one algorithm
// table. [MarshalSignedData] and [MarshalSignerInfo] write them.
//
// # Security
//
// Everything Parse reads is untrusted. DER is read strictly (cryptobyte
// refuses indefinite and non-minimal lengths), never allocating from a
// length field; every element is bounded by its parent, and the counts of
// what a SignedData holds are capped (32 certificates, 8 CRLs, 8 digest
// algorithms, 16 SignerInfos, 64 attributes in a set, 64 values in a
// signed attribute), as are the unsigned attributes no signature covers
// (limits.MaxUnsignedAttributes in all, and limits.MaxUnknownUnsignedAttributes
// of those the caller does not read). What nothing reads must still be
// what it claims: certificates are certificates (or, where the caller
// allows them, attribute certificates of the right shape), CRLs are
// CertificateLists, algorithm identifiers that no signature covers name a
// valid OID of at most 32 bytes with NULL parameters (or an elliptic
// curve, or RSA-PSS parameters, where the algorithm has them). Errors are *signing.MalformedError values naming the file
// offset of the element at fault (ParseOptions.Offset is where the input
// starts), wrapping signing.ErrLimit where a cap is exceeded. Parse
// decides nothing about trust: it checks no signature (the SignerInfo
// methods do, with certificates the caller supplies), and the caller
// checks what its format requires of the content.
package cms

import (
	"encoding/asn1"
	"encoding/hex"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// OID is an object identifier as a complete DER element (tag, length and
// contents), so that OIDs read from a signature compare with [OID.Equal]
// without allocating.
type OID []byte

// NewOID encodes arcs as an OID element. It panics on an invalid OID: use
// it for constants.
func NewOID(arcs ...int) OID {
	der, err := asn1.Marshal(asn1.ObjectIdentifier(arcs))
	if err != nil {
		panic(err)
	}
	return der
}

// Equal reports whether o and p are the same OID.
func (o OID) Equal(p OID) bool { return string(o) == string(p) }

// ObjectIdentifier decodes o.
func (o OID) ObjectIdentifier() (asn1.ObjectIdentifier, bool) {
	var oid asn1.ObjectIdentifier
	s := cryptobyte.String(o)
	return oid, s.ReadASN1ObjectIdentifier(&oid) && s.Empty()
}

// knownOIDs holds the decoded form of the algorithm OIDs that signatures
// name, so that looking one up in package signing's table (which takes an
// asn1.ObjectIdentifier) does not decode, and allocate, every time. It
// widens nothing: an OID missing here is decoded as before, and the table
// decides what is accepted. The slices are shared: read them only.
var knownOIDs = func() map[string]asn1.ObjectIdentifier {
	m := map[string]asn1.ObjectIdentifier{}
	for _, arcs := range [][]int{
		{1, 3, 14, 3, 2, 26},             // sha1
		{2, 16, 840, 1, 101, 3, 4, 2, 1}, // sha256
		{2, 16, 840, 1, 101, 3, 4, 2, 2}, // sha384
		{2, 16, 840, 1, 101, 3, 4, 2, 3}, // sha512
		{1, 2, 840, 113549, 1, 1, 1},     // rsaEncryption
		{1, 2, 840, 113549, 1, 1, 5},     // sha1WithRSAEncryption
		{1, 2, 840, 113549, 1, 1, 10},    // RSASSA-PSS
		{1, 2, 840, 113549, 1, 1, 11},    // sha256WithRSAEncryption
		{1, 2, 840, 113549, 1, 1, 12},    // sha384WithRSAEncryption
		{1, 2, 840, 113549, 1, 1, 13},    // sha512WithRSAEncryption
		{1, 2, 840, 10045, 2, 1},         // id-ecPublicKey
		{1, 2, 840, 10045, 4, 3, 2},      // ecdsa-with-SHA256
		{1, 2, 840, 10045, 4, 3, 3},      // ecdsa-with-SHA384
		{1, 2, 840, 10045, 4, 3, 4},      // ecdsa-with-SHA512
	} {
		m[string(NewOID(arcs...))] = arcs
	}
	return m
}()

// decode is ObjectIdentifier, without allocating for the OIDs of
// knownOIDs; the result must not be modified.
func (o OID) decode() (asn1.ObjectIdentifier, bool) {
	if oid, ok := knownOIDs[string(o)]; ok {
		return oid, true
	}
	return o.ObjectIdentifier()
}

// valid reports whether o is a DER OBJECT IDENTIFIER element: contents of
// whole base-128 arcs, each minimally encoded. It does not allocate.
func (o OID) valid() bool {
	s := cryptobyte.String(o)
	var c cryptobyte.String
	if !s.ReadASN1(&c, cbasn1.OBJECT_IDENTIFIER) || !s.Empty() || len(c) == 0 || c[len(c)-1]&0x80 != 0 {
		return false
	}
	start := true
	for _, b := range c {
		if start && b == 0x80 {
			return false
		}
		start = b&0x80 == 0
	}
	return true
}

// String renders o dotted, or in hex if it is not a valid OID element.
func (o OID) String() string {
	if oid, ok := o.ObjectIdentifier(); ok {
		return oid.String()
	}
	return "0x" + hex.EncodeToString(o)
}

// Content types, attributes and algorithms of RFC 5652, RFC 2985 and RFC
// 3161 that CMS-based formats use.
var (
	OIDData             = NewOID(1, 2, 840, 113549, 1, 7, 1)
	OIDSignedData       = NewOID(1, 2, 840, 113549, 1, 7, 2)
	OIDContentType      = NewOID(1, 2, 840, 113549, 1, 9, 3)
	OIDMessageDigest    = NewOID(1, 2, 840, 113549, 1, 9, 4)
	OIDSigningTime      = NewOID(1, 2, 840, 113549, 1, 9, 5)
	OIDCounterSignature = NewOID(1, 2, 840, 113549, 1, 9, 6)
	OIDTSTInfo          = NewOID(1, 2, 840, 113549, 1, 9, 16, 1, 4)
	OIDRSAEncryption    = NewOID(1, 2, 840, 113549, 1, 1, 1)
	OIDRSAPSS           = NewOID(1, 2, 840, 113549, 1, 1, 10)
	OIDECPublicKey      = NewOID(1, 2, 840, 10045, 2, 1)
)

// AlgorithmIdentifier is an AlgorithmIdentifier as read: the OID element
// and the parameters (raw DER, empty when absent). Raw is the whole
// element, when parsed.
type AlgorithmIdentifier struct {
	OID    OID
	Params []byte
	Raw    []byte
}

// Attribute is one Attribute ::= SEQUENCE { attrType OID, attrValues SET
// OF ANY }: its type and the contents of the SET (checked to be a sequence
// of DER elements). Raw is the whole element.
type Attribute struct {
	Type   OID
	Values []byte
	Raw    []byte
}

// Each calls f on every value element of the attribute until f returns
// false.
func (a Attribute) Each(f func(v []byte) bool) {
	vals := cryptobyte.String(a.Values)
	for !vals.Empty() {
		var v cryptobyte.String
		if !vals.ReadAnyASN1Element(&v, nil) || !f(v) {
			return
		}
	}
}

// Single returns the attribute's value if it has exactly one.
func (a Attribute) Single() ([]byte, bool) {
	vals := cryptobyte.String(a.Values)
	var v cryptobyte.String
	if !vals.ReadAnyASN1Element(&v, nil) || !vals.Empty() {
		return nil, false
	}
	return v, true
}

// Attributes is a set of attributes, in the order they were encoded.
type Attributes []Attribute

// Find returns the first attribute of type t.
func (as Attributes) Find(t OID) (Attribute, bool) {
	for _, a := range as {
		if a.Type.Equal(t) {
			return a, true
		}
	}
	return Attribute{}, false
}

// SignedData is the part of a SignedData that verifiers use. Every slice
// aliases the input of [Parse].
type SignedData struct {
	// Version is the SignedData's version, as encoded.
	Version int64
	// DigestAlgorithms are the digestAlgorithms SET's entries.
	DigestAlgorithms []AlgorithmIdentifier
	// ContentType is the encapsulated content's type.
	ContentType OID
	// Content is the encapsulated content, nil when it is absent
	// (detached): for PKCS#7 content of another type (Authenticode's
	// SpcIndirectDataContent) the DER element itself, for CMS content in
	// an OCTET STRING (a TSTInfo, id-data) the octets, which OctetString
	// then reports. Digested is what a messageDigest attribute covers:
	// the OCTET STRING's value, or the element's contents without its tag
	// and length (PKCS#7 "content [0] EXPLICIT ANY", the Authenticode
	// quirk).
	Content     []byte
	Digested    []byte
	OctetString bool
	// EncapContentInfo is the encapContentInfo element.
	EncapContentInfo []byte
	// Certificates are the DER X.509 certificates of the certificates
	// field, in order; attribute certificates (where allowed) are checked
	// and left out.
	Certificates [][]byte
	// SignerInfos are the SignerInfos, in order.
	SignerInfos []SignerInfo

	der  []byte
	base int64
}

// OffsetOf returns the file offset of b, which must alias what Parse read
// (any slice of the SignedData or of its SignerInfos).
func (sd *SignedData) OffsetOf(b []byte) int64 { return offsetOf(sd.der, sd.base, b) }

// SignerInfo is one SignerInfo. Every slice aliases the input of
// [Parse] or [ParseSignerInfo].
type SignerInfo struct {
	Version int64
	// Issuer (a DER Name) and Serial (the INTEGER's contents) identify the
	// signer's certificate, or else SubjectKeyID does.
	Issuer, Serial []byte
	SubjectKeyID   []byte
	// DigestAlgorithm digests the content (into the messageDigest
	// attribute, or directly under the signature when there are no signed
	// attributes).
	DigestAlgorithm AlgorithmIdentifier
	// SignedAttrsRaw is the signed attributes element as encoded, with its
	// [0] IMPLICIT tag (nil when absent); the signature is over it
	// re-tagged as a SET.
	SignedAttrsRaw []byte
	SignedAttrs    Attributes
	// SignatureAlgorithm names the signature's algorithm: a signature
	// algorithm, or a key type (rsaEncryption, id-ecPublicKey) with the
	// digest algorithm as its hash.
	SignatureAlgorithm AlgorithmIdentifier
	Signature          []byte
	UnsignedAttrs      Attributes
	// Raw is the whole SignerInfo element.
	Raw []byte

	der  []byte
	base int64
}

// OffsetOf returns the file offset of b, which must alias what was read.
func (si *SignerInfo) OffsetOf(b []byte) int64 { return offsetOf(si.der, si.base, b) }

// offsetOf returns the offset of b within der (whose first byte is at
// base): slices cryptobyte reads share der's backing array and keep the
// capacity to its end, so the difference of capacities is the index.
func offsetOf(der []byte, base int64, b []byte) int64 {
	return base + int64(cap(der)-cap(b))
}
