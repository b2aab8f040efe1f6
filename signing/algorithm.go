package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/asn1"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The one table of algorithms csv knows, for certificates, CMS SignerInfos
// (Authenticode, module signatures, RFC 3161 tokens) and every other
// signature it checks: what each digest and signature algorithm OID means,
// and which are refused (MD5, in [checkHash]). Every lookup and every
// signature check goes through this file.

// digestAlgs are the digest algorithm OIDs. MD5 is listed so that it is
// named (and refused) rather than unknown.
var digestAlgs = []struct {
	oid  asn1.ObjectIdentifier
	hash crypto.Hash
}{
	{asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, crypto.SHA1},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, crypto.SHA256},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, crypto.SHA384},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, crypto.SHA512},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}, crypto.MD5},
}

// signatureAlg is one signature algorithm OID.
type signatureAlg struct {
	oid  asn1.ObjectIdentifier
	kind string // RSA, RSA-PSS, ECDSA, Ed25519
	// hash is the digest the algorithm names; 0 for RSA-PSS (its
	// parameters name it), Ed25519 (which signs the message) and key-only
	// OIDs.
	hash crypto.Hash
	// keyOnly marks OIDs that name a key type, not a signature algorithm
	// (rsaEncryption, id-ecPublicKey): PKCS#7 SignerInfos use them, with
	// the SignerInfo's digest algorithm as the hash. Certificates never
	// are signed "with" them.
	keyOnly bool
}

var signatureAlgs = []signatureAlg{
	{oid: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}, kind: "RSA", keyOnly: true}, // rsaEncryption
	{oid: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}, kind: "RSA", hash: crypto.SHA1},
	{oid: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 4}, kind: "RSA", hash: crypto.MD5},
	{oid: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, kind: "RSA", hash: crypto.SHA256},
	{oid: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}, kind: "RSA", hash: crypto.SHA384},
	{oid: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}, kind: "RSA", hash: crypto.SHA512},
	{oid: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}, kind: "RSA-PSS"},
	{oid: asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}, kind: "ECDSA", keyOnly: true}, // id-ecPublicKey
	{oid: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}, kind: "ECDSA", hash: crypto.SHA1},
	{oid: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}, kind: "ECDSA", hash: crypto.SHA256},
	{oid: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}, kind: "ECDSA", hash: crypto.SHA384},
	{oid: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}, kind: "ECDSA", hash: crypto.SHA512},
	{oid: asn1.ObjectIdentifier{1, 3, 101, 112}, kind: "Ed25519"},
}

func lookupSignatureAlgorithm(oid asn1.ObjectIdentifier) (signatureAlg, bool) {
	for _, a := range signatureAlgs {
		if a.oid.Equal(oid) {
			return a, true
		}
	}
	return signatureAlg{}, false
}

// checkHash is the one place weak digests are refused: a signature through
// MD5 is forged by a collision, so csv verifies none, whatever the
// algorithm that named it (md5WithRSAEncryption, RSA-PSS parameters, a
// SignerInfo or SpcIndirectDataContent digest algorithm, a time-stamp
// token's message imprint). SHA-1 is accepted here: policies judge it
// (digest_algorithms).
func checkHash(h crypto.Hash) error {
	switch {
	case h == crypto.MD5:
		return fmt.Errorf("%w: MD5 signatures are not accepted", ErrUnsupportedAlgorithm)
	case h == 0 || !h.Available():
		return fmt.Errorf("%w: digest %v is not available", ErrUnsupportedAlgorithm, h)
	}
	return nil
}

// DigestAlgorithm returns the hash a digest algorithm OID names, for
// verifying or making a signature: an OID csv does not know, or MD5, is
// refused with an error wrapping [ErrUnsupportedAlgorithm].
func DigestAlgorithm(oid asn1.ObjectIdentifier) (crypto.Hash, error) {
	h, ok := HashForOID(oid)
	if !ok {
		return 0, fmt.Errorf("%w: digest algorithm %v", ErrUnsupportedAlgorithm, oid)
	}
	if h == crypto.MD5 {
		return 0, fmt.Errorf("%w: digest algorithm md5", ErrUnsupportedAlgorithm)
	}
	if err := checkHash(h); err != nil {
		return 0, err
	}
	return h, nil
}

