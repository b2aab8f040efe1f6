// Package modsig reads, verifies and makes Linux kernel module appended
// signatures: the format scripts/sign-file writes at the end of a .ko file,
// which the kernel (module loading, and IMA's "modsig") checks.
//
// A signed file is laid out as
//
//	[0, SignedLen)   the signed content (the module, an ELF file)
//	PKCS#7           a CMS SignedData in DER, detached, over that content
//	12 bytes         struct module_signature: algo, hash, id_type, signer_len,
//	                 key_id_len (u8 each), 3 bytes of padding, sig_len (__be32);
//	                 id_type is PKEY_ID_PKCS7 (2), every other byte but sig_len 0
//	28 bytes         [Magic], "~Module signature appended~\n"
//
// sign-file makes the SignedData with no certificates, no signed attributes
// (the signature is directly over the content digest), the signer named by
// issuer and serial number (or by subject key identifier with -k), RSA
// PKCS#1 v1.5 or ECDSA. Only the last signature of a file counts: signing a
// signed file again appends a second signature whose content includes the
// first (see [Sign]).
//
// Use [Find] to read the trailer, hash the first [Appended.SignedLen] bytes
// of the file with [Appended.DigestAlgorithm], then [Appended.Verify] the
// digest against candidate certificates.
//
// # Security
//
// Everything Find reads is untrusted. It reads the 40-byte trailer and then
// the PKCS#7 blob, whose length it first checks against the file size and
// against a 64 KiB cap (sign-file's output is well under 1 KiB; even an
// ML-DSA-87 signature with signed attributes is under 6 KiB, and a few
// embedded certificates fit easily), so a hostile file costs at most one
// 64 KiB allocation. The DER is parsed with cryptobyte, which refuses
// indefinite and non-minimal lengths, and every element is bounded by its
// parent. A panic in Find or Verify is recovered and reported as an error or
// a Problem.
//
// What no signature covers and nothing reads must not carry data either:
// Find refuses a signature whose certificate set holds anything but X.509
// certificates, whose CRLs are not well-formed CertificateLists (at most
// 8), whose digestAlgorithms or SignerInfo algorithms have parameters other
// than NULL (or RSA-PSS parameters), or whose unsigned attributes (sign-file
// writes none, the kernel reads none) are malformed or over
// limits.MaxUnknownUnsignedAttributes bytes.
//
// Verify trusts nothing in the signature itself: the signer certificate
// comes from the candidates the caller supplies (certificates embedded in
// the PKCS#7, which sign-file never adds, only extend that pool), and a
// candidate is the signer only if it matches the SignerInfo's identifier
// and its key verifies the signature. Verify says which certificates signed
// what; it does not decide whether they are trusted, whether their validity
// period or key usage matters, or whether a digest algorithm such as SHA-1
// is acceptable: that is policy (package cipolicy).
//
// Linux refuses module signatures that carry signed attributes ("Invalid
// module sig (has authattrs)", crypto/asymmetric_keys/pkcs7_verify.c, in 6.1
// and in mainline before the 2026 ML-DSA module-signing patches, which lift
// the check and make sign-file add contentType and messageDigest for ML-DSA
// keys). Verify checks signed attributes when present (contentType and
// messageDigest, signature over the attributes) and reports their presence
// in [Appended.SignedAttributes] so that a policy can refuse them.
package modsig

