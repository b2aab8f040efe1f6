package authenticode

// A thin PKCS#7 layer of our own, not a library: smallstep/pkcs7 defaults to
// SHA-1, needs Go's crypto/x509 to accept every certificate (it refuses some
// real ones) and knows none of Authenticode's quirks (a messageDigest over the
// SpcIndirectDataContent without its SEQUENCE header, nested signatures and
// two kinds of timestamp in unsigned attributes), and sassoftware/relic
// verifies Authenticode but does not walk nested signatures and reads the
// whole file itself, while csv hashes each file once in a streaming pass and
// verifies from the certificate table and precomputed digests. These few
// hundred lines read exactly the DER that Authenticode and RFC 3161 use, with
// golang.org/x/crypto/cryptobyte, never allocating from a length field, and
// leave every cryptographic check to package signing.

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// Caps on what one signature may hold. Real Authenticode signatures carry a
// handful of certificates and attributes; these bound the work and memory a
// hostile table can cost beyond its size, and how much of it no signature
// vouches for (the caps on unsigned attributes are in internal/limits).
const (
	maxCertificates     = 32 // per SignedData (chain building checks signatures among them)
	maxCRLs             = 8  // per SignedData (real signatures carry none)
	maxDigestAlgorithms = 8  // per SignedData's digestAlgorithms SET
	maxSignerInfos      = 16 // per SignedData (Authenticode wants exactly one)
	maxAttributes       = 64 // per signed or unsigned attribute set
	// maxSignatureOctets caps a SignerInfo's signature: an RSA signature
	// with the largest key csv checks (8192 bits) is 1024 bytes.
	maxSignatureOctets = 1024
	// maxPSSParams caps RSASSA-PSS-params (real ones are under 70 bytes).
	maxPSSParams = 256
)

// OIDs, as complete DER elements (tag, length and contents), so that they
// compare with bytes.Equal against what the parser reads without allocating.
var (
	oidSignedData       = mustOID(1, 2, 840, 113549, 1, 7, 2)
	oidContentType      = mustOID(1, 2, 840, 113549, 1, 9, 3)
	oidMessageDigest    = mustOID(1, 2, 840, 113549, 1, 9, 4)
	oidSigningTime      = mustOID(1, 2, 840, 113549, 1, 9, 5)
	oidCounterSignature = mustOID(1, 2, 840, 113549, 1, 9, 6)
	oidTSTInfo          = mustOID(1, 2, 840, 113549, 1, 9, 16, 1, 4)
	oidSpcIndirectData  = mustOID(1, 3, 6, 1, 4, 1, 311, 2, 1, 4)
	oidSpcPEImageData   = mustOID(1, 3, 6, 1, 4, 1, 311, 2, 1, 15)
	oidNestedSignature  = mustOID(1, 3, 6, 1, 4, 1, 311, 2, 4, 1)
	oidRFC3161Timestamp = mustOID(1, 3, 6, 1, 4, 1, 311, 3, 3, 1)
	oidRSAEncryption    = mustOID(1, 2, 840, 113549, 1, 1, 1)
	oidRSAPSS           = mustOID(1, 2, 840, 113549, 1, 1, 10)
	oidECPublicKey      = mustOID(1, 2, 840, 10045, 2, 1)
	oidEd25519          = mustOID(1, 3, 101, 112)
	oidMD5WithRSA       = mustOID(1, 2, 840, 113549, 1, 1, 4)

	// Prefixes of the signature algorithm OIDs by family (contents only).
	oidPrefixPKCS1 = oidContents(mustOID(1, 2, 840, 113549, 1, 1))
	oidPrefixECDSA = oidContents(mustOID(1, 2, 840, 10045, 4))
)

func mustOID(arcs ...int) []byte {
	der, err := asn1.Marshal(asn1.ObjectIdentifier(arcs))
	if err != nil {
		panic(err)
	}
	return der
}

func oidContents(der []byte) []byte { return der[2:] } // every OID here is shorter than 128 bytes

// digestOIDs maps the DER of the digest algorithm OIDs to their hashes, from
// signing's table.
var digestOIDs = func() map[string]crypto.Hash {
	m := map[string]crypto.Hash{}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.MD5} {
		oid, ok := signing.OIDForHash(h)
		if !ok {
			panic("authenticode: no OID for " + h.String())
		}
		der, err := asn1.Marshal(oid)
		if err != nil {
			panic(err)
		}
		m[string(der)] = h
	}
	return m
}()