// SignatureAlgorithm returns what a signature algorithm OID means for a
// signature to check: the key kind (RSA, RSA-PSS, ECDSA, Ed25519) and the
// hash it signs through. That hash is the one the OID names, the one its
// DER parameters name (RSA-PSS: pssParams), none for Ed25519, or, for the
// key-only OIDs PKCS#7 SignerInfos use (rsaEncryption, id-ecPublicKey),
// digest, the SignerInfo's digest algorithm. An OID csv does not know, or
// a hash [DigestAlgorithm] refuses, is an error wrapping
// [ErrUnsupportedAlgorithm].
func SignatureAlgorithm(oid asn1.ObjectIdentifier, pssParams []byte, digest crypto.Hash) (kind string, h crypto.Hash, err error) {
	a, ok := lookupSignatureAlgorithm(oid)
	if !ok {
		return "", 0, fmt.Errorf("%w: signature algorithm %v", ErrUnsupportedAlgorithm, oid)
	}
	h = a.hash
	switch {
	case a.keyOnly:
		h = digest
	case a.kind == "RSA-PSS":
		if h, err = pssHash(pssParams); err != nil {
			return a.kind, 0, err
		}
	case a.kind == "Ed25519":
		return a.kind, 0, nil
	}
	if err := checkHash(h); err != nil {
		return a.kind, h, err
	}
	return a.kind, h, nil
}

// CheckSignature verifies sig over data with pub, for a signature algorithm
// given by OID (and, for RSA-PSS, its DER parameters). Key-only OIDs
// (rsaEncryption, id-ecPublicKey) name no hash: use [SignatureAlgorithm]
// and [CheckDigestSignature]. A signature over MD5 is refused, whichever
// way the algorithm names it. Errors wrap [ErrSignature].
func CheckSignature(pub crypto.PublicKey, alg asn1.ObjectIdentifier, pssParams []byte, data, sig []byte) error {
	if a, ok := lookupSignatureAlgorithm(alg); ok && a.keyOnly {
		return fmt.Errorf("%w: %v names a key type, not a signature algorithm", ErrSignature, alg)
	}
	kind, h, err := SignatureAlgorithm(alg, pssParams, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	return checkWith(pub, kind, h, data, sig)
}

// SignatureHash returns the hash a signature algorithm given by OID signs
// through (for RSA-PSS, the one its DER parameters name): 0 for Ed25519 and
// for an algorithm csv does not know or whose parameters it cannot read.
// Key-only OIDs (rsaEncryption, id-ecPublicKey) are not signature
// algorithms here: their hash is the caller's.
func SignatureHash(alg asn1.ObjectIdentifier, pssParams []byte) crypto.Hash {
	a, ok := lookupSignatureAlgorithm(alg)
	switch {
	case !ok || a.keyOnly:
		return 0
	case a.kind == "RSA-PSS":
		h, _ := pssHash(pssParams)
		return h
	}
	return a.hash
}

// CheckDigestSignature verifies sig over data with pub, for a key kind
// (RSA, RSA-PSS, ECDSA, Ed25519) and digest: it hashes data with h first
// (Ed25519 signs data itself).
func CheckDigestSignature(pub crypto.PublicKey, kind string, h crypto.Hash, data, sig []byte) error {
	return checkWith(pub, kind, h, data, sig)
}

// CheckPrecomputed verifies sig over digest, a hash with h computed by the
// caller (for data only a streaming pass saw), for an RSA, RSA-PSS or ECDSA
// key.
func CheckPrecomputed(pub crypto.PublicKey, kind string, h crypto.Hash, digest, sig []byte) error {
	if kind == "Ed25519" {
		return fmt.Errorf("%w: Ed25519 signs messages, not digests", ErrSignature)
	}
	if err := checkHash(h); err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	if len(digest) != h.Size() {
		return fmt.Errorf("%w: a %d-byte digest is not %v", ErrSignature, len(digest), h)
	}
	return checkDigest(pub, kind, h, nil, digest, sig)
}

func checkWith(pub crypto.PublicKey, kind string, h crypto.Hash, data, sig []byte) error {
	var digest []byte
	if kind != "Ed25519" {
		if err := checkHash(h); err != nil {
			return fmt.Errorf("%w: %w", ErrSignature, err)
		}
		hh := h.New()
		hh.Write(data)
		digest = hh.Sum(nil)
	}
	return checkDigest(pub, kind, h, data, digest, sig)
}

// checkDigest verifies sig: over digest for RSA and ECDSA, over data for
// Ed25519. Every signature check goes through it, so that MD5 is refused
// (checkHash) whatever named it.
func checkDigest(pub crypto.PublicKey, kind string, h crypto.Hash, data, digest, sig []byte) error {
	if kind != "Ed25519" {
		if err := checkHash(h); err != nil {
			return fmt.Errorf("%w: %w (%s)", ErrSignature, err, kind)
		}
	}
	// The key's type must fit the kind before anything else, the cache
	// included: a cached success never answers a check the key could not
	// make (review 9, F1).
	switch pub.(type) {
	case *rsa.PublicKey:
		if kind != "RSA" && kind != "RSA-PSS" {
			return fmt.Errorf("%w: an RSA key cannot check a %s signature", ErrSignature, kind)
		}
	case *ecdsa.PublicKey:
		if kind != "ECDSA" {
			return fmt.Errorf("%w: an ECDSA key cannot check a %s signature", ErrSignature, kind)
		}
	case ed25519.PublicKey:
		if kind != "Ed25519" {
			return fmt.Errorf("%w: an Ed25519 key cannot check a %s signature", ErrSignature, kind)
		}
	default:
		return fmt.Errorf("%w: unsupported public key type %T", ErrSignature, pub)
	}
	// A digest signature already verified with the same key is answered
	// from the cache (verifycache.go); the checks above ran all the same.
	key, cached := [32]byte{}, false
	if kind != "Ed25519" {
		key, cached = verifyKey(pub, kind, h, digest, sig)
		if cached && verified.has(key) {
			return nil
		}
	}
	var ok bool
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if kind == "RSA" {
			ok = rsa.VerifyPKCS1v15(k, h, digest, sig) == nil
		} else {
			ok = rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
		}
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, digest, sig)
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, data, sig)
	}
	if !ok {
		return ErrSignature
	}
	if cached {
		verified.add(key)
	}
	return nil
}

