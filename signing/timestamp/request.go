package timestamp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/cms"
)

// MaxResponse caps a TSA's answer (a token with its chain is a few KiB).
const MaxResponse = 1 << 20

// A TSA is an RFC 3161 time-stamping authority csv can ask: RoundTrip
// sends it a DER TimeStampReq and returns its DER TimeStampResp, as
// received (at most MaxResponse bytes); String names it in errors
// (without credentials). The transport is the implementation's: package
// tsahttp asks one over HTTP (RFC 3161 section 3.4), which keeps net/http
// out of the packages that only verify.
type TSA interface {
	RoundTrip(ctx context.Context, req []byte) (resp []byte, err error)
	String() string
}

// Stamp asks tsa to countersign signature: a TimeStampReq with the
// SHA-256 of signature as message imprint, a random nonce and certReq. It
// checks the answer before returning it: granted, a token that verifies
// (signed by a time-stamping certificate it carries, over this imprint)
// and that answers this request (the nonce). It returns the DER
// TimeStampResp (what a Sigstore bundle carries) and the TimeStampToken in
// it (what Authenticode embeds). It does not decide whether the TSA is
// trusted: verifiers do, with their own roots. Errors are *Error values
// naming the TSA.
func Stamp(ctx context.Context, tsa TSA, signature []byte) (resp, token []byte, err error) {
	where := tsa.String()
	fail := func(format string, args ...any) error {
		return &Error{TSA: where, Err: fmt.Errorf(format, args...)}
	}
	imprint := sha256.Sum256(signature)
	nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, nil, fail("making a nonce: %v", err)
	}
	req, err := NewRequest(crypto.SHA256, imprint[:], nonce)
	if err != nil {
		return nil, nil, fail("%v", err)
	}
	body, err := tsa.RoundTrip(ctx, req)
	if err != nil {
		var te *Error
		if errors.As(err, &te) {
			return nil, nil, err
		}
		return nil, nil, &Error{TSA: where, Err: err}
	}
	if len(body) > MaxResponse {
		return nil, nil, fail("the answer is over %d bytes", MaxResponse)
	}
	token, err = ParseResponse(body)
	if err != nil {
		return nil, nil, &Error{TSA: where, Err: err}
	}
	tok, err := verifyToken(token, signature)
	if err != nil {
		return nil, nil, &Error{TSA: where, Err: fmt.Errorf("the token does not verify: %w", err)}
	}
	got, err := tok.token.Nonce()
	if err != nil {
		return nil, nil, fail("%v", err)
	}
	if got == nil || got.Cmp(nonce) != 0 {
		return nil, nil, fail("the token's nonce %v is not the request's %v (a replayed or misdirected answer)", got, nonce)
	}
	return body, token, nil
}

// NewRequest encodes a TimeStampReq: version 1, the message imprint (hash
// h of what is to be countersigned), nonce (if not nil) and certReq.
func NewRequest(h crypto.Hash, imprint []byte, nonce *big.Int) ([]byte, error) {
	oid, ok := signing.OIDForHash(h)
	if !ok || len(imprint) != h.Size() {
		return nil, fmt.Errorf("timestamp: a %d-byte %v imprint", len(imprint), h)
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // TimeStampReq
		b.AddASN1Int64(1)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // messageImprint
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oid)
				b.AddASN1NULL()
			})
			b.AddASN1OctetString(imprint)
		})
		if nonce != nil {
			b.AddASN1BigInt(nonce)
		}
		b.AddASN1Boolean(true) // certReq
	})
	der, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("timestamp: encoding the request: %w", err)
	}
	return der, nil
}

// VerifiedToken is an RFC 3161 token that verified over a signature.
type VerifiedToken struct {
	// Time is the token's genTime.
	Time time.Time
	// Signer is the TSA certificate whose signature over the token
	// verified; Certificates are all the certificates the token carries,
	// for building its chain. Neither is trusted yet.
	Signer       *x509.Certificate
	Certificates []*x509.Certificate

	token *Token
}

// VerifyTSA checks that the token's TSA certificate is a time-stamping
// certificate ([CheckCertificate], the rule every timestamp path uses;
// crypto/x509 would let a certificate without any EKU pass), and that it
// chains to one of roots (with the token's certificates as
// intermediates), at the token's time.
func (t *VerifiedToken) VerifyTSA(roots []*x509.Certificate) error {
	c, err := signing.ParseCertificate(t.Signer.Raw)
	if err != nil {
		return fmt.Errorf("the TSA certificate %q: %w", t.Signer.Subject.CommonName, err)
	}
	if err := CheckCertificate(c); err != nil {
		return fmt.Errorf("the TSA certificate %q is not a time-stamping certificate: %w", t.Signer.Subject.CommonName, err)
	}
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, c := range t.Certificates {
		inter.AddCert(c)
	}
	_, err = t.Signer.Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		CurrentTime:   t.Time,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping},
	})
	if err != nil {
		return fmt.Errorf("the TSA %q is not trusted: %w", t.Signer.Subject.CommonName, err)
	}
	return nil
}