// hashForOID returns the hash of a digest algorithm OID (a DER element) that
// Authenticode may use: SHA1, SHA256, SHA384 or SHA512.
func hashForOID(oid []byte) (crypto.Hash, error) {
	h, ok := digestOIDs[string(oid)]
	switch {
	case !ok:
		return 0, fmt.Errorf("%w: digest algorithm %s", ErrUnsupportedAlgorithm, oidString(oid))
	case h == crypto.MD5:
		return 0, fmt.Errorf("%w: digest algorithm md5", ErrUnsupportedAlgorithm)
	}
	return h, nil
}

// oidString renders an OID element for messages.
func oidString(der []byte) string {
	var oid asn1.ObjectIdentifier
	s := cryptobyte.String(der)
	if s.ReadASN1ObjectIdentifier(&oid) && s.Empty() {
		return oid.String()
	}
	return "0x" + hex.EncodeToString(der)
}

// decodeOID returns an OID element as an asn1.ObjectIdentifier (for package
// signing).
func decodeOID(der []byte) (asn1.ObjectIdentifier, bool) {
	var oid asn1.ObjectIdentifier
	s := cryptobyte.String(der)
	return oid, s.ReadASN1ObjectIdentifier(&oid) && s.Empty()
}

// errDER wraps every structural parse failure.
func errDER(what string) error { return fmt.Errorf("%w: %s", ErrMalformed, what) }

// algorithmIdentifier is an AlgorithmIdentifier: the OID element and the
// parameters (raw DER, possibly empty or a NULL).
type algorithmIdentifier struct {
	oid    []byte
	params []byte
}

func readAlgorithm(s *cryptobyte.String, alg *algorithmIdentifier) bool {
	var seq, oid cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) {
		return false
	}
	alg.oid, alg.params = oid, seq
	return true
}

// checkParams checks the parameters of an AlgorithmIdentifier that no
// signature covers (the SignedData's digestAlgorithms, a SignerInfo's
// digest and signature algorithms): absent or NULL, an elliptic curve OID
// for id-ecPublicKey, one small SEQUENCE for RSA-PSS. Anything else could
// carry data nobody signed.
func checkParams(alg algorithmIdentifier, what string) error {
	p := cryptobyte.String(alg.params)
	var elem cryptobyte.String
	var tag cbasn1.Tag
	switch {
	case len(p) == 0:
		return nil
	case !p.ReadAnyASN1Element(&elem, &tag) || !p.Empty():
		return errDER(what + " parameters are not one DER element")
	case tag == cbasn1.NULL && len(elem) == 2:
		return nil
	case tag == cbasn1.OBJECT_IDENTIFIER && bytes.Equal(alg.oid, oidECPublicKey):
		return nil
	case tag == cbasn1.SEQUENCE && bytes.Equal(alg.oid, oidRSAPSS) && len(elem) <= maxPSSParams:
		return nil
	}
	return errDER(fmt.Sprintf("%s %s has %d bytes of parameters that are not NULL", what, oidString(alg.oid), len(alg.params)))
}

// parseContentInfo reads ContentInfo ::= SEQUENCE { contentType OID,
// content [0] EXPLICIT ANY } at the start of der, which may hold nothing but
// zeros after it, and returns the content type and the content element.
func parseContentInfo(der []byte) (contentType, content []byte, err error) {
	s := cryptobyte.String(der)
	var ci, ct, explicit, inner cryptobyte.String
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) {
		return nil, nil, errDER("ContentInfo is not a DER SEQUENCE")
	}
	// Signers pad bCertificate to a multiple of 8 bytes and count the
	// padding in dwLength: zeros may follow, nothing else.
	for _, b := range s {
		if b != 0 {
			return nil, nil, errDER(fmt.Sprintf("%d bytes after the ContentInfo are not zero padding", len(s)))
		}
	}
	if !ci.ReadASN1Element(&ct, cbasn1.OBJECT_IDENTIFIER) {
		return nil, nil, errDER("ContentInfo has no content type")
	}
	if !ci.ReadASN1(&explicit, cbasn1.Tag(0).Constructed().ContextSpecific()) || !explicit.ReadAnyASN1Element(&inner, nil) || !explicit.Empty() || !ci.Empty() {
		return nil, nil, errDER("ContentInfo content is not one [0] EXPLICIT element")
	}
	return ct, inner, nil
}