import (
	"bytes"
	"crypto"
	_ "crypto/sha1" // SHA-1 module signatures exist (old kernels); policy judges them
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/sigstate"
	"github.com/codesignval/csv/signing"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Magic ends every appended signature.
const Magic = "~Module signature appended~\n"

const (
	// sigInfoLen is the size of struct module_signature.
	sigInfoLen = 12
	// trailerLen is module_signature plus Magic.
	trailerLen = sigInfoLen + len(Magic)
	// pkeyIDPKCS7 is id_type for a PKCS#7 signature (PKEY_ID_PKCS7).
	pkeyIDPKCS7 = 2
	// maxSignatureLen caps sig_len: see the package's Security section.
	maxSignatureLen = 64 << 10
	// maxCertificates caps the certificates a PKCS#7 may embed.
	maxCertificates = 32
	// maxSignedAttributes caps the signed attributes of the SignerInfo.
	maxSignedAttributes = 64
	// maxCRLs and maxDigestAlgorithms cap the SignedData's crls (sign-file
	// writes none) and digestAlgorithms (it writes one).
	maxCRLs             = 8
	maxDigestAlgorithms = 8
	// maxPSSParams caps RSASSA-PSS-params (real ones are under 70 bytes).
	maxPSSParams = 256
)

var (
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidRSAPSS        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidECPublicKey   = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
)

// Signature algorithms a SignerInfo may name, with the digest they imply
// (0: the SignerInfo's digest algorithm).
var sigAlgs = []struct {
	oid  asn1.ObjectIdentifier
	kind string
	hash crypto.Hash
}{
	{oidRSAEncryption, "RSA", 0}, // what OpenSSL, and so sign-file, writes
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}, "RSA", crypto.SHA1},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, "RSA", crypto.SHA256},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}, "RSA", crypto.SHA384},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}, "RSA", crypto.SHA512},
	{oidRSAPSS, "RSA-PSS", 0}, // digest from the parameters
	{oidECPublicKey, "ECDSA", 0},
	{asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}, "ECDSA", crypto.SHA1},
	{asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}, "ECDSA", crypto.SHA256},
	{asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}, "ECDSA", crypto.SHA384},
	{asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}, "ECDSA", crypto.SHA512},
}

// FormatError reports an appended signature that is present (the file ends
// with [Magic]) but inconsistent or malformed. Offset is the file offset of
// the offending field or DER element.
type FormatError struct {
	Offset int64
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("modsig: malformed appended signature at offset %#x: %s", e.Offset, e.Reason)
}

// Problems Verify reports; test them with errors.Is. A signature that does
// not verify wraps [signing.ErrSignature].
var (
	// ErrNoSigner: no candidate certificate matches the SignerInfo's
	// issuer and serial number (or subject key identifier).
	ErrNoSigner = errors.New("modsig: no candidate certificate matches the signer")
	// ErrDigestMismatch: the digest passed to Verify is not the one the
	// signature carries (signed messageDigest attribute), or has the wrong
	// size for the digest algorithm.
	ErrDigestMismatch = errors.New("modsig: file digest does not match the signature")
	// ErrSignedAttributes: signed attributes are present but inconsistent
	// (contentType or messageDigest missing, repeated or wrong).
	ErrSignedAttributes = errors.New("modsig: inconsistent signed attributes")
	// ErrUnsupported: the signature algorithm or the signer's key type is
	// one Verify cannot check.
	ErrUnsupported = errors.New("modsig: unsupported signature algorithm")

	errPanic = errors.New("modsig: internal error")
)

// Appended is an appended signature found at the end of a file.
type Appended struct {
	// SignedLen is the number of bytes of the file the signature covers:
	// [0, SignedLen). The PKCS#7 blob starts at SignedLen.
	SignedLen int64
	// PKCS7 is the DER signature (a CMS ContentInfo holding SignedData).
	PKCS7 []byte
	// DigestAlgorithm is the hash the signer used (from the SignerInfo),
	// known after Find.
	DigestAlgorithm crypto.Hash
	// SignedAttributes reports whether the SignerInfo carries signed
	// attributes. sign-file writes them only for ML-DSA keys (since the
	// 2026 ML-DSA patches), and kernels without those patches refuse
	// module signatures that have them.
	SignedAttributes bool

	// The SignerInfo, as parsed by Find.
	issuer    []byte   // issuerAndSerialNumber: raw DER Name
	serial    *big.Int // issuerAndSerialNumber: serial number
	keyID     []byte   // subjectKeyIdentifier, if the signer is named so
	sigAlg    asn1.ObjectIdentifier
	sigParams []byte // raw parameters of the signature algorithm
	signature []byte
	attrsRaw  []byte      // the [0] IMPLICIT signed attributes element
	attrs     []attribute // parsed signedAttrs
	certs     []*signing.Certificate
}

type attribute struct {
	oid    asn1.ObjectIdentifier
	values []cryptobyte.String // each value's full DER element
}

