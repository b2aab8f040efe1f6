package authenticode

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/bits"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/binfmt"
	"github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// ErrSigner is wrapped by the errors of [Sign] when the key and certificate
// chain cannot make an Authenticode signature: no chain, a key that is not
// the leaf certificate's, a leaf without the code signing extended key usage.
var ErrSigner = errors.New("unusable signer")

// WarningECDSA is the [SignResult] warning for a PE signed with an ECDSA
// key.
const WarningECDSA = "ECDSA signatures are ignored by Windows signer rules (WDAC): sign with an RSA key for files a WDAC policy must admit"

// WarningAppendUnsigned is the [SignResult] warning for SignOptions.Append
// on a file that had no signature to nest in.
const WarningAppendUnsigned = "append: the file was not signed, so the new signature is its only one"

// SignOptions configure Sign. The zero value signs with SHA-256, replaces an
// existing signature, and adds no timestamp.
type SignOptions struct {
	// Hash is the image digest and the signer's digest: crypto.SHA256 (the
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
	// in file order: the image, then the certificate table it had (the
	// whole file: pe.Parse refuses bytes after the table). With Append,
	// hashing them checks the signatures kept against an earlier reading,
	// with no second read for the file to change in between.
	Tee io.Writer
	// TimestampURL is the RFC 3161 time-stamping authority to countersign
	// with (optional).
	TimestampURL string
	// HTTPClient is used for the TSA (default: a client with a 30 s
	// timeout).
	HTTPClient *http.Client
}

// Output is where Sign writes the signed file: sequentially, then a few
// small WriteAt patches of header fields. *os.File satisfies it.
type Output interface {
	io.Writer
	io.WriterAt
}

// SignResult says what Sign did.
type SignResult struct {
	Digest   []byte   // the image digest signed
	Size     int64    // bytes written
	Warnings []string // e.g. WarningECDSA
}

// signBufSize is the buffer the image streams through.
const signBufSize = 256 << 10

var signBufs = sync.Pool{New: func() any { b := make([]byte, signBufSize); return &b }}

// maxTimestampResponse caps a TSA's answer (a token with its chain is a few
// KiB).
const maxTimestampResponse = 1 << 20

// More OIDs (complete DER elements, as in pkcs7.go).
var (
	oidSpcSpOpusInfo         = mustOID(1, 3, 6, 1, 4, 1, 311, 2, 1, 12)
	oidSpcStatementType      = mustOID(1, 3, 6, 1, 4, 1, 311, 2, 1, 11)
	oidIndividualCodeSigning = mustOID(1, 3, 6, 1, 4, 1, 311, 2, 1, 21)
	oidECDSAWithSHA256       = mustOID(1, 2, 840, 10045, 4, 3, 2)
	oidECDSAWithSHA384       = mustOID(1, 2, 840, 10045, 4, 3, 3)
	oidECDSAWithSHA512       = mustOID(1, 2, 840, 10045, 4, 3, 4)
)

// obsolete is the SpcLink file "<<<Obsolete>>>" that osslsigncode and
// signtool put in SpcPeImageData, as a BMPString.
var obsolete = bmpString("<<<Obsolete>>>")

