package ima

import (
	"errors"
	"fmt"

	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/internal/sigstate"
	"github.com/codesignval/csv/signing"
)

// maxKeyMatches bounds the keyring certificates one signature is checked
// against: key ids are 32 bits, so a few certificates may share one, and a
// keyring of certificates that all do must not cost a public-key operation
// each per file.
const maxKeyMatches = 8

// Verify checks v against digest, the file's digest with v.HashAlgo: its
// content digest for a version 2 signature, its fs-verity digest for a
// version 3 one (which signs the hash of struct ima_file_id over it). The
// key comes from keyring (the certificates of the kernel's .ima keyring,
// as --certs gives them): a certificate whose [KeyID] is the signature's
// and whose key verifies it. Chains are built from that certificate
// through keyring and candidates.
//
// The checks, in order: v is a signature (a digest or an EVM value never
// verifies: Problem wraps signing.ErrSignature); its hash algorithm is one
// csv computes (signing.ErrUnsupportedAlgorithm otherwise, MD5 included);
// digest has that algorithm's size (signing.ErrDigestNotComputed); a
// keyring certificate has the key id (signing.ErrSignerNotFound); its key
// is RSA or ECDSA, the kernel's IMA schemes, and verifies the signature
// over the digest (signing.ErrSignature).
//
// The returned Signature is Verified only when every check passed; it is
// never nil. A panic is recovered as a Problem wrapping
// signing.ErrInternal.
func (v *Value) Verify(digest []byte, keyring, candidates []*signing.Certificate) *signing.Signature {
	return v.VerifyCached(digest, keyring, candidates, nil)
}

// VerifyCached is Verify with a run's certificate cache: the chains from
// the signer's certificate through the keyring and candidates are searched
// once per run (keyed by the certificates' bytes), not once per file. A
// nil cache searches every time.
func (v *Value) VerifyCached(digest []byte, keyring, candidates []*signing.Certificate, cache *signing.CertCache) (s *signing.Signature) {
	s = &signing.Signature{Format: SignatureFormat, Digest: append([]byte(nil), digest...)}
	defer func() {
		if r := recover(); r != nil {
			s = &signing.Signature{Format: SignatureFormat, Problem: fmt.Errorf("ima: verifying: %w: %w", panicerr.New(r), signing.ErrInternal)}
		}
	}()
	if !v.IsSignature() {
		s.Problem = signing.Errorf(signing.ErrSignature, "ima: %s is not a signature", v.Describe())
		return s
	}
	h, err := v.HashAlgo.Hash()
	if err != nil {
		s.Problem = err
		return s
	}
	s.DigestAlgorithm = h
	if !h.Available() || len(digest) != h.Size() {
		s.Problem = signing.Errorf(signing.ErrDigestNotComputed, "ima: the file's %v digest is needed, have %d bytes", h, len(digest))
		return s
	}
	signed := digest
	if v.Type == TypeVerityDigsig {
		if signed, err = FileIDDigest(h, digest); err != nil {
			s.Problem = err
			return s
		}
	}
	var tried int
	var problems []error
	for _, c := range signing.Dedup(keyring) {
		if id, ok := KeyID(c); !ok || id != v.KeyID {
			continue
		}
		if tried++; tried > maxKeyMatches {
			break
		}
		kind, ok := keyKind(c.PublicKey)
		if !ok {
			problems = append(problems, signing.Errorf(signing.ErrUnsupportedAlgorithm, "ima: %q has a %s key, not one IMA verifies (RSA, ECDSA)", c.CommonName(), c.PublicKeyAlgorithm()))
			continue
		}
		if s.SignatureAlgorithm == "" {
			s.SignatureAlgorithm = kind
		}
		if err := signing.CheckPrecomputed(c.PublicKey, kind, h, signed, v.Sig); err != nil {
			problems = append(problems, fmt.Errorf("ima: key id %08x (%q): %w", v.KeyID, c.CommonName(), err))
			continue
		}
		s.SignatureAlgorithm = kind
		s.Chains = cache.BuildChains(c, signing.Dedup(append(append([]*signing.Certificate(nil), keyring...), candidates...)))
		sigstate.Verified(s)
		return s
	}
	if tried == 0 {
		s.Problem = signing.Errorf(signing.ErrSignerNotFound, "ima: no certificate in the IMA keyring has key id %08x", v.KeyID)
		return s
	}
	s.Problem = errors.Join(problems...)
	if !errors.Is(s.Problem, signing.ErrSignature) && !errors.Is(s.Problem, signing.ErrUnsupportedAlgorithm) {
		s.Problem = signing.Errorf(signing.ErrSignature, "ima: %w", s.Problem)
	}
	return s
}

// CheckDigest compares a digest value (TypeDigest, TypeDigestNG) with
// digest, the file's digest with v.HashAlgo: nil when they are equal,
// signing.ErrDigestMismatch when they differ (a host appraising by hash
// refuses the file), signing.ErrUnsupportedAlgorithm or
// signing.ErrDigestNotComputed when they cannot be compared.
func (v *Value) CheckDigest(digest []byte) error {
	if v.Type != TypeDigest && v.Type != TypeDigestNG {
		return fmt.Errorf("ima: %s is not a digest: %w", v.Describe(), signing.ErrMalformed)
	}
	h, err := v.HashAlgo.Hash()
	if err != nil {
		return err
	}
	if len(digest) != h.Size() {
		return signing.Errorf(signing.ErrDigestNotComputed, "ima: the file's %v digest is needed", h)
	}
	if string(digest) != string(v.Digest) {
		return signing.Errorf(signing.ErrDigestMismatch, "ima: the file's %v digest is %x, security.ima says %x", h, digest, v.Digest)
	}
	return nil
}
