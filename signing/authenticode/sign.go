package authenticode

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/cms"
	"github.com/codesignval/csv/signing/timestamp"
)

// WarningECDSA is the [SignResult] warning for a file signed with an ECDSA
// key.
const WarningECDSA = "ECDSA signatures are ignored by Windows signer rules (WDAC): sign with an RSA key for files a WDAC policy must admit"

// WarningAppendUnsigned is the [SignResult] warning for SignOptions.Append
// on a file that had no signature to nest in.
const WarningAppendUnsigned = "append: the file was not signed, so the new signature is its only one"

// SignOptions configure Sign. The zero value signs with SHA-256, replaces
// an existing signature, and adds no timestamp.
type SignOptions struct {
	// Hash is the file digest and the signer's digest: crypto.SHA256 (the
	// default), crypto.SHA384 or crypto.SHA512.
	Hash crypto.Hash
	// Description is the SpcSpOpusInfo programName (optional).
	Description string
	// URL is the SpcSpOpusInfo moreInfo URL (optional, ASCII).
	URL string
	// Append keeps the existing signatures and adds ours nested
	// (SPC_NESTED_SIGNATURE) in the first one. On an unsigned file it signs
	// as usual, with a warning.
	Append bool
	// Tee, if set, receives the input's bytes exactly as Sign read them,
	// in file order (the whole file, its signatures included). With
	// Append, hashing them checks the signatures kept against an earlier
	// reading, with no second read for the file to change in between.
	Tee io.Writer
	// TSA, if set, is the RFC 3161 time-stamping authority that
	// countersigns the signature (tsahttp.New makes one for a URL).
	TSA timestamp.TSA
	// Cache, if set, is the run's certificate cache, shared by every
	// Signer made with these options: the check each new signature gets
	// parses the chain once per run, however many Signers (a format
	// handler makes one per file). Nil: each Signer has its own.
	Cache *CertCache
}

// SignResult says what Sign did.
type SignResult struct {
	Digest   []byte   // the file digest signed
	Size     int64    // bytes written
	Warnings []string // e.g. WarningECDSA
}

// OIDs of the signed attributes Authenticode signers write.
var (
	oidSpcSpOpusInfo         = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 2, 1, 12)
	oidSpcStatementType      = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 2, 1, 11)
	oidIndividualCodeSigning = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 2, 1, 21)
)

// Signer is a key and certificate chain checked for making Authenticode
// signatures, with its options: one per build, for any number of files.
type Signer struct {
	key   crypto.Signer
	chain []*x509.Certificate
	hash  crypto.Hash
	kind  string // RSA or ECDSA
	opts  SignOptions
	// cache is what the checks of the signatures made (CheckStructure)
	// parse the chain's certificates through, once per Signer.
	cache *CertCache
}

// Cache returns the certificate cache of the signer's run: the check of
// each signature made before it is written parses the chain's certificates
// through it, once per run rather than once per file.
func (s *Signer) Cache() *CertCache { return s.cache }

// NewSigner checks key, chain (leaf first) and opts for making
// Authenticode signatures: key must match chain[0], which must carry the
// code signing EKU (1.3.6.1.5.5.7.3.3), else an error wrapping
// signing.ErrSigner; the key is RSA or ECDSA, the hash SHA-256, SHA-384 or
// SHA-512 (signing.ErrUnsupportedAlgorithm).
func NewSigner(key crypto.Signer, chain []*x509.Certificate, opts SignOptions) (*Signer, error) {
	s := &Signer{key: key, chain: chain, hash: opts.Hash, opts: opts, cache: opts.Cache}
	if s.cache == nil {
		s.cache = NewCertCache()
	}
	if s.hash == 0 {
		s.hash = crypto.SHA256
	}
	switch s.hash {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		return nil, signing.Errorf(signing.ErrUnsupportedAlgorithm, "authenticode: sign: unsupported algorithm: digest %v (sign with SHA256, SHA384 or SHA512)", s.hash)
	}
	if len(chain) == 0 {
		return nil, signing.Errorf(signing.ErrSigner, "authenticode: sign: unusable signer: no certificate chain")
	}
	for i, c := range chain {
		if c == nil {
			return nil, signing.Errorf(signing.ErrSigner, "authenticode: sign: unusable signer: certificate %d of the chain is nil", i)
		}
	}
	leaf := chain[0]
	if key == nil {
		return nil, signing.Errorf(signing.ErrSigner, "authenticode: sign: unusable signer: no key")
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageCodeSigning) {
		return nil, signing.Errorf(signing.ErrSigner, "authenticode: sign: unusable signer: certificate %q does not have the code signing extended key usage (1.3.6.1.5.5.7.3.3)", signing.NameString(leaf.Subject))
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, signing.Errorf(signing.ErrSigner, "authenticode: sign: unusable signer: the key is not the key of certificate %q (the chain must start with the signer's certificate)", signing.NameString(leaf.Subject))
	}
	switch leaf.PublicKey.(type) {
	case *rsa.PublicKey:
		s.kind = "RSA"
	case *ecdsa.PublicKey:
		s.kind = "ECDSA"
	default:
		return nil, signing.Errorf(signing.ErrUnsupportedAlgorithm, "authenticode: sign: unsupported algorithm: %T keys (Authenticode signers are RSA or ECDSA)", leaf.PublicKey)
	}
	if !utf8.ValidString(opts.Description) {
		return nil, errors.New("authenticode: sign: the description is not valid UTF-8")
	}
	for i := range len(opts.URL) {
		if c := opts.URL[i]; c < 0x20 || c > 0x7e {
			return nil, fmt.Errorf("authenticode: sign: the URL %q has a character an IA5String cannot hold at byte %d", opts.URL, i)
		}
	}
	return s, nil
}

