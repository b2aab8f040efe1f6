package cms

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/signing"
)

// Caps on what one SignedData may hold. Real signatures carry a handful of
// certificates and attributes; these bound the work and memory a hostile
// signature can cost beyond its size, and how much of it nothing vouches
// for (the caps on unsigned attributes are in internal/limits).
const (
	// MaxCertificates caps the certificates field (chain building checks
	// signatures among them).
	MaxCertificates = 32
	// MaxCRLs caps the crls field (real signatures carry none).
	MaxCRLs = 8
	// MaxDigestAlgorithms caps the digestAlgorithms SET.
	MaxDigestAlgorithms = 8
	// MaxSignerInfos caps the signerInfos SET (Authenticode, module
	// signatures and time-stamp tokens want exactly one).
	MaxSignerInfos = 16
	// MaxAttributes caps a signed or unsigned attribute set, and the
	// values of one signed attribute.
	MaxAttributes = 64
	// MaxPSSParams caps RSASSA-PSS-params (real ones are under 70 bytes)
	// and MaxCurveParams an elliptic curve OID (real ones are under 12).
	MaxPSSParams   = 256
	MaxCurveParams = 32
	// MaxAlgorithmOID caps the OID element of an AlgorithmIdentifier that
	// no signature covers (real ones are under 16 bytes): a long OID, even
	// a valid one, is data nobody signed.
	MaxAlgorithmOID = 32
)

// Format is what [signing.MalformedError] names for CMS structures.
const Format = "PKCS#7"

// ParseOptions say what a format allows beyond the common rules, and where
// the input is (for errors).
type ParseOptions struct {
	// Offset is the file offset of the input's first byte.
	Offset int64
	// ZeroPadding allows zero bytes after the ContentInfo (a PE
	// certificate table pads each signature to 8 bytes); anything else
	// after it is refused.
	ZeroPadding bool
	// AttributeCertificates allows attribute certificates (v1AttrCert,
	// v2AttrCert) in the certificates field: Microsoft's time-stamp tokens
	// carry one. Nothing reads them; they must be well-formed signed
	// structures.
	AttributeCertificates bool
	// MaxSignature caps a SignerInfo's signature octets (0: no cap but the
	// input's size).
	MaxSignature int
	// ReadUnsigned are the unsigned attribute types the caller reads in
	// the SignerInfos (and so checks): the others, which nothing reads and
	// no signature covers, are limited to limits.MaxUnknownUnsignedAttributes
	// bytes in all (each counted as its type's element and its values'
	// encoding).
	ReadUnsigned []OID
}

// parser reads one input, naming file offsets in its errors.
type parser struct {
	der  []byte
	opts *ParseOptions
}

func (p *parser) off(at []byte) int64 { return offsetOf(p.der, p.opts.Offset, at) }

func (p *parser) errf(at []byte, format string, args ...any) error {
	return &signing.MalformedError{Format: Format, Offset: p.off(at), Reason: fmt.Sprintf(format, args...)}
}

func (p *parser) limitf(at []byte, format string, args ...any) error {
	return &signing.MalformedError{Format: Format, Offset: p.off(at), Reason: fmt.Sprintf(format, args...), Err: signing.ErrLimit}
}

