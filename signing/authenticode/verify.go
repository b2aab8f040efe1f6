package authenticode

import (
	"bytes"
	"crypto"
	_ "crypto/sha1" // SHA1 Authenticode signatures are still common
	_ "crypto/sha512"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/internal/sigstate"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/cms"
	"github.com/codesignval/csv/signing/timestamp"
)

// Caps on what one subject's signatures may cost.
const (
	// MaxSignatures caps the signatures Verify examines in one subject,
	// stored and nested together.
	MaxSignatures = 64
	// MaxNestingDepth caps how deep nested signatures are followed.
	MaxNestingDepth = 8
	// MaxChainChecks caps the certificate signature checks that building
	// the chains of one subject's signatures and timestamps takes, in all.
	// Each chain search stops at 64 checks, but a PE table holds 64
	// signatures with a timestamp each: certificates that share an
	// issuer's name with keys that cost milliseconds to check (RSA-8192
	// with a large exponent, P-521) made 128 searches of 64 checks cost 6
	// to 10 s for a 3 MB file. Real files take a few checks per signature.
	MaxChainChecks = 128
	// maxSignatureOctets caps a SignerInfo's signature: an RSA signature
	// with the largest key csv checks (8192 bits) is 1024 bytes.
	maxSignatureOctets = 1024
)

// ErrTooManyChainChecks (wrapping signing.ErrLimit): building the chains of
// a subject's signatures and timestamps takes more than [MaxChainChecks]
// certificate signature checks. Only Verify returns it: CheckStructure
// builds no chains.
var ErrTooManyChainChecks = signing.Errorf(signing.ErrLimit, "limit exceeded: building the chains of the table's signatures and timestamps takes more than %d certificate signature checks", MaxChainChecks)

// OIDs Authenticode uses (complete DER elements).
var (
	OIDSpcIndirectData = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 2, 1, 4)
	OIDNestedSignature = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 2, 4, 1)
	// OIDCTL is szOID_CTL, the content type of a signature over a
	// certificate trust list (a security catalog's).
	OIDCTL = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 10, 1)
)

// CTLSubject is a [Subject] whose signatures sign a certificate trust
// list (szOID_CTL, 1.3.6.1.4.1.311.10.1), as a security catalog's do,
// rather than an SpcIndirectDataContent naming a file digest: the
// signature's content is the list itself, and its messageDigest, over the
// list's content octets, is what binds the signature to the file. Verify
// then requires every signature's content to be CTL's bytes exactly, and
// computes no file digest (DigestAlgorithms is empty).
type CTLSubject interface {
	Subject
	// CTL returns the certificate trust list (its DER element) that the
	// subject's signatures must sign.
	CTL() []byte
}

// signsCTL reports whether s's signatures sign a certificate trust list,
// and which.
func signsCTL(s Subject) ([]byte, bool) {
	if c, ok := s.(CTLSubject); ok {
		return c.CTL(), true
	}
	return nil, false
}

// structure is what signing.MalformedError names for Authenticode's own
// structures.
const structure = "Authenticode signature"

// readUnsigned are the unsigned attributes Verify reads (and so checks the
// structure of) in an Authenticode SignerInfo: nested signatures and the
// two kinds of timestamp. In the SignerInfo of a timestamp it reads none.
var readUnsigned = []cms.OID{OIDNestedSignature, timestamp.OIDRFC3161Attribute, timestamp.OIDCountersignature}

// ParseOptions are the options an Authenticode signature is read with
// (offset is its file offset, padding allows zero bytes after it): for a
// subject that must read the SignedData before it knows it is signed (a
// catalog with no SignerInfo is unsigned).
func ParseOptions(offset int64, padding bool) cms.ParseOptions { return parseOptions(offset, padding) }

func parseOptions(offset int64, padding bool) cms.ParseOptions {
	return cms.ParseOptions{Offset: offset, ZeroPadding: padding, AttributeCertificates: true,
		MaxSignature: maxSignatureOctets, ReadUnsigned: readUnsigned}
}

// VerifyOptions configure Verify. The zero value verifies with the
// signature's own certificates only.
type VerifyOptions struct {
	// Certificates are extra certificates (intermediates and roots the
	// policy or the operator supplies) used to complete chains.
	Certificates []*signing.Certificate
	// Cache, if set, is shared across files so the same embedded
	// certificate (every file of a build carries the same chain) is parsed
	// once, and the same chain built once. Safe for concurrent use.
	Cache *CertCache
}