// isSignedStructure reports whether elem, a DER element with the given
// (possibly IMPLICIT) tag, is SEQUENCE { SEQUENCE, AlgorithmIdentifier,
// BIT STRING }, the shape of every signed X.509 structure (certificates,
// attribute certificates, CRLs).
func isSignedStructure(elem cryptobyte.String, tag cbasn1.Tag) bool {
	var body, info, alg cryptobyte.String
	var sig asn1.BitString
	return elem.ReadASN1(&body, tag) && elem.Empty() &&
		body.ReadASN1(&info, cbasn1.SEQUENCE) && body.ReadASN1(&alg, cbasn1.SEQUENCE) &&
		body.ReadASN1BitString(&sig) && body.Empty()
}

// signedData is the part of a PKCS#7 / CMS SignedData that verification uses.
type signedData struct {
	// contentType is the encapsulated content's type (an OID element).
	contentType []byte
	// content is the encapsulated content as a DER element: for PKCS#7
	// Authenticode the SpcIndirectDataContent SEQUENCE itself, for CMS (an
	// RFC 3161 token) the DER inside the OCTET STRING. nil if absent.
	content []byte
	// digested is what the messageDigest attribute covers: the content
	// octets of the [0] EXPLICIT content, that is the value of the OCTET
	// STRING (CMS) or the value of the SEQUENCE without its tag and length
	// (the Authenticode quirk, PKCS#7 "content" of type ANY).
	digested []byte
	// octetString reports that the content was an OCTET STRING (CMS).
	octetString bool
	// certs are the DER certificates of the certificates field (other
	// CertificateChoices are skipped).
	certs   [][]byte
	signers []signerInfo
}

