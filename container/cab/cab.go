// Package cab reads Microsoft cabinet files (.cab, and the cabinets an MSI
// embeds) as containers of members, for the validator to judge each member
// (../container). A cabinet carries an Authenticode signature of its own
// in its header's reserved area: the reader is a [container.Signed] whose
// file the "cab" format handler judges (csv/format/cab).
//
// # Structure (MS-CAB)
//
// A CFHEADER (36 bytes: "MSCF", the cabinet's size, the offset of the
// first CFFILE, version 1.3, the counts of folders and files, flags), then
// when flagged the sizes of the reserved areas (cbCFHeader, cbCFFolder,
// cbCFData) and the header's reserve, then the names of the previous and
// next cabinets of a set, then cFolders CFFOLDERs (the offset of the
// folder's first CFDATA, its count of CFDATA blocks, its compression), then
// cFiles CFFILEs (size, offset in its folder's decompressed bytes, folder,
// attributes, a NUL-terminated name), then each folder's CFDATA blocks:
// a checksum, the stored and decompressed sizes, the block's reserve, its
// bytes. A folder's blocks decompress, in order, into one stream in which
// its files lie. MSZIP blocks are "CK" and a deflate stream that ends in
// the block, whose window carries over from the previous block.
//
// # What Walk checks
//
// Walk reads the headers by random access and scans every folder's CFDATA
// headers before it delivers any member's bytes. It refuses (returns a
// *signing.MalformedError) a cabinet that is cut or is not one: a size in
// the header other than the file's (other than an Authenticode signature
// after it, where the header's reserve says), a version other than 1.3,
// reserves over the specification's caps, set names over 255 bytes, files
// that do not start where the folders end, folder data that does not start
// where the files end or that does not follow the previous folder's, bytes
// after the last folder's data, a block that does not fit in the file,
// decompresses to more than 32 KiB, or whose stored size does not match
// its folder's compression. A cabinet of more files than
// Limits.MaxMembers, or whose files declare more than MaxExpandedSize
// bytes, is a *container.LimitError.
//
// It passes to yield with Problem set, never skipping: a file in a folder
// compressed with LZX, Quantum or an unknown method (named), a file in a
// folder continued from or into another cabinet of a set (csv reads one
// cabinet), a file in a folder that does not exist, a file that runs past
// its folder's decompressed bytes (a folder of zero blocks included), a
// file that overlaps the previous one in its folder, a name CleanName
// refuses (after '\', the cabinet's separator, becomes '/'), a name that is
// not ASCII and not flagged UTF-8 (extractors read it in different code
// pages), a name flagged UTF-8 that is not, a repeated name.
//
// Members are delivered in folder order and, within a folder, by offset,
// each streamed through the folder's decompressor (MSZIP through
// compress/flate, each block given the last 32 KiB as its dictionary).
// Every block's checksum is checked when it is not zero, every MSZIP block
// must decompress to exactly its declared size and use all its bytes, and
// a folder is decompressed to its end (past its last file too), so that a
// corrupt block anywhere is an error wrapping signing.ErrMalformed: from
// the member's reader when the caller reads it, and from Walk.
//
// # Security
//
// Every offset and count is checked against the file's size before it is
// used, and nothing is allocated from a count before it is checked against
// a cap (the counts are 16-bit: at most 65,535 folders and files). The
// work is linear in the cabinet's size plus the bytes delivered; a block
// costs a fixed 32 KiB buffer. The ratio and expanded-size caps are
// enforced as bytes flow (container.Meter). Nothing is written to disk.
// The cabinet's signature is not verified here (signing/authenticode/cab).
package cab

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"

	"github.com/klauspost/compress/flate"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// Kind is the container kind cabinets report.
const Kind container.Kind = "cab"

// Format is the file format that judges a cabinet itself (its Authenticode
// signature): cipolicy's "cab".
const Format = "cab"

// Reader reads cabinets. Its zero value is ready to use.
type Reader struct{}

var (
	_ container.Reader = Reader{}
	_ container.Signed = Reader{}
)

// Kind returns "cab".
func (Reader) Kind() container.Kind { return Kind }

// JudgedAs returns "cab": the cabinet file itself is judged by its
// Authenticode signature.
func (Reader) JudgedAs() string { return Format }