// Parse reads a ContentInfo holding a SignedData (RFC 5652 5.1): the
// content type, the SignedData's digest algorithms, encapsulated content,
// certificates, CRLs and SignerInfos, checking the structure and caps
// described in the package documentation and nothing of the cryptography.
// It returns a *signing.MalformedError (wrapping signing.ErrLimit for a cap)
// for anything else.
func Parse(der []byte, opts ParseOptions) (sd *SignedData, err error) {
	defer recoverParse(&err)
	p := &parser{der: der, opts: &opts}
	s := cryptobyte.String(der)
	var ci, ct, explicit, inner cryptobyte.String
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) {
		return nil, p.errf(der, "ContentInfo is not a DER SEQUENCE")
	}
	if len(s) > 0 {
		if !opts.ZeroPadding {
			return nil, p.errf(s, "%d bytes follow the ContentInfo", len(s))
		}
		// Signers pad bCertificate to a multiple of 8 bytes and count the
		// padding in dwLength: zeros may follow, nothing else.
		for _, b := range s {
			if b != 0 {
				return nil, p.errf(s, "%d bytes after the ContentInfo are not zero padding", len(s))
			}
		}
	}
	at := ci
	if !ci.ReadASN1Element(&ct, cbasn1.OBJECT_IDENTIFIER) {
		return nil, p.errf(at, "ContentInfo has no content type")
	}
	if !OID(ct).Equal(OIDSignedData) {
		return nil, p.errf(at, "ContentInfo type is %s, want signedData (1.2.840.113549.1.7.2)", OID(ct))
	}
	at = ci
	if !ci.ReadASN1(&explicit, cbasn1.Tag(0).Constructed().ContextSpecific()) || !explicit.ReadAnyASN1Element(&inner, nil) || !explicit.Empty() || !ci.Empty() {
		return nil, p.errf(at, "ContentInfo content is not one [0] EXPLICIT element")
	}
	return p.signedData(inner)
}

