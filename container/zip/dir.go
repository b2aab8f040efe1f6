package zip

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"unicode/utf8"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/signing"
)

// Record signatures and fixed lengths (APPNOTE.TXT 6.3.10, section 4.3).
const (
	sigLocal   = 0x04034b50
	sigCentral = 0x02014b50
	sigEnd     = 0x06054b50
	sigEnd64   = 0x06064b50
	sigLoc64   = 0x07064b50
	sigDesc    = 0x08074b50
	sigSpan    = 0x08074b50 // the split/spanned marker at offset 0 (same bytes as a descriptor's)
	sigSpan1   = 0x30304b50 // "PK00": a spanned archive that fit on one disk

	localLen   = 30
	centralLen = 46
	endLen     = 22
	end64Len   = 56
	loc64Len   = 20

	flagEncrypted = 1 << 0
	flagDesc      = 1 << 3
	flagPatched   = 1 << 5
	flagStrong    = 1 << 6
	flagUTF8      = 1 << 11
	flagMaskedCD  = 1 << 13

	methodStore   = 0
	methodDeflate = 8

	extraZip64       = 0x0001
	extraUnicodePath = 0x7075
	extraXL          = 0x6c78 // libarchive's experimental 'xl' field: attributes in the local header

	apkSigMagic = "APK Sig Block 42"
)

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// malformed is the container's own fault: Walk returns it.
func malformed(off int64, format string, args ...any) error {
	return &signing.MalformedError{Format: "zip", Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// entry is one central-directory record, with what its local header says.
type entry struct {
	raw       string // the name's bytes as stored in the central directory
	flags     uint16
	method    uint16
	creator   uint16 // version made by: high byte is the host system
	crc       uint32
	csize     uint64
	usize     uint64
	off       uint64 // local header offset
	ext       uint32 // external attributes
	cdOff     int64  // where the central-directory record is, for messages
	uniPath   []byte // Info-ZIP Unicode Path extra field (0x7075) body, nil if absent
	uniPathOK bool   // the field's CRC matches the stored name

	// From the local header.
	dataStart int64
	end       int64 // after the data and its data descriptor
	problem   error // a disagreement with the local header
}

// archive is what Walk found by reading the zip's structure, before any
// member's data.
type archive struct {
	entries []entry
	cdOff   int64
	hidden  []container.Member // local headers the central directory does not list
}

// readEnd finds the end-of-central-directory record (and the zip64 one)
// and returns the central directory's offset, size and entry count.
func readEnd(src io.ReaderAt, size int64) (cdOff, cdSize int64, count uint64, err error) {
	if size < endLen {
		return 0, 0, 0, malformed(-1, "%d bytes is too short for an end of central directory record", size)
	}
	tail := min(size, endLen+0xffff)
	buf := make([]byte, tail)
	if _, err := src.ReadAt(buf, size-tail); err != nil {
		return 0, 0, 0, &signing.MalformedError{Format: "zip", Offset: size - tail, Reason: "cannot read the end of the archive", Err: err}
	}
	// The record is the one whose comment ends exactly at the end of the
	// file. A second such record (one inside the other's comment) would
	// let two readers see two archives: refused.
	pos := -1
	for i := len(buf) - endLen; i >= 0; i-- {
		if le32(buf[i:]) != sigEnd {
			continue
		}
		if i+endLen+int(le16(buf[i+20:])) != len(buf) {
			continue
		}
		if pos >= 0 {
			return 0, 0, 0, malformed(size-tail+int64(i), "two end of central directory records, one in the other's comment: readers disagree on which archive this is")
		}
		pos = i
	}
	if pos < 0 {
		if i := bytes.LastIndex(buf, []byte("PK\x05\x06")); i >= 0 {
			return 0, 0, 0, malformed(size-tail+int64(i), "the end of central directory record's comment does not end at the end of the file (bytes appended after the archive)")
		}
		return 0, 0, 0, malformed(-1, "no end of central directory record (truncated, or not a zip)")
	}
	endOff := size - tail + int64(pos)
	e := buf[pos:]
	// Python's zipfile, Go's archive/zip and unzip take the last end
	// record signature of the file for the end record: one after this
	// record's, in its comment or across its own fields (a comment length
	// of 0x4b50, "PK", and a comment starting "\x05\x06"), would have
	// them read another archive than csv does.
	if i := bytes.LastIndex(buf, []byte("PK\x05\x06")); i != pos {
		return 0, 0, 0, malformed(size-tail+int64(i), "an end of central directory signature after the end record's (in its fields or its comment), which other readers take for the end record")
	}
	disk, cdDisk := le16(e[4:]), le16(e[6:])
	onDisk, total := uint64(le16(e[8:])), uint64(le16(e[10:]))
	cdSize, cdOff = int64(le32(e[12:])), int64(le32(e[16:]))
	count = total

	// Zip64: the locator sits right before the end record.
	end := endOff
	if endOff >= loc64Len {
		var loc [loc64Len]byte
		if _, err := src.ReadAt(loc[:], endOff-loc64Len); err != nil {
			return 0, 0, 0, &signing.MalformedError{Format: "zip", Offset: endOff - loc64Len, Reason: "cannot read the zip64 locator", Err: err}
		}
		if le32(loc[:]) == sigLoc64 {
			if le32(loc[4:]) != 0 || le32(loc[16:]) > 1 {
				return 0, 0, 0, malformed(endOff-loc64Len, "a multi-disk (spanned or split) archive: %d disks", le32(loc[16:]))
			}
			r64 := le64(loc[8:])
			if r64 > uint64(endOff-loc64Len) || uint64(endOff-loc64Len)-r64 < end64Len {
				return 0, 0, 0, malformed(endOff-loc64Len, "the zip64 locator points at %d, outside the archive", r64)
			}
			var z [end64Len]byte
			if _, err := src.ReadAt(z[:], int64(r64)); err != nil {
				return 0, 0, 0, &signing.MalformedError{Format: "zip", Offset: int64(r64), Reason: "cannot read the zip64 end record", Err: err}
			}
			if le32(z[:]) != sigEnd64 {
				return 0, 0, 0, malformed(int64(r64), "no zip64 end of central directory record where the locator points")
			}
			// Its size field counts the bytes after the first 12; the
			// record must end at the locator. Extensible data (a record
			// longer than 56 bytes) is refused: Python's zipfile assumes
			// there is none and reads the 56 bytes before the locator as
			// the record, which the extensible data can hold, with a
			// central directory of its own.
			if rs := le64(z[4:]); rs != uint64(endOff-loc64Len)-r64-12 {
				return 0, 0, 0, malformed(int64(r64), "the zip64 end record's size %d does not reach the locator", rs)
			} else if rs != end64Len-12 {
				return 0, 0, 0, malformed(int64(r64), "the zip64 end record holds %d bytes of extensible data, which Python's zipfile takes for the record itself (readers disagree on which central directory this is)", rs-(end64Len-12))
			}
			if le32(z[16:]) != 0 || le32(z[20:]) != 0 {
				return 0, 0, 0, malformed(int64(r64), "a multi-disk (spanned or split) archive")
			}
			on64, tot64, sz64, off64 := le64(z[24:]), le64(z[32:]), le64(z[40:]), le64(z[48:])
			// A 32-bit field that is not saturated must say what the
			// zip64 record says.
			agree := func(v32, sat, v64 uint64) bool { return v32 == sat || v32 == v64 }
			if !agree(onDisk, 0xffff, on64) || !agree(total, 0xffff, tot64) ||
				!agree(uint64(cdSize), 0xffffffff, sz64) || !agree(uint64(cdOff), 0xffffffff, off64) {
				return 0, 0, 0, malformed(endOff, "the end record and the zip64 end record disagree on the central directory")
			}
			if sz64 > uint64(size) || off64 > uint64(size) {
				return 0, 0, 0, malformed(int64(r64), "the zip64 end record puts the central directory outside the archive")
			}
			disk, cdDisk = 0, 0
			onDisk, count, cdSize, cdOff = on64, tot64, int64(sz64), int64(off64)
			end = int64(r64)
		}
	}
	if disk != 0 || cdDisk != 0 || onDisk != count {
		return 0, 0, 0, malformed(endOff, "a multi-disk (spanned or split) archive")
	}
	// The central directory ends where the end records begin: no bytes
	// between, and offsets counted from the start of the file (a zip
	// behind a prefix is another file with a zip appended).
	if cdOff > end || cdSize != end-cdOff {
		return 0, 0, 0, malformed(endOff, "the central directory (%d bytes at %d) does not end where the end record begins (%d)", cdSize, cdOff, end)
	}
	return cdOff, cdSize, count, nil
}

// readArchive reads the central directory and every local header and
// checks that the members' local headers, data and data descriptors tile
// the bytes before the central directory exactly.
func readArchive(ctx context.Context, src io.ReaderAt, size int64, lim *container.Limits) (*archive, error) {
	cdOff, cdSize, count, err := readEnd(src, size)
	if err != nil {
		return nil, err
	}
	if lim.MaxMembers > 0 && count > uint64(lim.MaxMembers) {
		return nil, &container.LimitError{Cap: "max-container-members", Value: int64(lim.MaxMembers),
			What: fmt.Sprintf("the zip's central directory lists %d members", count)}
	}
	if count > uint64(cdSize)/centralLen {
		return nil, malformed(cdOff, "the end record counts %d members, more than %d central directory bytes can hold", count, cdSize)
	}
	a := &archive{entries: make([]entry, 0, count), cdOff: cdOff}
	br := bufio.NewReaderSize(io.NewSectionReader(src, cdOff, cdSize), int(min(cdSize, 64<<10)))
	var fixed [centralLen]byte
	var vbuf []byte
	pos := cdOff
	for i := uint64(0); i < count; i++ {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if _, err := io.ReadFull(br, fixed[:]); err != nil {
			return nil, malformed(pos, "the central directory ends inside record %d of %d", i+1, count)
		}
		h := fixed[:]
		if le32(h) != sigCentral {
			return nil, malformed(pos, "central directory record %d of %d has no signature", i+1, count)
		}
		nl, xl, cl := int(le16(h[28:])), int(le16(h[30:])), int(le16(h[32:]))
		vbuf = slices.Grow(vbuf[:0], nl+xl+cl)[:nl+xl+cl]
		if _, err := io.ReadFull(br, vbuf); err != nil {
			return nil, malformed(pos, "the central directory ends inside record %d's name, extra field or comment", i+1)
		}
		e := entry{
			raw:     string(vbuf[:nl]),
			creator: le16(h[4:]),
			flags:   le16(h[8:]),
			method:  le16(h[10:]),
			crc:     le32(h[16:]),
			csize:   uint64(le32(h[20:])),
			usize:   uint64(le32(h[24:])),
			ext:     le32(h[38:]),
			off:     uint64(le32(h[42:])),
			cdOff:   pos,
		}
		diskStart := uint64(le16(h[34:]))
		if err := e.readExtra(vbuf[nl:nl+xl], &diskStart); err != nil {
			return nil, err
		}
		if diskStart != 0 {
			return nil, malformed(pos, "member %q starts on disk %d: a multi-disk (spanned or split) archive", e.raw, diskStart)
		}
		a.entries = append(a.entries, e)
		pos += int64(centralLen + nl + xl + cl)
	}
	if pos != cdOff+cdSize {
		return nil, malformed(pos, "%d bytes of the central directory follow its last record", cdOff+cdSize-pos)
	}
	var lbuf []byte
	for i := range a.entries {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if lbuf, err = a.entries[i].readLocal(src, cdOff, lbuf); err != nil {
			return nil, err
		}
	}
	if err := a.tile(src); err != nil {
		return nil, err
	}
	return a, nil
}

// readExtra reads the central-directory extra fields: zip64 sizes and
// offset where the 32-bit fields are saturated, and the Info-ZIP Unicode
// Path field.
func (e *entry) readExtra(x []byte, diskStart *uint64) error {
	need64 := e.usize == 0xffffffff || e.csize == 0xffffffff || e.off == 0xffffffff || *diskStart == 0xffff
	seen64 := false
	for len(x) > 0 {
		if len(x) < 4 || int(le16(x[2:])) > len(x)-4 {
			return malformed(e.cdOff, "member %q's extra field runs past its end", e.raw)
		}
		id, body := le16(x), x[4:4+int(le16(x[2:]))]
		x = x[4+len(body):]
		switch id {
		case extraZip64:
			if seen64 {
				return malformed(e.cdOff, "member %q has two zip64 extra fields", e.raw)
			}
			seen64 = true
			for _, f := range []*uint64{&e.usize, &e.csize, &e.off} {
				if *f != 0xffffffff {
					continue
				}
				if len(body) < 8 {
					return malformed(e.cdOff, "member %q's zip64 extra field is too short", e.raw)
				}
				*f, body = le64(body), body[8:]
			}
			if *diskStart == 0xffff {
				if len(body) < 4 {
					return malformed(e.cdOff, "member %q's zip64 extra field is too short", e.raw)
				}
				*diskStart = uint64(le32(body))
			}
		case extraXL:
			if why := e.checkXL(body); why != "" && e.problem == nil {
				e.problem = &signing.MalformedError{Format: "zip", Offset: e.cdOff,
					Reason: fmt.Sprintf("member %q's central directory record disagrees with its own extra field: the %s", e.raw, why)}
			}
		case extraUnicodePath:
			if e.uniPath != nil {
				return malformed(e.cdOff, "member %q has two Unicode Path extra fields", e.raw)
			}
			if len(body) < 5 || body[0] != 1 {
				return malformed(e.cdOff, "member %q's Unicode Path extra field is malformed", e.raw)
			}
			e.uniPath = append([]byte{}, body[5:]...)
			e.uniPathOK = le32(body[1:]) == crc32.ChecksumIEEE([]byte(e.raw))
		}
	}
	if need64 && !seen64 {
		return malformed(e.cdOff, "member %q's sizes or offset need a zip64 extra field, which is absent", e.raw)
	}
	return nil
}

// checkXL returns why libarchive's experimental 'xl' extra field body
// (a bitmap, then the version made by, internal and external attributes,
// as its bits say) tells another file type than the central directory
// record does: libarchive takes its version made by and external
// attributes for the member's (a symbolic link where the record says a
// file); "" when it agrees.
func (e *entry) checkXL(b []byte) string {
	if len(b) < 1 {
		return "'xl' extra field is empty"
	}
	bitmap, last := b[0], b[0]
	b = b[1:]
	for last&0x80 != 0 && len(b) > 0 {
		last, b = b[0], b[1:]
	}
	if bitmap&1 != 0 {
		if len(b) < 2 {
			return "'xl' extra field is too short"
		}
		if v := le16(b); v>>8 != e.creator>>8 {
			return fmt.Sprintf("'xl' extra field says version made by %#04x, the record %#04x", v, e.creator)
		}
		b = b[2:]
	}
	if bitmap&2 != 0 {
		if len(b) < 2 {
			return "'xl' extra field is too short"
		}
		b = b[2:]
	}
	if bitmap&4 != 0 {
		if len(b) < 4 {
			return "'xl' extra field is too short"
		}
		if v := le32(b); v != e.ext {
			return fmt.Sprintf("'xl' extra field says external attributes %#08x (the file type libarchive creates), the record %#08x", v, e.ext)
		}
	}
	return ""
}

// readLocal reads e's local header and data descriptor and records where
// its data is and whether the local header agrees with the central
// directory (a disagreement is the member's problem, not the archive's:
// Walk reports it on the member).
func (e *entry) readLocal(src io.ReaderAt, cdOff int64, buf []byte) ([]byte, error) {
	at := int64(e.off)
	if e.off > uint64(cdOff) || uint64(cdOff)-e.off < localLen {
		return buf, malformed(e.cdOff, "member %q's local header offset %d is outside the members' area (which ends at %d)", e.raw, e.off, cdOff)
	}
	var h [localLen]byte
	if _, err := src.ReadAt(h[:], at); err != nil {
		return buf, &signing.MalformedError{Format: "zip", Offset: at, Reason: fmt.Sprintf("cannot read member %q's local header", e.raw), Err: err}
	}
	if le32(h[:]) != sigLocal {
		return buf, malformed(at, "no local header where the central directory puts member %q", e.raw)
	}
	nl, xl := int64(le16(h[26:])), int64(le16(h[28:]))
	if cdOff-at-localLen < nl+xl {
		return buf, malformed(at, "member %q's local header runs into the central directory", e.raw)
	}
	buf = slices.Grow(buf[:0], int(nl+xl))[:nl+xl]
	if _, err := src.ReadAt(buf, at+localLen); err != nil {
		return buf, &signing.MalformedError{Format: "zip", Offset: at, Reason: fmt.Sprintf("cannot read member %q's local header", e.raw), Err: err}
	}
	e.dataStart = at + localLen + nl + xl
	if e.csize > uint64(cdOff-e.dataStart) {
		return buf, malformed(e.dataStart, "member %q's %d compressed bytes run into the central directory", e.raw, e.csize)
	}
	e.end = e.dataStart + int64(e.csize)

	disagree := func(what string, args ...any) {
		if e.problem == nil {
			e.problem = &signing.MalformedError{Format: "zip", Offset: at,
				Reason: fmt.Sprintf("member %q's local header and central directory record disagree: ", e.raw) + fmt.Sprintf(what, args...)}
		}
	}
	lname := buf[:nl]
	lflags, lmethod := le16(h[6:]), le16(h[8:])
	lcrc, lcsize, lusize := le32(h[14:]), uint64(le32(h[18:])), uint64(le32(h[22:]))
	if string(lname) != e.raw {
		disagree("the local header names it %q", lname)
	}
	if lflags != e.flags {
		disagree("flags %#04x, central %#04x", lflags, e.flags)
	}
	if lmethod != e.method {
		disagree("method %d, central %d", lmethod, e.method)
	}
	// Local zip64 extra: both sizes, when either 32-bit field is saturated.
	local64 := false
	for x := buf[nl:]; len(x) > 0; {
		if len(x) < 4 || int(le16(x[2:])) > len(x)-4 {
			disagree("the local extra field runs past its end")
			break
		}
		id, body := le16(x), x[4:4+int(le16(x[2:]))]
		x = x[4+len(body):]
		switch id {
		case extraUnicodePath:
			// libarchive names the member by the local header's
			// Unicode Path field.
			if len(body) < 5 || string(body[5:]) != e.raw {
				disagree("the local Unicode Path extra field names it %q", body[min(5, len(body)):])
			}
			continue
		case extraXL:
			if why := e.checkXL(body); why != "" {
				disagree("the local %s", why)
			}
			continue
		case extraZip64:
		default:
			continue
		}
		local64 = true
		if lusize == 0xffffffff || lcsize == 0xffffffff {
			if len(body) < 16 {
				disagree("the local zip64 extra field is too short")
				break
			}
			lusize, lcsize = le64(body), le64(body[8:])
		}
	}
	if e.flags&flagDesc == 0 {
		if lcrc != e.crc || lcsize != e.csize || lusize != e.usize {
			disagree("CRC %08x, sizes %d/%d; central CRC %08x, sizes %d/%d", lcrc, lcsize, lusize, e.crc, e.csize, e.usize)
		}
		return buf, nil
	}
	// A data descriptor follows the data: its CRC and sizes are the
	// member's; the local header's fields are zero or agree.
	if (lcrc != 0 && lcrc != e.crc) || (lcsize != 0 && lcsize != e.csize) || (lusize != 0 && lusize != e.usize) {
		disagree("CRC %08x, sizes %d/%d; central CRC %08x, sizes %d/%d", lcrc, lcsize, lusize, e.crc, e.csize, e.usize)
	}
	var d [24]byte
	n := min(int64(len(d)), cdOff-e.end)
	if n < 12 {
		return buf, malformed(e.end, "member %q's data descriptor runs into the central directory", e.raw)
	}
	if _, err := src.ReadAt(d[:n], e.end); err != nil {
		return buf, &signing.MalformedError{Format: "zip", Offset: e.end, Reason: fmt.Sprintf("cannot read member %q's data descriptor", e.raw), Err: err}
	}
	p, dl := d[:n], int64(12)
	if le32(p) == sigDesc {
		p, dl = p[4:], 16
	}
	// Sizes are 8 bytes when the local header has a zip64 field
	// (APPNOTE 4.3.9.2); writers that use 8 without it exist (and 4
	// with it), so the other width is taken when it is the one that
	// agrees with the central directory.
	type desc struct {
		crc          uint32
		csize, usize uint64
		n            int64
		ok           bool
	}
	read := func(wide bool) desc {
		if wide && len(p) >= 20 {
			d := desc{le32(p), le64(p[4:]), le64(p[12:]), dl + 8, false}
			d.ok = d.crc == e.crc && d.csize == e.csize && d.usize == e.usize
			return d
		}
		if !wide && len(p) >= 12 {
			d := desc{le32(p), uint64(le32(p[4:])), uint64(le32(p[8:])), dl, false}
			d.ok = d.crc == e.crc && d.csize == e.csize && d.usize == e.usize
			return d
		}
		return desc{n: -1}
	}
	dd := read(local64)
	if other := read(!local64); !dd.ok && other.ok {
		dd = other
	}
	if dd.n < 0 {
		return buf, malformed(e.end, "member %q's data descriptor runs into the central directory", e.raw)
	}
	if dd.ok && local64 && dd.n == dl && e.problem == nil {
		// libarchive, streaming, reads 8-byte sizes after a local zip64
		// field: 8 bytes into the next local header, from where it
		// searches on for one, and finds what the next member's bytes
		// hide.
		e.problem = &signing.MalformedError{Format: "zip", Offset: e.end,
			Reason: fmt.Sprintf("member %q's data descriptor has 4-byte sizes though its local header has a zip64 extra field (8-byte sizes): an extractor streaming the archive (libarchive) reads 8 bytes past it, into what follows", e.raw)}
	}
	if !dd.ok && e.problem == nil {
		e.problem = &signing.MalformedError{Format: "zip", Offset: e.end,
			Reason: fmt.Sprintf("member %q's data descriptor (CRC %08x, sizes %d/%d) disagrees with its central directory record (CRC %08x, sizes %d/%d)", e.raw, dd.crc, dd.csize, dd.usize, e.crc, e.csize, e.usize)}
	}
	dl = dd.n
	e.end += dl
	return buf, nil
}

// tile checks that the members' local headers, data and descriptors cover
// the bytes before the central directory exactly once: overlapping
// members (the shape of the "better zip bomb", whose members share one
// deflate stream) are refused, and bytes that belong to no member are a
// local header the central directory does not list, which an extractor
// streaming from the front would extract (a hidden member, reported), an
// APK signing block (right before the central directory), or the
// archive's fault.
func (a *archive) tile(src io.ReaderAt) error {
	order := make([]int32, len(a.entries))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(x, y int32) int {
		return cmp.Compare(a.entries[x].off, a.entries[y].off)
	})
	cur, prev := int64(0), -1
	for _, i := range order {
		e := &a.entries[i]
		start := int64(e.off)
		if start < cur {
			return malformed(start, "member %q overlaps member %q (members sharing bytes: the overlapping zip bomb shape)", e.raw, a.entries[prev].raw)
		}
		if start > cur {
			if err := a.gap(src, cur, start, false); err != nil {
				return err
			}
		}
		cur, prev = e.end, int(i)
	}
	if cur < a.cdOff {
		return a.gap(src, cur, a.cdOff, true)
	}
	return nil
}

// gap reports the bytes [from, to) that no listed member covers. A local
// header at from is a hidden member even when the bytes also read as an
// APK signing block: a block of 0x04034b50 bytes starts with a size field
// that is a local header's signature, version 0 and flags 0, and a reader
// streaming the archive from the front (Java's ZipInputStream) extracts
// the member it holds.
func (a *archive) gap(src io.ReaderAt, from, to int64, last bool) error {
	if to-from >= localLen {
		var h [4]byte
		if _, err := src.ReadAt(h[:], from); err == nil && le32(h[:]) == sigLocal {
			return a.hide(src, from, to)
		}
	}
	if last && to-from >= 32 {
		var t [24]byte
		if _, err := src.ReadAt(t[:], to-24); err == nil && string(t[8:]) == apkSigMagic {
			// APK signing block: size (8), pairs, size (8), magic (16);
			// the size counts what follows the first size field.
			n := le64(t[:])
			if n == uint64(to-from-8) {
				var s [8]byte
				if _, err := src.ReadAt(s[:], from); err == nil && le64(s[:]) == n {
					// libarchive, streaming, searches forward from the
					// last member's end for a local header: one in the
					// block's pairs is a hidden member.
					at, err := find(src, from, to, []byte("PK\x03\x04"))
					if err != nil {
						return err
					}
					if at >= 0 {
						return a.hide(src, at, to)
					}
					return nil
				}
			}
		}
	}
	return malformed(from, "%d bytes before offset %d belong to no member the central directory lists", to-from, to)
}

// find returns the offset of the first sig in src's bytes [from, to), or -1.
func find(src io.ReaderAt, from, to int64, sig []byte) (int64, error) {
	buf := make([]byte, 32<<10)
	for at := from; at < to; at += int64(len(buf) - len(sig) + 1) {
		b := buf[:min(int64(len(buf)), to-at)]
		if _, err := src.ReadAt(b, at); err != nil {
			return -1, &signing.MalformedError{Format: "zip", Offset: at, Reason: "cannot read the bytes before the central directory", Err: err}
		}
		if i := bytes.Index(b, sig); i >= 0 {
			return at + int64(i), nil
		}
		if int64(len(b)) < int64(len(buf)) {
			break
		}
	}
	return -1, nil
}

// hide records the local header at offset at, in bytes no listed member
// covers (up to to), as a hidden member.
func (a *archive) hide(src io.ReaderAt, at, to int64) error {
	var h [localLen]byte
	n, _ := src.ReadAt(h[:], at)
	nl := int64(0)
	if n == localLen {
		nl = max(0, min(int64(le16(h[26:])), to-at-localLen))
	}
	name := make([]byte, nl)
	if _, err := src.ReadAt(name, at+localLen); err != nil && nl > 0 {
		return &signing.MalformedError{Format: "zip", Offset: at, Reason: "cannot read a local header", Err: err}
	}
	m := container.Member{Name: string(name), Type: container.Regular, Size: -1}
	if c, err := container.CleanName(string(name)); err == nil {
		m.Name = c
	} else if m.Name == "" {
		m.Name = fmt.Sprintf("(a local header at offset %d)", at)
	}
	m.Problem = fmt.Errorf("%w: a local header at offset %d that the central directory does not list (in %d bytes no listed member covers): an extractor reading the archive from the front would extract it, one reading the central directory would not",
		container.ErrMember, at, to-at)
	a.hidden = append(a.hidden, m)
	return nil
}

// memberName returns the member's name as extractors read it, or a
// problem when they read it differently.
func (e *entry) memberName() (string, error) {
	ascii := true
	for i := 0; i < len(e.raw); i++ {
		if e.raw[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if e.uniPath != nil && (!e.uniPathOK || string(e.uniPath) != e.raw) {
		return e.raw, fmt.Errorf("%w: the name %q and its Info-ZIP Unicode Path field %q differ (unzip reads one, other extractors the other)", container.ErrMember, e.raw, e.uniPath)
	}
	switch {
	case ascii:
	case e.flags&flagUTF8 != 0:
		if !utf8.ValidString(e.raw) {
			return e.raw, fmt.Errorf("%w: the name %q is marked UTF-8 but is not", container.ErrMember, e.raw)
		}
	case e.uniPath != nil && utf8.ValidString(e.raw):
		// Not marked UTF-8, but a Unicode Path field with these very
		// bytes says so (Info-ZIP zip writes both).
	default:
		return e.raw, fmt.Errorf("%w: the name %q is not ASCII and not marked UTF-8: extractors read it differently (CP437 or the local code page)", container.ErrMember, e.raw)
	}
	return container.CleanName(e.raw)
}