// Sign reads the PE image in (size bytes) ONCE, streaming it through a
// fixed buffer into out while computing the Authenticode digest and the new
// PE checksum, then appends the certificate table and patches the
// certificate table directory entry and the checksum in out with WriteAt.
// key must match chain[0] (leaf first); chain[0] must carry the code
// signing EKU (1.3.6.1.5.5.7.3.3), else an error wrapping [ErrSigner].
//
// The output is the input up to its certificate table (or the whole
// unsigned file), zero padding to a multiple of 8 bytes (part of the signed
// image: the digest of the unsigned file is the digest of the signed one),
// then the new certificate table. By default the table holds one
// WIN_CERTIFICATE, ours, and every existing signature is dropped; with
// opts.Append the existing entries are kept and our signature is added to
// the first one's SignerInfo as an SPC_NESTED_SIGNATURE unsigned attribute
// (outside what that signature signs, so it stays valid).
//
// The signature is a PKCS#7 SignedData over an SpcIndirectDataContent
// (SPC_PE_IMAGE_DATAOBJ and the image digest) carrying the chain, with the
// signed attributes Windows expects: contentType, SpcSpOpusInfo
// (opts.Description, opts.URL), SpcStatementType (individual code signing)
// and messageDigest. RSA keys sign with PKCS#1 v1.5 (the same input gives
// the same bytes), ECDSA keys with ecdsa-with-SHA*, which Windows signer
// rules ignore ([WarningECDSA]). With opts.TimestampURL the signature is
// countersigned by that RFC 3161 TSA, and the token is verified before it is
// embedded.
//
// Memory is a fixed buffer plus the PKCS#7 and the old certificate table
// (capped by pe.Parse), never the file size. On error out holds a partial
// file: the caller must discard it. Sign may be called concurrently (for
// different outputs) if key may be used concurrently, as the crypto/rsa and
// crypto/ecdsa keys may.
//
// # Security
//
// in is untrusted. A file pe.Parse refuses (a certificate table that is not
// at the end of the file, lengths that do not add up) or whose table
// pe.ParseCertificateTable cannot split is refused with that error, never
// re-signed; with Append, the entry we nest in must be a well-formed
// Authenticode signature. The signature Sign makes is checked with the
// certificate's key before it is written (by crypto/rsa itself for an
// *rsa.PrivateKey), so a signer that misbehaves (another key, PSS instead of
// PKCS#1 v1.5) fails closed; so does a timestamp token that does not verify
// or does not answer our request.
func Sign(ctx context.Context, in io.ReaderAt, size int64, out Output, key crypto.Signer, chain []*x509.Certificate, opts SignOptions) (res *SignResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("authenticode: sign: %w: %v (please report this)", ErrInternal, r)
		}
	}()
	s, err := newSigner(key, chain, opts)
	if err != nil {
		return nil, err
	}
	f, err := pe.Parse(in, size)
	if err != nil {
		return nil, fmt.Errorf("authenticode: sign: %w", err)
	}
	var table []byte
	var entries []pe.Certificate
	if f.Signed() {
		table = make([]byte, f.CertTable.Len)
		if err := binfmt.ReadFull(in, size, binfmt.PE, f.CertTable.Off, table, "certificate table"); err != nil {
			return nil, fmt.Errorf("authenticode: sign: %w", err)
		}
		if entries, err = pe.ParseCertificateTable(table, f.CertTable.Off); err != nil {
			return nil, fmt.Errorf("authenticode: sign: %w", err)
		}
	}
	res = &SignResult{}
	if s.kind == "ECDSA" {
		res.Warnings = append(res.Warnings, WarningECDSA)
	}
	nest := opts.Append && len(entries) > 0
	if opts.Append && !nest {
		res.Warnings = append(res.Warnings, WarningAppendUnsigned)
	}
	if nest {
		if err := checkNestable(entries[0]); err != nil {
			return nil, err
		}
	}

	end := size
	if f.Signed() {
		end = f.CertTable.Off
	}
	pad := -end & 7
	tableOff := end + pad
	if tableOff > math.MaxUint32 {
		return nil, fmt.Errorf("authenticode: sign: the image is %d bytes: a certificate table must start below 4 GiB", end)
	}
	digest, ck, err := s.stream(ctx, in, f, end, out)
	if err != nil {
		return nil, err
	}
	if opts.Tee != nil {
		if _, err := opts.Tee.Write(table); err != nil {
			return nil, fmt.Errorf("authenticode: sign: %w", err)
		}
	}
	if _, err := out.Write(zeros[:pad]); err != nil {
		return nil, fmt.Errorf("authenticode: sign: writing the output: %w", err)
	}
	p7, err := s.signedData(ctx, digest)
	if err != nil {
		return nil, err
	}
	var newTable []byte
	if nest {
		first, err := nestSignature(entries[0].Data, p7)
		if err != nil {
			return nil, fmt.Errorf("authenticode: sign: append: %w", err)
		}
		newTable = appendEntry(nil, first)
		for _, e := range entries[1:] {
			start := e.Offset - f.CertTable.Off
			newTable = append(newTable, table[start:start+int64(e.Length)]...)
			newTable = append(newTable, zeros[:-len(newTable)&7]...)
		}
	} else {
		newTable = appendEntry(nil, p7)
	}
	if len(newTable) > limits.MaxCertTable {
		return nil, fmt.Errorf("authenticode: sign: the new certificate table is %d bytes, over the %d-byte limit", len(newTable), limits.MaxCertTable)
	}
	// Never write a table Verify would refuse (with Append, one that nests
	// more than the caps allow).
	if err := CheckTable(newTable, tableOff, nil); err != nil {
		return nil, fmt.Errorf("authenticode: sign: the new certificate table would be malformed: %w", err)
	}
	if _, err := out.Write(newTable); err != nil {
		return nil, fmt.Errorf("authenticode: sign: writing the certificate table: %w", err)
	}
	ck.add(newTable, tableOff)
	var dir [8]byte
	binary.LittleEndian.PutUint32(dir[0:], uint32(tableOff))
	binary.LittleEndian.PutUint32(dir[4:], uint32(len(newTable)))
	ck.add(dir[:], f.CertDirOffset)
	total := tableOff + int64(len(newTable))
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], ck.sum16()+uint32(total))
	if _, err := out.WriteAt(dir[:], f.CertDirOffset); err != nil {
		return nil, fmt.Errorf("authenticode: sign: patching the certificate table directory entry: %w", err)
	}
	if _, err := out.WriteAt(sum[:], f.CheckSumOffset); err != nil {
		return nil, fmt.Errorf("authenticode: sign: patching the PE checksum: %w", err)
	}
	res.Digest = digest
	res.Size = total
	return res, nil
}