func (p *parser) signedData(der cryptobyte.String) (*SignedData, error) {
	at := der
	var body cryptobyte.String
	if !der.ReadASN1(&body, cbasn1.SEQUENCE) || !der.Empty() {
		return nil, p.errf(at, "SignedData is not a DER SEQUENCE")
	}
	sd := &SignedData{der: p.der, base: p.opts.Offset}
	var digestAlgs, eci cryptobyte.String
	at = body
	if !body.ReadASN1Integer(&sd.Version) {
		return nil, p.errf(at, "SignedData has no version")
	}
	at = body
	if !body.ReadASN1(&digestAlgs, cbasn1.SET) {
		return nil, p.errf(at, "SignedData has no digestAlgorithms SET")
	}
	for n := 0; !digestAlgs.Empty(); n++ {
		at := digestAlgs
		if n == MaxDigestAlgorithms {
			return nil, p.limitf(at, "more than %d digestAlgorithms", MaxDigestAlgorithms)
		}
		var alg AlgorithmIdentifier
		if !readAlgorithm(&digestAlgs, &alg) {
			return nil, p.errf(at, "bad AlgorithmIdentifier in digestAlgorithms")
		}
		if err := p.checkParams(alg, "digestAlgorithms", false); err != nil {
			return nil, err
		}
		sd.DigestAlgorithms = append(sd.DigestAlgorithms, alg)
	}
	at = body
	if !body.ReadASN1Element(&eci, cbasn1.SEQUENCE) {
		return nil, p.errf(at, "SignedData has no encapContentInfo")
	}
	sd.EncapContentInfo = eci
	eci.ReadASN1(&eci, cbasn1.SEQUENCE) // cannot fail: just read as an element
	var ct cryptobyte.String
	at = eci
	if !eci.ReadASN1Element(&ct, cbasn1.OBJECT_IDENTIFIER) {
		return nil, p.errf(at, "encapContentInfo has no content type")
	}
	sd.ContentType = OID(ct)
	if !eci.Empty() {
		var explicit, elem cryptobyte.String
		var tag cbasn1.Tag
		at = eci
		if !eci.ReadASN1(&explicit, cbasn1.Tag(0).Constructed().ContextSpecific()) || !eci.Empty() {
			return nil, p.errf(at, "encapContentInfo content is not [0] EXPLICIT")
		}
		at = explicit
		if !explicit.ReadAnyASN1Element(&elem, &tag) || !explicit.Empty() {
			return nil, p.errf(at, "encapContentInfo content is not one DER element")
		}
		full := []byte(elem)
		var contents cryptobyte.String
		if !elem.ReadAnyASN1(&contents, &tag) {
			return nil, p.errf(full, "encapContentInfo content is not DER")
		}
		if tag == cbasn1.OCTET_STRING {
			sd.Content, sd.Digested, sd.OctetString = contents, contents, true
		} else {
			sd.Content, sd.Digested = full, contents
		}
	}
	certsTag := cbasn1.Tag(0).Constructed().ContextSpecific()
	if body.PeekASN1Tag(certsTag) {
		var certs cryptobyte.String
		at = body
		if !body.ReadASN1(&certs, certsTag) {
			return nil, p.errf(at, "bad certificates field")
		}
		for n := 0; !certs.Empty(); n++ {
			at := certs
			var c cryptobyte.String
			var tag cbasn1.Tag
			if !certs.ReadAnyASN1Element(&c, &tag) {
				return nil, p.errf(at, "bad certificate in the certificates field")
			}
			if n == MaxCertificates {
				return nil, p.limitf(at, "more than %d certificates", MaxCertificates)
			}
			switch {
			case tag == cbasn1.SEQUENCE:
				sd.Certificates = append(sd.Certificates, c)
			case p.opts.AttributeCertificates && (tag == cbasn1.Tag(1).Constructed().ContextSpecific() || tag == cbasn1.Tag(2).Constructed().ContextSpecific()):
				// An attribute certificate: nothing reads it, but it must
				// be one.
				if !isSignedStructure(c, tag) {
					return nil, p.errf(at, "certificate %d of the certificates field is not a well-formed attribute certificate", n)
				}
			case p.opts.AttributeCertificates:
				// An extended (PKCS#6) or other certificate: nothing
				// reads it, nobody signed it.
				return nil, p.errf(at, "certificate %d of the certificates field is neither a certificate nor an attribute certificate (tag %#x)", n, uint8(tag))
			default:
				return nil, p.errf(at, "certificate %d of the certificates field is not an X.509 certificate (tag %#x)", n, uint8(tag))
			}
		}
	}
	crlsTag := cbasn1.Tag(1).Constructed().ContextSpecific()
	if body.PeekASN1Tag(crlsTag) {
		var crls cryptobyte.String
		at = body
		if !body.ReadASN1(&crls, crlsTag) {
			return nil, p.errf(at, "bad crls field")
		}
		// Nothing checks a CRL here, but what is there must be one: a
		// well-formed CertificateList, few of them.
		for n := 0; !crls.Empty(); n++ {
			at := crls
			var crl cryptobyte.String
			if n == MaxCRLs {
				return nil, p.limitf(at, "more than %d CRLs", MaxCRLs)
			}
			if !crls.ReadASN1Element(&crl, cbasn1.SEQUENCE) {
				return nil, p.errf(at, "CRL %d of the crls field is not a DER SEQUENCE", n)
			}
			if _, err := x509.ParseRevocationList(crl); err != nil {
				return nil, p.errf(at, "CRL %d of the crls field is not a CertificateList: %v", n, err)
			}
		}
	}
	var infos cryptobyte.String
	at = body
	if !body.ReadASN1(&infos, cbasn1.SET) || !body.Empty() {
		return nil, p.errf(at, "SignedData has no signerInfos SET at its end")
	}
	for !infos.Empty() {
		at := infos
		if len(sd.SignerInfos) == MaxSignerInfos {
			return nil, p.limitf(at, "more than %d SignerInfos", MaxSignerInfos)
		}
		var elem cryptobyte.String
		if !infos.ReadASN1Element(&elem, cbasn1.SEQUENCE) {
			return nil, p.errf(at, "bad SignerInfo")
		}
		si, err := p.signerInfo(elem)
		if err != nil {
			return nil, err
		}
		sd.SignerInfos = append(sd.SignerInfos, *si)
	}
	return sd, nil
}

// ParseSignerInfo reads a lone SignerInfo element (a legacy
// countersignature is one), with the same checks as [Parse].
func ParseSignerInfo(der []byte, opts ParseOptions) (si *SignerInfo, err error) {
	defer recoverParse(&err)
	p := &parser{der: der, opts: &opts}
	return p.signerInfo(der)
}

// recoverParse turns a panic while parsing (a bug) into an error wrapping
// signing.ErrInternal, so that hostile input cannot crash the caller.
func recoverParse(err *error) {
	if r := recover(); r != nil {
		*err = signing.Errorf(signing.ErrInternal, "cms: internal error: %w (please report this)", panicerr.New(r))
	}
}

