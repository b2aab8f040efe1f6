// Package pe is the Authenticode subject for PE files (executables, DLLs,
// drivers, UEFI images): where a PE stores its signatures (the attribute
// certificate table: [ParseTable], a [authenticode.Subject]), which bytes
// its digest covers (the image hash: [Image], [Digester]), what its
// signatures sign (SPC_PE_IMAGE_DATAOBJ) and which of them Windows and UEFI
// firmware count. [Verify], [CheckTable], [DigestAlgorithms] and [Sign]
// are the authenticode package's over a PE file.
//
// # The image hash
//
// The image hash covers the whole file except three ranges: the optional
// header's CheckSum field, the certificate table data directory entry, and
// the attribute certificate table itself. The bytes are hashed in file
// order (as osslsigncode, sbsigntool and Windows do for well-formed files),
// which covers overlay data after the last section. An unsigned file is
// hashed as if padded with zeros to a multiple of 8 bytes, because a signer
// pads it so before appending the 8-byte aligned certificate table: a hash
// written for the unsigned file then still matches the signed one.
//
// # Page hashes
//
// A signature may carry a page-hash table (signtool /ph, osslsigncode
// -ph): the hash of every 4 KiB page of the headers and the sections'
// raw data, which Windows checks as pages load; its first entry, the
// first-page hash, is what App Control's "Hash Page" rules compare.
// [Pages] lays a file out in pages and a [PageDigester] computes, in the
// same pass as the image hash, the first-page hashes and the table, and
// checks the tables the signatures carry ([ExpectedPageHashes],
// [VerifyPages]): a signature whose table does not match the file does not
// verify. [Options].PageHashes signs with a table.
//
// # Which signatures count
//
// Windows reads only the first WIN_CERTIFICATE entry (WinVerifyTrust takes
// certificate 0 of the table) and the signatures nested in it, one level
// deep; csv cannot establish that it reads deeper ones, those nested in a
// first signature that does not verify or that Windows does not count, or
// a signature whose data type is not SPC_PE_IMAGE_DATAOBJ, so it does not
// count them for Windows. UEFI firmware (EDK2 DxeImageVerificationLib) and
// shim check every entry's own signature, never a nested one, and never
// read the data type. Table.Judge records this on each signature
// (signing.Signature.IgnoredBy); deny rules match them all.
//
// # Security
//
// The layout comes from internal/binfmt/pe, which refuses files whose
// certificate table is not at the end of the file or overlaps the image,
// and a table holding anything but revision 2.0 PKCS_SIGNED_DATA entries of
// one DER signature and its zero padding: no byte of a file that passes is
// outside the digest but the three ranges above, and [NewImage] refuses a
// layout that would leave others out.
package pe

import (
	"crypto"
	"fmt"
	"hash"
	"io"
	"strconv"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/binfmt"
	binpe "github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/cms"
)

// Format is how messages name the format.
const Format = "PE"

// OIDSpcPEImageData is SPC_PE_IMAGE_DATAOBJ, the data type PE signatures
// name.
var OIDSpcPEImageData = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 2, 1, 15)

// Layout is where Authenticode's excluded ranges lie in a PE file of Size
// bytes: the optional header's CheckSum field (4 bytes at CheckSumOffset),
// the certificate table data directory entry (8 bytes at CertDirOffset)
// and the attribute certificate table (CertTableSize bytes at
// CertTableOffset, both 0 when the file is unsigned).
type Layout struct {
	Size            int64
	CheckSumOffset  int64
	CertDirOffset   int64
	CertTableOffset int64
	CertTableSize   int64
}

// Image is a PE file's layout, checked: what its image hash covers.
type Image struct{ l Layout }

// Parse reads the headers of the PE file in r (size bytes) with csv's PE
// parser and returns its layout. A file that is not a well-formed PE, or
// whose certificate table is not at its end, is a *signing.MalformedError.
func Parse(r io.ReaderAt, size int64) (*Image, error) {
	f, err := binpe.Parse(r, size)
	if err != nil {
		return nil, err
	}
	return NewImage(Layout{Size: f.Size, CheckSumOffset: f.CheckSumOffset, CertDirOffset: f.CertDirOffset,
		CertTableOffset: f.CertTable.Off, CertTableSize: f.CertTable.Len})
}

