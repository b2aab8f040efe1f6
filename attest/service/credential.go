package service

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/google/go-tpm/tpm2"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/wire"
)

// CredentialFormat is the payload of a credential.
type CredentialFormat = wire.CredentialFormat

// Credential formats.
const (
	// FormatToken, the default, is a compact JWS (RFC 7515; a JWT, RFC
	// 7519) signed with the CA's key, whose payload is ClaimsJSON with the
	// registered claims iss, sub (the AK Name), iat, nbf, exp and jti. A
	// bearer token is what sealing protects best: whoever reads it can use
	// it, and only the attested TPM can read it. Its claims are JSON, as
	// the verifier's are, and it needs no private OID.
	FormatToken = wire.FormatToken
	// FormatX509 is an X.509 certificate for the AK's public key, issued
	// by the service's CA, with ClaimsJSON in a non-critical extension
	// under an OID the operator chooses (Config.ClaimsOID: under their
	// organisation's IANA Private Enterprise Number; an OID under 2.25
	// from a UUID would need no registration, but Go's crypto/x509, like
	// other parsers, refuses OID arcs over 31 bits). A relying party
	// checks it offline with the CA certificate; since it names the AK, a
	// later quote or TPM2_Certify of that TPM can be checked against it,
	// and the service accepts it as an AK certificate when its CA is
	// among the AK roots.
	FormatX509 = wire.FormatX509
	// FormatEAR is an EAR (EAT Attestation Result, draft-ietf-rats-ear,
	// see attest.NewEAR): a compact JWS signed with the CA's key (ES256,
	// ES384, ES512, PS256 or EdDSA, by its type; see attest.EARAlgorithm),
	// whose payload is the EAR's claims set with the registered claims
	// iss, sub (the AK Name), nbf, exp and jti, and "eat_nonce" the
	// service's nonce the quotes carried. Relying parties that speak the
	// IETF RATS attestation result (Veraison's libraries, Confidential
	// Containers' key broker) read it as they read any EAR; the claims
	// beyond the trustworthiness vector are in the attestation response,
	// not in the EAR.
	FormatEAR = wire.FormatEAR
)

// ClaimsMediaType is the "media_type" of ClaimsJSON.
const ClaimsMediaType = "application/vnd.codesignval.csv.attestation-claims+json;version=1"

// ClaimsJSON is what a credential states: in the certificate's claims
// extension, or as the token's payload (with the JWT registered claims).
type ClaimsJSON struct {
	MediaType string `json:"media_type"`
	// AKName is the TPM Name of the attested AK (hex) and EKKeySHA256 the
	// SHA-256 of its EK's SubjectPublicKeyInfo (hex).
	AKName      string `json:"ak_name"`
	EKKeySHA256 string `json:"ek_key_sha256"`
	NonceID     string `json:"nonce_id"`
	Verdict     string `json:"verdict"`
	// Policy and CIPolicies are the policies that judged; Claims the
	// verified claims, as in attest.Result.
	Policy     *attest.PolicyRef  `json:"policy,omitempty"`
	CIPolicies []attest.PolicyRef `json:"ci_policies,omitempty"`
	Claims     *attest.Claims     `json:"claims"`

	// JWT registered claims, in tokens only.
	Issuer    string `json:"iss,omitempty"`
	Subject   string `json:"sub,omitempty"`
	IssuedAt  int64  `json:"iat,omitempty"`
	NotBefore int64  `json:"nbf,omitempty"`
	Expires   int64  `json:"exp,omitempty"`
	ID        string `json:"jti,omitempty"`
}