// signer is a checked key, chain and options.
type signer struct {
	key   crypto.Signer
	chain []*x509.Certificate
	hash  crypto.Hash
	kind  string // RSA or ECDSA
	opts  SignOptions
}

func newSigner(key crypto.Signer, chain []*x509.Certificate, opts SignOptions) (*signer, error) {
	s := &signer{key: key, chain: chain, hash: opts.Hash, opts: opts}
	if s.hash == 0 {
		s.hash = crypto.SHA256
	}
	switch s.hash {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		return nil, fmt.Errorf("authenticode: sign: %w: digest %v (sign with SHA256, SHA384 or SHA512)", ErrUnsupportedAlgorithm, s.hash)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("authenticode: sign: %w: no certificate chain", ErrSigner)
	}
	for i, c := range chain {
		if c == nil {
			return nil, fmt.Errorf("authenticode: sign: %w: certificate %d of the chain is nil", ErrSigner, i)
		}
	}
	leaf := chain[0]
	if key == nil {
		return nil, fmt.Errorf("authenticode: sign: %w: no key", ErrSigner)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageCodeSigning) {
		return nil, fmt.Errorf("authenticode: sign: %w: certificate %q does not have the code signing extended key usage (1.3.6.1.5.5.7.3.3)", ErrSigner, leaf.Subject.String())
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("authenticode: sign: %w: the key is not the key of certificate %q (the chain must start with the signer's certificate)", ErrSigner, leaf.Subject.String())
	}
	switch leaf.PublicKey.(type) {
	case *rsa.PublicKey:
		s.kind = "RSA"
	case *ecdsa.PublicKey:
		s.kind = "ECDSA"
	default:
		return nil, fmt.Errorf("authenticode: sign: %w: %T keys (Authenticode signers are RSA or ECDSA)", ErrUnsupportedAlgorithm, leaf.PublicKey)
	}
	if !utf8.ValidString(opts.Description) {
		return nil, errors.New("authenticode: sign: the description is not valid UTF-8")
	}
	for i := range len(opts.URL) {
		if c := opts.URL[i]; c < 0x20 || c > 0x7e {
			return nil, fmt.Errorf("authenticode: sign: the URL %q has a character an IA5String cannot hold at byte %d", opts.URL, i)
		}
	}
	if opts.TimestampURL != "" {
		u, err := url.Parse(opts.TimestampURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("authenticode: sign: the timestamp URL %q is not an http or https URL", opts.TimestampURL)
		}
	}
	return s, nil
}

// stream copies in[0:end] to out through a pooled buffer, with the CheckSum
// field and the certificate table directory entry zeroed (both are patched
// later), and returns the image digest and the checksum of what it wrote.
func (s *signer) stream(ctx context.Context, in io.ReaderAt, f *pe.File, end int64, out io.Writer) ([]byte, peChecksum, error) {
	bp := signBufs.Get().(*[]byte)
	defer signBufs.Put(bp)
	buf := *bp
	// The image without its certificate table: the Digester pads an
	// unsigned file to 8 bytes as the output is padded; a signed file's
	// table starts 8-byte aligned.
	img := *f
	img.Size, img.CertTable = end, pe.Range{}
	h := s.hash.New()
	d := NewDigester(&img, h)
	var ck peChecksum
	for pos := int64(0); pos < end; {
		if err := ctx.Err(); err != nil {
			return nil, ck, fmt.Errorf("authenticode: sign: %w", err)
		}
		chunk := buf[:min(int64(len(buf)), end-pos)]
		n, err := in.ReadAt(chunk, pos)
		if n < len(chunk) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, ck, fmt.Errorf("authenticode: sign: reading the image at offset %#x: %w", pos+int64(n), err)
		}
		if s.opts.Tee != nil {
			if _, err := s.opts.Tee.Write(chunk); err != nil {
				return nil, ck, fmt.Errorf("authenticode: sign: %w", err)
			}
		}
		zeroRange(chunk, pos, f.CheckSumOffset, 4)
		zeroRange(chunk, pos, f.CertDirOffset, 8)
		if _, err := d.Write(chunk); err != nil {
			return nil, ck, fmt.Errorf("authenticode: sign: %w", err)
		}
		if _, err := out.Write(chunk); err != nil {
			return nil, ck, fmt.Errorf("authenticode: sign: writing the output: %w", err)
		}
		ck.add(chunk, pos)
		pos += int64(len(chunk))
	}
	if err := d.Close(); err != nil {
		return nil, ck, fmt.Errorf("authenticode: sign: %w", err)
	}
	return h.Sum(nil), ck, nil
}

