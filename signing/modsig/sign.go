package modsig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/codesignval/csv/signing"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// SignOptions select how [Sign] signs. The zero value signs like
// `sign-file sha256`: SHA-256, signer named by issuer and serial number, no
// signed attributes.
type SignOptions struct {
	// Hash is the digest algorithm: crypto.SHA256 (the default),
	// crypto.SHA384 or crypto.SHA512.
	Hash crypto.Hash
	// UseKeyID names the signer by its subject key identifier instead of
	// issuer and serial number (sign-file -k). The certificate must have
	// one.
	UseKeyID bool
	// SignedAttributes adds the contentType and messageDigest signed
	// attributes and signs them instead of the digest, as sign-file does
	// only for ML-DSA keys (since the 2026 ML-DSA patches). Kernels
	// without those patches (6.1, for one) refuse such module signatures:
	// leave it false for them.
	SignedAttributes bool
}

var (
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
)

// Sign returns the bytes to append to a file whose contents hash (with
// opts.Hash) to digest: the PKCS#7 blob, the module_signature struct and
// [Magic]. The PKCS#7 is what sign-file makes with OpenSSL's CMS: SignedData
// with no certificates, detached id-data content, one SignerInfo naming cert
// by issuer and serial number (or subject key identifier), the digest
// algorithm without parameters, rsaEncryption (PKCS#1 v1.5) or
// ecdsa-with-SHA*; for RSA keys the output is byte-identical to sign-file's.
// signer must hold the private key of cert's public key; Sign checks the
// signature it makes before returning it.
//
// Sign does not look at the file. sign-file does not either: run on a
// signed module it appends a second signature, whose content is the module
// with the first signature; the kernel and [Find] then see only the outer
// one. A caller that re-signs should call [Find] first and either refuse or
// hash and keep only the first [Appended.SignedLen] bytes, so that the file
// carries one signature.
func Sign(digest []byte, cert *x509.Certificate, signer crypto.Signer, opts SignOptions) ([]byte, error) {
	h := opts.Hash
	if h == 0 {
		h = crypto.SHA256
	}
	if h != crypto.SHA256 && h != crypto.SHA384 && h != crypto.SHA512 {
		return nil, fmt.Errorf("modsig: digest algorithm %v not supported for signing (SHA256, SHA384, SHA512)", h)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("modsig: the digest is %d bytes, %v digests are %d", len(digest), h, h.Size())
	}
	if cert == nil || signer == nil {
		return nil, errors.New("modsig: signing needs a certificate and a signer")
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("modsig: the signer's key is not the public key of %q", cert.Subject.String())
	}
	if opts.UseKeyID && len(cert.SubjectKeyId) == 0 {
		return nil, fmt.Errorf("modsig: certificate %q has no subject key identifier", cert.Subject.String())
	}
	digestOID, _ := signing.OIDForHash(h)
	var kind string
	var sigAlg func(b *cryptobyte.Builder)
	switch cert.PublicKey.(type) {
	case *rsa.PublicKey:
		kind = "RSA"
		sigAlg = func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidRSAEncryption)
			b.AddASN1NULL()
		}
	case *ecdsa.PublicKey:
		kind = "ECDSA"
		oid := map[crypto.Hash]asn1.ObjectIdentifier{crypto.SHA256: oidECDSAWithSHA256, crypto.SHA384: oidECDSAWithSHA384, crypto.SHA512: oidECDSAWithSHA512}[h]
		sigAlg = func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oid) }
	default:
		return nil, fmt.Errorf("modsig: %T keys not supported for signing (RSA, ECDSA)", cert.PublicKey)
	}

	toSign := digest
	var attrs []byte // the DER SET OF attributes
	if opts.SignedAttributes {
		var err error
		if attrs, err = signedAttributes(digest); err != nil {
			return nil, err
		}
		hh := h.New()
		hh.Write(attrs)
		toSign = hh.Sum(nil)
	}
	sig, err := signer.Sign(rand.Reader, toSign, h)
	if err != nil {
		return nil, fmt.Errorf("modsig: signing: %w", err)
	}
	if err := signing.CheckPrecomputed(cert.PublicKey, kind, h, toSign, sig); err != nil {
		return nil, fmt.Errorf("modsig: the signer made a signature that does not verify: %w", err)
	}

	version := int64(1) // issuerAndSerialNumber: SignerInfo and SignedData version 1
	if opts.UseKeyID {
		version = 3 // subjectKeyIdentifier: version 3 (RFC 5652 5.1, 5.3)
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
				b.AddASN1Int64(version)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(digestOID) })
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData) })
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignerInfo
						b.AddASN1Int64(version)
						if opts.UseKeyID {
							b.AddASN1(tagKeyID, func(b *cryptobyte.Builder) { b.AddBytes(cert.SubjectKeyId) })
						} else {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddBytes(cert.RawIssuer)
								b.AddASN1BigInt(cert.SerialNumber)
							})
						}
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(digestOID) })
						if attrs != nil {
							b.AddUint8(0xa0) // [0] IMPLICIT: the SET's tag replaced
							b.AddBytes(attrs[1:])
						}
						b.AddASN1(cbasn1.SEQUENCE, sigAlg)
						b.AddASN1OctetString(sig)
					})
				})
			})
		})
	})
	p7, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("modsig: encoding the PKCS#7: %w", err)
	}
	if len(p7) > maxSignatureLen {
		return nil, fmt.Errorf("modsig: the PKCS#7 is %d bytes, over the %d-byte cap Find applies", len(p7), maxSignatureLen)
	}
	out := make([]byte, 0, len(p7)+trailerLen)
	out = append(out, p7...)
	out = append(out, 0, 0, pkeyIDPKCS7, 0, 0, 0, 0, 0) // algo, hash, id_type, signer_len, key_id_len, __pad
	out = binary.BigEndian.AppendUint32(out, uint32(len(p7)))
	return append(out, Magic...), nil
}

// signedAttributes returns the DER SET OF the contentType (id-data) and
// messageDigest attributes, sorted as DER requires of a SET OF.
func signedAttributes(digest []byte) ([]byte, error) {
	var list [][]byte
	for _, add := range []func(b *cryptobyte.Builder){
		func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidContentType)
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData) })
		},
		func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidMessageDigest)
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddASN1OctetString(digest) })
		},
	} {
		b := cryptobyte.NewBuilder(nil)
		b.AddASN1(cbasn1.SEQUENCE, add)
		der, err := b.Bytes()
		if err != nil {
			return nil, fmt.Errorf("modsig: encoding signed attributes: %w", err)
		}
		list = append(list, der)
	}
	slices.SortFunc(list, bytes.Compare)
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, der := range list {
			b.AddBytes(der)
		}
	})
	return b.Bytes()
}
