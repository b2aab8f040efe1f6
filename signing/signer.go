package signing

// This file checks that a signing key goes with the certificate chain it is
// to sign with. Loading keys (files, KMS, PKCS#11) is package
// signing/keys's: this check needs only the key's public half, and
// packages that sign with a crypto.Signer they were given use it without
// linking any cloud SDK.

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Errors of [CheckSigningChain], each carried by a [ChainError].
var (
	ErrKeyMismatch      = errors.New("signing: key does not match the certificate")
	ErrNoCodeSigningEKU = errors.New("signing: certificate lacks the code signing EKU")
	ErrKeyUsage         = errors.New("signing: certificate does not allow digital signatures")
	ErrExpired          = errors.New("signing: certificate expired")
	ErrNotYetValid      = errors.New("signing: certificate not yet valid")
	ErrChainLink        = errors.New("signing: certificate chain link does not verify")
	ErrEmptyChain       = errors.New("signing: empty certificate chain")
)

// ChainError says which check of [CheckSigningChain] failed, and on which
// certificate; every ChainError is [ErrSigner]. Err is one of ErrKeyMismatch, ErrNoCodeSigningEKU,
// ErrKeyUsage, ErrExpired, ErrNotYetValid, ErrChainLink, ErrEmptyChain.
type ChainError struct {
	// Cert is the certificate the check failed on (nil for ErrEmptyChain).
	Cert *x509.Certificate
	Err  error
	msg  string
}

func (e *ChainError) Error() string { return "signing: " + e.msg }

// Unwrap returns the sentinel.
func (e *ChainError) Unwrap() error { return e.Err }

// Is reports that a ChainError is [ErrSigner], the concept every signing
// package reports a key and chain that cannot sign with: errors.Is(err,
// ErrSigner) holds whichever check failed.
func (e *ChainError) Is(target error) bool { return target == ErrSigner }

// certName names a certificate in messages: its CN, else its subject.
func certName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return NameString(c.Subject)
}

// CheckSigningChain checks that key may sign with chain (leaf first), in
// this order:
//
//  1. the chain is not empty;
//  2. key's public key is the leaf's;
//  3. the leaf carries the code signing EKU (1.3.6.1.5.5.7.3.3) and, if it
//     has a key usage extension, allows digital signatures;
//  4. every certificate is within its validity at now;
//  5. each certificate's signature verifies with the next one's key, whose
//     subject is its issuer and which is a CA.
//
// The first failure is returned as a *[ChainError] naming the certificate
// (for example `certificate "Build Signing" expired on 2025-06-01`). The
// chain's top need not be a root: trust is the verifier's business.
func CheckSigningChain(key crypto.Signer, chain []*x509.Certificate, now time.Time) error {
	if len(chain) == 0 || chain[0] == nil {
		return &ChainError{Err: ErrEmptyChain, msg: "empty certificate chain"}
	}
	leaf := chain[0]
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return &ChainError{Cert: leaf, Err: ErrKeyMismatch, msg: fmt.Sprintf("key does not match the certificate %q", certName(leaf))}
	}
	hasCS := false
	for _, u := range leaf.ExtKeyUsage {
		if u == x509.ExtKeyUsageCodeSigning {
			hasCS = true
		}
	}
	if !hasCS {
		return &ChainError{Cert: leaf, Err: ErrNoCodeSigningEKU, msg: fmt.Sprintf("certificate %q lacks the code signing EKU", certName(leaf))}
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return &ChainError{Cert: leaf, Err: ErrKeyUsage, msg: fmt.Sprintf("certificate %q does not allow digital signatures (key usage)", certName(leaf))}
	}
	for _, c := range chain {
		if c == nil {
			return &ChainError{Err: ErrEmptyChain, msg: "nil certificate in chain"}
		}
		if now.After(c.NotAfter) {
			return &ChainError{Cert: c, Err: ErrExpired, msg: fmt.Sprintf("certificate %q expired on %s", certName(c), c.NotAfter.UTC().Format(time.DateOnly))}
		}
		if now.Before(c.NotBefore) {
			return &ChainError{Cert: c, Err: ErrNotYetValid, msg: fmt.Sprintf("certificate %q is not valid before %s", certName(c), c.NotBefore.UTC().Format(time.DateOnly))}
		}
	}
	for i := 0; i+1 < len(chain); i++ {
		c, parent := chain[i], chain[i+1]
		if !bytes.Equal(c.RawIssuer, parent.RawSubject) {
			return &ChainError{Cert: c, Err: ErrChainLink, msg: fmt.Sprintf("certificate %q is issued by %q, not by the next certificate %q", certName(c), NameString(c.Issuer), certName(parent))}
		}
		if err := c.CheckSignatureFrom(parent); err != nil {
			return &ChainError{Cert: c, Err: ErrChainLink, msg: fmt.Sprintf("certificate %q does not verify with %q: %v", certName(c), certName(parent), err)}
		}
	}
	return nil
}