// Parsed is an Authenticode signature, parsed (Parse).
type Parsed struct {
	SignedData *cms.SignedData
	// SignerInfo is the SignedData's one SignerInfo.
	SignerInfo *cms.SignerInfo
	// Data is what the SpcIndirectDataContent names besides the digest;
	// DigestAlgorithm and Digest are its DigestInfo.
	Data            IndirectData
	DigestAlgorithm cms.AlgorithmIdentifier
	Digest          []byte
	// CTL is the certificate trust list a catalog's signature signs (the
	// DER element; ParseCTL only): Data, DigestAlgorithm and Digest are
	// then empty.
	CTL []byte
}

// Parse reads an Authenticode signature (offset is its file offset, for
// errors): a ContentInfo holding a SignedData whose content is an
// SpcIndirectDataContent, directly (not in an OCTET STRING), with exactly
// one SignerInfo. padding allows zero bytes after it. It checks the
// structure only; errors are *signing.MalformedError values.
func Parse(der []byte, offset int64, padding bool) (*Parsed, error) {
	return parse(der, offset, padding, false)
}

// ParseCTL reads the Authenticode signature of a security catalog: as
// [Parse], but the SignedData's content is a certificate trust list
// (szOID_CTL), directly (not in an OCTET STRING), which Parsed.CTL holds.
func ParseCTL(der []byte, offset int64, padding bool) (*Parsed, error) {
	return parse(der, offset, padding, true)
}

func parse(der []byte, offset int64, padding, ctl bool) (*Parsed, error) {
	sd, err := cms.Parse(der, parseOptions(offset, padding))
	if err != nil {
		return nil, err
	}
	malformed := func(at []byte, format string, args ...any) error {
		return &signing.MalformedError{Format: structure, Offset: sd.OffsetOf(at), Reason: fmt.Sprintf(format, args...)}
	}
	if ctl {
		switch {
		case !sd.ContentType.Equal(OIDCTL):
			return nil, malformed(sd.EncapContentInfo, "content type is %s, want szOID_CTL (1.3.6.1.4.1.311.10.1)", sd.ContentType)
		case sd.Content == nil:
			return nil, malformed(sd.EncapContentInfo, "no certificate trust list")
		case sd.OctetString:
			return nil, malformed(sd.EncapContentInfo, "the certificate trust list is wrapped in an OCTET STRING (catalogs encapsulate it directly)")
		case len(sd.SignerInfos) != 1:
			return nil, malformed(sd.EncapContentInfo, "%d SignerInfos (Authenticode requires exactly one)", len(sd.SignerInfos))
		}
		si := &sd.SignerInfos[0]
		return &Parsed{SignedData: sd, SignerInfo: si, CTL: sd.Content}, nil
	}
	switch {
	case !sd.ContentType.Equal(OIDSpcIndirectData):
		return nil, malformed(sd.EncapContentInfo, "content type is %s, want SPC_INDIRECT_DATA_OBJID (1.3.6.1.4.1.311.2.1.4)", sd.ContentType)
	case sd.Content == nil:
		return nil, malformed(sd.EncapContentInfo, "no SpcIndirectDataContent")
	case sd.OctetString:
		return nil, malformed(sd.EncapContentInfo, "SpcIndirectDataContent is wrapped in an OCTET STRING (Authenticode encapsulates it directly)")
	}
	p := &Parsed{SignedData: sd}
	// SpcIndirectDataContent ::= SEQUENCE { data
	// SpcAttributeTypeAndOptionalValue, messageDigest DigestInfo }
	s := cryptobyte.String(sd.Content)
	var body, data, di, digest, oid, alg, algBody, algOID cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, malformed(sd.Content, "SpcIndirectDataContent is not a DER SEQUENCE")
	}
	if !body.ReadASN1(&data, cbasn1.SEQUENCE) || !data.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) {
		return nil, malformed(sd.Content, "SpcIndirectDataContent has no data type")
	}
	p.Data.Type = cms.OID(oid)
	if !data.Empty() {
		p.Data.Value = data
	}
	if !body.ReadASN1(&di, cbasn1.SEQUENCE) || !body.Empty() {
		return nil, malformed(sd.Content, "SpcIndirectDataContent has no DigestInfo")
	}
	if !di.ReadASN1Element(&alg, cbasn1.SEQUENCE) || !di.ReadASN1(&digest, cbasn1.OCTET_STRING) || !di.Empty() {
		return nil, malformed(sd.Content, "bad DigestInfo")
	}
	raw := alg
	if !alg.ReadASN1(&algBody, cbasn1.SEQUENCE) || !algBody.ReadASN1Element(&algOID, cbasn1.OBJECT_IDENTIFIER) {
		return nil, malformed(sd.Content, "bad DigestInfo")
	}
	p.DigestAlgorithm = cms.AlgorithmIdentifier{OID: cms.OID(algOID), Params: algBody, Raw: raw}
	p.Digest = digest
	if len(sd.SignerInfos) != 1 {
		return nil, malformed(sd.EncapContentInfo, "%d SignerInfos (Authenticode requires exactly one)", len(sd.SignerInfos))
	}
	p.SignerInfo = &sd.SignerInfos[0]
	return p, nil
}

