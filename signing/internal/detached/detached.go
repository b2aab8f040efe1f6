// Package detached reads, verifies and makes the bare detached PKCS#7
// signatures Linux checks with verify_pkcs7_signature: one SignerInfo over
// a small content the verifier knows (fs-verity's formatted digest,
// dm-verity's hex root hash), no certificates, no signed attributes, the
// signer named by issuer and serial number, as `fsverity sign` and
// `openssl smime -sign -binary -noattr -nocerts` make them. It is shared by
// signing/fsverity and signing/dmverity.
//
// # Security
//
// Parse refuses input over limits.MaxDetachedSignature bytes before it
// parses it with package signing/cms (bounded DER, caps on certificates,
// CRLs and attributes). Verify takes the signer from the caller's
// candidates (and the certificates the PKCS#7 carries, which only extend
// the pool), checks the signature over the content the caller gives, and
// says who signed: trust is policy.
package detached

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/internal/sigstate"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/cms"
)

// Signature is a parsed detached PKCS#7 signature.
type Signature struct {
	// DER is the PKCS#7 as read.
	DER []byte
	// Hash is the SignerInfo's digest algorithm.
	Hash crypto.Hash
	// SignedAttributes says the SignerInfo has signed attributes (the
	// kernel accepts them; fsverity sign and openssl -noattr write none).
	SignedAttributes bool

	si     *cms.SignerInfo
	certs  []*signing.Certificate
	prefix string // message prefix: "fsverity", "dmverity"
}

// Parse reads a DER PKCS#7 SignedData with detached id-data content and
// one SignerInfo. format names the structure in a
// *signing.MalformedError ("fs-verity signature"); prefix starts error
// messages ("fsverity").
func Parse(der []byte, format, prefix string) (s *Signature, err error) {
	malformed := func(off int64, f string, args ...any) error {
		return &signing.MalformedError{Format: format, Offset: off, Reason: fmt.Sprintf(f, args...)}
	}
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, &signing.MalformedError{Format: format, Offset: -1, Reason: fmt.Sprintf("internal error: panic while parsing: %v", p), Err: panicerr.New(p)}
		}
	}()
	switch {
	case len(der) == 0:
		return nil, malformed(0, "empty signature")
	case len(der) > limits.MaxDetachedSignature:
		return nil, &signing.MalformedError{Format: format, Offset: 0, Err: signing.ErrLimit,
			Reason: fmt.Sprintf("the signature is %d bytes, over the limit of %d", len(der), limits.MaxDetachedSignature)}
	}
	sd, err := cms.Parse(der, cms.ParseOptions{})
	if err != nil {
		var me *signing.MalformedError
		if errors.As(err, &me) && me.Format == cms.Format {
			e := *me
			e.Format, e.Reason = format, "PKCS#7 does not parse: "+me.Reason
			return nil, &e
		}
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	switch {
	case !sd.ContentType.Equal(cms.OIDData):
		return nil, malformed(sd.OffsetOf(sd.EncapContentInfo), "encapsulated content type %v is not id-data", sd.ContentType)
	case sd.Content != nil:
		return nil, malformed(sd.OffsetOf(sd.EncapContentInfo), "the PKCS#7 carries its content; the signature must be detached")
	case len(sd.SignerInfos) == 0:
		return nil, malformed(0, "the PKCS#7 has no SignerInfo")
	case len(sd.SignerInfos) > 1:
		return nil, malformed(sd.OffsetOf(sd.SignerInfos[1].Raw), "the PKCS#7 has %d SignerInfos, want one", len(sd.SignerInfos))
	}
	s = &Signature{DER: der, prefix: prefix}
	for i, c := range sd.Certificates {
		cert, err := signing.ParseCertificate(c)
		if err != nil {
			return nil, malformed(sd.OffsetOf(c), "embedded certificate #%d: %v", i, err)
		}
		s.certs = append(s.certs, cert)
	}
	si := &sd.SignerInfos[0]
	h, err := si.DigestHash()
	if err != nil || !h.Available() {
		return nil, malformed(sd.OffsetOf(si.DigestAlgorithm.Raw), "unknown digest algorithm %v", si.DigestAlgorithm.OID)
	}
	if len(si.Signature) == 0 {
		return nil, malformed(sd.OffsetOf(si.Raw), "the SignerInfo has an empty signature")
	}
	s.si, s.Hash, s.SignedAttributes = si, h, si.SignedAttrsRaw != nil
	return s, nil
}

