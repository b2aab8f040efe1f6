// Package timestamp reads, verifies and requests the timestamps csv
// accepts on signatures: RFC 3161 time-stamp tokens (in an Authenticode
// signature's unsigned attributes, in a TimeStampResp a Sigstore bundle or
// a signed manifest carries, or from a time-stamping authority csv asks),
// and the legacy Authenticode countersignature. It holds the one rule for a
// time-stamping authority's certificate ([CheckCertificate]).
//
// A timestamp vouches for the time a signature existed; whether its TSA is
// trusted is the caller's decision (a policy's timestamp_authorities, a
// manifest's TSA roots): this package checks that a timestamp is what it
// claims, over the signature it claims, signed by a certificate fit to
// sign timestamps.
//
// # Security
//
// Everything it parses is untrusted and read with package cms, whose caps
// and strictness apply; a token's and a countersignature's own unsigned
// attributes are read by nothing, so they are limited to
// limits.MaxUnknownUnsignedAttributes whatever their type. A TSA's answer
// is capped at 1 MiB, checked (granted, over the request's imprint, with
// the request's nonce, signed by a time-stamping certificate it carries)
// before it is returned.
package timestamp

import (
	"bytes"
	"fmt"
	"math/big"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/sigstate"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/cms"
)

// Kinds of timestamp (signing.Timestamp.Kind).
const (
	KindRFC3161      = "rfc3161"
	KindAuthenticode = "authenticode"
)

// OIDs of the unsigned attributes timestamps are carried in: Microsoft's
// for an RFC 3161 token, RFC 2985's countersignature for the legacy kind.
var (
	OIDRFC3161Attribute = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 3, 3, 1)
	OIDCountersignature = cms.OIDCounterSignature
)

// maxSignature caps a token's or countersignature's SignerInfo signature:
// an RSA signature with the largest key csv checks (8192 bits) is 1024
// bytes.
const maxSignature = 1024