// Sniff reports whether head begins with a cabinet's signature "MSCF"; name
// is not used. A file that starts so and is not a cabinet is refused by
// Walk, not passed as a file of no format.
func (Reader) Sniff(head []byte, name string) bool {
	return len(head) >= 4 && string(head[:4]) == "MSCF"
}

// Header flags (CFHEADER.flags).
const (
	flagPrev    = 0x0001
	flagNext    = 0x0002
	flagReserve = 0x0004
)

// Compression types (CFFOLDER.typeCompress, low four bits).
const (
	compNone    = 0
	compMSZIP   = 1
	compQuantum = 2
	compLZX     = 3
	compMask    = 0x000f
)

// Special CFFILE.iFolder values: a file continued across cabinets.
const (
	ifoldContinuedFromPrev    = 0xfffd
	ifoldContinuedToNext      = 0xfffe
	ifoldContinuedPrevAndNext = 0xffff
)

// attribNameIsUTF8 flags a name stored in UTF-8 (_A_NAME_IS_UTF).
const attribNameIsUTF8 = 0x80

const (
	headerLen = 36
	folderLen = 8
	fileLen   = 16
	dataLen   = 8
	// sigReserveLen is the header reserve of a signed cabinet: 4 bytes,
	// the signature's offset and size, 8 bytes.
	sigReserveLen = 20
)

// Header is a cabinet's CFHEADER and what follows it up to the folders, as
// read by ReadHeader.
type Header struct {
	// Size is cbCabinet: the cabinet's bytes, an Authenticode signature
	// after them excluded.
	Size                int64
	FilesOffset         int64
	Minor, Major        uint8
	Folders, Files      int
	Flags               uint16
	SetID, Index        uint16
	ReserveHeader       []byte // abReserve of the header (nil when none)
	ReserveFolder       int    // cbCFFolder
	ReserveData         int    // cbCFData
	Prev, PrevDisk      string // when flagged
	Next, NextDisk      string
	FoldersOffset       int64 // where the CFFOLDERs start
	SigOffset, SigSize  int64 // the Authenticode signature, when the reserve says so (else 0)
	ReserveFieldsOffset int64 // offset of cbCFHeader (36) when the reserve is present, else 0
}

// InSet reports whether the cabinet is part of a set (it names a previous
// or a next cabinet).
func (h *Header) InSet() bool { return h.Flags&(flagPrev|flagNext) != 0 }

// Signed reports whether the header's reserve holds a signature's place
// (a 20-byte reserve naming an offset and a size other than zero).
func (h *Header) Signed() bool { return h.SigSize > 0 }