// Signer describes the signer identifier, for messages.
func (s *Signature) Signer() string { return s.si.SignerName() }

// Verify checks the signature over content.
//
// Checks, in order:
//
//  1. the signature algorithm is RSA (PKCS#1 v1.5), RSA-PSS or ECDSA
//     through the SignerInfo's digest algorithm;
//  2. a candidate (or a certificate the PKCS#7 carries) matches the
//     signer identifier (issuer and serial number, or subject key
//     identifier);
//  3. with signed attributes: one contentType (id-data) and a
//     messageDigest equal to the hash of content, and the signature is
//     over the attributes; without: the signature is over the hash of
//     content;
//  4. the key of a matching certificate verifies it.
//
// The result has Format sigFormat, the chains from the signer through the
// pool, and is verified, or carries a Problem wrapping
// signing.ErrSignerNotFound, signing.ErrSignedAttributes,
// signing.ErrUnsupportedAlgorithm or signing.ErrSignature. The chains are
// searched through cache (once per run for the same certificates' bytes;
// nil searches every time).
func (s *Signature) Verify(content []byte, candidates []*signing.Certificate, sigFormat string, cache *signing.CertCache) (out *signing.Signature) {
	out = &signing.Signature{Format: sigFormat, DigestAlgorithm: s.Hash, Certificates: s.certs}
	defer func() {
		if p := recover(); p != nil {
			out = &signing.Signature{Format: sigFormat, DigestAlgorithm: s.Hash, Certificates: s.certs,
				Problem: signing.Errorf(signing.ErrInternal, "%s: internal error: panic in Verify: %w", s.prefix, panicerr.New(p))}
		}
	}()
	kind, h, err := s.si.Scheme()
	out.SignatureAlgorithm = kind
	switch {
	case err != nil:
		out.Problem = fmt.Errorf("%s: %w", s.prefix, err)
		return out
	case kind != "RSA" && kind != "RSA-PSS" && kind != "ECDSA":
		out.Problem = signing.Errorf(signing.ErrUnsupportedAlgorithm, "%s: unsupported signature algorithm: %s (Linux checks RSA and ECDSA)", s.prefix, kind)
		return out
	case h != s.Hash:
		out.Problem = signing.Errorf(signing.ErrUnsupportedAlgorithm, "%s: unsupported signature algorithm: %v signs through %v but the digest algorithm is %v", s.prefix, s.si.SignatureAlgorithm.OID, h, s.Hash)
		return out
	}
	pool := signing.Dedup(append(append([]*signing.Certificate{}, s.certs...), candidates...))
	var matching []*signing.Certificate
	for _, c := range pool {
		if s.si.Matches(c) {
			matching = append(matching, c)
		}
	}
	if len(matching) == 0 {
		out.Problem = signing.Errorf(signing.ErrSignerNotFound, "%s: no candidate certificate matches the signer: %s (%d candidates)", s.prefix, s.si.SignerName(), len(pool))
		return out
	}
	out.Chains = cache.BuildChains(matching[0], pool)
	hh := s.Hash.New()
	hh.Write(content)
	digest := hh.Sum(nil)
	if s.SignedAttributes {
		if err := s.si.CheckSignedAttributesDigest(cms.OIDData, digest); err != nil {
			out.Problem = fmt.Errorf("%s: %w", s.prefix, err)
			return out
		}
	}
	var firstErr error
	for _, c := range matching {
		var err error
		if s.SignedAttributes {
			err = s.si.CheckSignature(c)
		} else {
			err = s.si.CheckDigestSignature(c, kind, h, digest)
		}
		if err == nil {
			out.Chains = cache.BuildChains(c, pool)
			out.Digest = digest
			sigstate.Verified(out)
			return out
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("%s: %w (%s, key of %q)", s.prefix, err, s.si.SignerName(), signing.NameString(c.Subject))
		}
	}
	out.Problem = firstErr
	return out
}