// Error is a timestamp problem: a token or countersignature that does not
// verify (Kind says which), or a time-stamping authority that cannot be
// asked or answers wrongly (TSA names it). It is signing.ErrTimestamp
// (errors.Is) and wraps its cause.
type Error struct {
	Kind string
	TSA  string
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("timestamp")
	if e.Kind != "" {
		b.WriteString(" (" + e.Kind + ")")
	}
	if e.TSA != "" {
		b.WriteString(" from " + e.TSA)
	}
	b.WriteString(": " + e.Err.Error())
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports that an Error is signing.ErrTimestamp.
func (e *Error) Is(target error) bool { return target == signing.ErrTimestamp }

// CheckCertificate checks that c may sign time-stamp tokens, as RFC 3161
// (2.3) requires of a TSA's certificate: its extended key usage extension
// is marked critical and lists id-kp-timeStamping and nothing else. A
// certificate without the extension (which crypto/x509's chain check lets
// pass for any usage), with the extension not critical, or listing
// timeStamping beside another usage (codeSigning: a code-signing key that
// could also vouch for the time its signatures were made) is refused,
// with an error wrapping signing.ErrNotTimestamping. This
// is the one rule for every timestamp csv accepts: Authenticode timestamps
// (RFC 3161 and legacy countersignatures), the time-stamp responses of
// signed manifests and bundles, and the policy's timestamp authorities.
func CheckCertificate(c *signing.Certificate) error {
	switch {
	case c.EKUs == nil:
		return signing.Errorf(signing.ErrNotTimestamping, "timestamp: not a time-stamping certificate: %q has no extended key usage extension (RFC 3161 wants timeStamping alone, critical)", c.CommonName())
	case len(c.EKUs) != 1 || c.EKUs[0] != signing.OIDTimeStamping.String():
		return signing.Errorf(signing.ErrNotTimestamping, "timestamp: not a time-stamping certificate: %q has the extended key usages %s (RFC 3161 wants timeStamping alone)", c.CommonName(), strings.Join(c.EKUs, ", "))
	case !c.EKUCritical:
		return signing.Errorf(signing.ErrNotTimestamping, "timestamp: not a time-stamping certificate: the extended key usage extension of %q is not critical (RFC 3161 wants it critical)", c.CommonName())
	}
	return nil
}

// Token is an RFC 3161 TimeStampToken, parsed: a SignedData of an
// id-ct-TSTInfo with one SignerInfo.
type Token struct {
	SignedData *cms.SignedData
	// Info is the TSTInfo's content.
	Info TSTInfo
	// Time is Info's genTime.
	Time time.Time
}

// TSTInfo is the part of an RFC 3161 TSTInfo that verification uses (the
// rest, the nonce included, is read only when asked for: Token.Nonce).
type TSTInfo struct {
	ImprintAlgorithm cms.AlgorithmIdentifier
	Imprint          []byte
	// GenTime is the genTime's contents.
	GenTime []byte
}

// ParseToken reads a TimeStampToken (offset is its file offset, for
// errors): a ContentInfo holding a SignedData of an id-ct-TSTInfo OCTET
// STRING, with one SignerInfo whose unsigned attributes nothing reads. It
// checks the structure only.
func ParseToken(der []byte, offset int64) (*Token, error) {
	sd, err := cms.Parse(der, cms.ParseOptions{Offset: offset, AttributeCertificates: true, MaxSignature: maxSignature})
	if err != nil {
		return nil, err
	}
	if !sd.ContentType.Equal(cms.OIDTSTInfo) || !sd.OctetString {
		return nil, &signing.MalformedError{Format: cms.Format, Offset: sd.OffsetOf(sd.EncapContentInfo),
			Reason: fmt.Sprintf("token content type is %s, want an id-ct-TSTInfo (1.2.840.113549.1.9.16.1.4) OCTET STRING", sd.ContentType)}
	}
	if len(sd.SignerInfos) != 1 {
		return nil, &signing.MalformedError{Format: cms.Format, Offset: offset, Reason: fmt.Sprintf("%d SignerInfos in the token, want one", len(sd.SignerInfos))}
	}
	tok := &Token{SignedData: sd}
	if err := parseTSTInfo(sd.Content, &tok.Info); err != nil {
		return nil, &signing.MalformedError{Format: cms.Format, Offset: sd.OffsetOf(sd.Content), Reason: err.Error()}
	}
	if tok.Time, err = readTime(tok.Info.GenTime, cbasn1.GeneralizedTime); err != nil {
		return nil, &signing.MalformedError{Format: cms.Format, Offset: sd.OffsetOf(sd.Content), Reason: "genTime: " + err.Error()}
	}
	return tok, nil
}

// parseTSTInfo reads TSTInfo ::= SEQUENCE { version, policy, messageImprint,
// serialNumber, genTime, accuracy SEQUENCE OPTIONAL, ordering BOOLEAN
// DEFAULT FALSE, nonce INTEGER OPTIONAL, ... }.
func parseTSTInfo(der []byte, t *TSTInfo) error {
	s := cryptobyte.String(der)
	var body, policy, mi, serial, gen cryptobyte.String
	var version int64
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() {
		return fmt.Errorf("TSTInfo is not a DER SEQUENCE")
	}
	var alg, algBody, oid cryptobyte.String
	if !body.ReadASN1Integer(&version) || !body.ReadASN1(&policy, cbasn1.OBJECT_IDENTIFIER) ||
		!body.ReadASN1(&mi, cbasn1.SEQUENCE) || !mi.ReadASN1Element(&alg, cbasn1.SEQUENCE) ||
		!mi.ReadASN1Bytes(&t.Imprint, cbasn1.OCTET_STRING) || !mi.Empty() ||
		!body.ReadASN1(&serial, cbasn1.INTEGER) || !body.ReadASN1(&gen, cbasn1.GeneralizedTime) {
		return fmt.Errorf("bad TSTInfo")
	}
	raw := alg
	if !alg.ReadASN1(&algBody, cbasn1.SEQUENCE) || !algBody.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) {
		return fmt.Errorf("bad TSTInfo")
	}
	t.ImprintAlgorithm = cms.AlgorithmIdentifier{OID: cms.OID(oid), Params: algBody, Raw: raw}
	t.GenTime = gen
	return nil
}

// Nonce returns the nonce of the token's TSTInfo (nil if it has none).
func (t *Token) Nonce() (*big.Int, error) {
	s := cryptobyte.String(t.SignedData.Content)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !body.SkipASN1(cbasn1.INTEGER) || !body.SkipASN1(cbasn1.OBJECT_IDENTIFIER) ||
		!body.SkipASN1(cbasn1.SEQUENCE) || !body.SkipASN1(cbasn1.INTEGER) || !body.SkipASN1(cbasn1.GeneralizedTime) ||
		!body.SkipOptionalASN1(cbasn1.SEQUENCE) || !body.SkipOptionalASN1(cbasn1.BOOLEAN) {
		return nil, fmt.Errorf("bad TSTInfo")
	}
	if !body.PeekASN1Tag(cbasn1.INTEGER) {
		return nil, nil
	}
	n := new(big.Int)
	if !body.ReadASN1Integer(n) {
		return nil, fmt.Errorf("bad TSTInfo nonce")
	}
	return n, nil
}