// DigestAlgorithms returns the digest algorithms (crypto.SHA1, SHA256,
// SHA384, SHA512) that the signatures a subject stores use, outer and
// nested at any depth, without duplicates, so the caller can compute
// exactly those digests in its single pass over the file. Signatures that
// cannot be parsed are skipped (Verify reports them).
func DigestAlgorithms(s Subject) []crypto.Hash {
	if _, ok := signsCTL(s); ok {
		return nil // the signatures carry the content they sign
	}
	var out []crypto.Hash
	EachSignature(s.Signatures(), func(p *Parsed) {
		if h, err := cms.DigestHash(p.DigestAlgorithm.OID); err == nil && !containsHash(out, h) {
			out = append(out, h)
		}
	})
	return out
}

// EachSignature calls fn with every signature of stored that parses, and
// every signature nested in them, walked as Verify walks them (depth first,
// within MaxNestingDepth and MaxSignatures), so that a caller that reads
// something of every signature before the one pass over the file (the
// digest algorithms, PE's page-hash tables) reaches the same signatures
// Verify will. Signatures that cannot be parsed are skipped (Verify reports
// them), and so is a panic: a bug must not crash the caller; Verify
// reports it (ErrInternal) on the signature concerned.
func EachSignature(stored []Stored, fn func(p *Parsed)) {
	budget := MaxSignatures - len(stored)
	var walk func(der []byte, padding bool, depth int)
	walk = func(der []byte, padding bool, depth int) {
		p, err := Parse(der, 0, padding)
		if err != nil {
			return
		}
		fn(p)
		if depth == MaxNestingDepth {
			return
		}
		for _, a := range p.SignerInfo.UnsignedAttrs {
			if !a.Type.Equal(OIDNestedSignature) {
				continue
			}
			a.Each(func(v []byte) bool {
				if budget <= 0 {
					return false
				}
				budget--
				walk(v, false, depth+1)
				return true
			})
		}
	}
	defer func() { _ = recover() }()
	for _, st := range stored {
		walk(st.DER, st.ZeroPadding, 0)
	}
}

func containsHash(hs []crypto.Hash, h crypto.Hash) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}