func (p *parser) signerInfo(der cryptobyte.String) (*SignerInfo, error) {
	raw := []byte(der)
	at := der
	var body cryptobyte.String
	if !der.ReadASN1(&body, cbasn1.SEQUENCE) || !der.Empty() {
		return nil, p.errf(at, "SignerInfo is not a DER SEQUENCE")
	}
	si := &SignerInfo{Raw: raw, der: p.der, base: p.opts.Offset}
	at = body
	if !body.ReadASN1Integer(&si.Version) {
		return nil, p.errf(at, "SignerInfo has no version")
	}
	skidTag := cbasn1.Tag(0).ContextSpecific()
	at = body
	switch {
	case body.PeekASN1Tag(cbasn1.SEQUENCE):
		var ias, issuer, serial cryptobyte.String
		if !body.ReadASN1(&ias, cbasn1.SEQUENCE) || !ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
			!ias.ReadASN1(&serial, cbasn1.INTEGER) || len(serial) == 0 || !ias.Empty() {
			return nil, p.errf(at, "bad issuerAndSerialNumber")
		}
		si.Issuer, si.Serial = issuer, serial
	case body.PeekASN1Tag(skidTag):
		var skid cryptobyte.String
		if !body.ReadASN1(&skid, skidTag) || len(skid) == 0 {
			return nil, p.errf(at, "bad subjectKeyIdentifier")
		}
		si.SubjectKeyID = skid
	default:
		return nil, p.errf(at, "SignerInfo has no signer identifier")
	}
	at = body
	if !readAlgorithm(&body, &si.DigestAlgorithm) {
		return nil, p.errf(at, "SignerInfo has no digestAlgorithm")
	}
	if err := p.checkParams(si.DigestAlgorithm, "SignerInfo digestAlgorithm", false); err != nil {
		return nil, err
	}
	signedTag := cbasn1.Tag(0).Constructed().ContextSpecific()
	if body.PeekASN1Tag(signedTag) {
		var raw, attrs cryptobyte.String
		at = body
		if !body.ReadASN1Element(&raw, signedTag) {
			return nil, p.errf(at, "bad signed attributes")
		}
		si.SignedAttrsRaw = raw
		raw.ReadASN1(&attrs, signedTag) // cannot fail: just read as an element
		var err error
		if si.SignedAttrs, err = p.attributes(attrs, "signed attributes", true); err != nil {
			return nil, err
		}
	}
	at = body
	if !readAlgorithm(&body, &si.SignatureAlgorithm) {
		return nil, p.errf(at, "SignerInfo has no signature algorithm")
	}
	if err := p.checkParams(si.SignatureAlgorithm, "SignerInfo signatureAlgorithm", true); err != nil {
		return nil, err
	}
	var sig cryptobyte.String
	at = body
	if !body.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return nil, p.errf(at, "SignerInfo has no signature")
	}
	if p.opts.MaxSignature > 0 && len(sig) > p.opts.MaxSignature {
		return nil, p.limitf(at, "a %d-byte signature (at most %d)", len(sig), p.opts.MaxSignature)
	}
	si.Signature = sig
	unsignedTag := cbasn1.Tag(1).Constructed().ContextSpecific()
	if body.PeekASN1Tag(unsignedTag) {
		var attrs cryptobyte.String
		at = body
		if !body.ReadASN1(&attrs, unsignedTag) {
			return nil, p.errf(at, "bad unsigned attributes")
		}
		if len(attrs) > limits.MaxUnsignedAttributes {
			return nil, p.limitf(at, "%d bytes of unsigned attributes (at most %d)", len(attrs), limits.MaxUnsignedAttributes)
		}
		var err error
		if si.UnsignedAttrs, err = p.attributes(attrs, "unsigned attributes", false); err != nil {
			return nil, err
		}
		if err := p.checkUnknown(si.UnsignedAttrs, at); err != nil {
			return nil, err
		}
	}
	if !body.Empty() {
		return nil, p.errf(body, "trailing data in SignerInfo")
	}
	return si, nil
}

func readAlgorithm(s *cryptobyte.String, alg *AlgorithmIdentifier) bool {
	var raw, seq, oid cryptobyte.String
	if !s.ReadASN1Element(&raw, cbasn1.SEQUENCE) {
		return false
	}
	elem := raw
	if !elem.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) {
		return false
	}
	alg.OID, alg.Params, alg.Raw = OID(oid), seq, raw
	return true
}