// SignerInfo returns the token's SignerInfo.
func (t *Token) SignerInfo() *cms.SignerInfo { return &t.SignedData.SignerInfos[0] }

// FindSigner returns the certificate that signed the token, from certs
// (the token's) or else from outer (those of the signature it
// countersigns), or an error wrapping signing.ErrSignerNotFound.
func (t *Token) FindSigner(certs, outer []*signing.Certificate) (*signing.Certificate, error) {
	si := t.SignerInfo()
	signer := si.FindSigner(certs)
	if signer == nil {
		signer = si.FindSigner(outer)
	}
	if signer == nil {
		return nil, si.SignerNotFound(len(certs) + len(outer))
	}
	return signer, nil
}

// Verify checks the token over signature (the octets it countersigns),
// signed by signer: its message imprint is the hash of signature (with an
// algorithm signing.DigestAlgorithm accepts), its signed attributes name
// id-ct-TSTInfo and hold the TSTInfo's digest, its signature verifies with
// signer's key, and signer is a time-stamping certificate
// ([CheckCertificate]).
func (t *Token) Verify(signer *signing.Certificate, signature []byte) error {
	h, err := cms.DigestHash(t.Info.ImprintAlgorithm.OID)
	if err != nil {
		return fmt.Errorf("message imprint: %w", err)
	}
	hh := h.New()
	hh.Write(signature)
	if sum := hh.Sum(nil); !bytes.Equal(sum, t.Info.Imprint) {
		return fmt.Errorf("message imprint %s %x is not the hash of the signature (%x)", cms.HashName(h), t.Info.Imprint, sum)
	}
	si := t.SignerInfo()
	if err := si.CheckSignedAttributes(cms.OIDTSTInfo, t.SignedData.Digested); err != nil {
		return err
	}
	if err := si.CheckSignature(signer); err != nil {
		return err
	}
	return CheckCertificate(signer)
}

// ParseCountersignature reads a legacy Authenticode countersignature: a
// SignerInfo (offset is its file offset), whose unsigned attributes
// nothing reads.
func ParseCountersignature(der []byte, offset int64) (*cms.SignerInfo, error) {
	return cms.ParseSignerInfo(der, cms.ParseOptions{Offset: offset, MaxSignature: maxSignature})
}

// CountersignatureTime reads a countersignature's signingTime attribute.
func CountersignatureTime(si *cms.SignerInfo) (time.Time, error) {
	st, ok := si.SignedAttrs.Find(cms.OIDSigningTime)
	if !ok {
		return time.Time{}, signing.Errorf(signing.ErrSignedAttributes, "timestamp: bad signed attributes: countersignature has no signingTime")
	}
	val, ok := st.Single()
	if !ok {
		return time.Time{}, signing.Errorf(signing.ErrSignedAttributes, "timestamp: bad signed attributes: signingTime does not hold exactly one value")
	}
	s := cryptobyte.String(val)
	var v cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1(&v, &tag) || !s.Empty() {
		return time.Time{}, signing.Errorf(signing.ErrSignedAttributes, "timestamp: bad signed attributes: bad signingTime")
	}
	t, err := readTime(v, tag)
	if err != nil {
		return time.Time{}, signing.Errorf(signing.ErrSignedAttributes, "timestamp: bad signed attributes: signingTime: %w", err)
	}
	return t, nil
}

// VerifyCountersignature checks a legacy countersignature over signature
// (the octets it countersigns) by signer: its messageDigest is the hash of
// signature, and its signature verifies with signer's key. Its content
// type is not checked: RFC 2985 says it must be absent, Authenticode
// timestamps carry pkcs7-data.
func VerifyCountersignature(si *cms.SignerInfo, signer *signing.Certificate, signature []byte) error {
	if err := si.CheckSignedAttributes(nil, signature); err != nil {
		return err
	}
	return si.CheckSignature(signer)
}

// Stamps are the timestamps in one SignerInfo's unsigned attributes,
// parsed: an RFC 3161 token and a legacy countersignature, either nil.
type Stamps struct {
	Token            *Token
	Countersignature *cms.SignerInfo
}