// Verify verifies every signature subject stores and every nested
// signature (the SPC_NESTED_SIGNATURE unsigned attribute
// 1.3.6.1.4.1.311.2.4.1, any depth, bounded), against digests (the file's
// digests by algorithm, as the subject's digester computes them). It
// returns one *signing.Signature per signature found (stored ones first in
// storage order, each followed by its nested ones depth-first), Format
// "authenticode", Index = the stored signature's index, Path = nesting
// path.
//
// It returns an error, and no signatures, when the subject stores anything
// but well-formed Authenticode signatures (check 1): the caller then treats
// the file as malformed, whatever any signature says, because bytes that
// no signature covers would otherwise ride along (the CVE-2013-3900
// class). A signature that fails any later check is returned not verified
// (Signature.Verified), with a Problem (a *SignatureError) saying exactly
// what failed; it never makes Verify return an error.
//
// The checks, in order (the error or Problem names the first that fails):
//
//  1. Structure (a *signing.MalformedError naming the stored signature,
//     wrapping a *SignatureError, wrapping signing.ErrLimit for caps): the
//     signature parses as package cms reads it (its caps: 32
//     certificates, all certificates or attribute certificates, parsed
//     leniently; at most 8 CRLs, well-formed; parameters of unsigned
//     algorithm identifiers NULL, or an elliptic curve or RSA-PSS
//     parameters where they belong; a signature of at most 1024 bytes;
//     unsigned attributes of at most limits.MaxUnsignedAttributes bytes,
//     of which those Verify does not read, anything but timestamps and
//     nested signatures, at most limits.MaxUnknownUnsignedAttributes); its
//     content type is SPC_INDIRECT_DATA_OBJID and the SpcIndirectDataContent
//     parses; there is exactly one SignerInfo; a timestamp attribute
//     appears at most once per kind, holds one value and parses
//     (timestamp.Find: an RFC 3161 token with readable certificates, or a
//     SignerInfo), with at most limits.MaxUnknownUnsignedAttributes of
//     unsigned attributes in its SignerInfo, whatever their type; nested
//     signatures pass these checks too, at most [MaxNestingDepth] deep and
//     [MaxSignatures] in the subject.
//  2. The SpcIndirectDataContent's digest algorithm is one signing accepts
//     (signing.ErrUnsupportedAlgorithm). The signer's certificate is among
//     the embedded certificates, by issuer and serial number (raw issuer
//     DER, negative serials included) or subject key identifier
//     (signing.ErrSignerNotFound).
//  3. The digest in the SpcIndirectDataContent equals digests[algorithm]
//     (signing.ErrDigestMismatch); a missing algorithm fails closed
//     (signing.ErrDigestNotComputed).
//     A subject with a method CheckData(IndirectData) error checks the
//     data the signature names against the file too (PE: a page-hash
//     table); its error is the signature's problem.
//  4. The signed attributes are present, each at most once; contentType is
//     SPC_INDIRECT_DATA_OBJID; messageDigest is the hash, with the
//     SignerInfo's digest algorithm, of the SpcIndirectDataContent's
//     content octets (without its SEQUENCE tag and length, as Authenticode
//     does) (signing.ErrSignedAttributes).
//  5. The signature over the signed attributes (DER, re-tagged as a SET)
//     verifies with the signer certificate's key: RSA PKCS#1 v1.5, RSA-PSS,
//     ECDSA or Ed25519 (wraps signing.ErrSignature).
//  6. Chains are built from the signer through the embedded certificates
//     and opts.Certificates with signing.BuildChains, within
//     [MaxChainChecks] signature checks for the whole subject (timestamps'
//     chains included), or the subject is malformed
//     ([ErrTooManyChainChecks], which CheckStructure cannot tell: it builds
//     no chains). Verified means checks 1-5 hold: whether a chain reaches a
//     trusted certificate is the policy's decision, made on Chains.
//  7. The timestamp in the unsigned attributes is verified
//     (timestamp.Stamps.Verify): an RFC 3161 token (1.3.6.1.4.1.311.3.3.1;
//     its TSTInfo's messageImprint must be the hash of the signature
//     octets, its own SignerInfo must verify) or else a legacy
//     countersignature (1.2.840.113549.1.9.6; its messageDigest must be the
//     hash of the signature octets, and its signature must verify), by a
//     time-stamping certificate. Signature.Timestamp holds the time, chains
//     and result; a bad timestamp does not affect Verified.
//     For a [CTLSubject] (a catalog), the content type is szOID_CTL
//     instead, the content is the certificate trust list, step 3 requires
//     it to be the subject's CTL() exactly (signing.ErrDigestMismatch) and
//     step 4 wants contentType szOID_CTL and the messageDigest over the
//     list's content octets; the digest algorithm checked in step 2 is the
//     SignerInfo's. digests is not read.
//  8. The subject judges which hosts count the signature (Subject.Judge:
//     IgnoredBy), from where it is stored, the signature it is nested in
//     and its data type.
//  9. Nested signatures are verified by the same steps, Path = parent's
//     Path plus their position.
//
// # Security
//
// What the subject stores is untrusted. It is parsed as strict DER with
// cryptobyte, never allocating from a length field, within caps on
// certificates, attributes, signatures and depth; every byte of it belongs
// to a structure Verify reads or to a capped unknown unsigned attribute,
// but well-formed structures that anyone may add (a certificate or
// attribute certificate in a certificate set, a signature of their own
// stored beside or nested, verifying or not) can carry any bytes in their
// extensions, names, attributes, signed attributes or content. A panic
// while examining a stored signature is recovered and reported as that
// signature's Problem (signing.ErrInternal). Certificates are parsed
// leniently by signing.ParseCertificate, so a certificate Go's crypto/x509
// refuses is still matched and its signature still checked. Verify does
// not judge trust, validity periods or key usages: that is the policy's
// job, on Chains. The returned values do not alias the subject's bytes;
// with a Cache they share *signing.Certificate values with other calls, so
// treat them as read-only.
func Verify(subject Subject, digests map[crypto.Hash][]byte, opts VerifyOptions) ([]*signing.Signature, error) {
	v, err := walk(subject, &verifier{digests: digests, opts: opts})
	if err != nil {
		return nil, err
	}
	return v.out, nil
}