// Hash is the digest the signer signs with.
func (s *Signer) Hash() crypto.Hash { return s.hash }

// Sign is NewSigner then Signer.Sign.
func Sign(ctx context.Context, t Target, key crypto.Signer, chain []*x509.Certificate, opts SignOptions) (*SignResult, error) {
	s, err := NewSigner(key, chain, opts)
	if err != nil {
		return nil, err
	}
	return s.Sign(ctx, t)
}

// Sign signs the file t is writing: t streams it to its signed copy while
// Sign computes its digest; then Sign makes the signature over that digest
// (SignDigest) and t embeds it: as the file's only signature, or with
// SignOptions.Append nested (SPC_NESTED_SIGNATURE) in the file's first
// signature, outside what that signature signs, so that it stays valid,
// the file's other signatures kept as they were. On error the output holds
// a partial file: the caller must discard it.
//
// # Security
//
// With Append, the signature nested in must be a well-formed Authenticode
// signature (Parse). The signature Sign makes is checked with the
// certificate's key before it is written (by crypto/rsa itself for an
// *rsa.PrivateKey), so a signer that misbehaves (another key, PSS instead
// of PKCS#1 v1.5) fails closed; so does a timestamp token that does not
// verify or does not answer the request.
func (s *Signer) Sign(ctx context.Context, t Target) (res *SignResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, signing.Errorf(signing.ErrInternal, "authenticode: sign: internal error: %v (please report this)", r)
		}
	}()
	res = &SignResult{}
	if s.kind == "ECDSA" {
		res.Warnings = append(res.Warnings, WarningECDSA)
	}
	stored := t.Signatures()
	nest := s.opts.Append && len(stored) > 0
	if s.opts.Append && !nest {
		res.Warnings = append(res.Warnings, WarningAppendUnsigned)
	}
	if nest {
		if _, err := Parse(stored[0].DER, stored[0].DEROffset, stored[0].ZeroPadding); err != nil {
			return nil, fmt.Errorf("authenticode: sign: append: the signature at offset %#x: %w", stored[0].Offset, err)
		}
	}
	h := s.hash.New()
	if err := t.Stream(ctx, h, s.opts.Tee); err != nil {
		return nil, fmt.Errorf("authenticode: sign: %w", err)
	}
	digest := h.Sum(nil)
	der, err := s.SignDigest(ctx, digest, t.IndirectData())
	if err != nil {
		return nil, err
	}
	primary := der
	if nest {
		if primary, err = Nest(stored[0].DER, der); err != nil {
			return nil, fmt.Errorf("authenticode: sign: append: %w", err)
		}
	}
	size, err := t.Embed(primary, nest)
	if err != nil {
		return nil, fmt.Errorf("authenticode: sign: %w", err)
	}
	res.Digest, res.Size = digest, size
	return res, nil
}