// NewImage checks a layout that a caller read itself (with its own PE
// parser): the three ranges in order, in the file, the certificate table
// (if any) 8-byte aligned at the end of the file. It refuses, as a
// *signing.MalformedError, a layout that would leave bytes out of the
// digest.
func NewImage(l Layout) (*Image, error) {
	bad := func(format string, args ...any) (*Image, error) {
		return nil, &signing.MalformedError{Format: Format, Offset: -1, Reason: fmt.Sprintf(format, args...)}
	}
	end := l.Size
	switch {
	case l.Size < 0 || l.CheckSumOffset < 0 || l.CertDirOffset < l.CheckSumOffset+4 || l.CertTableSize < 0:
		return bad("the checksum at %#x and the certificate table entry at %#x are not in order", l.CheckSumOffset, l.CertDirOffset)
	case l.CertTableSize > 0:
		if l.CertTableOffset+l.CertTableSize != l.Size || l.CertTableOffset%8 != 0 {
			return bad("the certificate table [%#x, %#x) is not 8-byte aligned at the end of the %d-byte file", l.CertTableOffset, l.CertTableOffset+l.CertTableSize, l.Size)
		}
		end = l.CertTableOffset
	case l.CertTableOffset != 0:
		return bad("an empty certificate table at %#x", l.CertTableOffset)
	}
	if l.CertDirOffset+8 > end {
		return bad("the certificate table entry at %#x is past the image's end at %#x", l.CertDirOffset, end)
	}
	return &Image{l: l}, nil
}

// Layout returns the image's layout.
func (im *Image) Layout() Layout { return im.l }

// Signed reports whether the file has a certificate table.
func (im *Image) Signed() bool { return im.l.CertTableSize > 0 }

// Digester computes Authenticode image hashes of one PE file while its
// bytes are written to it in order, from offset 0 to the end of the file.
// A Digester is not safe for concurrent use.
type Digester struct {
	size    int64
	include [3]struct{ off, end int64 } // hashed ranges, ascending
	pad     int64                       // zero bytes hashed after the last range
	hashes  []hash.Hash
	pos     int64
}

// NewDigester returns a Digester that feeds the image bytes to each of
// hashes. The hashes should be fresh.
func (im *Image) NewDigester(hashes ...hash.Hash) *Digester {
	l := im.l
	end := l.Size
	var pad int64
	if im.Signed() {
		end = l.CertTableOffset
	} else if r := l.Size % 8; r != 0 {
		pad = 8 - r
	}
	d := &Digester{size: l.Size, hashes: hashes, pad: pad}
	d.include[0].off, d.include[0].end = 0, l.CheckSumOffset
	d.include[1].off, d.include[1].end = l.CheckSumOffset+4, l.CertDirOffset
	d.include[2].off, d.include[2].end = l.CertDirOffset+8, end
	return d
}

// Write hashes the part of p that the image hash covers. p holds the file's
// bytes from the current position on.
func (d *Digester) Write(p []byte) (int, error) {
	start, end := d.pos, d.pos+int64(len(p))
	if end > d.size {
		return 0, fmt.Errorf("authenticode: %d bytes written past the end of the %d-byte file", end-d.size, d.size)
	}
	for _, r := range d.include {
		lo, hi := max(start, r.off), min(end, r.end)
		if lo >= hi {
			continue
		}
		b := p[lo-start : hi-start]
		for _, h := range d.hashes {
			h.Write(b)
		}
	}
	d.pos = end
	return len(p), nil
}

var zeros [8]byte

// Close checks that the whole file was written and adds the padding of an
// unsigned file. Call it once, before reading the hashes' sums.
func (d *Digester) Close() error {
	if d.pos != d.size {
		return fmt.Errorf("authenticode: %d of %d bytes written: %w", d.pos, d.size, io.ErrUnexpectedEOF)
	}
	for _, h := range d.hashes {
		h.Write(zeros[:d.pad])
	}
	return nil
}

// Digest computes the Authenticode image hash of the PE file im lays out,
// read from r, with hash function h. It is the simple one-shot form of
// [Digester].
func (im *Image) Digest(r io.ReaderAt, h crypto.Hash) ([]byte, error) {
	if !h.Available() {
		return nil, fmt.Errorf("authenticode: hash %v is not available", h)
	}
	hh := h.New()
	d := im.NewDigester(hh)
	if _, err := io.Copy(d, io.NewSectionReader(r, 0, im.l.Size)); err != nil {
		return nil, fmt.Errorf("authenticode: reading image: %w", err)
	}
	if err := d.Close(); err != nil {
		return nil, err
	}
	return hh.Sum(nil), nil
}

