package ima

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// Sign makes the security.ima value `evmctl ima_sign` writes for a file
// whose digest with h is digest: a version 2 EVM_IMA_XATTR_DIGSIG
// signature by key, named by the key id of cert (the last four bytes of its
// subject key identifier, which the kernel's keyring matches). h is
// SHA-256, SHA-384, SHA-512 or SHA-224 (evmctl's default is SHA-256; csv
// makes no SHA-1 signatures). key is RSA (PKCS#1 v1.5) or ECDSA, and must
// be cert's key. Errors wrap signing.ErrSigner (the key or certificate
// cannot make the signature) or signing.ErrUnsupportedAlgorithm.
func Sign(digest []byte, h crypto.Hash, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	return sign(TypeDigsig, 2, digest, h, key, cert)
}

// SignVerity makes a version 3 IMA_VERITY_DIGSIG signature for a file
// whose fs-verity digest with h is verity: the signature over the hash of
// struct ima_file_id, as the kernel verifies it (IMA policy rules with
// appraise_type=sigv3). Keys and errors are as for [Sign].
func SignVerity(verity []byte, h crypto.Hash, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	return sign(TypeVerityDigsig, 3, verity, h, key, cert)
}

func sign(t Type, version uint8, digest []byte, h crypto.Hash, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	a, ok := HashAlgoOf(h)
	if !ok || h == crypto.SHA1 || !h.Available() {
		return nil, signing.Errorf(signing.ErrUnsupportedAlgorithm, "ima: csv makes IMA signatures with SHA-224, SHA-256, SHA-384 or SHA-512, not %v", h)
	}
	if len(digest) != h.Size() {
		return nil, signing.Errorf(signing.ErrDigestNotComputed, "ima: a %d-byte digest is not %v", len(digest), h)
	}
	if key == nil || cert == nil {
		return nil, signing.Errorf(signing.ErrSigner, "ima: a key and its certificate are needed")
	}
	if _, ok := keyKind(key.Public()); !ok {
		return nil, signing.Errorf(signing.ErrSigner, "ima: a %T key cannot make an IMA signature (RSA or ECDSA)", key.Public())
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := key.Public().(equaler); !ok || !pub.Equal(cert.PublicKey) {
		return nil, signing.Errorf(signing.ErrSigner, "ima: the key is not the key of %q", cert.Subject.CommonName)
	}
	if len(cert.SubjectKeyId) < 4 {
		return nil, signing.Errorf(signing.ErrSigner, "ima: %q has no subject key identifier, by which the kernel's keyring finds IMA keys", cert.Subject.CommonName)
	}
	signed := digest
	if t == TypeVerityDigsig {
		var err error
		if signed, err = FileIDDigest(h, digest); err != nil {
			return nil, err
		}
	}
	sig, err := key.Sign(rand.Reader, signed, h)
	if err != nil {
		return nil, signing.Errorf(signing.ErrSigner, "ima: signing: %w", err)
	}
	if len(sig) == 0 || hdrLen+len(sig) > limits.MaxIMAValue {
		return nil, signing.Errorf(signing.ErrSigner, "ima: a %d-byte signature does not fit a security.ima value", len(sig))
	}
	skid := cert.SubjectKeyId
	v := &Value{Type: t, Version: version, HashAlgo: a, Sig: sig,
		KeyID: uint32(skid[len(skid)-4])<<24 | uint32(skid[len(skid)-3])<<16 | uint32(skid[len(skid)-2])<<8 | uint32(skid[len(skid)-1])}
	out := v.Marshal()
	if _, err := Parse(out); err != nil {
		return nil, fmt.Errorf("ima: made a value it cannot read: %w", err)
	}
	return out, nil
}