// pssHash reads the hash algorithm of RSASSA-PSS-params (SHA1 if absent).
func pssHash(params []byte) (crypto.Hash, error) {
	s := cryptobyte.String(params)
	var seq cryptobyte.String
	if len(params) == 0 {
		return crypto.SHA1, nil
	}
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return 0, fmt.Errorf("%w: bad RSA-PSS parameters", ErrUnsupportedAlgorithm)
	}
	tag0 := cbasn1.Tag(0).Constructed().ContextSpecific()
	if !seq.PeekASN1Tag(tag0) {
		return crypto.SHA1, nil
	}
	var hashAlg, algSeq cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !seq.ReadASN1(&hashAlg, tag0) || !hashAlg.ReadASN1(&algSeq, cbasn1.SEQUENCE) || !algSeq.ReadASN1ObjectIdentifier(&oid) {
		return 0, fmt.Errorf("%w: bad RSA-PSS hash algorithm", ErrUnsupportedAlgorithm)
	}
	if h, ok := HashForOID(oid); ok {
		return h, nil
	}
	return 0, fmt.Errorf("%w: RSA-PSS hash %v", ErrUnsupportedAlgorithm, oid)
}

// HashForOID maps a digest algorithm OID to its hash, MD5 included (to
// name it): [DigestAlgorithm] is the lookup for verifying.
func HashForOID(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	for _, d := range digestAlgs {
		if d.oid.Equal(oid) {
			return d.hash, true
		}
	}
	return 0, false
}

// OIDForHash maps a hash to its digest algorithm OID.
func OIDForHash(h crypto.Hash) (asn1.ObjectIdentifier, bool) {
	for _, d := range digestAlgs {
		if d.hash == h {
			return d.oid, true
		}
	}
	return nil, false
}

// SignatureAlgorithmOID returns the OID of the signature algorithm a key
// kind ("RSA" for PKCS#1 v1.5, "ECDSA") signs with through h, and whether
// there is one.
func SignatureAlgorithmOID(kind string, h crypto.Hash) (asn1.ObjectIdentifier, bool) {
	for _, a := range signatureAlgs {
		if a.kind == kind && a.hash == h && !a.keyOnly && h != crypto.MD5 {
			return a.oid, true
		}
	}
	return nil, false
}