// zeroRange zeroes the part of [off, off+n) that falls in p, which holds
// the file's bytes from pos on.
func zeroRange(p []byte, pos, off, n int64) {
	lo, hi := max(pos, off), min(pos+int64(len(p)), off+n)
	if lo < hi {
		clear(p[lo-pos : hi-pos])
	}
}

// peChecksum accumulates the PE image checksum (imagehlp's
// CheckSumMappedFile): the 16-bit one's-complement-style sum of the file's
// little-endian 16-bit words. It sums 64-bit words with end-around carry,
// which is congruent modulo 0xffff (2^64 ≡ 1), so bytes may be added in any
// order as long as each is added at its file offset.
type peChecksum struct{ acc uint64 }

func (c *peChecksum) word(w uint64) {
	var carry uint64
	c.acc, carry = bits.Add64(c.acc, w, 0)
	c.acc += carry
}

// add adds p, the file's bytes from offset off on.
func (c *peChecksum) add(p []byte, off int64) {
	for len(p) > 0 && off%8 != 0 {
		c.word(uint64(p[0]) << (8 * (off % 8)))
		p, off = p[1:], off+1
	}
	// Two independent carry chains, folded together after the loop.
	var b peChecksum
	for len(p) >= 16 {
		c.word(binary.LittleEndian.Uint64(p))
		b.word(binary.LittleEndian.Uint64(p[8:]))
		p = p[16:]
	}
	c.word(b.acc)
	for len(p) >= 8 {
		c.word(binary.LittleEndian.Uint64(p))
		p = p[8:]
	}
	for i, b := range p {
		c.word(uint64(b) << (8 * i))
	}
}

// sum16 folds the sum to 16 bits as the running 16-bit fold does: 0 only
// for an all-zero file, else in [1, 0xffff].
func (c *peChecksum) sum16() uint32 {
	if c.acc == 0 {
		return 0
	}
	if r := c.acc % 0xffff; r != 0 {
		return uint32(r)
	}
	return 0xffff
}

// appendEntry appends a revision 2.0 WIN_CERT_TYPE_PKCS_SIGNED_DATA entry
// holding der, padded to 8 bytes (dwLength counts the padding, as
// signtool and osslsigncode write it).
func appendEntry(dst, der []byte) []byte {
	pad := -len(der) & 7
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[0:], uint32(8+len(der)+pad))
	binary.LittleEndian.PutUint16(hdr[4:], pe.CertRevision2_0)
	binary.LittleEndian.PutUint16(hdr[6:], pe.CertTypePKCSSignedData)
	dst = append(dst, hdr[:]...)
	dst = append(dst, der...)
	return append(dst, zeros[:pad]...)
}