// parseSignedData reads SignedData from the content element of a
// ContentInfo. read are the unsigned attributes the caller reads in its
// SignerInfos (see parseSignerInfo).
func parseSignedData(der []byte, read [][]byte) (*signedData, error) {
	s := cryptobyte.String(der)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, errDER("SignedData is not a DER SEQUENCE")
	}
	var version int64
	var digestAlgs, eci cryptobyte.String
	if !body.ReadASN1Integer(&version) {
		return nil, errDER("SignedData has no version")
	}
	if !body.ReadASN1(&digestAlgs, cbasn1.SET) {
		return nil, errDER("SignedData has no digestAlgorithms SET")
	}
	for n := 0; !digestAlgs.Empty(); n++ {
		var alg algorithmIdentifier
		if n == maxDigestAlgorithms {
			return nil, fmt.Errorf("%w: more than %d digestAlgorithms", ErrLimit, maxDigestAlgorithms)
		}
		if !readAlgorithm(&digestAlgs, &alg) {
			return nil, errDER("bad AlgorithmIdentifier in digestAlgorithms")
		}
		if err := checkParams(alg, "digestAlgorithms"); err != nil {
			return nil, err
		}
	}
	if !body.ReadASN1(&eci, cbasn1.SEQUENCE) {
		return nil, errDER("SignedData has no encapContentInfo")
	}
	sd := &signedData{}
	var ct cryptobyte.String
	if !eci.ReadASN1Element(&ct, cbasn1.OBJECT_IDENTIFIER) {
		return nil, errDER("encapContentInfo has no content type")
	}
	sd.contentType = ct
	if !eci.Empty() {
		var explicit, elem cryptobyte.String
		var tag cbasn1.Tag
		if !eci.ReadASN1(&explicit, cbasn1.Tag(0).Constructed().ContextSpecific()) || !eci.Empty() {
			return nil, errDER("encapContentInfo content is not [0] EXPLICIT")
		}
		if !explicit.ReadAnyASN1Element(&elem, &tag) || !explicit.Empty() {
			return nil, errDER("encapContentInfo content is not one DER element")
		}
		full := []byte(elem)
		var contents cryptobyte.String
		if !elem.ReadAnyASN1(&contents, &tag) {
			return nil, errDER("encapContentInfo content is not DER")
		}
		if tag == cbasn1.OCTET_STRING {
			sd.content, sd.digested, sd.octetString = contents, contents, true
		} else {
			sd.content, sd.digested = full, contents
		}
	}
	certsTag := cbasn1.Tag(0).Constructed().ContextSpecific()
	if body.PeekASN1Tag(certsTag) {
		var certs cryptobyte.String
		if !body.ReadASN1(&certs, certsTag) {
			return nil, errDER("bad certificates field")
		}
		for n := 0; !certs.Empty(); n++ {
			var c cryptobyte.String
			var tag cbasn1.Tag
			if !certs.ReadAnyASN1Element(&c, &tag) {
				return nil, errDER("bad certificate in the certificates field")
			}
			if n == maxCertificates {
				return nil, fmt.Errorf("%w: more than %d certificates", ErrLimit, maxCertificates)
			}
			switch tag {
			case cbasn1.SEQUENCE:
				sd.certs = append(sd.certs, c)
			case cbasn1.Tag(1).Constructed().ContextSpecific(), cbasn1.Tag(2).Constructed().ContextSpecific():
				// An attribute certificate (v1AttrCert, v2AttrCert):
				// Microsoft's time-stamp tokens carry one. Nothing reads
				// it, but it must be one.
				if !isSignedStructure(c, tag) {
					return nil, errDER(fmt.Sprintf("certificate %d of the certificates field is not a well-formed attribute certificate", n))
				}
			default:
				// An extended (PKCS#6) or other certificate: nothing
				// reads it, nobody signed it.
				return nil, errDER(fmt.Sprintf("certificate %d of the certificates field is neither a certificate nor an attribute certificate (tag %#x)", n, uint8(tag)))
			}
		}
	}
	crlsTag := cbasn1.Tag(1).Constructed().ContextSpecific()
	if body.PeekASN1Tag(crlsTag) {
		var crls cryptobyte.String
		if !body.ReadASN1(&crls, crlsTag) {
			return nil, errDER("bad crls field")
		}
		// Nothing checks a CRL here, but what is there must be one: a
		// well-formed CertificateList, few of them.
		for n := 0; !crls.Empty(); n++ {
			var crl cryptobyte.String
			if n == maxCRLs {
				return nil, fmt.Errorf("%w: more than %d CRLs", ErrLimit, maxCRLs)
			}
			if !crls.ReadASN1Element(&crl, cbasn1.SEQUENCE) {
				return nil, errDER(fmt.Sprintf("CRL %d of the crls field is not a DER SEQUENCE", n))
			}
			if _, err := x509.ParseRevocationList(crl); err != nil {
				return nil, errDER(fmt.Sprintf("CRL %d of the crls field is not a CertificateList: %v", n, err))
			}
		}
	}
	var infos cryptobyte.String
	if !body.ReadASN1(&infos, cbasn1.SET) || !body.Empty() {
		return nil, errDER("SignedData has no signerInfos SET at its end")
	}
	for !infos.Empty() {
		if len(sd.signers) == maxSignerInfos {
			return nil, fmt.Errorf("%w: more than %d SignerInfos", ErrLimit, maxSignerInfos)
		}
		var elem cryptobyte.String
		if !infos.ReadASN1Element(&elem, cbasn1.SEQUENCE) {
			return nil, errDER("bad SignerInfo")
		}
		si, err := parseSignerInfo(elem, read)
		if err != nil {
			return nil, err
		}
		sd.signers = append(sd.signers, *si)
	}
	return sd, nil
}

// attribute is one Attribute ::= SEQUENCE { attrType OID, attrValues SET
// OF ANY }: the OID element and the contents of the SET.
type attribute struct {
	oid    []byte
	values cryptobyte.String
}

// each calls f on every value element of the attribute until f returns
// false; it reports whether the SET was well formed.
func (a attribute) each(f func(v []byte) bool) bool {
	vals := a.values
	for !vals.Empty() {
		var v cryptobyte.String
		if !vals.ReadAnyASN1Element(&v, nil) {
			return false
		}
		if !f(v) {
			return true
		}
	}
	return true
}

// single returns the attribute's only value.
func (a attribute) single() ([]byte, bool) {
	vals := a.values
	var v cryptobyte.String
	if !vals.ReadAnyASN1Element(&v, nil) || !vals.Empty() {
		return nil, false
	}
	return v, true
}

func readAttributes(s cryptobyte.String, what string) ([]attribute, error) {
	var out []attribute
	for !s.Empty() {
		if len(out) == maxAttributes {
			return nil, fmt.Errorf("%w: more than %d %s", ErrLimit, maxAttributes, what)
		}
		var seq, oid, vals cryptobyte.String
		if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) ||
			!seq.ReadASN1(&vals, cbasn1.SET) || !seq.Empty() {
			return nil, errDER("bad attribute in the " + what)
		}
		out = append(out, attribute{oid: oid, values: vals})
	}
	return out, nil
}

