package pe

// Page hashes: the first-page hashes App Control (WDAC) hash rules compare
// ("Hash Page Sha1", "Hash Page Sha256"), and the page-hash tables that
// signtool /ph and osslsigncode -ph put in a PE signature's SpcPeImageData.
//
// A page-hash table is a run of entries, each a 4-byte little-endian file
// offset and a digest: first the headers page (offset 0), then every page
// of every section's raw data, in section-table order, then a last entry
// of the end of the last section's raw data and a zero digest. The headers
// page is the file's first SizeOfHeaders bytes without the optional
// header's CheckSum field and the certificate table directory entry (as in
// the image hash, those bytes are left out, not zeroed), then zeros up to
// the page size; a section page is PageSize bytes of raw data, the last
// one of a section zero-padded. This is the table osslsigncode 2.9 writes
// and checks (pe_page_hash_calc; it takes SectionAlignment as the page
// size: csv makes and checks the tables of images whose SectionAlignment
// is 4096 only, and always hashes a 4096-byte first page, Windows' page
// size). The table is
// serialized in the SpcPeImageData's file link as a moniker:
//
//	SpcLink.moniker [1] IMPLICIT SpcSerializedObject ::= SEQUENCE {
//	    classId        OCTET STRING (a6b586d5-b4a1-2466-ae05-a217da8e60d6),
//	    serializedData OCTET STRING }   -- the DER of:
//	SET { SEQUENCE { type OID (SPC_PE_IMAGE_PAGE_HASHES_V1 for SHA1,
//	                          _V2 for SHA256), SET { OCTET STRING table } } }

import (
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	binpe "github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/cms"
)

// PageSize is the page size of page hashes: 4 KiB, Windows' page on x86,
// x64 and ARM64, and the SectionAlignment of every image linked for them.
const PageSize = 4096

// Page-hash table types: SPC_PE_IMAGE_PAGE_HASHES_V1 (SHA1 digests) and
// SPC_PE_IMAGE_PAGE_HASHES_V2 (SHA256).
var (
	OIDPageHashesV1 = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 2, 3, 1)
	OIDPageHashesV2 = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 2, 3, 2)
)

// pageHashClassID is the SpcSerializedObject class id of a page-hash table.
var pageHashClassID = []byte{0xa6, 0xb5, 0x86, 0xd5, 0xb4, 0xa1, 0x24, 0x66, 0xae, 0x05, 0xa2, 0x17, 0xda, 0x8e, 0x60, 0xd6}

// ErrPageHashes is wrapped by the problems of page hashes: a page-hash
// table that does not match the file, that cannot be read, or a file whose
// pages csv cannot hash.
var ErrPageHashes = errors.New("page hashes")

// Pages is where a PE file's pages lie: its headers page and the pages of
// its sections' raw data.
type Pages struct {
	size     int64
	headers  int64 // SizeOfHeaders
	checksum int64 // CheckSum field offset
	certDir  int64 // certificate table directory entry offset
	sections []span
	// headerErr says why the headers page cannot be hashed; tableErr why
	// the whole table cannot (it is set whenever headerErr is).
	headerErr, tableErr error
}

type span struct{ off, size int64 }