// signedData returns the DER ContentInfo of our Authenticode signature over
// the image digest.
func (s *signer) signedData(ctx context.Context, digest []byte) ([]byte, error) {
	hashOID, _ := signing.OIDForHash(s.hash)
	digestAlg := func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(hashOID)
			b.AddASN1NULL()
		})
	}
	// SpcIndirectDataContent ::= SEQUENCE { data SpcAttributeTypeAndOptionalValue, messageDigest DigestInfo }
	idc, err := build(func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddBytes(oidSpcPEImageData)
				// SpcPeImageData ::= SEQUENCE { flags BIT STRING, file [0] SpcLink },
				// as osslsigncode writes it: flags 07 80 (includeResources), file
				// [2] SpcString, unicode [0] BMPString "<<<Obsolete>>>".
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) { b.AddBytes([]byte{0x07, 0x80}) })
					b.AddASN1(tagC(0), func(b *cryptobyte.Builder) {
						b.AddASN1(tagC(2), func(b *cryptobyte.Builder) {
							b.AddASN1(tagP(0), func(b *cryptobyte.Builder) { b.AddBytes(obsolete) })
						})
					})
				})
			})
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				digestAlg(b)
				b.AddASN1OctetString(digest)
			})
		})
	})
	if err != nil {
		return nil, err
	}
	// The messageDigest is over the content octets, without the SEQUENCE
	// tag and length (the Authenticode quirk verify.go checks).
	var contents cryptobyte.String
	if in := cryptobyte.String(idc); !in.ReadASN1(&contents, cbasn1.SEQUENCE) {
		return nil, errors.New("authenticode: sign: internal error: SpcIndirectDataContent")
	}
	attrs, err := s.signedAttributes(contents)
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
	// public part, which newSigner found equal to the certificate's: no
	// need to check those twice.
	if _, ok := s.key.(*rsa.PrivateKey); !ok {
		if err := signing.CheckDigestSignature(leaf.PublicKey, s.kind, s.hash, attrs, sig); err != nil {
			return nil, fmt.Errorf("authenticode: sign: %w: the signer made a %s signature that does not verify with the key of %q: %w", ErrSigner, s.kind, leaf.Subject.String(), err)
		}
	}
	var token []byte
	if s.opts.TimestampURL != "" {
		if token, err = s.timestamp(ctx, sig); err != nil {
			return nil, err
		}
	}
	return build(func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
			b.AddBytes(oidSignedData)
			b.AddASN1(tagC(0), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
					b.AddASN1Int64(1)
					b.AddASN1(cbasn1.SET, digestAlg)
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // contentInfo
						b.AddBytes(oidSpcIndirectData)
						b.AddASN1(tagC(0), func(b *cryptobyte.Builder) { b.AddBytes(idc) })
					})
					b.AddASN1(tagC(0), func(b *cryptobyte.Builder) { // certificates, leaf first
						for _, c := range s.chain {
							b.AddBytes(c.Raw)
						}
					})
					b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignerInfo
							b.AddASN1Int64(1)
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // issuerAndSerialNumber
								b.AddBytes(leaf.RawIssuer)
								b.AddASN1BigInt(leaf.SerialNumber)
							})
							digestAlg(b)
							b.AddASN1(tagC(0), func(b *cryptobyte.Builder) { b.AddBytes(setContents(attrs)) }) // [0] IMPLICIT SET OF
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { s.signatureAlgorithm(b) })
							b.AddASN1OctetString(sig)
							if token != nil {
								b.AddASN1(tagC(1), func(b *cryptobyte.Builder) {
									b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
										b.AddBytes(oidRFC3161Timestamp)
										b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(token) })
									})
								})
							}
						})
					})
				})
			})
		})
	})
}

// signatureAlgorithm adds the SignerInfo's digestEncryptionAlgorithm
// contents: rsaEncryption with NULL parameters (what signtool and
// osslsigncode write) or ecdsa-with-SHA*.
func (s *signer) signatureAlgorithm(b *cryptobyte.Builder) {
	if s.kind == "RSA" {
		b.AddBytes(oidRSAEncryption)
		b.AddASN1NULL()
		return
	}
	switch s.hash {
	case crypto.SHA384:
		b.AddBytes(oidECDSAWithSHA384)
	case crypto.SHA512:
		b.AddBytes(oidECDSAWithSHA512)
	default:
		b.AddBytes(oidECDSAWithSHA256)
	}
}

// signedAttributes returns the DER SET OF the signed attributes, sorted by
// encoding as DER requires: contentType, SpcSpOpusInfo, SpcStatementType,
// messageDigest of content.
func (s *signer) signedAttributes(content []byte) ([]byte, error) {
	hh := s.hash.New()
	hh.Write(content)
	md := hh.Sum(nil)
	var list [][]byte
	for _, a := range []struct {
		oid   []byte
		value func(b *cryptobyte.Builder)
	}{
		{oidContentType, func(b *cryptobyte.Builder) { b.AddBytes(oidSpcIndirectData) }},
		{oidSpcSpOpusInfo, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				if s.opts.Description != "" { // programName [0] EXPLICIT SpcString, unicode [0] IMPLICIT BMPString
					b.AddASN1(tagC(0), func(b *cryptobyte.Builder) {
						b.AddASN1(tagP(0), func(b *cryptobyte.Builder) { b.AddBytes(bmpString(s.opts.Description)) })
					})
				}
				if s.opts.URL != "" { // moreInfo [1] EXPLICIT SpcLink, url [0] IMPLICIT IA5String
					b.AddASN1(tagC(1), func(b *cryptobyte.Builder) {
						b.AddASN1(tagP(0), func(b *cryptobyte.Builder) { b.AddBytes([]byte(s.opts.URL)) })
					})
				}
			})
		}},
		{oidSpcStatementType, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(oidIndividualCodeSigning) })
		}},
		{oidMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(md) }},
	} {
		der, err := build(func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddBytes(a.oid)
				b.AddASN1(cbasn1.SET, a.value)
			})
		})
		if err != nil {
			return nil, err
		}
		list = append(list, der)
	}
	slices.SortFunc(list, bytes.Compare)
	return build(func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			for _, der := range list {
				b.AddBytes(der)
			}
		})
	})
}