// CheckStructure checks that a subject stores nothing but well-formed
// Authenticode signatures, without any cryptography: what [Verify] checks
// before it verifies anything, and fails for with the same errors. A
// caller that does not need the signatures (a policy of hash rules) still
// refuses a file that smuggles data. cache, if not nil, is shared with
// Verify. Verify may still refuse a subject CheckStructure accepts, with
// [ErrTooManyChainChecks]: that is a cap on the work of verifying, which
// CheckStructure does not do.
func CheckStructure(subject Subject, cache *CertCache) error {
	_, err := walk(subject, &verifier{opts: VerifyOptions{Cache: cache}, structureOnly: true})
	return err
}

// walk runs v over every stored signature of the subject.
func walk(subject Subject, v *verifier) (*verifier, error) {
	stored := subject.Signatures()
	v.subject = subject
	v.ctl, v.signsCTL = signsCTL(subject)
	v.digestName = "file digest"
	if n, ok := subject.(interface{ DigestName() string }); ok {
		v.digestName = n.DigestName()
	}
	v.budget = MaxSignatures - len(stored)
	v.chainChecks = MaxChainChecks
	v.out = make([]*signing.Signature, 0, len(stored))
	for i, st := range stored {
		v.stored(i, st)
		if v.malformed != nil {
			return nil, fmt.Errorf("authenticode: %w", v.malformed)
		}
	}
	return v, nil
}

type verifier struct {
	subject Subject
	// signsCTL: the subject's signatures sign ctl (a CTLSubject).
	signsCTL bool
	ctl      []byte
	// digestName is what messages call the subject's digest.
	digestName string
	digests    map[crypto.Hash][]byte
	opts       VerifyOptions
	budget     int // nested signatures that may still be examined
	// chainChecks are the certificate signature checks chain building may
	// still make (below zero: the subject is over MaxChainChecks).
	chainChecks int
	out         []*signing.Signature
	// structureOnly skips every cryptographic check (CheckStructure).
	structureOnly bool
	// malformed is the first structural problem: it makes the subject,
	// and so the file, malformed.
	malformed *signing.MalformedError
}

// stored verifies one stored signature and its nested signatures, turning
// a panic into the signature's Problem (and, when only the structure is
// checked, into the subject's error: nothing else would report it).
func (v *verifier) stored(i int, st Stored) {
	start := len(v.out)
	defer func() {
		if r := recover(); r != nil {
			err := signing.Errorf(signing.ErrInternal, "internal error while examining the signature at offset %#x: %w (please report this)", st.Offset, panicerr.New(r))
			v.out = append(v.out[:start], &signing.Signature{Format: Format, Index: i, Path: []int{},
				Problem: &SignatureError{Index: i, Err: err}})
			if v.structureOnly && v.malformed == nil {
				v.malformed = v.malformedError(st, i, []int{}, err)
			}
		}
	}()
	v.signature(st, i, []int{}, st.DER, st.DEROffset, st.ZeroPadding, 0, nil)
}

func (v *verifier) malformedError(st Stored, index int, path []int, err error) *signing.MalformedError {
	se := &SignatureError{Index: index, Path: path, Err: err}
	return &signing.MalformedError{Format: v.subject.Format(), Offset: st.Offset, Reason: st.Name + ": " + se.Reason(), Err: se}
}

