// Package rpm reads RPM packages as containers: the lead, the signature
// header, the main header and the payload, a compressed cpio archive whose
// regular files are the package's members, named by their installed paths
// ("usr/bin/x").
//
// # What is checked
//
// In order: the lead's magic (ed ab ee db) and signature type (5); the
// signature header (index entries and store within
// [limits.MaxRPMHeaderEntries] and [limits.MaxRPMHeaderData], every entry's
// type known and its data inside the store, its padding to 8 bytes zero);
// the main header, likewise; the signature header's SHA-256 and SHA-1
// digests of the main header (RPMSIGTAG_SHA256, RPMSIGTAG_SHA1) and its
// header+payload size (RPMSIGTAG_SIZE, LONGSIZE), when present; the payload
// format (cpio) and compressor (gzip, bzip2, xz, lzma, zstd, or none; gzip
// when the tag is absent, as rpm reads it). Then the payload is read once,
// as a stream: each cpio entry's header ("newc" 070701 or "crc" 070702,
// whose checksum of the data is checked as it flows), name and data.
// At the end, the digest of the compressed payload (RPMTAG_PAYLOADDIGEST),
// of the uncompressed one (RPMTAG_PAYLOADDIGESTALT), the MD5 of header and
// payload (RPMSIGTAG_MD5) and the uncompressed size (RPMSIGTAG_PAYLOADSIZE,
// LONGARCHIVESIZE) are compared, when present (the MD5 only when one of
// the SHA-256 digests is absent): a mismatch is Walk's error,
// after the members were yielded (the caller must then block the package
// as a whole).
//
// # Security
//
// The package's OpenPGP signatures (RSA, DSA, PGP, GPG tags) and the IMA
// and fs-verity signatures of its files are not verified: [ReadPackage]
// reports which are present. The header digests above tie the header to
// the payload only through the payload digest tags; a package without them
// (rpm before 4.14) has its payload checked against nothing but the MD5 of
// header and payload, when present. Payloads in rpm's stripped cpio format
// (07070X: rpm 6 packages, and rpm 4 packages with files over 4 GiB) are
// refused as unsupported.
package rpm

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"crypto/md5" //nolint:gosec // rpm's legacy digest, checked, not trusted
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/compress"
	"github.com/codesignval/csv/signing"
)

// Reader reads RPM packages. Its zero value is ready to use.
type Reader struct{}

var _ container.Reader = Reader{}

// Kind is "rpm".
func (Reader) Kind() container.Kind { return "rpm" }

var leadMagic = []byte{0xed, 0xab, 0xee, 0xdb}

const leadSize = 96

// Sniff recognises the lead's magic and, when head reaches it, the
// signature header's magic after the 96-byte lead. The name is not read.
func (Reader) Sniff(head []byte, _ string) bool {
	if len(head) < 4 || !bytes.Equal(head[:4], leadMagic) {
		return false
	}
	if len(head) >= leadSize+3 && !bytes.Equal(head[leadSize:leadSize+3], headerMagic[:3]) {
		return false
	}
	return true
}

// Package is what the headers of an RPM package say, as far as csv reads
// them.
type Package struct {
	// Signatures names the signature tags present (OpenPGP signatures of
	// the header or of header and payload, IMA or fs-verity signatures of
	// the files): csv reports them and verifies none.
	Signatures []string
	// PayloadFormat and PayloadCompressor are the main header's tags, with
	// rpm's defaults filled in ("cpio", "gzip").
	PayloadFormat, PayloadCompressor string
	// PayloadOffset is where the payload starts in the file.
	PayloadOffset int64

	main, sig *header
}