// ReadTable reads the image's certificate table from r (nil if unsigned).
func (im *Image) ReadTable(r io.ReaderAt) ([]byte, error) {
	if !im.Signed() {
		return nil, nil
	}
	table := make([]byte, im.l.CertTableSize) // capped by Parse and by ParseTable's callers
	if err := binfmt.ReadFull(r, im.l.Size, binfmt.PE, im.l.CertTableOffset, table, "certificate table"); err != nil {
		return nil, err
	}
	return table, nil
}

// Table is a PE attribute certificate table: the Authenticode subject for
// PE files.
type Table struct {
	table   []byte
	off     int64
	entries []binpe.Certificate
	stored  []authenticode.Stored
	pages   []*Expected // page-hash tables checked (VerifyPages)
}

var _ authenticode.Subject = (*Table)(nil)

// ParseTable splits the attribute certificate table (table holds its
// bytes; off is its file offset, for messages) into its WIN_CERTIFICATE
// entries: revision 2.0 PKCS_SIGNED_DATA entries of one DER signature and
// its zero padding, nothing else, or a *signing.MalformedError.
func ParseTable(table []byte, off int64) (*Table, error) {
	entries, err := binpe.ParseCertificateTable(table, off)
	if err != nil {
		return nil, err
	}
	t := &Table{table: table, off: off, entries: entries, stored: make([]authenticode.Stored, len(entries))}
	for i, e := range entries {
		t.stored[i] = authenticode.Stored{Name: entryName(i), Offset: e.Offset,
			DER: e.Data, DEROffset: e.Offset + 8, ZeroPadding: true}
	}
	return t, nil
}

// entryNames are the names of the first entries, which nearly every table
// stops at, so that naming them does not allocate per file.
var entryNames = [...]string{"certificate table entry 0", "certificate table entry 1", "certificate table entry 2", "certificate table entry 3"}

// entryName names WIN_CERTIFICATE entry i for messages.
func entryName(i int) string {
	if i < len(entryNames) {
		return entryNames[i]
	}
	return "certificate table entry " + strconv.Itoa(i)
}

// Format is "PE".
func (t *Table) Format() string { return Format }

// DigestName is what messages call a PE file's digest.
func (t *Table) DigestName() string { return "image digest" }

// Signatures returns the WIN_CERTIFICATE entries' signatures.
func (t *Table) Signatures() []authenticode.Stored { return t.stored }

// IndirectData is SPC_PE_IMAGE_DATAOBJ with the SpcPeImageData signers
// write.
func (t *Table) IndirectData() authenticode.IndirectData { return indirectData }

// indirectData is SPC_PE_IMAGE_DATAOBJ and SpcPeImageData ::= SEQUENCE {
// flags BIT STRING, file [0] SpcLink }, as osslsigncode and signtool write
// it: flags 07 80 (includeResources), file [2] SpcString, unicode [0]
// BMPString "<<<Obsolete>>>".
var indirectData = func() authenticode.IndirectData {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) { b.AddBytes([]byte{0x07, 0x80}) })
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(authenticode.BMPString("<<<Obsolete>>>")) })
			})
		})
	})
	return authenticode.IndirectData{Type: OIDSpcPEImageData, Value: b.BytesOrPanic()}
}()

// Verify verifies the signatures of a PE attribute certificate table
// (tableOff is its file offset, for messages) against digests, the file's
// image hashes by algorithm as [Digester] computes them: ParseTable, then
// authenticode.Verify, whose documentation lists the checks.
func Verify(table []byte, tableOff int64, digests map[crypto.Hash][]byte, opts authenticode.VerifyOptions) ([]*signing.Signature, error) {
	t, err := ParseTable(table, tableOff)
	if err != nil {
		return nil, fmt.Errorf("authenticode: %w", err)
	}
	return authenticode.Verify(t, digests, opts)
}

// CheckTable checks that a PE attribute certificate table holds nothing
// but well-formed Authenticode signatures, without any cryptography: what
// [Verify] checks before it verifies anything, and fails for with the same
// errors (authenticode.CheckStructure).
func CheckTable(table []byte, tableOff int64, cache *authenticode.CertCache) error {
	t, err := ParseTable(table, tableOff)
	if err != nil {
		return fmt.Errorf("authenticode: %w", err)
	}
	return authenticode.CheckStructure(t, cache)
}

// DigestAlgorithms returns the image-hash algorithms the signatures in a
// PE attribute certificate table use (authenticode.DigestAlgorithms), nil
// for a table that cannot be split.
func DigestAlgorithms(table []byte) []crypto.Hash {
	t, err := ParseTable(table, 0)
	if err != nil {
		return nil
	}
	return authenticode.DigestAlgorithms(t)
}