func malformed(off int64, format string, args ...any) error {
	return &signing.MalformedError{Format: Format, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// ReadHeader reads and checks a cabinet's header from src, a file of size
// bytes: its signature, version, size (which must be the file's, or end
// where an Authenticode signature the reserve names begins, the signature
// ending the file), reserve and set names. It does not read the folders.
func ReadHeader(src io.ReaderAt, size int64) (*Header, error) {
	var b [headerLen + 4]byte
	if size < headerLen {
		return nil, malformed(0, "the file is %d bytes, shorter than a cabinet header (%d)", size, headerLen)
	}
	n := min(int64(len(b)), size)
	if _, err := src.ReadAt(b[:n], 0); err != nil && !(errors.Is(err, io.EOF) && int64(len(b)) > size) {
		return nil, &signing.MalformedError{Format: Format, Offset: 0, Reason: "cannot read the cabinet header", Err: err}
	}
	if string(b[:4]) != "MSCF" {
		return nil, malformed(0, "no cabinet signature MSCF (found %q)", b[:4])
	}
	h := &Header{
		Size:        int64(le32(b[8:])),
		FilesOffset: int64(le32(b[16:])),
		Minor:       b[24], Major: b[25],
		Folders: int(le16(b[26:])), Files: int(le16(b[28:])),
		Flags: le16(b[30:]), SetID: le16(b[32:]), Index: le16(b[34:]),
	}
	if h.Major != 1 || h.Minor != 3 {
		return nil, malformed(24, "cabinet format version %d.%d, not 1.3", h.Major, h.Minor)
	}
	if h.Flags&^(flagPrev|flagNext|flagReserve) != 0 {
		return nil, malformed(30, "unknown header flags %#04x", h.Flags)
	}
	off := int64(headerLen)
	if h.Flags&flagReserve != 0 {
		if size < off+4 {
			return nil, malformed(off, "the header's reserve sizes run past the end of the file")
		}
		h.ReserveFieldsOffset = off
		cb := int64(le16(b[36:]))
		h.ReserveFolder, h.ReserveData = int(b[38]), int(b[39])
		off += 4
		if cb > limits.MaxCabHeaderReserve {
			return nil, malformed(36, "a header reserve of %d bytes, over the specification's %d", cb, limits.MaxCabHeaderReserve)
		}
		if off+cb > size {
			return nil, malformed(36, "the header reserve (%d bytes) runs past the end of the file", cb)
		}
		h.ReserveHeader = make([]byte, cb)
		if _, err := src.ReadAt(h.ReserveHeader, off); err != nil {
			return nil, &signing.MalformedError{Format: Format, Offset: off, Reason: "cannot read the header reserve", Err: err}
		}
		off += cb
		if cb == sigReserveLen {
			h.SigOffset = int64(le32(h.ReserveHeader[4:]))
			h.SigSize = int64(le32(h.ReserveHeader[8:]))
		}
	}
	var err error
	if h.Flags&flagPrev != 0 {
		if h.Prev, off, err = setName(src, size, off, "previous cabinet"); err != nil {
			return nil, err
		}
		if h.PrevDisk, off, err = setName(src, size, off, "previous disk"); err != nil {
			return nil, err
		}
	}
	if h.Flags&flagNext != 0 {
		if h.Next, off, err = setName(src, size, off, "next cabinet"); err != nil {
			return nil, err
		}
		if h.NextDisk, off, err = setName(src, size, off, "next disk"); err != nil {
			return nil, err
		}
	}
	h.FoldersOffset = off
	switch {
	case h.Signed():
		if h.SigOffset != h.Size || h.SigOffset+h.SigSize != size {
			return nil, malformed(40, "the signature the header reserve names (%d bytes at %d) does not lie between the cabinet's end (%d) and the file's (%d)", h.SigSize, h.SigOffset, h.Size, size)
		}
	case h.Size > size:
		return nil, malformed(8, "the header says the cabinet is %d bytes, the file is %d: cut", h.Size, size)
	case h.Size < size:
		return nil, malformed(8, "%d bytes after the cabinet's end (%d), which the header does not account for", size-h.Size, h.Size)
	}
	if h.Folders == 0 && h.Files > 0 {
		return nil, malformed(26, "%d files and no folder", h.Files)
	}
	if end := off + int64(h.Folders)*int64(folderLen+h.ReserveFolder); h.FilesOffset != end {
		return nil, malformed(16, "the files start at %d, not where the %d folders end (%d)", h.FilesOffset, h.Folders, end)
	}
	if h.FilesOffset+int64(h.Files)*fileLen > h.Size {
		return nil, malformed(16, "%d files at %d run past the cabinet's end (%d)", h.Files, h.FilesOffset, h.Size)
	}
	return h, nil
}

// setName reads a NUL-terminated name of a cabinet set at off.
func setName(src io.ReaderAt, size, off int64, what string) (string, int64, error) {
	s, next, err := cstring(src, size, off, limits.MaxCabSetName)
	if err != nil {
		return "", 0, malformed(off, "the %s's name: %v", what, err)
	}
	return s, next, nil
}

// cstring reads a NUL-terminated string of at most max bytes (the NUL
// included) at off, returning it and the offset after its NUL.
func cstring(src io.ReaderAt, size, off int64, max int) (string, int64, error) {
	var buf [limits.MaxCabName + 1]byte
	n := min(int64(max), size-off, int64(len(buf)))
	if n <= 0 {
		return "", 0, errors.New("runs past the end of the file")
	}
	if _, err := src.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
		return "", 0, err
	}
	i := bytes.IndexByte(buf[:n], 0)
	if i < 0 {
		if off+n >= size {
			return "", 0, errors.New("runs past the end of the file")
		}
		return "", 0, fmt.Errorf("longer than %d bytes", max-1)
	}
	return string(buf[:i]), off + int64(i) + 1, nil
}

// folder is one CFFOLDER and what the scan of its blocks found.
type folder struct {
	dataOff int64 // coffCabStart
	blocks  int   // cCFData
	comp    uint16
	usize   int64 // the blocks' declared decompressed bytes
	csize   int64 // the bytes the blocks occupy, headers included
	dataEnd int64
	split   bool // continued from or into another cabinet
}

// file is one CFFILE.
type file struct {
	index   int
	size    int64
	off     int64
	ifolder uint16
	attribs uint16
	raw     string
	at      int64 // the CFFILE's offset
}

// cabinet is a cabinet's structure, checked.
type cabinet struct {
	h       *Header
	folders []folder
	files   []file
}

// compName names a compression type.
func compName(c uint16) string {
	switch c & compMask {
	case compNone:
		return "none"
	case compMSZIP:
		return "MSZIP"
	case compQuantum:
		return "Quantum"
	case compLZX:
		return "LZX"
	}
	return fmt.Sprintf("unknown (%d)", c&compMask)
}

// read reads and checks the cabinet's folders, files and block headers.
func read(ctx context.Context, src io.ReaderAt, size int64, lim *container.Limits) (*cabinet, error) {
	h, err := ReadHeader(src, size)
	if err != nil {
		return nil, err
	}
	if lim.MaxMembers > 0 && h.Files > lim.MaxMembers {
		return nil, &container.LimitError{Cap: "max-container-members", Value: int64(lim.MaxMembers),
			What: fmt.Sprintf("the cabinet holds %d files", h.Files)}
	}
	c := &cabinet{h: h, folders: make([]folder, h.Folders), files: make([]file, h.Files)}
	fb := make([]byte, folderLen)
	off := h.FoldersOffset
	for i := range c.folders {
		if _, err := src.ReadAt(fb, off); err != nil {
			return nil, &signing.MalformedError{Format: Format, Offset: off, Reason: fmt.Sprintf("cannot read folder %d", i), Err: err}
		}
		c.folders[i] = folder{dataOff: int64(le32(fb)), blocks: int(le16(fb[4:])), comp: le16(fb[6:])}
		off += int64(folderLen + h.ReserveFolder)
	}
	if n := len(c.folders); n > 0 {
		c.folders[0].split = h.Flags&flagPrev != 0
		c.folders[n-1].split = c.folders[n-1].split || h.Flags&flagNext != 0
	}
	off = h.FilesOffset
	var fh [fileLen]byte
	var total int64
	for i := range c.files {
		if _, err := src.ReadAt(fh[:], off); err != nil {
			return nil, &signing.MalformedError{Format: Format, Offset: off, Reason: fmt.Sprintf("cannot read file %d", i), Err: err}
		}
		f := file{index: i, size: int64(le32(fh[:])), off: int64(le32(fh[4:])), ifolder: le16(fh[8:]), attribs: le16(fh[14:]), at: off}
		name, next, err := cstring(src, h.Size, off+fileLen, limits.MaxCabName+1)
		if err != nil {
			return nil, malformed(off+fileLen, "file %d's name: %v", i, err)
		}
		f.raw, off = name, next
		c.files[i] = f
		total += f.size
		if lim.MaxExpandedSize > 0 && total+*lim.Expanded > lim.MaxExpandedSize {
			return nil, &container.LimitError{Cap: "max-container-size", Value: lim.MaxExpandedSize,
				What: fmt.Sprintf("the cabinet's files declare more than %d bytes (at file %s)", lim.MaxExpandedSize, f.raw)}
		}
	}
	// The folders' data follow the files, each folder's after the
	// previous one's, and the last one ends the cabinet.
	var bh [dataLen]byte
	for i := range c.folders {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f := &c.folders[i]
		if f.dataOff != off {
			return nil, malformed(h.FoldersOffset+int64(i)*int64(folderLen+h.ReserveFolder), "folder %d's data start at %d, not at %d where the %s end", i, f.dataOff, off, map[bool]string{true: "files", false: "previous folder's data"}[i == 0])
		}
		comp := f.comp & compMask
		for j := 0; j < f.blocks; j++ {
			if off+dataLen+int64(h.ReserveData) > h.Size {
				return nil, malformed(off, "folder %d's block %d runs past the cabinet's end (%d)", i, j, h.Size)
			}
			if _, err := src.ReadAt(bh[:], off); err != nil {
				return nil, &signing.MalformedError{Format: Format, Offset: off, Reason: fmt.Sprintf("cannot read folder %d's block %d", i, j), Err: err}
			}
			cb, ub := int64(le16(bh[4:])), int64(le16(bh[6:]))
			next := off + dataLen + int64(h.ReserveData) + cb
			switch {
			case next > h.Size:
				return nil, malformed(off, "folder %d's block %d (%d bytes) runs past the cabinet's end (%d)", i, j, cb, h.Size)
			case cb > limits.MaxCabBlockData:
				return nil, malformed(off+4, "folder %d's block %d stores %d bytes, over %d", i, j, cb, limits.MaxCabBlockData)
			case ub > limits.MaxCabBlock:
				return nil, malformed(off+6, "folder %d's block %d decompresses to %d bytes, over %d", i, j, ub, limits.MaxCabBlock)
			case comp == compNone && cb != ub && !(f.split && j == f.blocks-1):
				return nil, malformed(off+4, "folder %d's block %d is stored uncompressed but its sizes differ (%d stored, %d declared)", i, j, cb, ub)
			case comp == compMSZIP && cb < 2 && !f.split:
				return nil, malformed(off+4, "folder %d's MSZIP block %d holds %d bytes, no room for its CK signature", i, j, cb)
			}
			f.usize += ub
			off = next
		}
		f.csize = off - f.dataOff
		f.dataEnd = off
		if lim.MaxRatio > 0 && f.usize > lim.RatioGrace && f.usize/max(f.csize, 1) > lim.MaxRatio {
			return nil, &container.LimitError{Cap: "max-container-ratio", Value: lim.MaxRatio,
				What: fmt.Sprintf("folder %d declares %d bytes from %d", i, f.usize, f.csize)}
		}
	}
	if off != h.Size {
		return nil, malformed(off, "%d bytes between the last folder's data and the cabinet's end (%d) that no folder holds", h.Size-off, h.Size)
	}
	return c, nil
}

// Walk calls yield for each file of the cabinet in src, in folder order and
// by offset within a folder, after checking the cabinet's structure (see
// the package documentation). A nil lim means the defaults of
// internal/limits.
func (Reader) Walk(ctx context.Context, src io.ReaderAt, size int64, name string, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	l := *container.DefaultLimits()
	if lim != nil {
		l = *lim
	}
	if l.Expanded == nil {
		l.Expanded = new(int64)
	}
	if l.MaxDepth > 0 && l.Depth > l.MaxDepth {
		return &container.LimitError{Cap: "max-container-depth", Value: int64(l.MaxDepth),
			What: fmt.Sprintf("cabinet %s is nested %d deep", name, l.Depth)}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := read(ctx, src, size, &l)
	if err != nil {
		return err
	}
	w := &walker{ctx: ctx, src: src, lim: &l, yield: yield, c: c, names: container.Names{}}
	return w.walk()
}

type walker struct {
	ctx   context.Context
	src   io.ReaderAt
	lim   *container.Limits
	yield func(*container.Member, io.Reader) error
	c     *cabinet
	names container.Names
}

func memberProblem(format string, args ...any) error {
	return fmt.Errorf("%w: %s", container.ErrMember, fmt.Sprintf(format, args...))
}

// check returns the member f is and why it cannot be judged, or nil,
// leaving aside overlap and names already seen.
func (w *walker) check(f *file) (*container.Member, error) {
	m := &container.Member{Name: f.raw, Type: container.Regular, Size: f.size}
	stored := f.raw
	switch {
	case f.attribs&attribNameIsUTF8 != 0 && !utf8.ValidString(stored):
		return m, memberProblem("name %q is flagged UTF-8 and is not", stored)
	case f.attribs&attribNameIsUTF8 == 0 && !ascii(stored):
		return m, memberProblem("name %q is not ASCII and not flagged UTF-8: extractors read it in different code pages", stored)
	}
	// '\' is the cabinet's separator; '/' is one too where cabinets are
	// extracted (Windows).
	cleaned, err := container.CleanName(string(bytes.ReplaceAll([]byte(stored), []byte{'\\'}, []byte{'/'})))
	m.Name = cleaned
	if err != nil {
		return m, err
	}
	switch f.ifolder {
	case ifoldContinuedFromPrev, ifoldContinuedToNext, ifoldContinuedPrevAndNext:
		return m, memberProblem("continued from or into another cabinet of a set, which csv does not read (it reads one cabinet)")
	}
	if int(f.ifolder) >= len(w.c.folders) {
		return m, &signing.MalformedError{Format: Format, Offset: f.at + 8, Reason: fmt.Sprintf("file %s lies in folder %d; the cabinet has %d", cleaned, f.ifolder, len(w.c.folders))}
	}
	fo := &w.c.folders[f.ifolder]
	switch {
	case fo.comp&compMask != compNone && fo.comp&compMask != compMSZIP:
		return m, memberProblem("compressed with %s, which csv does not decompress (none and MSZIP only)", compName(fo.comp))
	case fo.split:
		return m, memberProblem("lies in folder %d, continued from or into another cabinet of a set, which csv does not read (it reads one cabinet)", f.ifolder)
	case f.off+f.size > fo.usize:
		return m, &signing.MalformedError{Format: Format, Offset: f.at, Reason: fmt.Sprintf("file %s (%d bytes at %d) runs past its folder %d's %d bytes", cleaned, f.size, f.off, f.ifolder, fo.usize)}
	}
	return m, nil
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// walk yields the members: those that cannot be read first (in CFFILE
// order), then each folder's, streamed by offset.
func (w *walker) walk() error {
	type entry struct {
		f *file
		m *container.Member
	}
	byFolder := make([][]entry, len(w.c.folders))
	for i := range w.c.files {
		f := &w.c.files[i]
		m, problem := w.check(f)
		if problem == nil {
			problem = w.names.Add(m.Name)
		}
		if problem != nil {
			m.Problem = problem
			if err := w.yield(m, nil); err != nil {
				return err
			}
			continue
		}
		byFolder[f.ifolder] = append(byFolder[f.ifolder], entry{f, m})
	}
	s := &stream{}
	for i := range w.c.folders {
		fo := &w.c.folders[i]
		if fo.split || (fo.comp&compMask != compNone && fo.comp&compMask != compMSZIP) {
			continue // its files were yielded with a Problem
		}
		es := byFolder[i]
		slices.SortStableFunc(es, func(a, b entry) int { return cmp.Compare(a.f.off, b.f.off) })
		s.reset(w, i)
		var end int64 // the end of the previous file in the folder
		for _, e := range es {
			if err := w.ctx.Err(); err != nil {
				return err
			}
			if e.f.off < end {
				e.m.Problem = &signing.MalformedError{Format: Format, Offset: e.f.at,
					Reason: fmt.Sprintf("file %s (bytes %d to %d of folder %d) overlaps the previous file, which ends at %d", e.m.Name, e.f.off, e.f.off+e.f.size, i, end)}
				if err := w.yield(e.m, nil); err != nil {
					return err
				}
				continue
			}
			if err := s.skip(e.f.off - s.pos); err != nil {
				return err
			}
			end = e.f.off + e.f.size
			if err := w.member(s, e.m, e.f); err != nil {
				return err
			}
		}
		if err := s.skip(fo.usize - s.pos); err != nil {
			return err
		}
	}
	return nil
}

// member yields one file streamed from s, then reads what the caller left
// of it.
func (w *walker) member(s *stream, m *container.Member, f *file) error {
	startC := s.consumed
	meter := &container.Meter{R: io.LimitReader(s, f.size), Ctx: w.ctx, Lim: w.lim, Name: m.Name, Declared: f.size, Format: Format,
		Compressed: func() int64 { return s.consumed - startC }}
	r := &seen{r: meter}
	if err := w.yield(m, r); err != nil {
		return err
	}
	if r.err != nil {
		return r.err
	}
	buf := s.scratch
	for {
		_, err := r.Read(buf)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// seen remembers the error a member's reader returned to the caller.
type seen struct {
	r   io.Reader
	err error
}

func (s *seen) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	return n, err
}

// newFlate returns an MSZIP block's deflate reader, with the previous 32
// KiB as its dictionary. klauspost/compress/flate reads a *bytes.Reader
// without a copy and decompresses the benchmark's cabinet faster than
// compress/flate (BenchmarkWalk against BenchmarkWalkStdlibFlate, measured
// in one run: docs/installers.md); like compress/flate it reads no
// byte past the end of the stream, which the check for bytes after it
// relies on.
var newFlate = func(r io.Reader, dict []byte) io.ReadCloser { return flate.NewReaderDict(r, dict) }

// resetter is the Reset both flate packages' readers have.
type resetter interface {
	Reset(r io.Reader, dict []byte) error
}

// stream is a folder's decompressed bytes, block by block.
type stream struct {
	w        *walker
	fi       int
	fo       *folder
	next     int   // the next block
	at       int64 // the next block's offset
	pos      int64 // decompressed bytes delivered
	consumed int64 // stored bytes read
	out      []byte
	cur      []byte // what remains of the current block's output
	in       []byte
	hist     []byte // the last 32 KiB decompressed (MSZIP's dictionary)
	fl       io.ReadCloser
	br       bytes.Reader
	err      error
	scratch  []byte
}

// reset makes s the stream of folder fi, keeping its buffers and
// decompressor (a cabinet may hold 65,535 folders).
func (s *stream) reset(w *walker, fi int) {
	fo := &w.c.folders[fi]
	if s.out == nil {
		s.out, s.in, s.scratch = make([]byte, limits.MaxCabBlock), make([]byte, limits.MaxCabBlockData+255), make([]byte, 32<<10)
	}
	*s = stream{w: w, fi: fi, fo: fo, at: fo.dataOff, out: s.out, in: s.in, hist: s.hist[:0], fl: s.fl, scratch: s.scratch}
}

// skip reads and discards n bytes (a gap between files, or what follows
// the last one), checking them as any others.
func (s *stream) skip(n int64) error {
	lim := s.w.lim
	for n > 0 {
		k, err := s.Read(s.scratch[:min(n, int64(len(s.scratch)))])
		n -= int64(k)
		// Bytes no member holds cost as much as a member's: they count
		// towards the expanded total (a member's, the Meter counts).
		*lim.Expanded += int64(k)
		if lim.MaxExpandedSize > 0 && *lim.Expanded > lim.MaxExpandedSize {
			return &container.LimitError{Cap: "max-container-size", Value: lim.MaxExpandedSize,
				What: fmt.Sprintf("the cabinet's folder %d expands to more than %d bytes", s.fi, lim.MaxExpandedSize)}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return malformed(s.at, "folder %d ends before its declared %d bytes", s.fi, s.fo.usize)
			}
			return err
		}
	}
	return nil
}

func (s *stream) Read(p []byte) (int, error) {
	for len(s.cur) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.next == s.fo.blocks {
			return 0, io.EOF
		}
		if err := s.w.ctx.Err(); err != nil {
			return 0, err
		}
		if err := s.block(); err != nil {
			s.err = err
			return 0, err
		}
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	s.pos += int64(n)
	return n, nil
}

// block reads, checks and decompresses the next block into s.cur.
func (s *stream) block() error {
	h := s.w.c.h
	off := s.at
	j := s.next
	var bh [dataLen]byte
	if _, err := s.w.src.ReadAt(bh[:], off); err != nil {
		return &signing.MalformedError{Format: Format, Offset: off, Reason: fmt.Sprintf("cannot read folder %d's block %d", s.fi, j), Err: err}
	}
	sum, cb, ub := le32(bh[:]), int(le16(bh[4:])), int(le16(bh[6:]))
	// The scan in read checked these; the file may have changed since
	// (a ReaderAt over a file on disk): check again.
	if cb > limits.MaxCabBlockData || ub > limits.MaxCabBlock {
		return malformed(off, "folder %d's block %d changed since the cabinet was read", s.fi, j)
	}
	body := s.in[:h.ReserveData+cb]
	if _, err := s.w.src.ReadAt(body, off+dataLen); err != nil {
		return &signing.MalformedError{Format: Format, Offset: off + dataLen, Reason: fmt.Sprintf("cannot read folder %d's block %d", s.fi, j), Err: err}
	}
	if sum != 0 {
		if got := Checksum(bh[4:8], Checksum(body, 0)); got != sum {
			return malformed(off, "folder %d's block %d's checksum is %08x, its header says %08x", s.fi, j, got, sum)
		}
	}
	data := body[h.ReserveData:]
	s.next++
	s.at = off + dataLen + int64(len(body))
	s.consumed += int64(dataLen + len(body))
	switch s.fo.comp & compMask {
	case compNone:
		s.cur = data
		return nil
	case compMSZIP:
	default:
		return malformed(off, "folder %d is compressed with %s", s.fi, compName(s.fo.comp))
	}
	if len(data) < 2 || data[0] != 'C' || data[1] != 'K' {
		return malformed(off+dataLen, "folder %d's MSZIP block %d does not start with CK", s.fi, j)
	}
	s.br.Reset(data[2:])
	if s.fl == nil {
		s.fl = newFlate(&s.br, s.hist)
	} else if err := s.fl.(resetter).Reset(&s.br, s.hist); err != nil {
		return err
	}
	n, err := io.ReadFull(s.fl, s.out[:ub])
	if err != nil {
		return &signing.MalformedError{Format: Format, Offset: off + dataLen,
			Reason: fmt.Sprintf("folder %d's MSZIP block %d decompresses to %d bytes, not the %d declared: %v", s.fi, j, n, ub, err), Err: err}
	}
	// The deflate stream must end here, with the block's bytes.
	if k, err := s.fl.Read(s.scratch[:1]); k != 0 || !errors.Is(err, io.EOF) {
		return malformed(off+dataLen, "folder %d's MSZIP block %d decompresses to more than the %d bytes declared", s.fi, j, ub)
	}
	if s.br.Len() != 0 {
		return malformed(off+dataLen+int64(len(data)-s.br.Len()), "folder %d's MSZIP block %d holds %d bytes after its deflate stream ends", s.fi, j, s.br.Len())
	}
	s.cur = s.out[:ub]
	// The next block's dictionary: the last 32 KiB decompressed.
	if ub >= limits.MaxCabBlock {
		s.hist = append(s.hist[:0], s.cur[ub-limits.MaxCabBlock:]...)
	} else {
		s.hist = append(s.hist, s.cur...)
		if d := len(s.hist) - limits.MaxCabBlock; d > 0 {
			s.hist = append(s.hist[:0], s.hist[d:]...)
		}
	}
	return nil
}

// Checksum is the cabinet checksum (CFDATA.csum) of b, continuing from
// seed: the XOR of b's little-endian 32-bit words, a last partial word's
// bytes taken most significant first. A block's checksum is
// Checksum(cbData and cbUncomp, Checksum(reserve and data, 0)).
func Checksum(b []byte, seed uint32) uint32 {
	for len(b) >= 4 {
		seed ^= le32(b)
		b = b[4:]
	}
	var ul uint32
	for _, c := range b {
		ul = ul<<8 | uint32(c)
	}
	return seed ^ ul
}

// Folder is a CFFOLDER as ReadFolders returns it.
type Folder struct {
	// DataOffset is the offset of the folder's first CFDATA block,
	// Blocks their count.
	DataOffset int64
	Blocks     int
	// Compression names the folder's compression ("none", "MSZIP",
	// "Quantum", "LZX", "unknown (n)").
	Compression string
}

// ReadFolders reads the folders of the cabinet whose header h is (as
// ReadHeader returns it, which checked that they lie in the file).
func ReadFolders(src io.ReaderAt, h *Header) ([]Folder, error) {
	out := make([]Folder, h.Folders)
	var b [folderLen]byte
	off := h.FoldersOffset
	for i := range out {
		if _, err := src.ReadAt(b[:], off); err != nil {
			return nil, &signing.MalformedError{Format: Format, Offset: off, Reason: fmt.Sprintf("cannot read folder %d", i), Err: err}
		}
		out[i] = Folder{DataOffset: int64(le32(b[:])), Blocks: int(le16(b[4:])), Compression: compName(le16(b[6:]))}
		off += int64(folderLen + h.ReserveFolder)
	}
	return out, nil
}