// knownUnsigned are the unsigned attributes Verify reads (and so checks
// the structure of) in an Authenticode SignerInfo: nested signatures and
// the two kinds of timestamp. In the SignerInfo of a timestamp (an RFC 3161
// token's or a legacy countersignature) it reads none.
var knownUnsigned = [][]byte{oidNestedSignature, oidRFC3161Timestamp, oidCounterSignature}

// checkUnknownAttributes caps the unsigned attributes Verify does not read
// (those whose type is not in read): Windows ignores them, which makes them
// a place to carry data that no signature covers (installers "personalised"
// after signing do that). Their encoded size is at most
// limits.MaxUnknownUnsignedAttributes in all.
func checkUnknownAttributes(attrs []attribute, read [][]byte) error {
	n := 0
	for _, a := range attrs {
		if !slices.ContainsFunc(read, func(k []byte) bool { return bytes.Equal(k, a.oid) }) {
			n += len(a.oid) + len(a.values)
		}
	}
	if n > limits.MaxUnknownUnsignedAttributes {
		return fmt.Errorf("%w: %d bytes of unsigned attributes csv does not read (at most %d: no signature covers them)", ErrLimit, n, limits.MaxUnknownUnsignedAttributes)
	}
	return nil
}

func findAttribute(attrs []attribute, oid []byte) (attribute, bool) {
	for _, a := range attrs {
		if bytes.Equal(a.oid, oid) {
			return a, true
		}
	}
	return attribute{}, false
}

// signerInfo is one SignerInfo.
type signerInfo struct {
	// issuer (a DER Name) and serial (the INTEGER's contents) identify
	// the signer's certificate, or else subjectKeyID does.
	issuer, serial []byte
	subjectKeyID   []byte
	digestAlg      algorithmIdentifier
	// signedAttrsRaw is the signed attributes element as encoded, with its
	// [0] IMPLICIT tag; the signature is over it re-tagged as a SET.
	signedAttrsRaw []byte
	signedAttrs    []attribute
	sigAlg         algorithmIdentifier
	signature      []byte
	unsignedAttrs  []attribute
}

// parseSignerInfo reads a SignerInfo element. read are the unsigned
// attributes the caller reads (knownUnsigned for an Authenticode signature,
// nil for a timestamp's SignerInfo): the others are capped.
func parseSignerInfo(der []byte, read [][]byte) (*signerInfo, error) {
	s := cryptobyte.String(der)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, errDER("SignerInfo is not a DER SEQUENCE")
	}
	si := &signerInfo{}
	var version int64
	if !body.ReadASN1Integer(&version) {
		return nil, errDER("SignerInfo has no version")
	}
	skidTag := cbasn1.Tag(0).ContextSpecific()
	switch {
	case body.PeekASN1Tag(cbasn1.SEQUENCE):
		var ias, issuer, serial cryptobyte.String
		if !body.ReadASN1(&ias, cbasn1.SEQUENCE) || !ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
			!ias.ReadASN1(&serial, cbasn1.INTEGER) || len(serial) == 0 || !ias.Empty() {
			return nil, errDER("bad issuerAndSerialNumber")
		}
		si.issuer, si.serial = issuer, serial
	case body.PeekASN1Tag(skidTag):
		var skid cryptobyte.String
		if !body.ReadASN1(&skid, skidTag) {
			return nil, errDER("bad subjectKeyIdentifier")
		}
		si.subjectKeyID = skid
	default:
		return nil, errDER("SignerInfo has no signer identifier")
	}
	if !readAlgorithm(&body, &si.digestAlg) {
		return nil, errDER("SignerInfo has no digestAlgorithm")
	}
	if err := checkParams(si.digestAlg, "SignerInfo digestAlgorithm"); err != nil {
		return nil, err
	}
	signedTag := cbasn1.Tag(0).Constructed().ContextSpecific()
	if body.PeekASN1Tag(signedTag) {
		var raw, attrs cryptobyte.String
		if !body.ReadASN1Element(&raw, signedTag) {
			return nil, errDER("bad signed attributes")
		}
		si.signedAttrsRaw = raw
		if !raw.ReadASN1(&attrs, signedTag) {
			return nil, errDER("bad signed attributes")
		}
		var err error
		if si.signedAttrs, err = readAttributes(attrs, "signed attributes"); err != nil {
			return nil, err
		}
	}
	var sig cryptobyte.String
	if !readAlgorithm(&body, &si.sigAlg) {
		return nil, errDER("SignerInfo has no signature algorithm")
	}
	if err := checkParams(si.sigAlg, "SignerInfo signatureAlgorithm"); err != nil {
		return nil, err
	}
	if !body.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return nil, errDER("SignerInfo has no signature")
	}
	if len(sig) > maxSignatureOctets {
		return nil, fmt.Errorf("%w: a %d-byte signature (at most %d)", ErrLimit, len(sig), maxSignatureOctets)
	}
	si.signature = sig
	unsignedTag := cbasn1.Tag(1).Constructed().ContextSpecific()
	if body.PeekASN1Tag(unsignedTag) {
		var attrs cryptobyte.String
		if !body.ReadASN1(&attrs, unsignedTag) {
			return nil, errDER("bad unsigned attributes")
		}
		if len(attrs) > limits.MaxUnsignedAttributes {
			return nil, fmt.Errorf("%w: %d bytes of unsigned attributes (at most %d)", ErrLimit, len(attrs), limits.MaxUnsignedAttributes)
		}
		var err error
		if si.unsignedAttrs, err = readAttributes(attrs, "unsigned attributes"); err != nil {
			return nil, err
		}
		if err := checkUnknownAttributes(si.unsignedAttrs, read); err != nil {
			return nil, err
		}
	}
	if !body.Empty() {
		return nil, errDER("trailing data in SignerInfo")
	}
	return si, nil
}