// setContents returns the contents of a DER SET element.
func setContents(der []byte) []byte {
	var c cryptobyte.String
	in := cryptobyte.String(der)
	if !in.ReadASN1(&c, cbasn1.SET) {
		panic("authenticode: not a SET")
	}
	return c
}

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

// bmpString encodes s as the contents of a BMPString (UTF-16 big endian,
// as Windows writes it; characters beyond the BMP become surrogate pairs).
func bmpString(s string) []byte {
	u := utf16.Encode([]rune(s))
	out := make([]byte, 2*len(u))
	for i, c := range u {
		binary.BigEndian.PutUint16(out[2*i:], c)
	}
	return out
}

// checkNestable checks that e is an Authenticode signature we can nest
// ours in.
func checkNestable(e pe.Certificate) error {
	if e.Revision != pe.CertRevision2_0 || e.Type != pe.CertTypePKCSSignedData {
		return fmt.Errorf("authenticode: sign: append: %w at offset %#x: revision %#04x, type %s (a nested signature goes in a revision 2.0 PKCS_SIGNED_DATA entry)",
			ErrUnsupportedEntry, e.Offset, e.Revision, pe.TypeName(e.Type))
	}
	sd, err := parseAuthenticode(e.Data)
	if err != nil {
		return fmt.Errorf("authenticode: sign: append: the signature at offset %#x: %w", e.Offset, err)
	}
	if len(sd.signers) != 1 {
		return fmt.Errorf("authenticode: sign: append: the signature at offset %#x: %w: %d SignerInfos (Authenticode requires exactly one)", e.Offset, ErrMalformed, len(sd.signers))
	}
	return nil
}

// nestSignature returns the Authenticode ContentInfo outer (possibly
// followed by zero padding) with inner added to its first SignerInfo's
// SPC_NESTED_SIGNATURE unsigned attribute: appended to the attribute's
// values if it exists, else as a new attribute after the others. Every other
// byte of outer is kept as it is.
func nestSignature(outer, inner []byte) ([]byte, error) {
	s := cryptobyte.String(outer)
	var ci, ct, explicit, sd cryptobyte.String
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1Element(&ct, cbasn1.OBJECT_IDENTIFIER) ||
		!ci.ReadASN1(&explicit, tagC(0)) || !explicit.ReadASN1(&sd, cbasn1.SEQUENCE) || !explicit.Empty() || !ci.Empty() {
		return nil, errDER("the ContentInfo to nest in")
	}
	fields, ok := elements(sd)
	if !ok || len(fields) == 0 {
		return nil, errDER("the SignedData to nest in")
	}
	var infos, first cryptobyte.String
	if last := fields[len(fields)-1]; !last.ReadASN1(&infos, cbasn1.SET) || !infos.ReadASN1Element(&first, cbasn1.SEQUENCE) {
		return nil, errDER("the signerInfos to nest in")
	}
	var si cryptobyte.String
	if !first.ReadASN1(&si, cbasn1.SEQUENCE) {
		return nil, errDER("the SignerInfo to nest in")
	}
	siFields, ok := elements(si)
	if !ok || len(siFields) == 0 {
		return nil, errDER("the SignerInfo to nest in")
	}
	var attrs []cryptobyte.String
	if last := siFields[len(siFields)-1]; last.PeekASN1Tag(tagC(1)) {
		var unsigned cryptobyte.String
		if !last.ReadASN1(&unsigned, tagC(1)) {
			return nil, errDER("the unsigned attributes")
		}
		if attrs, ok = elements(unsigned); !ok {
			return nil, errDER("the unsigned attributes")
		}
		siFields = siFields[:len(siFields)-1]
	}
	newAttr := func(values []byte) []byte {
		b := cryptobyte.NewBuilder(nil)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(oidNestedSignature)
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
			return nil, errDER("an unsigned attribute")
		}
		if bytes.Equal(oid, oidNestedSignature) {
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

// timestamp countersigns sig through the TSA at s.opts.TimestampURL and
// returns the TimeStampToken to embed.
func (s *signer) timestamp(ctx context.Context, sig []byte) ([]byte, error) {
	_, token, err := RequestTimestamp(ctx, s.opts.TimestampURL, s.opts.HTTPClient, sig)
	if err != nil {
		return nil, fmt.Errorf("authenticode: sign: %w", err)
	}
	return token, nil
}

// RequestTimestamp asks the RFC 3161 time-stamping authority at tsaURL
// (http or https) to countersign signature: a TimeStampReq with the SHA-256
// of signature as message imprint, a random nonce and certReq. It checks
// the answer before returning it: granted, a token that verifies (signed by
// a certificate it carries, over this imprint) and that answers this
// request (the nonce). It returns the DER TimeStampResp (what a Sigstore
// bundle carries) and the TimeStampToken in it (what Authenticode embeds).
// It does not decide whether the TSA is trusted: verifiers do, with their
// own roots. client nil means a client with a 30 s timeout. Errors wrap
// [ErrTimestamp] and name the TSA (its URL without credentials).
func RequestTimestamp(ctx context.Context, tsaURL string, client *http.Client, signature []byte) (resp, token []byte, err error) {
	u, err := url.Parse(tsaURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("%w: the timestamp URL %q is not an http or https URL", ErrTimestamp, tsaURL)
	}
	where := u.Redacted()
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w from %s: %s", ErrTimestamp, where, fmt.Sprintf(format, args...))
	}
	imprint := sha256.Sum256(signature)
	nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, nil, fail("making a nonce: %v", err)
	}
	sha256OID, _ := signing.OIDForHash(crypto.SHA256)
	req, err := build(func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // TimeStampReq
			b.AddASN1Int64(1)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // messageImprint
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(sha256OID)
					b.AddASN1NULL()
				})
				b.AddASN1OctetString(imprint[:])
			})
			b.AddASN1BigInt(nonce)
			b.AddASN1Boolean(true) // certReq
		})
	})
	if err != nil {
		return nil, nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, tsaURL, bytes.NewReader(req))
	if err != nil {
		return nil, nil, fail("%v", err)
	}
	hreq.Header.Set("Content-Type", "application/timestamp-query")
	hreq.Header.Set("Accept", "application/timestamp-reply")
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	hresp, err := client.Do(hreq)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrTimestamp, err)
	}
	defer hresp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(hresp.Body, maxTimestampResponse+1))
	switch {
	case err != nil:
		return nil, nil, fail("reading the answer: %v", err)
	case hresp.StatusCode != http.StatusOK:
		return nil, nil, fail("HTTP %s", hresp.Status)
	case len(body) > maxTimestampResponse:
		return nil, nil, fail("the answer is over %d bytes", maxTimestampResponse)
	}
	token, err = parseTimestampResponse(body)
	if err != nil {
		return nil, nil, fail("%v", err)
	}
	if _, err := verifyToken(token, signature); err != nil {
		return nil, nil, fmt.Errorf("%w from %s: the token does not verify: %w", ErrTimestamp, where, err)
	}
	got, err := tokenNonce(token)
	if err != nil {
		return nil, nil, fail("%v", err)
	}
	if got == nil || got.Cmp(nonce) != 0 {
		return nil, nil, fail("the token's nonce %v is not the request's %v (a replayed or misdirected answer)", got, nonce)
	}
	return body, token, nil
}

