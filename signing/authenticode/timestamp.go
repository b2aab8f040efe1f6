package authenticode

import (
	"bytes"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/sigstate"
	"github.com/codesignval/csv/signing"
)

// Timestamp kinds (signing.Timestamp.Kind).
const (
	TimestampRFC3161      = "rfc3161"
	TimestampAuthenticode = "authenticode"
)

// stamps are the timestamps a SignerInfo carries, parsed: an RFC 3161
// token (with its certificates) and a legacy countersignature, either nil.
type stamps struct {
	token      *token
	tokenCerts []*signing.Certificate
	counter    *signerInfo
}

// parseTimestamps reads the structure of the timestamps in si's unsigned
// attributes: at most one attribute of each kind, holding one value, that
// parses as a TimeStampToken (with certificates that can be read) or as a
// SignerInfo. What fails here makes the table malformed: these bytes are
// covered by no signature unless they are a timestamp.
func (v *verifier) parseTimestamps(si *signerInfo) (stamps, error) {
	var st stamps
	var rfc, legacy []byte
	for _, a := range si.unsignedAttrs {
		var dst *[]byte
		switch {
		case bytes.Equal(a.oid, oidRFC3161Timestamp):
			dst = &rfc
		case bytes.Equal(a.oid, oidCounterSignature):
			dst = &legacy
		default:
			continue
		}
		if *dst != nil {
			return st, errDER(fmt.Sprintf("more than one %s unsigned attribute", oidString(a.oid)))
		}
		val, ok := a.single()
		if !ok {
			return st, errDER(fmt.Sprintf("the %s unsigned attribute does not hold exactly one value", oidString(a.oid)))
		}
		*dst = val
	}
	if rfc != nil {
		tok, err := parseToken(rfc)
		if err != nil {
			return st, fmt.Errorf("the RFC 3161 timestamp: %w", err)
		}
		certs, err := v.certificates(tok.sd.certs)
		if err != nil {
			return st, fmt.Errorf("the RFC 3161 timestamp: %w: a certificate cannot be read: %w", ErrMalformed, err)
		}
		st.token, st.tokenCerts = tok, certs
	}
	if legacy != nil {
		// Nothing reads a countersignature's unsigned attributes.
		si, err := parseSignerInfo(legacy, nil)
		if err != nil {
			return st, fmt.Errorf("the countersignature: %w", err)
		}
		st.counter = si
	}
	return st, nil
}

// timestamp verifies the timestamp st holds, if any: the RFC 3161 token
// (preferred when both kinds are present) or else the legacy Authenticode
// countersignature, over si's signature. outerCerts are the certificates of
// the SignedData si belongs to.
func (v *verifier) timestamp(index int, path []int, si *signerInfo, outerCerts []*signing.Certificate, st stamps) *signing.Timestamp {
	ts := &signing.Timestamp{}
	var err error
	switch {
	case st.token != nil:
		ts.Kind, ts.Time = TimestampRFC3161, st.token.time
		var signer *signing.Certificate
		signer, err = tokenSigner(st.token, st.tokenCerts, si.signature, outerCerts)
		if signer != nil {
			ts.Chains = v.buildChains(signer, v.candidates(st.tokenCerts, outerCerts))
		}
	case st.counter != nil:
		ts.Kind = TimestampAuthenticode
		err = v.counterSignature(ts, st.counter, si.signature, outerCerts)
		if err == nil && len(ts.Chains) > 0 {
			err = ts.Chains[0][0].CheckTimestamping()
		}
	default:
		return nil
	}
	if err != nil {
		ts.Problem = &SignatureError{Index: index, Path: path, Err: fmt.Errorf("%w (%s): %w", ErrTimestamp, ts.Kind, err)}
	}
	if ts.Problem == nil {
		sigstate.Verified(ts)
	}
	return ts
}

// token is the structure of an RFC 3161 TimeStampToken.
type token struct {
	sd   *signedData
	tst  *tstInfo
	time time.Time
}

// parseToken reads a TimeStampToken: a ContentInfo holding a SignedData of
// an id-ct-TSTInfo OCTET STRING, with one SignerInfo.
func parseToken(der []byte) (*token, error) {
	ct, content, err := parseContentInfo(der)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(ct, oidSignedData) {
		return nil, fmt.Errorf("%w: token ContentInfo type is %s, want signedData", ErrMalformed, oidString(ct))
	}
	// Nothing reads the unsigned attributes of the token's SignerInfo:
	// they are capped as unknown ones.
	sd, err := parseSignedData(content, nil)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(sd.contentType, oidTSTInfo) || !sd.octetString {
		return nil, fmt.Errorf("%w: token content type is %s, want an id-ct-TSTInfo (1.2.840.113549.1.9.16.1.4) OCTET STRING", ErrMalformed, oidString(sd.contentType))
	}
	if len(sd.signers) != 1 {
		return nil, fmt.Errorf("%w: %d SignerInfos in the token, want one", ErrMalformed, len(sd.signers))
	}
	tst, err := parseTSTInfo(sd.content)
	if err != nil {
		return nil, err
	}
	t, err := readTime(tst.genTime, cbasn1.GeneralizedTime)
	if err != nil {
		return nil, fmt.Errorf("%w: genTime: %w", ErrMalformed, err)
	}
	return &token{sd: sd, tst: tst, time: t}, nil
}

// rfc3161Signer verifies the TimeStampToken der over the signature octets
// sigOctets, and returns the certificate that signed it and the
// certificates it carries (once found, even when a later check fails); it
// sets ts.Time, not ts.Chains.
func (v *verifier) rfc3161Signer(ts *signing.Timestamp, der, sigOctets []byte, outerCerts []*signing.Certificate) (*signing.Certificate, []*signing.Certificate, error) {
	tok, err := parseToken(der)
	if err != nil {
		return nil, nil, err
	}
	ts.Time = tok.time
	certs, err := v.certificates(tok.sd.certs)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: a certificate of the token cannot be read: %w", ErrMalformed, err)
	}
	signer, err := tokenSigner(tok, certs, sigOctets, outerCerts)
	return signer, certs, err
}

// tokenSigner finds the certificate that signed tok among its certificates
// (certs) and outerCerts, and checks the token's message imprint against
// sigOctets, its signature, and that the signer is a time-stamping
// certificate (signing.Certificate.CheckTimestamping). It returns the signer
// once found, even when a later check fails.
func tokenSigner(tok *token, certs []*signing.Certificate, sigOctets []byte, outerCerts []*signing.Certificate) (*signing.Certificate, error) {
	si := &tok.sd.signers[0]
	signer := findSigner(si, certs)
	if signer == nil {
		signer = findSigner(si, outerCerts)
	}
	if signer == nil {
		return nil, signerNotFound(si, len(certs)+len(outerCerts), nil)
	}
	if err := checkToken(si, signer, tok.tst, tok.sd, sigOctets); err != nil {
		return signer, err
	}
	return signer, signer.CheckTimestamping()
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
func (v *verifier) counterSignature(ts *signing.Timestamp, si *signerInfo, sigOctets []byte, outerCerts []*signing.Certificate) error {
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
	var err error
	if ts.Time, err = readTime(t, tag); err != nil {
		return fmt.Errorf("%w: signingTime: %w", ErrSignedAttributes, err)
	}
	signer := findSigner(si, outerCerts)
	if signer == nil {
		return signerNotFound(si, len(outerCerts), nil)
	}
	ts.Chains = v.buildChains(signer, v.candidates(outerCerts))
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