// Find reads the structure of the timestamps in si's unsigned attributes:
// at most one attribute of each kind, holding one value, that parses as a
// TimeStampToken or as a SignerInfo. Its errors are malformed input: these
// bytes are covered by no signature unless they are a timestamp.
func Find(si *cms.SignerInfo) (Stamps, error) {
	var st Stamps
	var rfc, legacy []byte
	var rfcAt, legacyAt []byte
	for _, a := range si.UnsignedAttrs {
		var dst, at *[]byte
		switch {
		case a.Type.Equal(OIDRFC3161Attribute):
			dst, at = &rfc, &rfcAt
		case a.Type.Equal(OIDCountersignature):
			dst, at = &legacy, &legacyAt
		default:
			continue
		}
		if *dst != nil {
			return st, &signing.MalformedError{Format: cms.Format, Offset: si.OffsetOf(a.Raw), Reason: fmt.Sprintf("more than one %s unsigned attribute", a.Type)}
		}
		val, ok := a.Single()
		if !ok {
			return st, &signing.MalformedError{Format: cms.Format, Offset: si.OffsetOf(a.Raw), Reason: fmt.Sprintf("the %s unsigned attribute does not hold exactly one value", a.Type)}
		}
		*dst, *at = val, a.Raw
	}
	if rfc != nil {
		tok, err := ParseToken(rfc, si.OffsetOf(rfc))
		if err != nil {
			return st, fmt.Errorf("the RFC 3161 timestamp: %w", err)
		}
		st.Token = tok
	}
	if legacy != nil {
		cs, err := ParseCountersignature(legacy, si.OffsetOf(legacy))
		if err != nil {
			return st, fmt.Errorf("the countersignature: %w", err)
		}
		st.Countersignature = cs
	}
	return st, nil
}

// Chains builds the certificate chains of a timestamp's signer through the
// groups of candidate certificates given (the caller adds its own).
type Chains func(signer *signing.Certificate, candidates ...[]*signing.Certificate) [][]*signing.Certificate

// Verify verifies the timestamp st holds, if any (nil if none): the RFC
// 3161 token (preferred when both kinds are present) or else the legacy
// countersignature, over signature, the octets of the signature it
// countersigns. tokenCerts are the token's certificates (parsed by the
// caller), outer those of the signature countersigned, where a
// countersignature's signer is (and a token's may be). chains builds the
// chains of the signer once it is found, whether or not a later check
// fails. The Timestamp's Problem, when it does not verify, is an *Error.
func (st Stamps) Verify(signature []byte, tokenCerts, outer []*signing.Certificate, chains Chains) *signing.Timestamp {
	ts := &signing.Timestamp{}
	var err error
	switch {
	case st.Token != nil:
		ts.Kind, ts.Time = KindRFC3161, st.Token.Time
		var signer *signing.Certificate
		if signer, err = st.Token.FindSigner(tokenCerts, outer); signer != nil {
			ts.Chains = chains(signer, tokenCerts, outer)
			err = st.Token.Verify(signer, signature)
		}
	case st.Countersignature != nil:
		ts.Kind = KindAuthenticode
		si := st.Countersignature
		if ts.Time, err = CountersignatureTime(si); err != nil {
			break
		}
		signer := si.FindSigner(outer)
		if signer == nil {
			err = si.SignerNotFound(len(outer))
			break
		}
		ts.Chains = chains(signer, outer)
		if err = VerifyCountersignature(si, signer, signature); err == nil {
			err = CheckCertificate(signer)
		}
	default:
		return nil
	}
	if err != nil {
		ts.Problem = &Error{Kind: ts.Kind, Err: err}
		return ts
	}
	sigstate.Verified(ts)
	return ts
}

// readTime reads the contents of a UTCTime or GeneralizedTime leniently:
// GeneralizedTime may carry fractional seconds (Microsoft's TSAs write
// milliseconds), which cryptobyte refuses.
func readTime(b []byte, tag cbasn1.Tag) (time.Time, error) {
	var layout string
	switch tag {
	case cbasn1.GeneralizedTime:
		layout = "20060102150405Z0700"
	case cbasn1.UTCTime:
		layout = "060102150405Z0700"
	default:
		return time.Time{}, fmt.Errorf("not a time (tag %#x)", uint8(tag))
	}
	t, err := time.Parse(layout, string(b))
	if err != nil {
		return time.Time{}, fmt.Errorf("bad time %q", b)
	}
	if tag == cbasn1.UTCTime && t.Year() >= 2050 {
		t = t.AddDate(-100, 0, 0) // RFC 5280: YY >= 50 is 19YY
	}
	return t.UTC(), nil
}
