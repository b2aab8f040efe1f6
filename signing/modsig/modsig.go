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
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/internal/sigstate"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/cms"
)

// Magic ends every appended signature.
const Magic = "~Module signature appended~\n"

// Format is how messages name what Find reads (signing.MalformedError's
// Format), and Signature.Format for the signatures Verify returns is
// SignatureFormat.
const (
	Format          = "appended signature"
	SignatureFormat = "modsig"
)

const (
	// sigInfoLen is the size of struct module_signature.
	sigInfoLen = 12
	// trailerLen is module_signature plus Magic.
	trailerLen = sigInfoLen + len(Magic)
	// pkeyIDPKCS7 is id_type for a PKCS#7 signature (PKEY_ID_PKCS7).
	pkeyIDPKCS7 = 2
	// maxSignatureLen caps sig_len: see the package's Security section.
	maxSignatureLen = 64 << 10
	// MaxTail is the most Find reads of a file: its last MaxTail bytes.
	MaxTail = trailerLen + maxSignatureLen
)

// FormatError is the error Find returns for an appended signature that is
// present (the file ends with [Magic]) but inconsistent or malformed:
// Offset is the file offset of the offending field or DER element.
//
// Deprecated: it is signing.MalformedError, the one malformed-input type.
type FormatError = signing.MalformedError

// Problems Verify reports; test them with errors.Is. A signature that does
// not verify wraps signing.ErrSignature. They are the signing package's
// sentinels, kept under the names earlier versions exported.
//
// Deprecated: test for the signing sentinels.
var (
	// ErrNoSigner: no candidate certificate matches the SignerInfo's
	// issuer and serial number (or subject key identifier).
	ErrNoSigner = signing.ErrSignerNotFound
	// ErrDigestMismatch: the digest passed to Verify is not the one the
	// signature carries (signed messageDigest attribute), or has the wrong
	// size for the digest algorithm.
	ErrDigestMismatch = signing.ErrDigestMismatch
	// ErrSignedAttributes: signed attributes are present but inconsistent
	// (contentType or messageDigest missing, repeated or wrong).
	ErrSignedAttributes = signing.ErrSignedAttributes
	// ErrUnsupported: the signature algorithm or the signer's key type is
	// one Verify cannot check.
	ErrUnsupported = signing.ErrUnsupportedAlgorithm
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

	si    *cms.SignerInfo // the one SignerInfo, as Find parsed it
	certs []*signing.Certificate
}

// malformed returns Find's error for a problem at file offset off.
func malformed(off int64, format string, args ...any) error {
	return fmt.Errorf("modsig: %w", &signing.MalformedError{Format: Format, Offset: off, Reason: fmt.Sprintf(format, args...)})
}