// Find looks for an appended signature at the end of the size-byte file in
// r. It returns (nil, nil) when the file does not end with [Magic]: an
// unsigned file is not an error. It reads the 40-byte trailer and then the
// signature, sig_len bytes capped at 64 KiB, and nothing else. When the
// trailer is present but inconsistent (sig_len zero, over the cap or larger
// than the file, id_type not PKCS#7, non-zero reserved fields, a PKCS#7 that
// does not parse, not exactly one SignerInfo, an unknown digest algorithm)
// it returns a *[FormatError] naming the offset. Read errors are returned
// as they are, wrapped.
func Find(r io.ReaderAt, size int64) (a *Appended, err error) {
	defer func() {
		if p := recover(); p != nil {
			a, err = nil, fmt.Errorf("%w: panic in Find: %v", errPanic, p)
		}
	}()
	if size < int64(len(Magic)) {
		return nil, nil
	}
	if size < int64(trailerLen) {
		var m [len(Magic)]byte
		if err := readFull(r, m[:], size-int64(len(m))); err != nil {
			return nil, err
		}
		if string(m[:]) != Magic {
			return nil, nil
		}
		return nil, &FormatError{Offset: 0, Reason: fmt.Sprintf("file of %d bytes ends with the signature magic but has no room for the %d-byte trailer", size, trailerLen)}
	}
	tOff := size - int64(trailerLen)
	var t [trailerLen]byte
	if err := readFull(r, t[:], tOff); err != nil {
		return nil, err
	}
	if string(t[sigInfoLen:]) != Magic {
		return nil, nil
	}
	// struct module_signature, checked as the kernel's mod_check_sig does.
	sigLen := int64(binary.BigEndian.Uint32(t[8:12]))
	switch {
	case t[2] != pkeyIDPKCS7:
		return nil, &FormatError{Offset: tOff + 2, Reason: fmt.Sprintf("id_type %d is not PKEY_ID_PKCS7 (2)", t[2])}
	case t[0] != 0 || t[1] != 0 || t[3] != 0 || t[4] != 0 || t[5] != 0 || t[6] != 0 || t[7] != 0:
		return nil, &FormatError{Offset: tOff, Reason: fmt.Sprintf("module_signature fields % x must be zero for PKCS#7", t[:8])}
	case sigLen == 0:
		return nil, &FormatError{Offset: tOff + 8, Reason: "sig_len is zero"}
	case sigLen >= tOff:
		return nil, &FormatError{Offset: tOff + 8, Reason: fmt.Sprintf("sig_len %d leaves no signed content before the %d bytes at the trailer", sigLen, tOff)}
	case sigLen > maxSignatureLen:
		return nil, &FormatError{Offset: tOff + 8, Reason: fmt.Sprintf("sig_len %d exceeds the %d-byte cap", sigLen, maxSignatureLen)}
	}
	a = &Appended{SignedLen: tOff - sigLen}
	a.PKCS7 = make([]byte, sigLen)
	if err := readFull(r, a.PKCS7, a.SignedLen); err != nil {
		return nil, err
	}
	if err := a.parse(); err != nil {
		return nil, err
	}
	return a, nil
}

func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("modsig: reading %d bytes at offset %#x: %w", len(b), off, err)
}

// der tracks where, in the file, a cryptobyte.String being parsed lies.
type der struct {
	buf  []byte // the whole blob; every String parsed is a sub-slice of it
	base int64  // its offset in the file
}

// off is the file offset of the first byte of s: s shares buf's backing
// array and runs to its end, so the difference of capacities is s's index.
func (d der) off(s []byte) int64 { return d.base + int64(cap(d.buf)-cap(s)) }

func (d der) errf(s []byte, format string, args ...any) error {
	return &FormatError{Offset: d.off(s), Reason: fmt.Sprintf(format, args...)}
}

var (
	tagExplicit0 = cbasn1.Tag(0).Constructed().ContextSpecific()
	tagImplicit1 = cbasn1.Tag(1).Constructed().ContextSpecific()
	tagKeyID     = cbasn1.Tag(0).ContextSpecific() // [0] IMPLICIT OCTET STRING
)