// SignDigest returns an Authenticode signature (a DER ContentInfo) over
// digest, a file digest with the signer's hash, for the indirect data a
// subject names: a PKCS#7 SignedData over an SpcIndirectDataContent (data
// and the digest) carrying the chain, with the signed attributes Windows
// expects: contentType, SpcSpOpusInfo (SignOptions.Description and URL),
// SpcStatementType (individual code signing) and messageDigest. RSA keys
// sign with PKCS#1 v1.5 (the same input gives the same bytes), ECDSA keys
// with ecdsa-with-SHA*, which Windows signer rules ignore ([WarningECDSA]).
// With SignOptions.TSA the signature is countersigned by that RFC 3161
// TSA (timestamp.Stamp), and the token is verified before it is
// embedded.
func (s *Signer) SignDigest(ctx context.Context, digest []byte, data IndirectData) ([]byte, error) {
	if len(digest) != s.hash.Size() {
		return nil, fmt.Errorf("authenticode: sign: a %d-byte digest is not %v", len(digest), s.hash)
	}
	return s.signIndirect(ctx, digest, data)
}

// SignDigestBlob is [Signer.SignDigest] for a subject whose signed digest
// is a structure of digests made with the signer's hash rather than one
// ([DigestSizer]: APPX's "APPX" blob); the caller builds it.
func (s *Signer) SignDigestBlob(ctx context.Context, blob []byte, data IndirectData) ([]byte, error) {
	if len(blob) == 0 {
		return nil, fmt.Errorf("authenticode: sign: an empty digest")
	}
	return s.signIndirect(ctx, blob, data)
}

func (s *Signer) signIndirect(ctx context.Context, digest []byte, data IndirectData) ([]byte, error) {
	digestAlg := s.digestAlgorithm()
	// SpcIndirectDataContent ::= SEQUENCE { data SpcAttributeTypeAndOptionalValue, messageDigest DigestInfo }
	idc, err := build(func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddBytes(data.Type)
				b.AddBytes(data.Value)
			})
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				digestAlg.Marshal(b)
				b.AddASN1OctetString(digest)
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return s.signContent(ctx, OIDSpcIndirectData, idc)
}

// SignCTL returns the Authenticode signature of a security catalog (a DER
// ContentInfo): a PKCS#7 SignedData whose content is ctl, a certificate
// trust list (szOID_CTL), signed as [Signer.SignDigest] signs (the same
// signed attributes, contentType szOID_CTL, messageDigest over the list's
// content octets without its SEQUENCE tag and length, as signtool and
// osslsigncode do; the chain; SignOptions.TSA's timestamp). ctl must be
// one DER SEQUENCE; what it lists is the caller's.
func (s *Signer) SignCTL(ctx context.Context, ctl []byte) (der []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			der, err = nil, signing.Errorf(signing.ErrInternal, "authenticode: sign: internal error: %v (please report this)", r)
		}
	}()
	in := cryptobyte.String(ctl)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("authenticode: sign: the certificate trust list is not one DER SEQUENCE")
	}
	return s.signContent(ctx, OIDCTL, ctl)
}

func (s *Signer) digestAlgorithm() cms.AlgorithmIdentifier {
	hashOID, _ := signing.OIDForHash(s.hash)
	return cms.AlgorithmIdentifier{OID: mustMarshal(hashOID), Params: cms.NULL}
}

