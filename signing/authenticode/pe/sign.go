package pe

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"math/bits"
	"sync"

	"github.com/codesignval/csv/internal/binfmt"
	binpe "github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
)

// Output is where Sign writes the signed file: sequentially, then a few
// small WriteAt patches of header fields. *os.File satisfies it.
type Output interface {
	io.Writer
	io.WriterAt
}

// signBufSize is the buffer the image streams through.
const signBufSize = 256 << 10

var signBufs = sync.Pool{New: func() any { b := make([]byte, signBufSize); return &b }}

// Sign reads the PE image in (size bytes) ONCE, streaming it through a
// fixed buffer into out while computing the Authenticode digest and the new
// PE checksum, then appends the certificate table and patches the
// certificate table directory entry and the checksum in out with WriteAt:
// authenticode.Signer.Sign over the PE subject, with a signer checked by
// authenticode.NewSigner (key must match chain[0], leaf first, which must
// carry the code signing EKU, else an error wrapping signing.ErrSigner).
//
// The output is the input up to its certificate table (or the whole
// unsigned file), zero padding to a multiple of 8 bytes (part of the signed
// image: the digest of the unsigned file is the digest of the signed one),
// then the new certificate table. By default the table holds one
// WIN_CERTIFICATE, ours, and every existing signature is dropped; with
// opts.Append the existing entries are kept and our signature is added to
// the first one's SignerInfo as an SPC_NESTED_SIGNATURE unsigned attribute
// (outside what that signature signs, so it stays valid). opts.Tee
// receives the whole input (pe.Parse refuses bytes after the table).
//
// Memory is a fixed buffer plus the PKCS#7 and the old certificate table
// (capped by the PE parser), never the file size. On error out holds a
// partial file: the caller must discard it. Sign may be called
// concurrently (for different outputs) if key may be used concurrently, as
// the crypto/rsa and crypto/ecdsa keys may.
//
// # Security
//
// in is untrusted. A file the PE parser refuses (a certificate table that
// is not at the end of the file, lengths that do not add up) or whose
// table ParseTable cannot split is refused with that error, never
// re-signed; with Append, the entry we nest in must be a well-formed
// Authenticode signature. Sign never writes a table Verify would refuse.
// The signature it makes is checked as authenticode.Signer.SignDigest
// says.
func Sign(ctx context.Context, in io.ReaderAt, size int64, out Output, key crypto.Signer, chain []*x509.Certificate, opts authenticode.SignOptions) (*authenticode.SignResult, error) {
	s, err := authenticode.NewSigner(key, chain, opts)
	if err != nil {
		return nil, err
	}
	return SignWith(ctx, s, in, size, out)
}

// SignWith is Sign with a signer already checked (one for every file of a
// build).
func SignWith(ctx context.Context, s *authenticode.Signer, in io.ReaderAt, size int64, out Output) (*authenticode.SignResult, error) {
	return SignWithOptions(ctx, s, in, size, out, Options{})
}

// Options are the PE subject's own signing options.
type Options struct {
	// PageHashes puts the file's page-hash table in the signature's
	// SpcPeImageData, as signtool /ph and osslsigncode -ph do: SHA256
	// digests (SPC_PE_IMAGE_PAGE_HASHES_V2) whatever the signer's hash, as
	// osslsigncode writes for SHA-2 signatures. A file whose pages csv
	// cannot hash (its headers over a page, sections out of file order, a
	// section alignment other than 4096) is refused with an error wrapping
	// ErrPageHashes, as is a table over limits.MaxPageHashTable.
	PageHashes bool

	mutateTable func([]byte) // tests: make the table lie
}