// parse reads the CMS ContentInfo in a.PKCS7 (RFC 5652).
func (a *Appended) parse() error {
	d := der{buf: a.PKCS7, base: a.SignedLen}
	in := cryptobyte.String(a.PKCS7)
	var ci, sdWrap, sd cryptobyte.String
	// A failed ReadASN1 may have consumed the element (its tag was
	// wrong), so errors name the offset saved before each read: at.
	at := in
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) {
		return d.errf(at, "PKCS#7 does not parse: not a DER SEQUENCE")
	}
	if !in.Empty() {
		return d.errf(in, "%d bytes follow the PKCS#7 ContentInfo within sig_len", len(in))
	}
	var ctype asn1.ObjectIdentifier
	at = ci
	if !ci.ReadASN1ObjectIdentifier(&ctype) {
		return d.errf(at, "PKCS#7 does not parse: no content type")
	}
	if !ctype.Equal(oidSignedData) {
		return d.errf(at, "PKCS#7 content type %v is not signedData", ctype)
	}
	at = ci
	if !ci.ReadASN1(&sdWrap, tagExplicit0) || !ci.Empty() || !sdWrap.ReadASN1(&sd, cbasn1.SEQUENCE) || !sdWrap.Empty() {
		return d.errf(at, "PKCS#7 does not parse: bad SignedData")
	}
	var version int64
	var digestAlgs, encap cryptobyte.String
	at = sd
	if !sd.ReadASN1Integer(&version) || !sd.ReadASN1(&digestAlgs, cbasn1.SET) {
		return d.errf(at, "SignedData does not parse: bad version or digestAlgorithms")
	}
	for n := 0; !digestAlgs.Empty(); n++ {
		at := digestAlgs
		var alg cryptobyte.String
		var oid asn1.ObjectIdentifier
		if n == maxDigestAlgorithms {
			return d.errf(at, "more than %d digestAlgorithms", maxDigestAlgorithms)
		}
		if !digestAlgs.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) || !nullParams(alg) {
			return d.errf(at, "digestAlgorithms entry %d is not an AlgorithmIdentifier with NULL or no parameters", n)
		}
	}
	at = sd
	var etype asn1.ObjectIdentifier
	if !sd.ReadASN1(&encap, cbasn1.SEQUENCE) || !encap.ReadASN1ObjectIdentifier(&etype) {
		return d.errf(at, "SignedData does not parse: bad encapContentInfo")
	}
	if !etype.Equal(oidData) {
		return d.errf(at, "encapsulated content type %v is not id-data", etype)
	}
	if !encap.Empty() {
		return d.errf(encap, "the PKCS#7 carries its content; a module signature is detached")
	}
	if sd.PeekASN1Tag(tagExplicit0) { // certificates [0] IMPLICIT CertificateSet
		at = sd
		var set cryptobyte.String
		if !sd.ReadASN1(&set, tagExplicit0) {
			return d.errf(at, "SignedData does not parse: bad certificates")
		}
		for !set.Empty() {
			if !set.PeekASN1Tag(cbasn1.SEQUENCE) {
				// An extended, attribute or other certificate: the
				// kernel reads none, nobody signed it.
				return d.errf(set, "embedded certificate #%d is not an X.509 certificate (tag %#x)", len(a.certs), set[0])
			}
			if len(a.certs) == maxCertificates {
				return d.errf(set, "more than %d embedded certificates", maxCertificates)
			}
			var raw cryptobyte.String
			at := set
			if !set.ReadASN1Element(&raw, cbasn1.SEQUENCE) {
				return d.errf(at, "SignedData does not parse: bad certificate")
			}
			c, err := signing.ParseCertificate(raw)
			if err != nil {
				return d.errf(at, "embedded certificate #%d: %v", len(a.certs), err)
			}
			a.certs = append(a.certs, c)
		}
	}
	if sd.PeekASN1Tag(tagImplicit1) {
		// Nothing checks a CRL here (the kernel ignores them), but what is
		// there must be one: a well-formed CertificateList, few of them.
		var crls cryptobyte.String
		at = sd
		if !sd.ReadASN1(&crls, tagImplicit1) {
			return d.errf(at, "SignedData does not parse: bad crls")
		}
		for n := 0; !crls.Empty(); n++ {
			at := crls
			var crl cryptobyte.String
			if n == maxCRLs {
				return d.errf(at, "more than %d CRLs", maxCRLs)
			}
			if !crls.ReadASN1Element(&crl, cbasn1.SEQUENCE) {
				return d.errf(at, "CRL #%d is not a DER SEQUENCE", n)
			}
			if _, err := x509.ParseRevocationList(crl); err != nil {
				return d.errf(at, "CRL #%d is not a CertificateList: %v", n, err)
			}
		}
	}
	var sis, si cryptobyte.String
	at = sd
	if !sd.ReadASN1(&sis, cbasn1.SET) || !sd.Empty() {
		return d.errf(at, "SignedData does not parse: bad signerInfos")
	}
	if sis.Empty() {
		return d.errf(at, "the PKCS#7 has no SignerInfo")
	}
	at = sis
	if !sis.ReadASN1(&si, cbasn1.SEQUENCE) {
		return d.errf(at, "SignerInfo does not parse")
	}
	if !sis.Empty() {
		return d.errf(sis, "the PKCS#7 has more than one SignerInfo")
	}
	return a.parseSignerInfo(d, si)
}