// signContent signs content (a DER element) of type contentType.
func (s *Signer) signContent(ctx context.Context, contentType cms.OID, content []byte) ([]byte, error) {
	digestAlg := s.digestAlgorithm()
	// The messageDigest is over the content octets, without the SEQUENCE
	// tag and length (the Authenticode quirk Verify checks).
	var contents cryptobyte.String
	if in := cryptobyte.String(content); !in.ReadASN1(&contents, cbasn1.SEQUENCE) {
		return nil, errors.New("authenticode: sign: internal error: the content is not a SEQUENCE")
	}
	attrs, err := s.signedAttributes(contentType, contents)
	if err != nil {
		return nil, err
	}
	hh := s.hash.New()
	hh.Write(attrs)
	sig, err := s.key.Sign(rand.Reader, hh.Sum(nil), s.hash)
	if err != nil {
		return nil, fmt.Errorf("authenticode: sign: the signer: %w", err)
	}
	leaf := s.chain[0]
	// Check the signature with the certificate's key, so that a signer
	// that signs with another key or scheme (a KMS doing PSS) fails closed.
	// crypto/rsa checks its own PKCS#1 v1.5 signatures against the key's
	// public part, which NewSigner found equal to the certificate's: no
	// need to check those twice.
	if _, ok := s.key.(*rsa.PrivateKey); !ok {
		if err := signing.CheckDigestSignature(leaf.PublicKey, s.kind, s.hash, attrs, sig); err != nil {
			return nil, signing.Errorf(signing.ErrSigner, "authenticode: sign: unusable signer: the signer made a %s signature that does not verify with the key of %q: %w", s.kind, signing.NameString(leaf.Subject), err)
		}
	}
	var unsigned [][]byte
	if s.opts.TSA != nil {
		_, token, err := timestamp.Stamp(ctx, s.opts.TSA, sig)
		if err != nil {
			return nil, fmt.Errorf("authenticode: sign: %w", err)
		}
		a, err := cms.NewAttribute(timestamp.OIDRFC3161Attribute, token)
		if err != nil {
			return nil, fmt.Errorf("authenticode: sign: %w", err)
		}
		unsigned = append(unsigned, a)
	}
	sigAlg := cms.AlgorithmIdentifier{OID: cms.OIDRSAEncryption, Params: cms.NULL} // what signtool and osslsigncode write
	if s.kind == "ECDSA" {
		oid, _ := signing.SignatureAlgorithmOID("ECDSA", s.hash)
		sigAlg = cms.AlgorithmIdentifier{OID: mustMarshal(oid)}
	}
	si, err := cms.MarshalSignerInfo(cms.SignerInfoTemplate{
		Version: 1, Issuer: leaf.RawIssuer, SerialNumber: leaf.SerialNumber,
		DigestAlgorithm: digestAlg, SignedAttributes: attrs, SignatureAlgorithm: sigAlg, Signature: sig,
		UnsignedAttributes: unsigned,
	})
	if err != nil {
		return nil, fmt.Errorf("authenticode: sign: %w", err)
	}
	certs := make([][]byte, len(s.chain))
	for i, c := range s.chain {
		certs[i] = c.Raw
	}
	out, err := cms.MarshalSignedData(cms.SignedDataTemplate{
		Version: 1, DigestAlgorithms: []cms.AlgorithmIdentifier{digestAlg},
		ContentType: contentType, Content: content, Certificates: certs, SignerInfos: [][]byte{si},
	})
	if err != nil {
		return nil, fmt.Errorf("authenticode: sign: %w", err)
	}
	return out, nil
}

// signedAttributes returns the DER SET OF the signed attributes, sorted by
// encoding as DER requires: contentType, SpcSpOpusInfo, SpcStatementType,
// messageDigest of content (contentType is the content's type).
func (s *Signer) signedAttributes(contentType cms.OID, content []byte) ([]byte, error) {
	hh := s.hash.New()
	hh.Write(content)
	md := hh.Sum(nil)
	opus, err := build(func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			if s.opts.Description != "" { // programName [0] EXPLICIT SpcString, unicode [0] IMPLICIT BMPString
				b.AddASN1(tagC(0), func(b *cryptobyte.Builder) {
					b.AddASN1(tagP(0), func(b *cryptobyte.Builder) { b.AddBytes(BMPString(s.opts.Description)) })
				})
			}
			if s.opts.URL != "" { // moreInfo [1] EXPLICIT SpcLink, url [0] IMPLICIT IA5String
				b.AddASN1(tagC(1), func(b *cryptobyte.Builder) {
					b.AddASN1(tagP(0), func(b *cryptobyte.Builder) { b.AddBytes([]byte(s.opts.URL)) })
				})
			}
		})
	})
	if err != nil {
		return nil, err
	}
	statement, err := build(func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(oidIndividualCodeSigning) })
	})
	if err != nil {
		return nil, err
	}
	mdv, err := build(func(b *cryptobyte.Builder) { b.AddASN1OctetString(md) })
	if err != nil {
		return nil, err
	}
	var list [][]byte
	for _, a := range []struct {
		oid   cms.OID
		value []byte
	}{
		{cms.OIDContentType, contentType},
		{oidSpcSpOpusInfo, opus},
		{oidSpcStatementType, statement},
		{cms.OIDMessageDigest, mdv},
	} {
		der, err := cms.NewAttribute(a.oid, a.value)
		if err != nil {
			return nil, fmt.Errorf("authenticode: sign: %w", err)
		}
		list = append(list, der)
	}
	set, err := cms.SignedAttributes(list...)
	if err != nil {
		return nil, fmt.Errorf("authenticode: sign: %w", err)
	}
	return set, nil
}

func mustMarshal(oid []int) cms.OID { return cms.NewOID(oid...) }