// ReadPackage reads and checks the lead and both headers of the package in
// src (size bytes), and the main header's digests that the signature
// header carries; it reads none of the payload.
func ReadPackage(src io.ReaderAt, size int64) (*Package, error) {
	var lead [leadSize]byte
	if size < leadSize {
		return nil, malformed(0, "%d bytes is shorter than the 96-byte lead", size)
	}
	if _, err := src.ReadAt(lead[:], 0); err != nil {
		return nil, malformed(0, "reading the lead: %v", err)
	}
	if !bytes.Equal(lead[:4], leadMagic) {
		return nil, malformed(0, "no lead magic ed ab ee db")
	}
	if st := uint16(lead[78])<<8 | uint16(lead[79]); st != 5 {
		return nil, malformed(78, "the lead's signature type is %d, not 5 (a header-style signature)", st)
	}
	sig, err := readHeader(src, leadSize, size, "signature header")
	if err != nil {
		return nil, err
	}
	end := leadSize + int64(len(sig.raw))
	if pad := (8 - end%8) % 8; pad > 0 {
		var zero [8]byte
		if size-end < pad {
			return nil, malformed(end, "the file ends in the signature header's padding")
		}
		if _, err := src.ReadAt(zero[:pad], end); err != nil {
			return nil, malformed(end, "reading the signature header's padding: %v", err)
		}
		if !bytes.Equal(zero[:pad], make([]byte, pad)) {
			return nil, malformed(end, "the signature header's padding is not zero")
		}
		end += pad
	}
	main, err := readHeader(src, end, size, "main header")
	if err != nil {
		return nil, err
	}
	p := &Package{main: main, sig: sig, PayloadOffset: end + int64(len(main.raw))}
	tags := make([]uint32, 0, len(signatureTags))
	for tag := range signatureTags {
		if sig.has(tag) {
			tags = append(tags, tag)
		}
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i] < tags[j] })
	for _, tag := range tags {
		p.Signatures = append(p.Signatures, signatureTags[tag])
	}
	for _, d := range []struct {
		tag  uint32
		name string
		h    func() hash.Hash
	}{{sigTagSHA256, "SHA-256", sha256.New}, {sigTagSHA1, "SHA-1", sha1.New}} {
		want, ok, err := sig.str(d.tag)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		h := d.h()
		h.Write(main.raw)
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return nil, malformed(main.off, "the main header's %s digest is %s, the signature header says %q", d.name, got, want)
		}
	}
	for _, tag := range []uint32{sigTagSize, sigTagLongSize} {
		n, err := sig.integer(tag)
		if err != nil {
			return nil, err
		}
		if n >= 0 && n != size-main.off {
			return nil, malformed(main.off, "header and payload are %d bytes, the signature header says %d", size-main.off, n)
		}
	}
	if p.PayloadFormat, _, err = main.str(tagPayloadFormat); err != nil {
		return nil, err
	}
	if p.PayloadFormat == "" {
		p.PayloadFormat = "cpio"
	}
	comp, ok, err := main.str(tagPayloadCompressor)
	if err != nil {
		return nil, err
	}
	if !ok {
		comp = "gzip"
	}
	p.PayloadCompressor = comp
	return p, nil
}

// digestHash returns the hash of an OpenPGP hash algorithm number, as
// RPMTAG_PAYLOADDIGESTALGO stores it.
func digestHash(algo int64) (hash.Hash, string) {
	switch algo {
	case 2:
		return sha1.New(), "SHA-1"
	case 8:
		return sha256.New(), "SHA-256"
	case 9:
		return sha512.New384(), "SHA-384"
	case 10:
		return sha512.New(), "SHA-512"
	case 11:
		return sha256.New224(), "SHA-224"
	}
	return nil, ""
}

// check is a digest or a size compared once the payload has been read.
type check struct {
	what string
	h    hash.Hash
	want string // hex
}