func (a *Appended) parseSignerInfo(d der, si cryptobyte.String) error {
	var version int64
	at := si
	if !si.ReadASN1Integer(&version) {
		return d.errf(at, "SignerInfo does not parse: bad version")
	}
	switch {
	case si.PeekASN1Tag(cbasn1.SEQUENCE):
		var ias, issuer, serial cryptobyte.String
		at = si
		if !si.ReadASN1(&ias, cbasn1.SEQUENCE) || !ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
			!ias.ReadASN1(&serial, cbasn1.INTEGER) || !ias.Empty() || len(serial) == 0 {
			return d.errf(at, "SignerInfo does not parse: bad issuerAndSerialNumber")
		}
		a.issuer = issuer
		a.serial = new(big.Int).SetBytes(serial)
		if serial[0]&0x80 != 0 { // two's complement, as signing.ParseCertificate reads it
			a.serial.Sub(a.serial, new(big.Int).Lsh(big.NewInt(1), uint(len(serial))*8))
		}
	case si.PeekASN1Tag(tagKeyID):
		var id cryptobyte.String
		at = si
		if !si.ReadASN1(&id, tagKeyID) || len(id) == 0 {
			return d.errf(at, "SignerInfo does not parse: bad subjectKeyIdentifier")
		}
		a.keyID = id
	default:
		return d.errf(si, "SignerInfo does not parse: unknown signer identifier")
	}
	at = si
	var alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !si.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) || !nullParams(alg) {
		return d.errf(at, "SignerInfo does not parse: bad digestAlgorithm (parameters must be NULL or absent)")
	}
	h, ok := signing.HashForOID(oid)
	if !ok || h == crypto.MD5 || !h.Available() {
		return d.errf(at, "unknown digest algorithm %v", oid)
	}
	a.DigestAlgorithm = h
	if si.PeekASN1Tag(tagExplicit0) {
		at = si
		var raw cryptobyte.String
		if !si.ReadASN1Element(&raw, tagExplicit0) {
			return d.errf(at, "SignerInfo does not parse: bad signed attributes")
		}
		a.SignedAttributes = true
		a.attrsRaw = raw
		set := raw
		var body cryptobyte.String
		set.ReadASN1(&body, tagExplicit0) // cannot fail: just read as an element
		for !body.Empty() {
			if len(a.attrs) == maxSignedAttributes {
				return d.errf(body, "more than %d signed attributes", maxSignedAttributes)
			}
			var attr, vals cryptobyte.String
			var aoid asn1.ObjectIdentifier
			at := body
			if !body.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&aoid) ||
				!attr.ReadASN1(&vals, cbasn1.SET) || !attr.Empty() {
				return d.errf(at, "signed attribute #%d does not parse", len(a.attrs))
			}
			at2 := attribute{oid: aoid}
			for !vals.Empty() {
				if len(at2.values) == maxSignedAttributes {
					return d.errf(vals, "signed attribute #%d has more than %d values", len(a.attrs), maxSignedAttributes)
				}
				var v cryptobyte.String
				if !vals.ReadAnyASN1Element(&v, nil) {
					return d.errf(vals, "signed attribute #%d: bad value", len(a.attrs))
				}
				at2.values = append(at2.values, v)
			}
			a.attrs = append(a.attrs, at2)
		}
	}
	at = si
	if !si.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&a.sigAlg) {
		return d.errf(at, "SignerInfo does not parse: bad signatureAlgorithm")
	}
	if !nullParams(alg) && !(a.sigAlg.Equal(oidRSAPSS) && pssParamsShape(alg)) {
		return d.errf(at, "signatureAlgorithm %v has %d bytes of parameters that are neither NULL nor RSA-PSS parameters", a.sigAlg, len(alg))
	}
	a.sigParams = alg
	at = si
	var sig cryptobyte.String
	if !si.ReadASN1(&sig, cbasn1.OCTET_STRING) || len(sig) == 0 {
		return d.errf(at, "SignerInfo does not parse: bad signature")
	}
	a.signature = sig
	if si.PeekASN1Tag(tagImplicit1) {
		// Unsigned attributes: sign-file writes none and the kernel reads
		// none, so no signature covers them. Well-formed and small, or
		// refused.
		at = si
		var attrs cryptobyte.String
		if !si.ReadASN1(&attrs, tagImplicit1) {
			return d.errf(at, "SignerInfo does not parse: bad unsigned attributes")
		}
		if len(attrs) > limits.MaxUnknownUnsignedAttributes {
			return d.errf(at, "%d bytes of unsigned attributes (at most %d: nothing reads them, no signature covers them)", len(attrs), limits.MaxUnknownUnsignedAttributes)
		}
		for n := 0; !attrs.Empty(); n++ {
			at := attrs
			var attr, vals cryptobyte.String
			var aoid asn1.ObjectIdentifier
			if !attrs.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&aoid) ||
				!attr.ReadASN1(&vals, cbasn1.SET) || !attr.Empty() {
				return d.errf(at, "unsigned attribute #%d does not parse", n)
			}
			for !vals.Empty() {
				var v cryptobyte.String
				if !vals.ReadAnyASN1Element(&v, nil) {
					return d.errf(at, "unsigned attribute #%d: bad value", n)
				}
			}
		}
	}
	if !si.Empty() {
		return d.errf(si, "SignerInfo does not parse: trailing data")
	}
	return nil
}