// NewPages returns the pages of the PE file f describes. A layout csv
// cannot hash pages of is not an error here: the digesters say why (see
// [Pages.FirstPageProblem] and [Pages.TableProblem]).
func NewPages(f *binpe.File) *Pages {
	p := &Pages{size: f.Size, headers: int64(f.SizeOfHeaders), checksum: f.CheckSumOffset, certDir: f.CertDirOffset}
	switch {
	case p.headers > PageSize:
		p.headerErr = fmt.Errorf("%w: the headers are %d bytes (SizeOfHeaders), more than a %d-byte page: csv does not know how the first-page hash covers them", ErrPageHashes, p.headers, PageSize)
	case p.headers < p.certDir+8 || p.headers > f.Size:
		p.headerErr = fmt.Errorf("%w: SizeOfHeaders %#x does not cover the optional header (to %#x) or exceeds the file", ErrPageHashes, p.headers, p.certDir+8)
	}
	p.tableErr = p.headerErr
	end := p.headers
	for i, s := range f.Sections {
		if s.SizeOfRawData == 0 || p.tableErr != nil {
			continue
		}
		off, n := int64(s.PointerToRawData), int64(s.SizeOfRawData)
		if off < end {
			p.tableErr = fmt.Errorf("%w: section %d (%q) raw data at %#x overlaps the headers or the section before it (which end at %#x): csv hashes the pages of sections laid out in file order only", ErrPageHashes, i, s.Name, off, end)
			continue
		}
		if off+n > f.Size || (f.Signed() && off+n > f.CertTable.Off) {
			p.tableErr = fmt.Errorf("%w: section %d (%q) raw data [%#x, %#x) is not in the image", ErrPageHashes, i, s.Name, off, off+n)
			continue
		}
		p.sections = append(p.sections, span{off, n})
		end = off + n
	}
	if p.tableErr == nil && f.SectionAlignment != PageSize {
		p.tableErr = fmt.Errorf("%w: the section alignment is %#x: csv makes and checks page-hash tables of images aligned on %d-byte pages only", ErrPageHashes, f.SectionAlignment, PageSize)
	}
	return p
}

// FirstPageProblem says why the first-page hash cannot be computed (nil if
// it can).
func (p *Pages) FirstPageProblem() error { return p.headerErr }

// TableProblem says why the page-hash table cannot be computed (nil if it
// can).
func (p *Pages) TableProblem() error { return p.tableErr }

// TableSize is the size in bytes of the page-hash table of digest h (0 if
// it cannot be computed).
func (p *Pages) TableSize(h crypto.Hash) int64 {
	if p.tableErr != nil {
		return 0
	}
	n := int64(2) // the headers page and the last entry
	for _, s := range p.sections {
		n += (s.size + PageSize - 1) / PageSize
	}
	return n * int64(4+h.Size())
}

// PageDigester computes, while a PE file's bytes are written to it in
// order from offset 0, its first-page hash and, if asked, its page-hash
// table, and checks the table against the ones the file's signatures
// carry. Its work is linear in the file's size: every byte is hashed at
// most twice (in the headers page and in a section page, for the bytes of
// a section that lies in the headers), and every computed entry is
// compared with the same entry of each table expected. A PageDigester is
// not safe for concurrent use.
type PageDigester struct {
	p    *Pages
	alg  crypto.Hash
	hdr  hash.Hash // the headers page
	full bool      // compute the whole table
	keep bool      // keep the table (for signing)

	cur     hash.Hash // the current section page
	sec     int       // the current section
	inPage  int64     // offset of the current page in its section
	entries int       // entries computed
	table   []byte
	entry   []byte
	sum     []byte
	want    []*Expected
	pos     int64
	closed  bool
	err     error
	first   []byte
	lastPos uint32
}

// Expected is a page-hash table a signature carries, being checked.
type Expected struct {
	Hash  crypto.Hash
	Table []byte
	// Problem says how the table differs from the file's (nil once the
	// digester closed: it matches).
	Problem error
}

// FirstPage returns a PageDigester of the headers page only, with hash
// function h.
func (p *Pages) FirstPage(h crypto.Hash) *PageDigester {
	return &PageDigester{p: p, alg: h, hdr: h.New()}
}

// Table returns a PageDigester that computes the whole page-hash table
// with h, keeps it if keep (for signing: [PageDigester.Table]) and checks
// it against want, the tables of h that signatures carry.
func (p *Pages) Table(h crypto.Hash, keep bool, want ...*Expected) *PageDigester {
	d := &PageDigester{p: p, alg: h, hdr: h.New(), full: true, keep: keep, want: want, cur: h.New()}
	d.entry = make([]byte, 4+h.Size())
	d.sum = make([]byte, 0, h.Size())
	for _, w := range want {
		if len(w.Table)%(4+h.Size()) != 0 || len(w.Table) < 2*(4+h.Size()) {
			w.Problem = fmt.Errorf("%w: the %s page-hash table has %d bytes, not a run of at least two %d-byte entries", ErrPageHashes, cms.HashName(h), len(w.Table), 4+h.Size())
		} else if n := p.TableSize(h); n != int64(len(w.Table)) && p.tableErr == nil {
			w.Problem = fmt.Errorf("%w: the %s page-hash table has %d entries, the file has %d pages and an end entry", ErrPageHashes, cms.HashName(h), len(w.Table)/(4+h.Size()), n/int64(4+h.Size()))
		}
	}
	return d
}