// claimsOut is ClaimsJSON as the service writes it, but for the claims,
// which are encoded once (for the credential and the response) and
// spliced in: encoding/json would validate a json.RawMessage again.
type claimsOut struct {
	MediaType   string             `json:"media_type"`
	AKName      string             `json:"ak_name"`
	EKKeySHA256 string             `json:"ek_key_sha256"`
	NonceID     string             `json:"nonce_id"`
	Verdict     string             `json:"verdict"`
	Policy      *attest.PolicyRef  `json:"policy,omitempty"`
	CIPolicies  []attest.PolicyRef `json:"ci_policies,omitempty"`
	Claims      json.RawMessage    `json:"-"`
	Issuer      string             `json:"iss,omitempty"`
	Subject     string             `json:"sub,omitempty"`
	IssuedAt    int64              `json:"iat,omitempty"`
	NotBefore   int64              `json:"nbf,omitempty"`
	Expires     int64              `json:"exp,omitempty"`
	ID          string             `json:"jti,omitempty"`
}

// issuer makes and seals credentials.
type issuer struct {
	ca       *x509.Certificate
	key      crypto.Signer
	format   CredentialFormat
	lifetime time.Duration
	name     string // token "iss"
	sigAlg   sigAlg
	kid      string
	jwsHdr   []byte // the token's encoded header and '.'
	// claimsOID is the certificate extension of the claims.
	claimsOID asn1.ObjectIdentifier
	// build is the EARs' verifier build (Config.VerifierBuild).
	build string
}

// sigAlg is a signature algorithm of the CA's key.
type sigAlg struct {
	hash crypto.Hash // 0 for Ed25519
	jws  string      // JWS "alg"
	ecSz int         // JWS ECDSA coordinate size
}

func sigAlgFor(k crypto.PublicKey) (sigAlg, error) {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return sigAlg{hash: crypto.SHA256, jws: "ES256", ecSz: 32}, nil
		case elliptic.P384():
			return sigAlg{hash: crypto.SHA384, jws: "ES384", ecSz: 48}, nil
		case elliptic.P521():
			return sigAlg{hash: crypto.SHA512, jws: "ES512", ecSz: 66}, nil
		}
	case *rsa.PublicKey:
		if k.N.BitLen() >= 2048 {
			return sigAlg{hash: crypto.SHA256, jws: "RS256"}, nil
		}
	case ed25519.PublicKey:
		return sigAlg{jws: "EdDSA"}, nil
	}
	return sigAlg{}, fmt.Errorf("service: unsupported CA key %T (want ECDSA P-256/384/521, RSA of 2048 bits or more, or Ed25519)", k)
}

// ErrCAExpired is wrapped by the errors about a credential CA certificate
// that is not valid now: expired, or not yet valid.
var ErrCAExpired = errors.New("service: the credential CA certificate is not valid now")