// nullParams reports whether what is left of an AlgorithmIdentifier after
// its OID is nothing or a NULL: parameters a digest algorithm or an RSA or
// ECDSA signature algorithm never needs, and that no signature covers.
func nullParams(rest cryptobyte.String) bool {
	return len(rest) == 0 || (len(rest) == 2 && rest[0] == 0x05 && rest[1] == 0)
}

// pssParamsShape reports whether what is left of an RSA-PSS
// AlgorithmIdentifier after its OID is one small SEQUENCE
// (RSASSA-PSS-params; pssHash reads it).
func pssParamsShape(rest cryptobyte.String) bool {
	var seq cryptobyte.String
	return len(rest) <= maxPSSParams && rest.ReadASN1Element(&seq, cbasn1.SEQUENCE) && rest.Empty()
}

// signer describes the SignerInfo's signer identifier for messages.
func (a *Appended) signer() string {
	if a.keyID != nil {
		return fmt.Sprintf("subject key identifier %X", a.keyID)
	}
	name := fmt.Sprintf("%X", a.issuer)
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(a.issuer, &rdn); err == nil && len(rest) == 0 {
		var n pkix.Name
		n.FillFromRDNSequence(&rdn)
		name = n.String()
	}
	return fmt.Sprintf("issuer %q serial %#x", name, a.serial)
}

// matches reports whether c is the certificate the SignerInfo names.
func (a *Appended) matches(c *signing.Certificate) bool {
	if a.keyID != nil {
		return len(c.SubjectKeyID) > 0 && bytes.Equal(c.SubjectKeyID, a.keyID)
	}
	return c.SerialNumber != nil && a.serial != nil && c.SerialNumber.Cmp(a.serial) == 0 && bytes.Equal(c.RawIssuer, a.issuer)
}

