package dmverity

import (
	"crypto"
	"crypto/x509"
	"encoding/hex"

	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/internal/detached"
)

// SignatureFormat is the signing.Signature.Format of a root hash
// signature.
const SignatureFormat = "dmverity"

// SignatureMalformedFormat names root hash signatures in a
// *signing.MalformedError.
const SignatureMalformedFormat = "dm-verity root hash signature"

// Signature is a parsed root hash signature: a DER PKCS#7, detached, over
// the root hash in lowercase hex (64 ASCII characters, no newline), as
// systemd's IMAGE.roothash.p7s and the kernel's root_hash_sig_key_desc
// use it (`openssl smime -sign -nocerts -noattr -binary -in roothash
// -outform der`).
type Signature struct {
	p *detached.Signature
}

// ParseSignature reads a root hash signature (at most
// limits.MaxDetachedSignature bytes). Errors are *signing.MalformedError.
func ParseSignature(der []byte) (*Signature, error) {
	p, err := detached.Parse(der, SignatureMalformedFormat, "dmverity")
	if err != nil {
		return nil, err
	}
	return &Signature{p: p}, nil
}

// signedContent is what a root hash signature signs.
func signedContent(root []byte) []byte { return []byte(hex.EncodeToString(root)) }

// Verify checks the signature over root, the image's root hash, with the
// signer among candidates (or the certificates the PKCS#7 carries). The
// checks are the detached PKCS#7's (signing/internal/detached: algorithm,
// signer identifier, signed attributes if any, the signature); the result
// has Format [SignatureFormat], Digest root once verified, or a Problem.
func (s *Signature) Verify(root []byte, candidates []*signing.Certificate) *signing.Signature {
	return s.VerifyCached(root, candidates, nil)
}

// VerifyCached is Verify with a run's certificate cache: the chains are
// searched once per run for the same certificates (nil: every time).
func (s *Signature) VerifyCached(root []byte, candidates []*signing.Certificate, cache *signing.CertCache) *signing.Signature {
	if len(root) != HashSize {
		return &signing.Signature{Format: SignatureFormat, DigestAlgorithm: s.p.Hash,
			Problem: signing.Errorf(signing.ErrDigestNotComputed, "dmverity: the root hash is %d bytes, want %d", len(root), HashSize)}
	}
	out := s.p.Verify(signedContent(root), candidates, SignatureFormat, cache)
	if out.Verified() {
		out.Digest = append([]byte(nil), root...)
	}
	return out
}

// Sign returns the signature of a root hash, as `openssl smime -sign
// -nocerts -noattr -binary` makes it over the hex root hash: no
// certificates, no signed attributes, digest h (0: SHA-256).
func Sign(root []byte, cert *x509.Certificate, key crypto.Signer, h crypto.Hash) ([]byte, error) {
	if len(root) != HashSize {
		return nil, signing.Errorf(signing.ErrDigestNotComputed, "dmverity: the root hash is %d bytes, want %d", len(root), HashSize)
	}
	return detached.Sign(signedContent(root), cert, key, h, "dmverity")
}