// Find looks for an appended signature at the end of the size-byte file in
// r. It returns (nil, nil) when the file does not end with [Magic]: an
// unsigned file is not an error. It reads the 40-byte trailer and then the
// signature, sig_len bytes capped at 64 KiB, and nothing else. When the
// trailer is present but inconsistent (sig_len zero, over the cap or larger
// than the file, id_type not PKCS#7, non-zero reserved fields, a PKCS#7 that
// does not parse as package cms reads it, content that is not detached
// id-data, not exactly one SignerInfo, an unknown digest algorithm, an
// empty signature) it returns a *signing.MalformedError naming the offset
// (wrapping signing.ErrLimit for a cap). Read errors are returned as they
// are, wrapped.
func Find(r io.ReaderAt, size int64) (a *Appended, err error) {
	defer func() {
		if p := recover(); p != nil {
			a, err = nil, signing.Errorf(signing.ErrInternal, "modsig: internal error: panic in Find: %w", panicerr.New(p))
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
		return nil, malformed(0, "file of %d bytes ends with the signature magic but has no room for the %d-byte trailer", size, trailerLen)
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
		return nil, malformed(tOff+2, "id_type %d is not PKEY_ID_PKCS7 (2)", t[2])
	case t[0] != 0 || t[1] != 0 || t[3] != 0 || t[4] != 0 || t[5] != 0 || t[6] != 0 || t[7] != 0:
		return nil, malformed(tOff, "module_signature fields % x must be zero for PKCS#7", t[:8])
	case sigLen == 0:
		return nil, malformed(tOff+8, "sig_len is zero")
	case sigLen >= tOff:
		return nil, malformed(tOff+8, "sig_len %d leaves no signed content before the %d bytes at the trailer", sigLen, tOff)
	case sigLen > maxSignatureLen:
		return nil, fmt.Errorf("modsig: %w", &signing.MalformedError{Format: Format, Offset: tOff + 8,
			Reason: fmt.Sprintf("sig_len %d exceeds the %d-byte cap", sigLen, maxSignatureLen), Err: signing.ErrLimit})
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

// parse reads the CMS ContentInfo in a.PKCS7 (RFC 5652) with package cms,
// then what a module signature requires of it.
func (a *Appended) parse() error {
	sd, err := cms.Parse(a.PKCS7, cms.ParseOptions{Offset: a.SignedLen})
	if err != nil {
		var me *signing.MalformedError
		if errors.As(err, &me) && me.Format == cms.Format {
			me.Format, me.Reason = Format, "PKCS#7 does not parse: "+me.Reason
		}
		return fmt.Errorf("modsig: %w", err)
	}
	switch {
	case !sd.ContentType.Equal(cms.OIDData):
		return malformed(sd.OffsetOf(sd.EncapContentInfo), "encapsulated content type %v is not id-data", sd.ContentType)
	case sd.Content != nil:
		return malformed(sd.OffsetOf(sd.EncapContentInfo), "the PKCS#7 carries its content; a module signature is detached")
	}
	for i, der := range sd.Certificates {
		c, err := signing.ParseCertificate(der)
		if err != nil {
			return malformed(sd.OffsetOf(der), "embedded certificate #%d: %v", i, err)
		}
		a.certs = append(a.certs, c)
	}
	switch len(sd.SignerInfos) {
	case 0:
		return malformed(a.SignedLen, "the PKCS#7 has no SignerInfo")
	case 1:
	default:
		return malformed(sd.OffsetOf(sd.SignerInfos[1].Raw), "the PKCS#7 has more than one SignerInfo")
	}
	si := &sd.SignerInfos[0]
	h, err := si.DigestHash()
	if err != nil || !h.Available() {
		return malformed(sd.OffsetOf(si.DigestAlgorithm.Raw), "unknown digest algorithm %v", si.DigestAlgorithm.OID)
	}
	if len(si.Signature) == 0 {
		return malformed(sd.OffsetOf(si.Raw), "SignerInfo does not parse: bad signature")
	}
	a.si, a.DigestAlgorithm, a.SignedAttributes = si, h, si.SignedAttrsRaw != nil
	return nil
}

// signer describes the SignerInfo's signer identifier for messages.
func (a *Appended) signer() string {
	if a.si.SubjectKeyID != nil {
		return fmt.Sprintf("subject key identifier %X", a.si.SubjectKeyID)
	}
	name := fmt.Sprintf("%X", a.si.Issuer)
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(a.si.Issuer, &rdn); err == nil && len(rest) == 0 {
		var n pkix.Name
		n.FillFromRDNSequence(&rdn)
		name = signing.NameString(n)
	}
	return fmt.Sprintf("issuer %q serial %#x", name, a.si.SerialNumber())
}

// algorithm returns the key kind of the signature algorithm (package
// signing's table), after checking that the digest it signs through is
// the SignerInfo's digest algorithm: the signature is over a digest made
// with that one.
func (a *Appended) algorithm() (string, error) {
	kind, h, err := a.si.Scheme()
	switch {
	case err != nil:
		return kind, fmt.Errorf("modsig: %w", err)
	case kind != "RSA" && kind != "RSA-PSS" && kind != "ECDSA":
		return kind, signing.Errorf(signing.ErrUnsupportedAlgorithm, "modsig: unsupported signature algorithm: %s signatures (module signatures are RSA or ECDSA over a digest)", kind)
	case h != a.DigestAlgorithm:
		return kind, signing.Errorf(signing.ErrUnsupportedAlgorithm, "modsig: unsupported signature algorithm: signature algorithm %v uses %v but the digest algorithm is %v", a.si.SignatureAlgorithm.OID, h, a.DigestAlgorithm)
	}
	return kind, nil
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
//     the digest it signs through is the SignerInfo's digest algorithm;
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
// DigestAlgorithm, SignatureAlgorithm, Chains built by
// [signing.BuildChains] from the signer through the candidates,
// Certificates (those embedded, if any), Digest (the messageDigest
// attribute, or digest once verified), verified (Signature.Verified) or
// with a Problem wrapping signing.ErrSignerNotFound,
// signing.ErrDigestMismatch, signing.ErrSignedAttributes,
// signing.ErrUnsupportedAlgorithm or signing.ErrSignature. Verify does not
// check validity periods, key usage or trust: that is policy.
func (a *Appended) Verify(digest []byte, candidates []*signing.Certificate) *signing.Signature {
	return a.VerifyCached(digest, candidates, nil)
}

// VerifyCached is Verify with a run's certificate cache: the chains from
// the signer through the candidates are searched once per run (keyed by
// the certificates' bytes), not once per module. A nil cache searches
// every time.
func (a *Appended) VerifyCached(digest []byte, candidates []*signing.Certificate, cache *signing.CertCache) (s *signing.Signature) {
	s = &signing.Signature{Format: SignatureFormat, Index: 0, DigestAlgorithm: a.DigestAlgorithm, Certificates: a.certs}
	defer func() {
		if p := recover(); p != nil {
			s = &signing.Signature{Format: SignatureFormat, Index: 0, DigestAlgorithm: a.DigestAlgorithm, Certificates: a.certs,
				Problem: signing.Errorf(signing.ErrInternal, "modsig: internal error: panic in Verify: %w", panicerr.New(p))}
		}
	}()
	kind, algErr := a.algorithm()
	s.SignatureAlgorithm = kind
	pool := signing.Dedup(append(append([]*signing.Certificate{}, a.certs...), candidates...))
	var matching []*signing.Certificate
	for _, c := range pool {
		if a.si.Matches(c) {
			matching = append(matching, c)
		}
	}
	if len(matching) > 0 {
		// Until a key verifies, report the first match's chains.
		s.Chains = cache.BuildChains(matching[0], pool)
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
		s.Problem = signing.Errorf(signing.ErrDigestMismatch, "modsig: file digest does not match the signature: the digest is %d bytes, %v digests are %d", len(digest), a.DigestAlgorithm, a.DigestAlgorithm.Size())
		return s
	case len(matching) == 0:
		supplied := "the 1 certificate supplied"
		if len(pool) != 1 {
			supplied = fmt.Sprintf("the %d certificates supplied", len(pool))
		}
		s.Problem = signing.Errorf(signing.ErrSignerNotFound, "modsig: the signer's certificate (%s) is not among %s: a module signature names its signer but does not carry its certificate", a.signer(), supplied)
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
		h.Write(a.si.SignedAttributesSET())
		signed = h.Sum(nil)
	}
	var firstErr error
	for _, c := range matching {
		err := a.si.CheckDigestSignature(c, kind, a.DigestAlgorithm, signed)
		if err == nil {
			s.Chains = cache.BuildChains(c, pool)
			s.Digest = append([]byte(nil), digest...)
			sigstate.Verified(s)
			return s
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("modsig: %w (%s, key of %q)", err, a.signer(), signing.NameString(c.Subject))
		}
	}
	s.Problem = firstErr
	return s
}

// messageDigest returns the value of the first messageDigest attribute.
func (a *Appended) messageDigest() []byte {
	var out []byte
	for _, at := range a.si.SignedAttrs {
		if !at.Type.Equal(cms.OIDMessageDigest) {
			continue
		}
		at.Each(func(v []byte) bool {
			var md cryptobyte.String
			if s := cryptobyte.String(v); s.ReadASN1(&md, cbasn1.OCTET_STRING) {
				out = bytes.Clone(md)
			}
			return false
		})
		if out != nil {
			return out
		}
	}
	return nil
}

func (a *Appended) checkAttributes(digest []byte) error {
	var ctypes, mds int
	for _, at := range a.si.SignedAttrs {
		switch {
		case at.Type.Equal(cms.OIDContentType):
			ctypes++
			v, ok := at.Single()
			if !ok {
				return signing.Errorf(signing.ErrSignedAttributes, "modsig: inconsistent signed attributes: contentType has %d values, want one", countValues(at))
			}
			oid := cms.OID(v)
			if _, ok := oid.ObjectIdentifier(); !ok {
				return signing.Errorf(signing.ErrSignedAttributes, "modsig: inconsistent signed attributes: contentType must have one OBJECT IDENTIFIER value")
			}
			if !oid.Equal(cms.OIDData) {
				return signing.Errorf(signing.ErrSignedAttributes, "modsig: inconsistent signed attributes: contentType %v is not id-data", oid)
			}
		case at.Type.Equal(cms.OIDMessageDigest):
			mds++
			v, ok := at.Single()
			if !ok {
				return signing.Errorf(signing.ErrSignedAttributes, "modsig: inconsistent signed attributes: messageDigest has %d values, want one", countValues(at))
			}
			var md cryptobyte.String
			if s := cryptobyte.String(v); !s.ReadASN1(&md, cbasn1.OCTET_STRING) || !s.Empty() {
				return signing.Errorf(signing.ErrSignedAttributes, "modsig: inconsistent signed attributes: messageDigest must have one OCTET STRING value")
			}
			if !bytes.Equal(md, digest) {
				return signing.Errorf(signing.ErrDigestMismatch, "modsig: file digest does not match the signature: the signed messageDigest is %X, the file's %v digest is %X", []byte(md), a.DigestAlgorithm, digest)
			}
		}
	}
	if ctypes != 1 || mds != 1 {
		return signing.Errorf(signing.ErrSignedAttributes, "modsig: inconsistent signed attributes: %d contentType and %d messageDigest attributes, want one each", ctypes, mds)
	}
	return nil
}

func countValues(a cms.Attribute) int {
	n := 0
	a.Each(func([]byte) bool { n++; return true })
	return n
}