// algorithm returns the key kind of the signature algorithm, after checking
// that the digest it implies is the SignerInfo's digest algorithm.
func (a *Appended) algorithm() (string, error) {
	for _, s := range sigAlgs {
		if !s.oid.Equal(a.sigAlg) {
			continue
		}
		h := s.hash
		if s.kind == "RSA-PSS" {
			var err error
			if h, err = pssHash(a.sigParams); err != nil {
				return s.kind, err
			}
		}
		if h != 0 && h != a.DigestAlgorithm {
			return s.kind, fmt.Errorf("%w: signature algorithm %v uses %v but the digest algorithm is %v", ErrUnsupported, a.sigAlg, h, a.DigestAlgorithm)
		}
		return s.kind, nil
	}
	return "", fmt.Errorf("%w: %v", ErrUnsupported, a.sigAlg)
}

// pssHash reads the hash algorithm of RSASSA-PSS-params (SHA-1 if absent).
func pssHash(params []byte) (crypto.Hash, error) {
	s := cryptobyte.String(params)
	var seq, wrap, alg cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return 0, fmt.Errorf("%w: RSA-PSS without parameters", ErrUnsupported)
	}
	if !seq.PeekASN1Tag(tagExplicit0) {
		return crypto.SHA1, nil
	}
	var oid asn1.ObjectIdentifier
	if !seq.ReadASN1(&wrap, tagExplicit0) || !wrap.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
		return 0, fmt.Errorf("%w: bad RSA-PSS parameters", ErrUnsupported)
	}
	h, ok := signing.HashForOID(oid)
	if !ok || h == crypto.MD5 {
		return 0, fmt.Errorf("%w: RSA-PSS hash %v", ErrUnsupported, oid)
	}
	return h, nil
}

// Verify checks the signature against digest, the hash (with
// a.DigestAlgorithm) of the file's first a.SignedLen bytes, which the caller
// computes in its single streaming pass. The signature carries no
// certificates (sign-file adds none), so the signer comes from candidates:
// the policy's certificates and any the operator supplies.
//
// Checks, in order:
//
//  1. the signature algorithm is RSA (PKCS#1 v1.5), RSA-PSS or ECDSA, and
//     any digest it names is the SignerInfo's digest algorithm;
//  2. digest has the size of that digest algorithm;
//  3. a candidate (or a certificate embedded in the PKCS#7) matches the
//     SignerInfo's signer identifier: issuer (raw DER) and serial number,
//     or subject key identifier;
//  4. if signed attributes are present, exactly one contentType (id-data)
//     and exactly one messageDigest, equal to digest; the signature is
//     then over the DER SET of the attributes, otherwise directly over
//     digest;
//  5. the signature verifies with the matching certificate's key (each
//     matching candidate is tried; the first whose key verifies is the
//     signer).
//
// It returns a *signing.Signature with Format "modsig", Index 0,
// DigestAlgorithm, SignatureAlgorithm, Chains built by [signing.BuildChains]
// from the signer through the candidates, Certificates (those embedded, if
// any), Digest (the messageDigest attribute, or digest once verified),
// Verified, and Problem when not verified. Problem wraps [ErrNoSigner],
// [ErrDigestMismatch], [ErrSignedAttributes], [ErrUnsupported] or
// [signing.ErrSignature]. Verify does not check validity periods, key
// usage or trust: that is policy.
func (a *Appended) Verify(digest []byte, candidates []*signing.Certificate) (s *signing.Signature) {
	s = &signing.Signature{Format: "modsig", Index: 0, DigestAlgorithm: a.DigestAlgorithm, Certificates: a.certs}
	defer func() {
		if p := recover(); p != nil {
			s.Problem = fmt.Errorf("%w: panic in Verify: %v", errPanic, p)
		}
	}()
	kind, algErr := a.algorithm()
	s.SignatureAlgorithm = kind
	pool := signing.Dedup(append(append([]*signing.Certificate{}, a.certs...), candidates...))
	var matching []*signing.Certificate
	for _, c := range pool {
		if a.matches(c) {
			matching = append(matching, c)
		}
	}
	if len(matching) > 0 {
		// Until a key verifies, report the first match's chains.
		s.Chains = signing.BuildChains(matching[0], pool)
	}
	if a.SignedAttributes {
		if md := a.messageDigest(); md != nil {
			s.Digest = md
		}
	}
	switch {
	case algErr != nil:
		s.Problem = algErr
		return s
	case len(digest) != a.DigestAlgorithm.Size():
		s.Problem = fmt.Errorf("%w: the digest is %d bytes, %v digests are %d", ErrDigestMismatch, len(digest), a.DigestAlgorithm, a.DigestAlgorithm.Size())
		return s
	case len(matching) == 0:
		s.Problem = fmt.Errorf("%w: %s (%d candidates)", ErrNoSigner, a.signer(), len(pool))
		return s
	}
	signed := digest
	if a.SignedAttributes {
		if err := a.checkAttributes(digest); err != nil {
			s.Problem = err
			return s
		}
		// The signature is over the DER SET OF the attributes: the [0]
		// IMPLICIT tag replaced by the universal SET tag (RFC 5652 5.4).
		h := a.DigestAlgorithm.New()
		h.Write([]byte{0x31})
		h.Write(a.attrsRaw[1:])
		signed = h.Sum(nil)
	}
	var firstErr error
	for _, c := range matching {
		err := signing.CheckPrecomputed(c.PublicKey, kind, a.DigestAlgorithm, signed, a.signature)
		if err == nil {
			s.Chains = signing.BuildChains(c, pool)
			s.Digest = append([]byte(nil), digest...)
			sigstate.Verified(s)
			return s
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("modsig: %w (%s, key of %q)", err, a.signer(), c.Subject.String())
		}
	}
	s.Problem = firstErr
	return s
}