// TimestampToken is an RFC 3161 token that verified over a signature.
type TimestampToken struct {
	// Time is the token's genTime.
	Time time.Time
	// Signer is the TSA certificate whose signature over the token
	// verified; Certificates are all the certificates the token carries,
	// for building its chain. Neither is trusted yet.
	Signer       *x509.Certificate
	Certificates []*x509.Certificate
}

// VerifyTSA checks that the token's TSA certificate is a time-stamping
// certificate as RFC 3161 (2.3) requires, with the timeStamping EKU alone
// in a critical extension (signing.Certificate.CheckTimestamping, the rule
// every timestamp path uses; crypto/x509 would let a certificate without
// any EKU pass), and that it chains to one of roots (with the token's
// certificates as intermediates), at the token's time.
func (t *TimestampToken) VerifyTSA(roots []*x509.Certificate) error {
	c, err := signing.ParseCertificate(t.Signer.Raw)
	if err != nil {
		return fmt.Errorf("the TSA certificate %q: %w", t.Signer.Subject.CommonName, err)
	}
	if err := c.CheckTimestamping(); err != nil {
		return fmt.Errorf("the TSA certificate %q is not a time-stamping certificate: %w", t.Signer.Subject.CommonName, err)
	}
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, c := range t.Certificates {
		inter.AddCert(c)
	}
	_, err = t.Signer.Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		CurrentTime:   t.Time,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping},
	})
	if err != nil {
		return fmt.Errorf("the TSA %q is not trusted: %w", t.Signer.Subject.CommonName, err)
	}
	return nil
}