// signature verifies one Authenticode ContentInfo (stored in st) and,
// recursively, the signatures nested in it. parent is the signature it is
// nested in (nil for a stored one).
func (v *verifier) signature(st Stored, index int, path []int, der []byte, off int64, padding bool, depth int, parent *signing.Signature) {
	sig := &signing.Signature{Format: Format, Index: index, Path: path}
	v.out = append(v.out, sig)
	fail := func(err error) {
		if sig.Problem == nil {
			sig.Problem = &SignatureError{Index: index, Path: path, Err: err}
		}
	}
	malformed := func(err error) {
		if v.malformed == nil {
			v.malformed = v.malformedError(st, index, path, err)
		}
	}

	// 1. Structure: the Authenticode SignedData, its certificates, one
	// SignerInfo, and the unsigned attributes Verify reads.
	p, err := parse(der, off, padding, v.signsCTL)
	if err != nil {
		malformed(err)
		return
	}
	sd, si := p.SignedData, p.SignerInfo
	certs, err := v.certificates(sd)
	if err != nil {
		malformed(fmt.Errorf("an embedded certificate cannot be read: %w", err))
		return
	}
	sig.Certificates = certs
	stamps, err := timestamp.Find(si)
	if err != nil {
		malformed(err)
		return
	}
	var tokenCerts []*signing.Certificate
	if stamps.Token != nil {
		if tokenCerts, err = v.certificates(stamps.Token.SignedData); err != nil {
			malformed(fmt.Errorf("the RFC 3161 timestamp: a certificate cannot be read: %w", err))
			return
		}
	}
	sig.Digest = bytes.Clone(p.Digest)
	var imageHash crypto.Hash
	var hashErr error
	if v.signsCTL {
		// A catalog's signature carries no file digest: what it is over
		// is its content, hashed into the messageDigest.
		imageHash, hashErr = cms.DigestHash(si.DigestAlgorithm.OID)
		if hashErr == nil {
			h := imageHash.New()
			h.Write(sd.Digested)
			sig.Digest = h.Sum(nil)
		}
	} else {
		imageHash, hashErr = cms.DigestHash(p.DigestAlgorithm.OID)
	}
	sig.DigestAlgorithm = imageHash
	sig.SignatureAlgorithm = si.SignatureKind()
	sig.SignerDigests = si.SignerDigests(imageHash)
	if hashErr != nil {
		fail(fmt.Errorf("%s: %w", v.digestName, hashErr))
	}

	if !v.structureOnly {
		// 2. The signer's certificate.
		signer := si.FindSigner(certs)
		if signer != nil {
			sig.Chains = v.buildChains(signer, v.candidates(certs))
		} else {
			fail(si.SignerNotFound(len(sd.Certificates)))
		}

		// 3. The file's digest (a catalog: the list it signs).
		if v.signsCTL {
			if !bytes.Equal(p.CTL, v.ctl) {
				fail(signing.Errorf(signing.ErrDigestMismatch, "certificate trust list mismatch: the signature signs another list than the catalog's"))
			}
		} else if hashErr == nil {
			size := imageHash.Size()
			if ds, ok := v.subject.(DigestSizer); ok {
				size = ds.DigestSize(imageHash)
			}
			switch want, ok := v.digests[imageHash]; {
			case !ok:
				fail(signing.Errorf(signing.ErrDigestNotComputed, "%s not computed: the signature is over the %s %s, which the caller did not compute", v.digestName, cms.HashName(imageHash), v.digestName))
			case len(want) != size:
				fail(signing.Errorf(signing.ErrDigestNotComputed, "%s not computed: the caller's %s %s has %d bytes", v.digestName, cms.HashName(imageHash), v.digestName, len(want)))
			case !bytes.Equal(want, p.Digest):
				fail(signing.Errorf(signing.ErrDigestMismatch, "%s mismatch: signed %s %x, file has %x", v.digestName, cms.HashName(imageHash), p.Digest, want))
			}
		}

		// 3. The data the subject checks against the file (PE: page
		// hashes).
		if dc, ok := v.subject.(interface{ CheckData(IndirectData) error }); ok {
			if err := dc.CheckData(p.Data); err != nil {
				fail(err)
			}
		}

		// 4. and 5. Signed attributes and the signer's signature.
		if si.SignedAttrsRaw == nil {
			fail(signing.Errorf(signing.ErrSignedAttributes, "bad signed attributes: none (Authenticode requires them)"))
		} else if err := si.CheckSignedAttributes(v.contentType(), sd.Digested); err != nil {
			fail(err)
		} else if signer != nil {
			if err := si.CheckSignature(signer); err != nil {
				fail(err)
			}
		}

		// 7. Timestamps.
		sig.Timestamp = stamps.Verify(si.Signature, tokenCerts, certs, func(signer *signing.Certificate, groups ...[]*signing.Certificate) [][]*signing.Certificate {
			return v.buildChains(signer, v.candidates(groups...))
		})
		if ts := sig.Timestamp; ts != nil && ts.Problem != nil {
			ts.Problem = &SignatureError{Index: index, Path: path, Err: ts.Problem}
		}

		if v.chainChecks < 0 {
			// What was built is not what an unbounded search builds: a
			// chain to a denied CA may be missing, so nothing is judged.
			malformed(ErrTooManyChainChecks)
			return
		}
		if sig.Problem == nil {
			sigstate.Verified(sig)
		}
	}

	// 8. The hosts that count it.
	v.subject.Judge(sig, parent, p.Data)

	// 9. Nested signatures.
	n := 0
	for _, a := range si.UnsignedAttrs {
		if !a.Type.Equal(OIDNestedSignature) {
			continue
		}
		a.Each(func(val []byte) bool {
			switch {
			case depth == MaxNestingDepth:
				malformed(&signing.MalformedError{Format: cms.Format, Offset: si.OffsetOf(a.Raw), Reason: fmt.Sprintf("nested signatures deeper than %d levels", MaxNestingDepth), Err: signing.ErrLimit})
				return false
			case v.budget <= 0:
				malformed(&signing.MalformedError{Format: cms.Format, Offset: si.OffsetOf(val), Reason: fmt.Sprintf("nested signature %d: more than %d signatures in the table", n, MaxSignatures), Err: signing.ErrLimit})
				return false
			}
			v.budget--
			child := make([]int, len(path)+1)
			copy(child, path)
			child[len(path)] = n
			n++
			v.signature(st, index, child, val, si.OffsetOf(val), false, depth+1, sig)
			return v.malformed == nil
		})
		if v.malformed != nil {
			return
		}
	}
}