// ErrPartialChain: a signing chain that does not reach a root: its last
// certificate is not self-signed and no trust anchor given issued it, so
// a verifier that has only the root cannot build the chain. Carried by a
// [ChainError] (and so [ErrSigner]).
var ErrPartialChain = errors.New("signing: certificate chain does not reach a root")

// CompleteOptions configure [CheckChainComplete]. The zero value accepts
// only a chain that ends in a self-signed certificate.
type CompleteOptions struct {
	// Roots are trust anchors the chain may end below: the chain is
	// complete if one of them issued (and verifies) its last certificate.
	Roots []*x509.Certificate
	// System also accepts a last certificate that chains to the system's
	// trust store (x509.Certificate.Verify with no Roots), at Now.
	System bool
	// Now is the time the system store's chain is checked at.
	Now time.Time
}

// CheckChainComplete checks that chain (leaf first, its links checked by
// [CheckSigningChain]) reaches a root: its last certificate is
// self-signed (its issuer is its subject and its own key verifies its
// signature), or is issued by one of opts.Roots, or, with opts.System,
// chains to the system's trust store. Otherwise it returns a *[ChainError]
// carrying [ErrPartialChain] whose Cert is the last certificate and whose
// message names its issuer: the certificate that is missing.
//
// A signature carries the chain it was made with; a verifier that trusts
// the root, but has never seen the intermediate CA between it and the
// leaf, cannot build the chain, and rejects every file signed with it.
func CheckChainComplete(chain []*x509.Certificate, opts CompleteOptions) error {
	if len(chain) == 0 || chain[0] == nil {
		return &ChainError{Err: ErrEmptyChain, msg: "empty certificate chain"}
	}
	top := chain[len(chain)-1]
	// Self-signed: its own key verifies its signature. Not
	// CheckSignatureFrom, which also wants a CA: a self-signed leaf (a test
	// or internal signer that verifiers trust as such) ends its chain too.
	if bytes.Equal(top.RawIssuer, top.RawSubject) && top.CheckSignature(top.SignatureAlgorithm, top.RawTBSCertificate, top.Signature) == nil {
		return nil
	}
	for _, r := range opts.Roots {
		if r != nil && bytes.Equal(top.RawIssuer, r.RawSubject) && top.CheckSignatureFrom(r) == nil {
			return nil
		}
	}
	if opts.System {
		if _, err := top.Verify(x509.VerifyOptions{CurrentTime: opts.Now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
			return nil
		}
	}
	what := "the signer's certificate"
	if len(chain) > 1 {
		what = "the last certificate"
	}
	return &ChainError{Cert: top, Err: ErrPartialChain, msg: fmt.Sprintf(
		"the certificate chain does not reach a root: %s, %q, is issued by %q, which is not in the chain (nor a trusted root here)",
		what, NameString(top.Subject), NameString(top.Issuer))}
}