// Walk yields the package's members: every entry of the payload's cpio
// archive but directories, in the archive's order (hard links: see
// docs/containers.md, each link is a member with the file's bytes).
func (Reader) Walk(ctx context.Context, src io.ReaderAt, size int64, name string, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	p, err := ReadPackage(src, size)
	if err != nil {
		return err
	}
	if p.PayloadFormat != "cpio" {
		return malformed(p.main.off, "the payload format is %q, not cpio", p.PayloadFormat)
	}
	payload := io.NewSectionReader(src, p.PayloadOffset, size-p.PayloadOffset)
	var compressedChecks, plainChecks []check
	digests, err := p.main.strings(tagPayloadDigest)
	if err != nil {
		return err
	}
	alt, err := p.main.strings(tagPayloadDigestAlt)
	if err != nil {
		return err
	}
	if digests != nil || alt != nil {
		algo, err := p.main.integer(tagPayloadDigestAlgo)
		if err != nil {
			return err
		}
		if algo < 0 {
			algo = 8 // rpm's default, SHA-256
		}
		for _, d := range []struct {
			values []string
			what   string
			to     *[]check
		}{{digests, "payload digest", &compressedChecks}, {alt, "uncompressed payload digest", &plainChecks}} {
			if d.values == nil {
				continue
			}
			h, hname := digestHash(algo)
			if h == nil {
				return malformed(p.main.off, "the %s's algorithm %d is not one csv can check", d.what, algo)
			}
			*d.to = append(*d.to, check{what: d.what + " (" + hname + ")", h: h, want: d.values[0]})
		}
	}
	md5sum, err := p.sig.bin(sigTagMD5)
	if err != nil {
		return err
	}
	var md5h hash.Hash
	// The MD5 of header and payload adds nothing when the header's
	// SHA-256 and the payload's digest are both checked (rpm 4.14 and
	// later write all three): it is computed only without them.
	if md5sum != nil && (!p.sig.has(sigTagSHA256) || digests == nil) {
		md5h = md5.New() //nolint:gosec // checked as rpm checks it
		md5h.Write(p.main.raw)
	}
	wantPlain := int64(-1)
	for _, tag := range []uint32{sigTagPayloadSize, sigTagLongArchiveSize} {
		n, err := p.sig.integer(tag)
		if err != nil {
			return err
		}
		if n >= 0 {
			wantPlain = n
		}
	}

	var hashers []io.Writer
	for _, c := range compressedChecks {
		hashers = append(hashers, c.h)
	}
	if md5h != nil {
		hashers = append(hashers, md5h)
	}
	cr := &container.Counter{R: payload}
	var raw io.Reader = cr
	if len(hashers) > 0 {
		raw = io.TeeReader(cr, io.MultiWriter(hashers...))
	}
	rawBuf := bufio.NewReaderSize(raw, 64<<10)
	if p.PayloadCompressor == "xz" {
		if err := compress.CheckWindow(compress.XZ, payload, payload.Size()); err != nil {
			return err
		}
	}
	dec, closeDec, err := decompressor(p.PayloadCompressor, rawBuf)
	if errors.Is(err, container.ErrLimit) {
		return err
	}
	if err != nil {
		return &signing.MalformedError{Format: "RPM", Offset: p.PayloadOffset,
			Reason: fmt.Sprintf("the %s payload: %v", p.PayloadCompressor, err), Err: err}
	}
	defer closeDec()
	plain := &container.Counter{R: dec}
	var plainR io.Reader = plain
	if len(plainChecks) > 0 {
		plainR = io.TeeReader(plain, plainChecks[0].h)
	}
	files, err := fileList(p.main)
	if err != nil {
		return err
	}
	a := &archive{
		files: files,
		ctx:   ctx, lim: lim, r: bufio.NewReaderSize(plainR, 64<<10), yield: yield,
		compressed: func() int64 { return cr.N }, names: container.Names{},
		links: map[linkKey]*linkGroup{}, payloadOff: p.PayloadOffset, comp: p.PayloadCompressor,
	}
	if err := a.walk(); err != nil {
		return err
	}
	// The rest of the uncompressed payload (cpio's padding after the
	// trailer) and of the compressed one are read for the digests and for
	// the decompressor's own end-of-stream checks (gzip's CRC and size).
	if _, err := a.discard(-1, "the payload after the cpio trailer"); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, rawBuf); err != nil {
		return malformed(p.PayloadOffset+cr.N, "reading the payload: %v", err)
	}
	if wantPlain >= 0 && plain.N != wantPlain {
		return malformed(p.PayloadOffset, "the payload decompresses to %d bytes, the signature header says %d", plain.N, wantPlain)
	}
	for _, c := range append(compressedChecks, plainChecks...) {
		if got := hex.EncodeToString(c.h.Sum(nil)); got != c.want {
			return malformed(p.PayloadOffset, "the %s is %s, the main header says %q", c.what, got, c.want)
		}
	}
	if md5h != nil && !bytes.Equal(md5h.Sum(nil), md5sum) {
		return malformed(p.main.off, "the MD5 of header and payload is %x, the signature header says %x", md5h.Sum(nil), md5sum)
	}
	return nil
}

// Maximum windows the decompressors accept: zstd's level 22 (--ultra)
// reaches 128 MiB, xz -9's dictionary is 64 MiB.
const (
	maxZstdWindow = 128 << 20
	maxXZDict     = 64 << 20
)

// errUnsupported is wrapped by the error about a compressor csv does not
// read.
var errUnsupported = errors.New("unsupported payload compressor")

func decompressor(comp string, r *bufio.Reader) (io.Reader, func(), error) {
	nop := func() {}
	switch comp {
	case "gzip":
		// rpm reads a gzip payload with zlib's gzread, which reads bytes
		// without the gzip magic as they are: rpm 4.18 writes an
		// uncompressed payload (w0.ufdio) without a compressor tag.
		if m, err := r.Peek(2); err == nil && (m[0] != 0x1f || m[1] != 0x8b) {
			return r, nop, nil
		}
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, nop, err
		}
		return z, func() { _ = z.Close() }, nil
	case "bzip2":
		return bzip2.NewReader(r), nop, nil
	case "xz":
		z, err := xz.NewReader(r)
		return z, nop, err
	case "lzma":
		if h, err := r.Peek(5); err == nil && binary.LittleEndian.Uint32(h[1:]) > maxXZDict {
			return nil, nop, &container.LimitError{Cap: "MaxXZDictionary", Value: maxXZDict,
				What: fmt.Sprintf("the lzma payload's %d-byte dictionary", binary.LittleEndian.Uint32(h[1:]))}
		}
		z, err := lzma.ReaderConfig{DictCap: maxXZDict}.NewReader(r)
		return z, nop, err
	case "zstd":
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, nop, err
		}
		return z, z.Close, nil
	case "none", "identity":
		return r, nop, nil
	}
	return nil, nop, fmt.Errorf("%w %q", errUnsupported, comp)
}