// contentType is the content type the subject's signatures sign.
func (v *verifier) contentType() cms.OID {
	if v.signsCTL {
		return OIDCTL
	}
	return OIDSpcIndirectData
}

// candidates are the certificates chains are built through: the groups
// given, then the caller's, without repeats.
func (v *verifier) candidates(certs ...[]*signing.Certificate) []*signing.Certificate {
	n := len(v.opts.Certificates)
	for _, cs := range certs {
		n += len(cs)
	}
	out := make([]*signing.Certificate, 0, n)
	for _, cs := range certs {
		out = append(out, cs...)
	}
	return signing.Dedup(append(out, v.opts.Certificates...))
}

// certificates parses the certificates of sd (through the cache). A
// well-formed certificate signed with an algorithm csv does not know (old
// chains carry MD2 roots) is left out: it can neither identify nor check
// anything. Any other certificate that cannot be read even leniently makes
// the signature malformed: its bytes would be covered by nothing.
func (v *verifier) certificates(sd *cms.SignedData) ([]*signing.Certificate, error) {
	out := make([]*signing.Certificate, 0, len(sd.Certificates))
	for i, der := range sd.Certificates {
		c, err := v.opts.Cache.Parse(der)
		if errors.Is(err, signing.ErrUnsupportedAlgorithm) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// buildChains builds the chains from leaf through candidates (through the
// cache) and counts the signature checks that took against the subject's
// MaxChainChecks, cached or not, so that whether a subject is over the cap
// does not depend on what the cache holds. Past the cap it builds nothing
// more: the subject is then malformed.
func (v *verifier) buildChains(leaf *signing.Certificate, candidates []*signing.Certificate) [][]*signing.Certificate {
	if v.chainChecks < 0 {
		return [][]*signing.Certificate{{leaf}}
	}
	chains, n := v.opts.Cache.BuildChainsCounted(leaf, candidates)
	v.chainChecks -= n
	return chains
}