// SignWithOptions is SignWith with the PE subject's options.
func SignWithOptions(ctx context.Context, s *authenticode.Signer, in io.ReaderAt, size int64, out Output, o Options) (res *authenticode.SignResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, signing.Errorf(signing.ErrInternal, "authenticode: sign: internal error: %v (please report this)", r)
		}
	}()
	f, err := binpe.Parse(in, size)
	if err != nil {
		return nil, fmt.Errorf("authenticode: sign: %w", err)
	}
	t := &target{in: in, size: size, out: out, f: f, cache: s.Cache()}
	if f.Signed() {
		t.table = make([]byte, f.CertTable.Len)
		if err := binfmt.ReadFull(in, size, binfmt.PE, f.CertTable.Off, t.table, "certificate table"); err != nil {
			return nil, fmt.Errorf("authenticode: sign: %w", err)
		}
		if t.Table, err = ParseTable(t.table, f.CertTable.Off); err != nil {
			return nil, fmt.Errorf("authenticode: sign: %w", err)
		}
	} else {
		t.Table = &Table{}
	}
	t.end = size
	if f.Signed() {
		t.end = f.CertTable.Off
	}
	t.pad = -t.end & 7
	if o.PageHashes {
		pages := NewPages(f)
		pages.size = t.end // the image the output keeps
		if err := pages.TableProblem(); err != nil {
			return nil, fmt.Errorf("authenticode: sign: %w", err)
		}
		if n := pages.TableSize(crypto.SHA256); n > limits.MaxPageHashTable {
			return nil, fmt.Errorf("authenticode: sign: %w: the page-hash table would be %d bytes, over the %d-byte limit", ErrPageHashes, n, limits.MaxPageHashTable)
		}
		t.pages = pages.Table(crypto.SHA256, true)
		t.mutate = o.mutateTable
	}
	t.tableOff = t.end + t.pad
	if t.tableOff > math.MaxUint32 {
		return nil, fmt.Errorf("authenticode: sign: the image is %d bytes: a certificate table must start below 4 GiB", t.end)
	}
	return s.Sign(ctx, t)
}

// target is a PE file being signed: the subject, its input and output.
type target struct {
	*Table
	in       io.ReaderAt
	size     int64
	out      Output
	f        *binpe.File
	table    []byte // the certificate table it had (nil: unsigned)
	end      int64  // where the image ends: the old table's offset, or size
	pad      int64  // zero bytes after the image, to the new table
	tableOff int64
	ck       peChecksum
	cache    *authenticode.CertCache // the signer's, for the check of the new table
	pages    *PageDigester           // the page-hash table being computed, if asked
	data     *authenticode.IndirectData
	mutate   func([]byte)
}

// IndirectData is the Table's, or with page hashes the SpcPeImageData
// carrying the table Stream computed (Sign asks for it after Stream).
func (t *target) IndirectData() authenticode.IndirectData {
	if t.data != nil {
		return *t.data
	}
	return t.Table.IndirectData()
}

// Stream copies in[0:end] to out through a pooled buffer, with the CheckSum
// field and the certificate table directory entry zeroed (both are patched
// later), feeding the image digest to h and the input to tee; then it tees
// the old certificate table and writes the padding.
func (t *target) Stream(ctx context.Context, h hash.Hash, tee io.Writer) error {
	bp := signBufs.Get().(*[]byte)
	defer signBufs.Put(bp)
	buf := *bp
	// The image without its certificate table: the Digester pads an
	// unsigned file to 8 bytes as the output is padded; a signed file's
	// table starts 8-byte aligned.
	img, err := NewImage(Layout{Size: t.end, CheckSumOffset: t.f.CheckSumOffset, CertDirOffset: t.f.CertDirOffset})
	if err != nil {
		return err
	}
	d := img.NewDigester(h)
	for pos := int64(0); pos < t.end; {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := buf[:min(int64(len(buf)), t.end-pos)]
		n, err := t.in.ReadAt(chunk, pos)
		if n < len(chunk) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading the image at offset %#x: %w", pos+int64(n), err)
		}
		if tee != nil {
			if _, err := tee.Write(chunk); err != nil {
				return err
			}
		}
		zeroRange(chunk, pos, t.f.CheckSumOffset, 4)
		zeroRange(chunk, pos, t.f.CertDirOffset, 8)
		if _, err := d.Write(chunk); err != nil {
			return err
		}
		if t.pages != nil {
			if _, err := t.pages.Write(chunk); err != nil {
				return err
			}
		}
		if _, err := t.out.Write(chunk); err != nil {
			return fmt.Errorf("writing the output: %w", err)
		}
		t.ck.add(chunk, pos)
		pos += int64(len(chunk))
	}
	if err := d.Close(); err != nil {
		return err
	}
	if t.pages != nil {
		if err := t.pages.Close(); err != nil {
			return err
		}
		table := t.pages.Table()
		if t.mutate != nil {
			t.mutate(table)
		}
		data, err := pageHashData(crypto.SHA256, table)
		if err != nil {
			return fmt.Errorf("encoding the page-hash table: %w", err)
		}
		t.data = &data
	}
	if tee != nil {
		if _, err := tee.Write(t.table); err != nil {
			return err
		}
	}
	if _, err := t.out.Write(zeros[:t.pad]); err != nil {
		return fmt.Errorf("writing the output: %w", err)
	}
	return nil
}