var zeroPage [PageSize]byte

// Write hashes p, the file's bytes from the current position on.
func (d *PageDigester) Write(b []byte) (int, error) {
	start, end := d.pos, d.pos+int64(len(b))
	if end > d.p.size {
		return 0, fmt.Errorf("authenticode: page hashes: %d bytes written past the end of the %d-byte file", end-d.p.size, d.p.size)
	}
	d.pos = end
	if d.p.headerErr == nil && start < d.p.headers {
		for _, r := range [3][2]int64{{0, d.p.checksum}, {d.p.checksum + 4, d.p.certDir}, {d.p.certDir + 8, d.p.headers}} {
			if lo, hi := max(start, r[0]), min(end, r[1]); lo < hi {
				d.hdr.Write(b[lo-start : hi-start])
			}
		}
		if end >= d.p.headers {
			// The headers page is done, before any section's page starts
			// (NewPages refuses sections in the headers for tables).
			d.hdr.Write(zeroPage[:PageSize-d.p.headers])
			d.first = d.hdr.Sum(nil)
			if d.full && d.p.tableErr == nil {
				d.addEntry(0, d.first)
			}
		}
	}
	if !d.full || d.p.tableErr != nil {
		return len(b), nil
	}
	for d.sec < len(d.p.sections) {
		s := d.p.sections[d.sec]
		pageOff := s.off + d.inPage
		pageEnd := pageOff + min(PageSize, s.size-d.inPage)
		if lo, hi := max(start, pageOff), min(end, pageEnd); lo < hi {
			d.cur.Write(b[lo-start : hi-start])
		}
		if end < pageEnd {
			break
		}
		d.cur.Write(zeroPage[:PageSize-(pageEnd-pageOff)])
		d.addEntry(uint32(pageOff), d.cur.Sum(d.sum[:0]))
		d.cur.Reset()
		d.inPage += PageSize
		if d.inPage >= s.size {
			d.sec++
			d.inPage = 0
			d.lastPos = uint32(s.off + s.size)
		}
	}
	return len(b), nil
}

// addEntry records the computed entry (offset, digest), in d.entry's
// buffer, and compares it with the tables expected.
func (d *PageDigester) addEntry(off uint32, sum []byte) {
	e := d.entry[:4+len(sum)]
	binary.LittleEndian.PutUint32(e, off)
	copy(e[4:], sum)
	at := d.entries * len(e)
	for _, w := range d.want {
		if w.Problem != nil {
			continue
		}
		if at+len(e) > len(w.Table) {
			w.Problem = fmt.Errorf("%w: the %s page-hash table ends at entry %d, before the file's pages do", ErrPageHashes, cms.HashName(d.alg), d.entries)
			continue
		}
		if got := w.Table[at : at+len(e)]; string(got) != string(e) {
			w.Problem = fmt.Errorf("%w: %s page-hash table entry %d (offset %#x, %x) does not match the file (offset %#x, %x)", ErrPageHashes,
				cms.HashName(d.alg), d.entries, binary.LittleEndian.Uint32(got), got[4:], off, sum)
		}
	}
	if d.keep {
		d.table = append(d.table, e...)
	}
	d.entries++
}

// Close checks that the whole file was written, finishes the headers page
// and the table, and settles the tables expected. Call it once.
func (d *PageDigester) Close() error {
	if d.closed {
		return d.err
	}
	d.closed = true
	if d.pos != d.p.size {
		d.err = fmt.Errorf("authenticode: page hashes: %d of %d bytes written", d.pos, d.p.size)
		return d.err
	}
	if !d.full {
		return nil
	}
	if d.p.tableErr != nil {
		for _, w := range d.want {
			if w.Problem == nil {
				w.Problem = d.p.tableErr
			}
		}
		return nil
	}
	d.addEntry(d.lastPos, zeroPage[:d.alg.Size()])
	return nil
}