func build(f func(b *cryptobyte.Builder)) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	f(b)
	der, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("authenticode: sign: encoding the signature: %w", err)
	}
	return der, nil
}

func tagC(n uint8) cbasn1.Tag { return cbasn1.Tag(n).Constructed().ContextSpecific() }
func tagP(n uint8) cbasn1.Tag { return cbasn1.Tag(n).ContextSpecific() }

// BMPString encodes s as the contents of a BMPString (UTF-16 big endian,
// as Windows writes SpcString values; characters beyond the BMP become
// surrogate pairs).
func BMPString(s string) []byte {
	u := utf16.Encode([]rune(s))
	out := make([]byte, 2*len(u))
	for i, c := range u {
		binary.BigEndian.PutUint16(out[2*i:], c)
	}
	return out
}

// Nest returns the Authenticode ContentInfo outer (possibly followed by
// zero padding, which is dropped) with inner added to its first
// SignerInfo's SPC_NESTED_SIGNATURE unsigned attribute: appended to the
// attribute's values if it exists, else as a new attribute after the
// others. Every other byte of outer is kept as it is.
func Nest(outer, inner []byte) ([]byte, error) {
	bad := func(what string) error { return signing.Errorf(signing.ErrMalformed, "malformed signature: %s", what) }
	s := cryptobyte.String(outer)
	var ci, ct, explicit, sd cryptobyte.String
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1Element(&ct, cbasn1.OBJECT_IDENTIFIER) ||
		!ci.ReadASN1(&explicit, tagC(0)) || !explicit.ReadASN1(&sd, cbasn1.SEQUENCE) || !explicit.Empty() || !ci.Empty() {
		return nil, bad("the ContentInfo to nest in")
	}
	fields, ok := elements(sd)
	if !ok || len(fields) == 0 {
		return nil, bad("the SignedData to nest in")
	}
	var infos, first cryptobyte.String
	if last := fields[len(fields)-1]; !last.ReadASN1(&infos, cbasn1.SET) || !infos.ReadASN1Element(&first, cbasn1.SEQUENCE) {
		return nil, bad("the signerInfos to nest in")
	}
	var si cryptobyte.String
	if !first.ReadASN1(&si, cbasn1.SEQUENCE) {
		return nil, bad("the SignerInfo to nest in")
	}
	siFields, ok := elements(si)
	if !ok || len(siFields) == 0 {
		return nil, bad("the SignerInfo to nest in")
	}
	var attrs []cryptobyte.String
	if last := siFields[len(siFields)-1]; last.PeekASN1Tag(tagC(1)) {
		var unsigned cryptobyte.String
		if !last.ReadASN1(&unsigned, tagC(1)) {
			return nil, bad("the unsigned attributes")
		}
		if attrs, ok = elements(unsigned); !ok {
			return nil, bad("the unsigned attributes")
		}
		siFields = siFields[:len(siFields)-1]
	}
	newAttr := func(values []byte) []byte {
		b := cryptobyte.NewBuilder(nil)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(OIDNestedSignature)
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				b.AddBytes(values)
				b.AddBytes(inner)
			})
		})
		return b.BytesOrPanic()
	}
	done := false
	for i, a := range attrs {
		var seq, oid, vals cryptobyte.String
		if !a.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) || !seq.ReadASN1(&vals, cbasn1.SET) || !seq.Empty() {
			return nil, bad("an unsigned attribute")
		}
		if bytes.Equal(oid, OIDNestedSignature) {
			attrs[i] = newAttr(vals)
			done = true
			break
		}
	}
	if !done {
		attrs = append(attrs, newAttr(nil))
	}
	return build(func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(ct)
			b.AddASN1(tagC(0), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, f := range fields[:len(fields)-1] {
						b.AddBytes(f)
					}
					b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							for _, f := range siFields {
								b.AddBytes(f)
							}
							b.AddASN1(tagC(1), func(b *cryptobyte.Builder) {
								for _, a := range attrs {
									b.AddBytes(a)
								}
							})
						})
						b.AddBytes(infos) // any further SignerInfos, as they were
					})
				})
			})
		})
	})
}

// elements splits s into its DER elements.
func elements(s cryptobyte.String) ([]cryptobyte.String, bool) {
	var out []cryptobyte.String
	for !s.Empty() {
		var e cryptobyte.String
		if !s.ReadAnyASN1Element(&e, nil) {
			return nil, false
		}
		out = append(out, e)
	}
	return out, true
}