// Embed writes the new certificate table (primary, then, if keep, the old
// table's other entries as they were), checks it as Verify would, and
// patches the directory entry and the checksum.
func (t *target) Embed(primary []byte, keep bool) (int64, error) {
	newTable := appendEntry(nil, primary)
	if keep {
		for _, e := range t.entries[1:] {
			start := e.Offset - t.f.CertTable.Off
			newTable = append(newTable, t.table[start:start+int64(e.Length)]...)
			newTable = append(newTable, zeros[:-len(newTable)&7]...)
		}
	}
	if len(newTable) > limits.MaxCertTable {
		return 0, fmt.Errorf("the new certificate table is %d bytes, over the %d-byte limit", len(newTable), limits.MaxCertTable)
	}
	// Never write a table Verify would refuse (with Append, one that nests
	// more than the caps allow).
	if err := CheckTable(newTable, t.tableOff, t.cache); err != nil {
		return 0, fmt.Errorf("the new certificate table would be malformed: %w", err)
	}
	if _, err := t.out.Write(newTable); err != nil {
		return 0, fmt.Errorf("writing the certificate table: %w", err)
	}
	t.ck.add(newTable, t.tableOff)
	var dir [8]byte
	binary.LittleEndian.PutUint32(dir[0:], uint32(t.tableOff))
	binary.LittleEndian.PutUint32(dir[4:], uint32(len(newTable)))
	t.ck.add(dir[:], t.f.CertDirOffset)
	total := t.tableOff + int64(len(newTable))
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], t.ck.sum16()+uint32(total))
	if _, err := t.out.WriteAt(dir[:], t.f.CertDirOffset); err != nil {
		return 0, fmt.Errorf("patching the certificate table directory entry: %w", err)
	}
	if _, err := t.out.WriteAt(sum[:], t.f.CheckSumOffset); err != nil {
		return 0, fmt.Errorf("patching the PE checksum: %w", err)
	}
	return total, nil
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
	// Words are summed in four 64-bit lanes, each with a count of its
	// carries out (a carry out is 2^64 ≡ 1 mod 0xffff): load, add and
	// add-with-carry per word, no dependency between lanes (15 GB/s here,
	// 1.3x the 32-bit halves summed before, BenchmarkPEChecksum), folded
	// into the running sum once per block of at most 1 MiB (carry counts
	// < 2^17: no overflow).
	p = c.vector(p) // AVX2, where the machine has it (checksum_amd64.go)
	for len(p) >= 32 {
		blk := p[:min(len(p), 1<<20)&^31]
		var s0, s1, s2, s3, k0, k1, k2, k3, k uint64
		for len(blk) >= 32 {
			s0, k = bits.Add64(s0, binary.LittleEndian.Uint64(blk), 0)
			k0 += k
			s1, k = bits.Add64(s1, binary.LittleEndian.Uint64(blk[8:]), 0)
			k1 += k
			s2, k = bits.Add64(s2, binary.LittleEndian.Uint64(blk[16:]), 0)
			k2 += k
			s3, k = bits.Add64(s3, binary.LittleEndian.Uint64(blk[24:]), 0)
			k3 += k
			blk = blk[32:]
		}
		c.word(s0)
		c.word(s1)
		c.word(s2)
		c.word(s3)
		c.word(k0 + k1 + k2 + k3)
		p = p[min(len(p), 1<<20)&^31:]
	}
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
	binary.LittleEndian.PutUint16(hdr[4:], binpe.CertRevision2_0)
	binary.LittleEndian.PutUint16(hdr[6:], binpe.CertTypePKCSSignedData)
	dst = append(dst, hdr[:]...)
	dst = append(dst, der...)
	return append(dst, zeros[:pad]...)
}