// FirstPageHash returns the first-page hash, nil if it cannot be computed
// (FirstPageProblem) or the digester is not closed.
func (d *PageDigester) FirstPageHash() []byte { return d.first }

// Table returns the page-hash table computed (with keep), nil if it cannot
// be computed.
func (d *PageDigester) Table() []byte {
	if d.p.tableErr != nil {
		return nil
	}
	return d.table
}

// PageHashTable is a page-hash table a signature's SpcPeImageData
// carries: its digest (SHA1 for SPC_PE_IMAGE_PAGE_HASHES_V1, SHA256 for
// V2) and its bytes.
type PageHashTable struct {
	Hash  crypto.Hash
	Table []byte
}

// PageHashTables returns the page-hash tables the indirect data of a PE
// signature carries (none for an SpcPeImageData whose file link is not a
// page-hash moniker). A page-hash moniker that cannot be read, or names a
// table type csv does not know, is an error wrapping ErrPageHashes: a
// table Windows may check and csv cannot must not pass unread.
func PageHashTables(data authenticode.IndirectData) ([]PageHashTable, error) {
	if !data.Type.Equal(OIDSpcPEImageData) || data.Value == nil {
		return nil, nil
	}
	bad := func(what string) ([]PageHashTable, error) {
		return nil, fmt.Errorf("%w: malformed SpcPeImageData: %s", ErrPageHashes, what)
	}
	// SpcPeImageData ::= SEQUENCE { flags BIT STRING DEFAULT, file [0] EXPLICIT SpcLink OPTIONAL }
	in := cryptobyte.String(data.Value)
	var body, link cryptobyte.String
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) || !in.Empty() {
		return bad("not a SEQUENCE")
	}
	if body.PeekASN1Tag(cbasn1.BIT_STRING) && !body.SkipASN1(cbasn1.BIT_STRING) {
		return bad("flags")
	}
	if body.Empty() {
		return nil, nil
	}
	if !body.ReadASN1(&link, cbasn1.Tag(0).Constructed().ContextSpecific()) || !body.Empty() {
		return bad("file link")
	}
	// SpcLink ::= CHOICE { url [0] IMPLICIT IA5String, moniker [1] IMPLICIT
	// SpcSerializedObject, file [2] EXPLICIT SpcString }
	var moniker, classID, serialized cryptobyte.String
	if !link.PeekASN1Tag(cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return nil, nil
	}
	if !link.ReadASN1(&moniker, cbasn1.Tag(1).Constructed().ContextSpecific()) || !link.Empty() ||
		!moniker.ReadASN1(&classID, cbasn1.OCTET_STRING) || !moniker.ReadASN1(&serialized, cbasn1.OCTET_STRING) || !moniker.Empty() {
		return bad("moniker")
	}
	if string(classID) != string(pageHashClassID) {
		return nil, fmt.Errorf("%w: SpcPeImageData names a serialized object of class %x, not page hashes: csv cannot read it", ErrPageHashes, []byte(classID))
	}
	var set cryptobyte.String
	if !serialized.ReadASN1(&set, cbasn1.SET) || !serialized.Empty() {
		return bad("page hashes: not a SET")
	}
	var out []PageHashTable
	for !set.Empty() {
		var attr, oid, values cryptobyte.String
		if !set.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) ||
			!attr.ReadASN1(&values, cbasn1.SET) || !attr.Empty() {
			return bad("page hashes: an attribute")
		}
		var h crypto.Hash
		switch {
		case cms.OID(oid).Equal(OIDPageHashesV1):
			h = crypto.SHA1
		case cms.OID(oid).Equal(OIDPageHashesV2):
			h = crypto.SHA256
		default:
			return nil, fmt.Errorf("%w: page-hash table type %s: csv knows SPC_PE_IMAGE_PAGE_HASHES_V1 and V2", ErrPageHashes, cms.OID(oid))
		}
		for !values.Empty() {
			var table cryptobyte.String
			if !values.ReadASN1(&table, cbasn1.OCTET_STRING) {
				return bad("page hashes: a table")
			}
			if len(out) == maxPageHashTables {
				return nil, fmt.Errorf("%w: more than %d page-hash tables in one signature", ErrPageHashes, maxPageHashTables)
			}
			out = append(out, PageHashTable{Hash: h, Table: table})
		}
	}
	if len(out) == 0 {
		return bad("page hashes: no table")
	}
	return out, nil
}