// Sign returns a DER PKCS#7 over content, as `fsverity sign` and `openssl
// smime -sign -binary -noattr -nocerts -outform DER` make it: SignedData
// version 1, detached id-data, no certificates, one SignerInfo naming cert
// by issuer and serial number, the digest algorithm h (SHA-256, SHA-384 or
// SHA-512) with NULL parameters, rsaEncryption (PKCS#1 v1.5) or
// ecdsa-with-SHA*, the signature directly over the hash of content. Sign
// checks the signature it makes.
func Sign(content []byte, cert *x509.Certificate, key crypto.Signer, h crypto.Hash, prefix string) ([]byte, error) {
	if h == 0 {
		h = crypto.SHA256
	}
	if h != crypto.SHA256 && h != crypto.SHA384 && h != crypto.SHA512 {
		return nil, signing.Errorf(signing.ErrUnsupportedAlgorithm, "%s: digest algorithm %v not supported for signing (SHA256, SHA384, SHA512)", prefix, h)
	}
	if cert == nil || key == nil {
		return nil, signing.Errorf(signing.ErrSigner, "%s: signing needs a certificate and a key", prefix)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, signing.Errorf(signing.ErrSigner, "%s: the key is not the public key of %q", prefix, signing.NameString(cert.Subject))
	}
	digestOID, _ := signing.OIDForHash(h)
	digestAlg := cms.AlgorithmIdentifier{OID: cms.NewOID(digestOID...), Params: cms.NULL}
	var kind string
	var sigAlg cms.AlgorithmIdentifier
	switch cert.PublicKey.(type) {
	case *rsa.PublicKey:
		kind = "RSA"
		sigAlg = cms.AlgorithmIdentifier{OID: cms.OIDRSAEncryption, Params: cms.NULL}
	case *ecdsa.PublicKey:
		kind = "ECDSA"
		oid, _ := signing.SignatureAlgorithmOID("ECDSA", h)
		sigAlg = cms.AlgorithmIdentifier{OID: cms.NewOID(oid...)}
	default:
		return nil, signing.Errorf(signing.ErrUnsupportedAlgorithm, "%s: %T keys not supported for signing (RSA, ECDSA)", prefix, cert.PublicKey)
	}
	hh := h.New()
	hh.Write(content)
	digest := hh.Sum(nil)
	sig, err := key.Sign(rand.Reader, digest, h)
	if err != nil {
		return nil, fmt.Errorf("%s: signing: %w", prefix, err)
	}
	if err := signing.CheckPrecomputed(cert.PublicKey, kind, h, digest, sig); err != nil {
		return nil, signing.Errorf(signing.ErrSigner, "%s: the key made a signature that does not verify: %w", prefix, err)
	}
	si, err := cms.MarshalSignerInfo(cms.SignerInfoTemplate{Version: 1, Issuer: cert.RawIssuer, SerialNumber: cert.SerialNumber,
		DigestAlgorithm: digestAlg, SignatureAlgorithm: sigAlg, Signature: sig})
	if err != nil {
		return nil, fmt.Errorf("%s: encoding the PKCS#7: %w", prefix, err)
	}
	p7, err := cms.MarshalSignedData(cms.SignedDataTemplate{Version: 1, DigestAlgorithms: []cms.AlgorithmIdentifier{digestAlg},
		ContentType: cms.OIDData, SignerInfos: [][]byte{si}})
	if err != nil {
		return nil, fmt.Errorf("%s: encoding the PKCS#7: %w", prefix, err)
	}
	return p7, nil
}
