package modsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/cryptobyte"

	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/cms"
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
		return nil, signing.Errorf(signing.ErrUnsupportedAlgorithm, "modsig: digest algorithm %v not supported for signing (SHA256, SHA384, SHA512)", h)
	}
	if len(digest) != h.Size() {
		return nil, signing.Errorf(signing.ErrDigestNotComputed, "modsig: the digest is %d bytes, %v digests are %d", len(digest), h, h.Size())
	}
	if cert == nil || signer == nil {
		return nil, signing.Errorf(signing.ErrSigner, "modsig: signing needs a certificate and a signer")
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, signing.Errorf(signing.ErrSigner, "modsig: the signer's key is not the public key of %q", signing.NameString(cert.Subject))
	}
	if opts.UseKeyID && len(cert.SubjectKeyId) == 0 {
		return nil, signing.Errorf(signing.ErrSigner, "modsig: certificate %q has no subject key identifier", signing.NameString(cert.Subject))
	}
	digestOID, _ := signing.OIDForHash(h)
	digestAlg := cms.AlgorithmIdentifier{OID: cms.NewOID(digestOID...)} // no parameters, as sign-file writes it
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
		return nil, signing.Errorf(signing.ErrUnsupportedAlgorithm, "modsig: %T keys not supported for signing (RSA, ECDSA)", cert.PublicKey)
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
		return nil, signing.Errorf(signing.ErrSigner, "modsig: the signer made a signature that does not verify: %w", err)
	}

	t := cms.SignerInfoTemplate{Version: 1, Issuer: cert.RawIssuer, SerialNumber: cert.SerialNumber,
		DigestAlgorithm: digestAlg, SignedAttributes: attrs, SignatureAlgorithm: sigAlg, Signature: sig}
	if opts.UseKeyID {
		// subjectKeyIdentifier: version 3 (RFC 5652 5.1, 5.3)
		t.Version, t.SubjectKeyID = 3, cert.SubjectKeyId
	}
	si, err := cms.MarshalSignerInfo(t)
	if err != nil {
		return nil, fmt.Errorf("modsig: encoding the PKCS#7: %w", err)
	}
	p7, err := cms.MarshalSignedData(cms.SignedDataTemplate{Version: t.Version, DigestAlgorithms: []cms.AlgorithmIdentifier{digestAlg},
		ContentType: cms.OIDData, SignerInfos: [][]byte{si}})
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
	md := cryptobyte.NewBuilder(nil)
	md.AddASN1OctetString(digest)
	mdv, err := md.Bytes()
	if err != nil {
		return nil, fmt.Errorf("modsig: encoding signed attributes: %w", err)
	}
	ct, err := cms.NewAttribute(cms.OIDContentType, cms.OIDData)
	if err != nil {
		return nil, fmt.Errorf("modsig: encoding signed attributes: %w", err)
	}
	mda, err := cms.NewAttribute(cms.OIDMessageDigest, mdv)
	if err != nil {
		return nil, fmt.Errorf("modsig: encoding signed attributes: %w", err)
	}
	return cms.SignedAttributes(ct, mda)
}