// maxPageHashTables caps the tables one signature may carry (signers
// write one).
const maxPageHashTables = 2

// pageHashData is the SPC_PE_IMAGE_DATAOBJ indirect data of a signature
// with a page-hash table of digest h: SpcPeImageData with flags 07 80 and
// the table as its file link's moniker, as osslsigncode -ph writes it.
func pageHashData(h crypto.Hash, table []byte) (authenticode.IndirectData, error) {
	oid := OIDPageHashesV2
	if h == crypto.SHA1 {
		oid = OIDPageHashesV1
	}
	inner := cryptobyte.NewBuilder(nil)
	inner.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(oid)
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddASN1OctetString(table) })
		})
	})
	serialized, err := inner.Bytes()
	if err != nil {
		return authenticode.IndirectData{}, err
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) { b.AddBytes([]byte{0x07, 0x80}) })
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1OctetString(pageHashClassID)
				b.AddASN1OctetString(serialized)
			})
		})
	})
	v, err := b.Bytes()
	if err != nil {
		return authenticode.IndirectData{}, err
	}
	return authenticode.IndirectData{Type: OIDSpcPEImageData, Value: v}, nil
}

// ExpectedPageHashes returns the page-hash tables the signatures of a PE
// attribute certificate table carry, outer and nested (walked as Verify
// walks them, within its caps), without repeats: the tables to check in
// the one pass over the file ([Pages.Table]) before [VerifyPages]. A
// signature that cannot be parsed, or whose page hashes cannot be read, is
// skipped here (Verify reports it).
func ExpectedPageHashes(table []byte) []*Expected {
	t, err := ParseTable(table, 0)
	if err != nil {
		return nil
	}
	var out []*Expected
	authenticode.EachSignature(t.Signatures(), func(p *authenticode.Parsed) {
		tables, _ := PageHashTables(p.Data)
		for _, pt := range tables {
			if findExpected(out, pt) == nil {
				out = append(out, &Expected{Hash: pt.Hash, Table: pt.Table})
			}
		}
	})
	return out
}

func findExpected(es []*Expected, pt PageHashTable) *Expected {
	for _, e := range es {
		if e.Hash == pt.Hash && string(e.Table) == string(pt.Table) {
			return e
		}
	}
	return nil
}

// CheckData implements the authenticode package's data check: a
// signature whose SpcPeImageData carries page-hash tables verifies only if
// each was checked against the file and matches it (t's checks come from
// [VerifyPages]; without them, a signature with page hashes does not
// verify: a table that lies would otherwise pass unread).
func (t *Table) CheckData(data authenticode.IndirectData) error {
	tables, err := PageHashTables(data)
	if err != nil {
		return err
	}
	for _, pt := range tables {
		e := findExpected(t.pages, pt)
		switch {
		case e == nil:
			return signing.Errorf(signing.ErrDigestNotComputed, "%s page hashes not computed: the signature carries a page-hash table, which the caller did not check against the file", cms.HashName(pt.Hash))
		case e.Problem != nil:
			return e.Problem
		}
	}
	return nil
}

// VerifyPages is [Verify] with the page-hash tables of the file's
// signatures checked against it (ExpectedPageHashes, then a [Pages.Table]
// digester of each in the pass over the file, closed): a signature whose
// table does not match the file does not verify, with a Problem wrapping
// ErrPageHashes.
func VerifyPages(table []byte, tableOff int64, digests map[crypto.Hash][]byte, pages []*Expected, opts authenticode.VerifyOptions) ([]*signing.Signature, error) {
	t, err := ParseTable(table, tableOff)
	if err != nil {
		return nil, fmt.Errorf("authenticode: %w", err)
	}
	t.pages = pages
	return authenticode.Verify(t, digests, opts)
}