// checkParams checks an AlgorithmIdentifier that no signature covers: its
// OID is a valid OBJECT IDENTIFIER of at most MaxAlgorithmOID bytes, and
// its parameters are absent or NULL, or, for a signature algorithm, an
// elliptic curve OID for id-ecPublicKey or one small SEQUENCE for RSA-PSS.
// Anything else could carry data nobody signed.
func (p *parser) checkParams(alg AlgorithmIdentifier, what string, signature bool) error {
	if !alg.OID.valid() || len(alg.OID) > MaxAlgorithmOID {
		return p.errf(alg.Raw, "%s OID is not a valid OBJECT IDENTIFIER of at most %d bytes (%d bytes)", what, MaxAlgorithmOID, len(alg.OID))
	}
	s := cryptobyte.String(alg.Params)
	var elem cryptobyte.String
	var tag cbasn1.Tag
	switch {
	case len(s) == 0:
		return nil
	case !s.ReadAnyASN1Element(&elem, &tag) || !s.Empty():
		return p.errf(alg.Raw, "%s parameters are not one DER element", what)
	case tag == cbasn1.NULL && len(elem) == 2:
		return nil
	case signature && tag == cbasn1.OBJECT_IDENTIFIER && alg.OID.Equal(OIDECPublicKey) && len(elem) <= MaxCurveParams:
		return nil
	case signature && tag == cbasn1.SEQUENCE && alg.OID.Equal(OIDRSAPSS) && len(elem) <= MaxPSSParams:
		return nil
	}
	return p.errf(alg.Raw, "%s %s has %d bytes of parameters that are not NULL", what, alg.OID, len(alg.Params))
}

// attributes reads a SET OF Attribute's contents: at most MaxAttributes,
// each with values that are DER elements and, where no signature covers
// them, a type that is a valid OID (at most MaxAttributes of them in
// a signed attribute).
func (p *parser) attributes(s cryptobyte.String, what string, signed bool) (Attributes, error) {
	var out Attributes
	for !s.Empty() {
		at := s
		if len(out) == MaxAttributes {
			return nil, p.limitf(at, "more than %d %s", MaxAttributes, what)
		}
		var raw, seq, oid, vals cryptobyte.String
		if !s.ReadASN1Element(&raw, cbasn1.SEQUENCE) {
			return nil, p.errf(at, "bad attribute in the %s", what)
		}
		elem := raw
		if !elem.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) ||
			!seq.ReadASN1(&vals, cbasn1.SET) || !seq.Empty() || (!signed && !OID(oid).valid()) {
			return nil, p.errf(at, "bad attribute in the %s", what)
		}
		for n, v := 0, vals; !v.Empty(); n++ {
			if signed && n == MaxAttributes {
				return nil, p.limitf(at, "a signed attribute with more than %d values", MaxAttributes)
			}
			var elem cryptobyte.String
			if !v.ReadAnyASN1Element(&elem, nil) {
				return nil, p.errf(at, "bad value of the %s attribute %s", what, OID(oid))
			}
		}
		out = append(out, Attribute{Type: OID(oid), Values: vals, Raw: raw})
	}
	return out, nil
}

// checkUnknown caps the unsigned attributes the caller does not read:
// Windows and the kernel ignore them, which makes them a place to carry
// data that no signature covers (installers "personalised" after signing
// do that).
func (p *parser) checkUnknown(attrs Attributes, at []byte) error {
	n := 0
	for _, a := range attrs {
		read := false
		for _, k := range p.opts.ReadUnsigned {
			if k.Equal(a.Type) {
				read = true
				break
			}
		}
		if !read {
			n += len(a.Type) + len(a.Values)
		}
	}
	if n > limits.MaxUnknownUnsignedAttributes {
		return p.limitf(at, "%d bytes of unsigned attributes csv does not read (at most %d: no signature covers them)", n, limits.MaxUnknownUnsignedAttributes)
	}
	return nil
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