// VerifyTimestampResponse checks a DER TimeStampResp that a TSA gave for
// signature (as [RequestTimestamp] returns and Sigstore bundles carry):
// status granted, a TimeStampToken whose TSTInfo's message imprint is the
// hash of signature, signed (with the signed attributes RFC 5652 requires)
// by a certificate the token carries. Whether that TSA is trusted is the
// caller's to decide, with the returned certificates, at the returned time.
// resp is untrusted: malformed input is an error wrapping [ErrMalformed]
// or [ErrTimestamp], never a panic.
func VerifyTimestampResponse(resp, signature []byte) (tok *TimestampToken, err error) {
	defer func() {
		if r := recover(); r != nil {
			tok, err = nil, fmt.Errorf("%w: %w: %v (please report this)", ErrTimestamp, ErrInternal, r)
		}
	}()
	if len(resp) > maxTimestampResponse {
		return nil, fmt.Errorf("%w: the response is over %d bytes", ErrTimestamp, maxTimestampResponse)
	}
	token, err := parseTimestampResponse(resp)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTimestamp, err)
	}
	return verifyToken(token, signature)
}

// verifyToken verifies a TimeStampToken over signature (see
// [VerifyTimestampResponse]).
func verifyToken(token, signature []byte) (*TimestampToken, error) {
	var ts signing.Timestamp
	v := &verifier{}
	signer, certs, err := v.rfc3161Signer(&ts, token, signature, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTimestamp, err)
	}
	tok := &TimestampToken{Time: ts.Time}
	if tok.Signer, err = x509.ParseCertificate(signer.Raw); err != nil {
		return nil, fmt.Errorf("%w: the TSA certificate: %w", ErrTimestamp, err)
	}
	for _, c := range certs {
		if xc, err := x509.ParseCertificate(c.Raw); err == nil {
			tok.Certificates = append(tok.Certificates, xc)
		}
	}
	return tok, nil
}

// parseTimestampResponse reads TimeStampResp ::= SEQUENCE { status
// PKIStatusInfo, timeStampToken ContentInfo OPTIONAL } and returns the
// token if the status is granted (0) or grantedWithMods (1).
func parseTimestampResponse(der []byte) ([]byte, error) {
	s := cryptobyte.String(der)
	var resp, info, token cryptobyte.String
	var status int64
	if !s.ReadASN1(&resp, cbasn1.SEQUENCE) || !s.Empty() || !resp.ReadASN1(&info, cbasn1.SEQUENCE) || !info.ReadASN1Integer(&status) {
		return nil, errDER("the answer is not a DER TimeStampResp")
	}
	if status != 0 && status != 1 {
		msg := "status " + strconv.FormatInt(status, 10)
		if name, ok := map[int64]string{2: "rejection", 3: "waiting", 4: "revocationWarning", 5: "revocationNotification"}[status]; ok {
			msg += " (" + name + ")"
		}
		var text cryptobyte.String
		if info.ReadASN1(&text, cbasn1.SEQUENCE) {
			for !text.Empty() {
				var t cryptobyte.String
				if !text.ReadASN1(&t, cbasn1.UTF8String) {
					break
				}
				msg += ": " + strconv.Quote(string(t))
			}
		}
		return nil, fmt.Errorf("the TSA refused: %s", msg)
	}
	if !resp.ReadASN1Element(&token, cbasn1.SEQUENCE) || !resp.Empty() {
		return nil, errDER("the TSA granted but sent no TimeStampToken")
	}
	return token, nil
}

// tokenNonce returns the nonce of a TimeStampToken's TSTInfo (nil if it has
// none).
func tokenNonce(token []byte) (*big.Int, error) {
	_, content, err := parseContentInfo(token)
	if err != nil {
		return nil, err
	}
	sd, err := parseSignedData(content, nil)
	if err != nil {
		return nil, err
	}
	// TSTInfo ::= SEQUENCE { version, policy, messageImprint, serialNumber,
	// genTime, accuracy SEQUENCE OPTIONAL, ordering BOOLEAN DEFAULT FALSE,
	// nonce INTEGER OPTIONAL, ... }
	s := cryptobyte.String(sd.content)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !body.SkipASN1(cbasn1.INTEGER) || !body.SkipASN1(cbasn1.OBJECT_IDENTIFIER) ||
		!body.SkipASN1(cbasn1.SEQUENCE) || !body.SkipASN1(cbasn1.INTEGER) || !body.SkipASN1(cbasn1.GeneralizedTime) ||
		!body.SkipOptionalASN1(cbasn1.SEQUENCE) || !body.SkipOptionalASN1(cbasn1.BOOLEAN) {
		return nil, errDER("bad TSTInfo")
	}
	if !body.PeekASN1Tag(cbasn1.INTEGER) {
		return nil, nil
	}
	n := new(big.Int)
	if !body.ReadASN1Integer(n) {
		return nil, errDER("bad TSTInfo nonce")
	}
	return n, nil
}
