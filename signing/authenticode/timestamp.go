package authenticode

import (
	"bytes"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/signing"
)

// Timestamp kinds (signing.Timestamp.Kind).
const (
	TimestampRFC3161      = "rfc3161"
	TimestampAuthenticode = "authenticode"
)

// timestamp verifies the timestamp in si's unsigned attributes, if any: an
// RFC 3161 token (preferred when both kinds are present) or a legacy
// Authenticode countersignature. outerCerts are the certificates of the
// SignedData si belongs to.
func (v *verifier) timestamp(index int, path []int, si *signerInfo, outerCerts []*signing.Certificate) *signing.Timestamp {
	var rfc, legacy *attribute
	for i := range si.unsignedAttrs {
		a := &si.unsignedAttrs[i]
		switch {
		case rfc == nil && bytes.Equal(a.oid, oidRFC3161Timestamp):
			rfc = a
		case legacy == nil && bytes.Equal(a.oid, oidCounterSignature):
			legacy = a
		}
	}
	ts := &signing.Timestamp{}
	var err error
	switch {
	case rfc != nil:
		ts.Kind = TimestampRFC3161
		err = v.rfc3161(ts, *rfc, si.signature, outerCerts)
	case legacy != nil:
		ts.Kind = TimestampAuthenticode
		err = v.counterSignature(ts, *legacy, si.signature, outerCerts)
	default:
		return nil
	}
	if err != nil {
		ts.Problem = &SignatureError{Index: index, Path: path, Err: fmt.Errorf("%w (%s): %w", ErrTimestamp, ts.Kind, err)}
	}
	ts.Verified = ts.Problem == nil
	return ts
}

// rfc3161 verifies an RFC 3161 TimeStampToken over the signature octets
// sigOctets: the token is a SignedData of a TSTInfo whose messageImprint is
// the hash of sigOctets, signed by a certificate the token (or the outer
// SignedData) carries.
func (v *verifier) rfc3161(ts *signing.Timestamp, a attribute, sigOctets []byte, outerCerts []*signing.Certificate) error {
	signer, certs, err := v.rfc3161Signer(ts, a, sigOctets, outerCerts)
	if signer != nil {
		ts.Chains = v.opts.Cache.buildChains(signer, v.candidates(certs, outerCerts))
	}
	return err
}

// rfc3161Signer verifies the token as rfc3161 does, and returns the
// certificate that signed it and the certificates it carries (once found,
// even when a later check fails); it sets ts.Time, not ts.Chains.
func (v *verifier) rfc3161Signer(ts *signing.Timestamp, a attribute, sigOctets []byte, outerCerts []*signing.Certificate) (*signing.Certificate, []*signing.Certificate, error) {
	fail := func(err error) (*signing.Certificate, []*signing.Certificate, error) { return nil, nil, err }
	der, ok := a.single()
	if !ok {
		return fail(errDER("the RFC 3161 timestamp attribute does not hold exactly one value"))
	}
	ct, content, err := parseContentInfo(der)
	if err != nil {
		return fail(err)
	}
	if !bytes.Equal(ct, oidSignedData) {
		return fail(fmt.Errorf("%w: token ContentInfo type is %s, want signedData", ErrMalformed, oidString(ct)))
	}
	sd, err := parseSignedData(content)
	if err != nil {
		return fail(err)
	}
	if !bytes.Equal(sd.contentType, oidTSTInfo) || !sd.octetString {
		return fail(fmt.Errorf("%w: token content type is %s, want an id-ct-TSTInfo (1.2.840.113549.1.9.16.1.4) OCTET STRING", ErrMalformed, oidString(sd.contentType)))
	}
	tst, err := parseTSTInfo(sd.content)
	if err != nil {
		return fail(err)
	}
	if ts.Time, err = readTime(tst.genTime, cbasn1.GeneralizedTime); err != nil {
		return fail(fmt.Errorf("%w: genTime: %w", ErrMalformed, err))
	}
	certs, certErr := v.certificates(sd.certs)
	if len(sd.signers) != 1 {
		return fail(fmt.Errorf("%w: %d SignerInfos in the token, want one", ErrMalformed, len(sd.signers)))
	}
	si := &sd.signers[0]
	signer := findSigner(si, certs)
	if signer == nil {
		signer = findSigner(si, outerCerts)
	}
	if signer == nil {
		return fail(signerNotFound(si, len(sd.certs)+len(outerCerts), certErr))
	}
	return signer, certs, checkToken(si, signer, tst, sd, sigOctets)
}

// checkToken checks a token's message imprint against sigOctets and its
// signer's signature.
func checkToken(si *signerInfo, signer *signing.Certificate, tst *tstInfo, sd *signedData, sigOctets []byte) error {
	h, err := hashForOID(tst.imprintAlg.oid)
	if err != nil {
		return fmt.Errorf("message imprint: %w", err)
	}
	hh := h.New()
	hh.Write(sigOctets)
	if sum := hh.Sum(nil); !bytes.Equal(sum, tst.imprint) {
		return fmt.Errorf("message imprint %s %x is not the hash of the signature (%x)", hashName(h), tst.imprint, sum)
	}
	if err := checkSignedAttributes(si, oidTSTInfo, sd.digested); err != nil {
		return err
	}
	return checkSignerSignature(si, signer)
}

// counterSignature verifies a legacy Authenticode countersignature: a
// SignerInfo whose messageDigest is the hash of sigOctets, with a
// signingTime, signed by one of the outer SignedData's certificates.
func (v *verifier) counterSignature(ts *signing.Timestamp, a attribute, sigOctets []byte, outerCerts []*signing.Certificate) error {
	der, ok := a.single()
	if !ok {
		return errDER("the countersignature attribute does not hold exactly one value")
	}
	si, err := parseSignerInfo(der)
	if err != nil {
		return err
	}
	st, ok := findAttribute(si.signedAttrs, oidSigningTime)
	if !ok {
		return fmt.Errorf("%w: countersignature has no signingTime", ErrSignedAttributes)
	}
	val, ok := st.single()
	if !ok {
		return fmt.Errorf("%w: signingTime does not hold exactly one value", ErrSignedAttributes)
	}
	s := cryptobyte.String(val)
	var t cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1(&t, &tag) || !s.Empty() {
		return fmt.Errorf("%w: bad signingTime", ErrSignedAttributes)
	}
	if ts.Time, err = readTime(t, tag); err != nil {
		return fmt.Errorf("%w: signingTime: %w", ErrSignedAttributes, err)
	}
	signer := findSigner(si, outerCerts)
	if signer == nil {
		return signerNotFound(si, len(outerCerts), nil)
	}
	ts.Chains = v.opts.Cache.buildChains(signer, v.candidates(outerCerts))
	// A countersignature's content type is not checked: RFC 2985 says it
	// must be absent, Authenticode timestamps carry pkcs7-data.
	if err := checkSignedAttributes(si, nil, sigOctets); err != nil {
		return err
	}
	return checkSignerSignature(si, signer)
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