// VerifyResponse checks a DER TimeStampResp that a TSA gave for signature
// (as [Stamp] returns and Sigstore bundles carry): status granted, a
// TimeStampToken whose TSTInfo's message imprint is the hash of signature,
// signed (with the signed attributes RFC 5652 requires) by a time-stamping
// certificate the token carries. Whether that TSA is trusted is the
// caller's to decide, with the returned certificates, at the returned
// time. resp is untrusted: malformed input is an *Error (wrapping a
// *signing.MalformedError where the structure is at fault), never a panic.
func VerifyResponse(resp, signature []byte) (tok *VerifiedToken, err error) {
	defer func() {
		if r := recover(); r != nil {
			tok, err = nil, &Error{Err: signing.Errorf(signing.ErrInternal, "internal error: %w (please report this)", panicerr.New(r))}
		}
	}()
	if len(resp) > MaxResponse {
		return nil, &Error{Err: fmt.Errorf("the response is over %d bytes", MaxResponse)}
	}
	token, err := ParseResponse(resp)
	if err != nil {
		return nil, &Error{Err: err}
	}
	return verifyToken(token, signature)
}

// verifyToken verifies a TimeStampToken over signature (see
// VerifyResponse).
func verifyToken(token, signature []byte) (*VerifiedToken, error) {
	tok, err := ParseToken(token, 0)
	if err != nil {
		return nil, &Error{Err: err}
	}
	var certs []*signing.Certificate
	for i, der := range tok.SignedData.Certificates {
		c, err := signing.ParseCertificate(bytes.Clone(der))
		if errors.Is(err, signing.ErrUnsupportedAlgorithm) {
			continue
		}
		if err != nil {
			return nil, &Error{Err: &signing.MalformedError{Format: cms.Format, Offset: tok.SignedData.OffsetOf(der),
				Reason: fmt.Sprintf("certificate %d of the token cannot be read: %v", i, err), Err: err}}
		}
		certs = append(certs, c)
	}
	signer, err := tok.FindSigner(certs, nil)
	if err == nil {
		err = tok.Verify(signer, signature)
	}
	if err != nil {
		return nil, &Error{Err: err}
	}
	v := &VerifiedToken{Time: tok.Time, token: tok}
	if v.Signer, err = x509.ParseCertificate(signer.Raw); err != nil {
		return nil, &Error{Err: fmt.Errorf("the TSA certificate: %w", err)}
	}
	for _, c := range certs {
		if xc, err := x509.ParseCertificate(c.Raw); err == nil {
			v.Certificates = append(v.Certificates, xc)
		}
	}
	return v, nil
}

// ParseResponse reads TimeStampResp ::= SEQUENCE { status PKIStatusInfo,
// timeStampToken ContentInfo OPTIONAL } and returns the token if the
// status is granted (0) or grantedWithMods (1).
func ParseResponse(der []byte) ([]byte, error) {
	s := cryptobyte.String(der)
	var resp, info, token cryptobyte.String
	var status int64
	if !s.ReadASN1(&resp, cbasn1.SEQUENCE) || !s.Empty() || !resp.ReadASN1(&info, cbasn1.SEQUENCE) || !info.ReadASN1Integer(&status) {
		return nil, &signing.MalformedError{Format: "TimeStampResp", Offset: 0, Reason: "the answer is not a DER TimeStampResp"}
	}
	if status != 0 && status != 1 {
		msg := "status " + strconv.FormatInt(status, 10)
		if name, ok := map[int64]string{2: "rejection", 3: "waiting", 4: "revocationWarning", 5: "revocationNotification"}[status]; ok {
			msg += " (" + name + ")"
		}
		var text cryptobyte.String
		if info.ReadASN1(&text, cbasn1.SEQUENCE) {
			for !text.Empty() {
				var t cryptobyte.String
				if !text.ReadASN1(&t, cbasn1.UTF8String) {
					break
				}
				msg += ": " + strconv.Quote(string(t))
			}
		}
		return nil, fmt.Errorf("the TSA refused: %s", msg)
	}
	at := resp
	if !resp.ReadASN1Element(&token, cbasn1.SEQUENCE) || !resp.Empty() {
		return nil, &signing.MalformedError{Format: "TimeStampResp", Offset: int64(len(der) - len(at)), Reason: "the TSA granted but sent no TimeStampToken"}
	}
	return token, nil
}