// spcIndirectData is the digest an Authenticode signature signs.
type spcIndirectData struct {
	dataType  []byte // SpcAttributeTypeAndOptionalValue type (an OID element)
	digestAlg algorithmIdentifier
	digest    []byte
}

// parseSpcIndirectData reads SpcIndirectDataContent ::= SEQUENCE { data
// SpcAttributeTypeAndOptionalValue, messageDigest DigestInfo }.
func parseSpcIndirectData(der []byte) (*spcIndirectData, error) {
	s := cryptobyte.String(der)
	var body, data, di, digest, oid cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, errDER("SpcIndirectDataContent is not a DER SEQUENCE")
	}
	if !body.ReadASN1(&data, cbasn1.SEQUENCE) || !data.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) {
		return nil, errDER("SpcIndirectDataContent has no data type")
	}
	idc := &spcIndirectData{dataType: oid}
	if !body.ReadASN1(&di, cbasn1.SEQUENCE) || !body.Empty() {
		return nil, errDER("SpcIndirectDataContent has no DigestInfo")
	}
	if !readAlgorithm(&di, &idc.digestAlg) || !di.ReadASN1(&digest, cbasn1.OCTET_STRING) || !di.Empty() {
		return nil, errDER("bad DigestInfo")
	}
	idc.digest = digest
	return idc, nil
}

// tstInfo is the part of an RFC 3161 TSTInfo that verification uses.
type tstInfo struct {
	imprintAlg algorithmIdentifier
	imprint    []byte
	genTime    []byte // GeneralizedTime contents
}

// parseTSTInfo reads TSTInfo ::= SEQUENCE { version, policy, messageImprint,
// serialNumber, genTime, ... }.
func parseTSTInfo(der []byte) (*tstInfo, error) {
	s := cryptobyte.String(der)
	var body, policy, mi, serial, gen cryptobyte.String
	var version int64
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, errDER("TSTInfo is not a DER SEQUENCE")
	}
	t := &tstInfo{}
	if !body.ReadASN1Integer(&version) || !body.ReadASN1(&policy, cbasn1.OBJECT_IDENTIFIER) ||
		!body.ReadASN1(&mi, cbasn1.SEQUENCE) || !readAlgorithm(&mi, &t.imprintAlg) ||
		!mi.ReadASN1Bytes(&t.imprint, cbasn1.OCTET_STRING) || !mi.Empty() ||
		!body.ReadASN1(&serial, cbasn1.INTEGER) || !body.ReadASN1(&gen, cbasn1.GeneralizedTime) {
		return nil, errDER("bad TSTInfo")
	}
	t.genTime = gen
	return t, nil
}
