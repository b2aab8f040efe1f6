package fsverity

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/internal/detached"
)

// SignatureFormat is the signing.Signature.Format of an fs-verity built-in
// signature.
const SignatureFormat = "fsverity"

// Format names fs-verity signatures in a *signing.MalformedError.
const Format = "fs-verity signature"

// SidecarSuffix is the name csv gives a file's fs-verity built-in
// signature beside it: FILE.fsv.sig holds the DER PKCS#7 `fsverity sign
// FILE FILE.fsv.sig` writes, the bytes FS_IOC_ENABLE_VERITY takes.
const SidecarSuffix = ".fsv.sig"

// Signature is a parsed fs-verity built-in signature.
type Signature struct {
	p *detached.Signature
}

// ParseSignature reads a built-in signature: a DER PKCS#7 SignedData with
// detached id-data content and one SignerInfo, at most
// limits.MaxDetachedSignature bytes. It returns a *signing.MalformedError
// (Format [Format]; wrapping signing.ErrLimit for a cap) for anything
// else.
func ParseSignature(der []byte) (*Signature, error) {
	p, err := detached.Parse(der, Format, "fsverity")
	if err != nil {
		return nil, err
	}
	return &Signature{p: p}, nil
}

// DER returns the signature's bytes.
func (s *Signature) DER() []byte { return s.p.DER }

// DigestAlgorithm is the PKCS#7's digest algorithm (the hash of the
// formatted digest the signature is over).
func (s *Signature) DigestAlgorithm() crypto.Hash { return s.p.Hash }

// Verify checks the signature against a file's fs-verity digest (the
// SHA-256 digest [Digester] computes), as the kernel does when it enables
// verity on a file with a signature: the PKCS#7 must be a signature over
// [FormattedDigest](digest) by a certificate of candidates (or one it
// carries). The checks are detached PKCS#7's, in order: a supported
// signature algorithm (RSA, RSA-PSS, ECDSA) through the SignerInfo's
// digest algorithm; a candidate matching the signer identifier; signed
// attributes, when present, consistent with the content; the signature
// verifies with that candidate's key. The result has Format
// [SignatureFormat], Digest the file digest once verified, and a Problem
// wrapping signing.ErrDigestNotComputed, signing.ErrSignerNotFound,
// signing.ErrUnsupportedAlgorithm, signing.ErrSignedAttributes or
// signing.ErrSignature when it does not verify. Whether the signer is
// trusted is policy.
func (s *Signature) Verify(digest []byte, candidates []*signing.Certificate) *signing.Signature {
	return s.VerifyCached(digest, candidates, nil)
}

// VerifyCached is Verify with a run's certificate cache: the chains are
// searched once per run for the same certificates (nil: every time).
func (s *Signature) VerifyCached(digest []byte, candidates []*signing.Certificate, cache *signing.CertCache) *signing.Signature {
	if len(digest) != HashSize {
		return &signing.Signature{Format: SignatureFormat, DigestAlgorithm: s.p.Hash,
			Problem: signing.Errorf(signing.ErrDigestNotComputed, "fsverity: the file digest is %d bytes, want %d (SHA-256)", len(digest), HashSize)}
	}
	out := s.p.Verify(FormattedDigest(digest), candidates, SignatureFormat, cache)
	if out.Verified() {
		out.Digest = append([]byte(nil), digest...)
	} else if errors.Is(out.Problem, signing.ErrSignature) {
		out.Problem = fmt.Errorf("%w (is the signature over another file's digest?)", out.Problem)
	}
	return out
}

// Sign returns the built-in signature of a file whose fs-verity digest
// (SHA-256) is digest, as `fsverity sign --key K --cert C` makes it: a DER
// PKCS#7 over [FormattedDigest](digest) with the digest algorithm h
// (0: SHA-256), no certificates and no signed attributes, the signer
// named by issuer and serial number. For RSA keys the output is
// byte-identical to fsverity sign's.
func Sign(digest []byte, cert *x509.Certificate, key crypto.Signer, h crypto.Hash) ([]byte, error) {
	if len(digest) != HashSize {
		return nil, signing.Errorf(signing.ErrDigestNotComputed, "fsverity: the file digest is %d bytes, want %d (SHA-256)", len(digest), HashSize)
	}
	return detached.Sign(FormattedDigest(digest), cert, key, h, "fsverity")
}