// messageDigest returns the value of the first messageDigest attribute.
func (a *Appended) messageDigest() []byte {
	for _, at := range a.attrs {
		if at.oid.Equal(oidMessageDigest) && len(at.values) > 0 {
			v := at.values[0]
			var md cryptobyte.String
			if v.ReadASN1(&md, cbasn1.OCTET_STRING) {
				return append([]byte(nil), md...)
			}
		}
	}
	return nil
}

func (a *Appended) checkAttributes(digest []byte) error {
	var ctypes, mds int
	for _, at := range a.attrs {
		switch {
		case at.oid.Equal(oidContentType):
			ctypes++
			var oid asn1.ObjectIdentifier
			if len(at.values) != 1 {
				return fmt.Errorf("%w: contentType has %d values, want one", ErrSignedAttributes, len(at.values))
			}
			v := at.values[0] // a copy: reading must not consume a.attrs
			if !v.ReadASN1ObjectIdentifier(&oid) || !v.Empty() {
				return fmt.Errorf("%w: contentType must have one OBJECT IDENTIFIER value", ErrSignedAttributes)
			}
			if !oid.Equal(oidData) {
				return fmt.Errorf("%w: contentType %v is not id-data", ErrSignedAttributes, oid)
			}
		case at.oid.Equal(oidMessageDigest):
			mds++
			var md cryptobyte.String
			if len(at.values) != 1 {
				return fmt.Errorf("%w: messageDigest has %d values, want one", ErrSignedAttributes, len(at.values))
			}
			v := at.values[0]
			if !v.ReadASN1(&md, cbasn1.OCTET_STRING) || !v.Empty() {
				return fmt.Errorf("%w: messageDigest must have one OCTET STRING value", ErrSignedAttributes)
			}
			if !bytes.Equal(md, digest) {
				return fmt.Errorf("%w: the signed messageDigest is %X, the file's %v digest is %X", ErrDigestMismatch, []byte(md), a.DigestAlgorithm, digest)
			}
		}
	}
	if ctypes != 1 || mds != 1 {
		return fmt.Errorf("%w: %d contentType and %d messageDigest attributes, want one each", ErrSignedAttributes, ctypes, mds)
	}
	return nil
}