// checkCAValidity refuses a CA certificate outside its validity at now:
// it would issue credentials that are already invalid.
func checkCAValidity(ca *x509.Certificate, now time.Time) error {
	switch {
	case now.Before(ca.NotBefore):
		return fmt.Errorf("%w: %q is valid from %s to %s, not yet at %s", ErrCAExpired, ca.Subject.String(),
			ca.NotBefore.UTC().Format(time.RFC3339), ca.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case now.After(ca.NotAfter):
		return fmt.Errorf("%w: %q is valid from %s to %s: it expired before %s", ErrCAExpired, ca.Subject.String(),
			ca.NotBefore.UTC().Format(time.RFC3339), ca.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

func newIssuer(ca *x509.Certificate, key crypto.Signer, format CredentialFormat, lifetime time.Duration, name string, claimsOID asn1.ObjectIdentifier, now time.Time) (*issuer, error) {
	if format == "" {
		format = FormatToken
	}
	switch {
	case ca == nil || key == nil:
		return nil, errors.New("service: a CA certificate and key are required to issue credentials")
	case !samePublicKey(ca.PublicKey, key.Public()):
		return nil, errors.New("service: the CA key does not match the CA certificate")
	case format != FormatX509 && format != FormatToken && format != FormatEAR:
		return nil, fmt.Errorf("service: unknown credential format %q (want token, x509 or ear)", format)
	case lifetime <= 0:
		return nil, errors.New("service: the credential lifetime must be positive")
	}
	if err := checkCAValidity(ca, now); err != nil {
		return nil, err
	}
	if format == FormatX509 {
		if !ca.IsCA || ca.KeyUsage != 0 && ca.KeyUsage&x509.KeyUsageCertSign == 0 {
			return nil, errors.New("service: the CA certificate is not a CA allowed to sign certificates")
		}
		if len(claimsOID) < 2 {
			return nil, errors.New("service: the x509 credential format needs ClaimsOID, the OID of the claims extension (under your organisation's arc)")
		}
	}
	alg, err := sigAlgFor(key.Public())
	if err != nil {
		return nil, err
	}
	if format == FormatEAR {
		if _, err := attest.EARAlgorithm(key.Public()); err != nil {
			return nil, fmt.Errorf("service: the CA key cannot sign EAR credentials: %w", err)
		}
	}
	if name == "" {
		name = ca.Subject.CommonName
	}
	spki := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	is := &issuer{ca: ca, key: key, format: format, lifetime: lifetime, name: name, sigAlg: alg,
		kid: hex.EncodeToString(spki[:16]), claimsOID: claimsOID}
	hdr, err := json.Marshal(map[string]string{"alg": alg.jws, "typ": "JWT", "kid": is.kid})
	if err != nil {
		return nil, err
	}
	is.jwsHdr = append(base64.RawURLEncoding.AppendEncode(nil, hdr), '.')
	return is, nil
}

func (a sigAlg) sign(key crypto.Signer, msg []byte) ([]byte, error) {
	if a.hash == 0 {
		return key.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	h := a.hash.New()
	h.Write(msg)
	return key.Sign(rand.Reader, h.Sum(nil), a.hash)
}

// issued is a credential's payload before sealing.
type issued struct {
	payload  []byte
	id       string // certificate serial or token jti, for the log
	notAfter time.Time
}

// issue makes the payload for a trusted host.
func (is *issuer) issue(now time.Time, id *identity, nonceID string, nonce []byte, res *attest.Result, rawClaims json.RawMessage) (*issued, error) {
	if err := checkCAValidity(is.ca, now); err != nil {
		return nil, err
	}
	notAfter := now.Add(is.lifetime)
	if notAfter.After(is.ca.NotAfter) {
		notAfter = is.ca.NotAfter
	}
	claims := &claimsOut{MediaType: ClaimsMediaType, AKName: hex.EncodeToString(id.akName),
		EKKeySHA256: hex.EncodeToString(id.ekKeySum[:]), NonceID: nonceID, Verdict: res.Verdict,
		Policy: res.Policy, CIPolicies: res.CIPolicies, Claims: rawClaims}
	var serial [16]byte
	if _, err := rand.Read(serial[:]); err != nil {
		return nil, err
	}
	serial[0] &= 0x7f // positive
	if is.format == FormatEAR {
		tok, err := is.ear(now, notAfter, hex.EncodeToString(serial[:]), id, res, nonce)
		if err != nil {
			return nil, err
		}
		return &issued{payload: tok, id: hex.EncodeToString(serial[:]), notAfter: notAfter}, nil
	}
	if is.format == FormatToken {
		claims.Issuer, claims.Subject = is.name, claims.AKName
		claims.IssuedAt, claims.NotBefore, claims.Expires = now.Unix(), now.Add(-time.Minute).Unix(), notAfter.Unix()
		claims.ID = hex.EncodeToString(serial[:])
		tok, err := is.token(claims)
		if err != nil {
			return nil, err
		}
		return &issued{payload: tok, id: claims.ID, notAfter: notAfter}, nil
	}
	der, err := is.certificate(now, notAfter, new(big.Int).SetBytes(serial[:]), id, claims)
	if err != nil {
		return nil, err
	}
	return &issued{payload: der, id: hex.EncodeToString(serial[:]), notAfter: notAfter}, nil
}

// token writes a compact JWS.
// encode writes the claims as JSON.
func (c *claimsOut) encode() ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	b = append(append(b[:len(b)-1], `,"claims":`...), c.Claims...)
	return append(b, '}'), nil
}

func (is *issuer) token(claims *claimsOut) ([]byte, error) {
	body, err := claims.encode()
	if err != nil {
		return nil, err
	}
	enc := base64.RawURLEncoding
	msg := enc.AppendEncode(append([]byte(nil), is.jwsHdr...), body)
	sig, err := is.sigAlg.sign(is.key, msg)
	if err != nil {
		return nil, fmt.Errorf("service: signing the token: %w", err)
	}
	if is.sigAlg.ecSz > 0 { // JWS wants R || S, not ASN.1
		var r, s big.Int
		in := cryptobyte.String(sig)
		var seq cryptobyte.String
		if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Integer(&r) || !seq.ReadASN1Integer(&s) {
			return nil, errors.New("service: the CA key returned a malformed ECDSA signature")
		}
		sig = append(r.FillBytes(make([]byte, is.sigAlg.ecSz)), s.FillBytes(make([]byte, is.sigAlg.ecSz))...)
	}
	return enc.AppendEncode(append(msg, '.'), sig), nil
}

// certificate writes the AK certificate, with the claims in the extension
// claimsOID (non-critical, a UTF8String of ClaimsJSON).
func (is *issuer) certificate(now, notAfter time.Time, serial *big.Int, id *identity, claims *claimsOut) ([]byte, error) {
	cj, err := claims.encode()
	if err != nil {
		return nil, err
	}
	val, err := asn1.MarshalWithParams(string(cj), "utf8")
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "csv attested AK " + hex.EncodeToString(id.akName[2:min(len(id.akName), 18)])},
		NotBefore:             now.Add(-time.Minute), // tolerate relying parties' clock skew
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: is.claimsOID, Value: val}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.ca, id.ak.Public, is.key)
	if err != nil {
		return nil, fmt.Errorf("service: issuing the AK certificate: %w", err)
	}
	return der, nil
}

// ClaimsFromCertificate returns the claims of a credential certificate,
// from the extension oid (it does not verify the certificate: do that with
// crypto/x509 and the service's CA).
func ClaimsFromCertificate(c *x509.Certificate, oid asn1.ObjectIdentifier) (*ClaimsJSON, error) {
	for _, e := range c.Extensions {
		if !e.Id.Equal(oid) {
			continue
		}
		var s string
		if rest, err := asn1.UnmarshalWithParams(e.Value, &s, "utf8"); err != nil || len(rest) > 0 {
			return nil, errors.New("service: malformed claims extension")
		}
		var cl ClaimsJSON
		if err := json.Unmarshal([]byte(s), &cl); err != nil {
			return nil, fmt.Errorf("service: claims extension: %w", err)
		}
		return &cl, nil
	}
	return nil, fmt.Errorf("service: the certificate has no claims extension %s", oid)
}

// seal wraps a fresh secret to the EK and the AK's Name and encrypts the
// payload under it.
func seal(rnd io.Reader, id *identity, format CredentialFormat, payload []byte, expires time.Time) (*Credential, error) {
	secret := make([]byte, 32)
	if _, err := io.ReadFull(rnd, secret); err != nil {
		return nil, err
	}
	idObject, encSecret, err := tpm2.CreateCredential(rnd, id.ekEnc, id.akName, secret)
	if err != nil {
		return nil, fmt.Errorf("service: MakeCredential: %w", err)
	}
	ct, err := wire.Encrypt(rnd, secret, format, id.akName, payload)
	if err != nil {
		return nil, err
	}
	return &Credential{Format: format, IDObject: idObject, EncryptedSecret: encSecret, Ciphertext: ct, ExpiresAt: expires.UTC()}, nil
}

// Open decrypts a credential's payload with the secret that
// TPM2_ActivateCredential returned, for the AK of Name akName (see
// [wire.Open], the format's definition).
func Open(c *Credential, secret, akName []byte) ([]byte, error) { return wire.Open(c, secret, akName) }
