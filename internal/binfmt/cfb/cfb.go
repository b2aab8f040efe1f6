// Package cfb reads Microsoft compound files ([MS-CFB], "OLE structured
// storage"): the container of Windows Installer packages (.msi, .msp,
// .mst) and of older Office documents. A compound file is a small file
// system: a header, a file allocation table (FAT) chaining 512- or
// 4096-byte sectors, a directory of 128-byte entries arranged as one
// red-black tree per storage, and a mini stream of 64-byte sectors (with its
// own mini FAT) holding the streams under 4096 bytes.
//
// [Parse] reads the header, the DIFAT, the FAT, the mini FAT and the
// directory through an io.ReaderAt, and checks every sector chain once;
// [File.Open] then reads a stream by random access, in runs of contiguous
// sectors.
//
// # Security
//
// The file is untrusted. Parse checks, and reports as a
// *signing.MalformedError with the offset, anything that would let two
// readers see different content or make a reader loop or allocate without
// bound:
//
//   - the header's fixed fields (byte order, version and sector size, mini
//     sector size, cutoff);
//   - every sector number against the file's sectors, and every chain
//     (DIFAT, FAT sectors, directory, mini FAT, mini stream, each stream)
//     against a map of the sectors already used: a sector in two chains or
//     twice in one (a loop), a chain ended early or going on past its
//     stream's size, and FAT or DIFAT sectors not marked as such in the
//     FAT, are malformed; so work is linear in the file's size;
//   - the directory: at most limits.MaxCFBDirectoryEntries entries, each
//     reached once from the root (no loops, no entry in two storages), of
//     a known type, with a well-formed name; two siblings whose names are
//     equal as the format compares them (case-insensitively) are
//     ambiguous and malformed;
//   - allocations: the FAT and mini FAT are sized by sector counts checked
//     against the file's size first; nothing is allocated from a size field
//     that has not been checked.
//
// Bytes outside every stream (free sectors, the unused ends of sectors)
// are not part of any stream; callers that must account for every byte
// (signatures) say so themselves.
package cfb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// Format names the format in errors.
const Format = "compound file"

// Magic is the compound file signature, the first 8 bytes of the file.
var Magic = [8]byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}

// Special sector numbers.
const (
	maxRegSect = 0xfffffffa
	difSect    = 0xfffffffc
	fatSect    = 0xfffffffd
	endOfChain = 0xfffffffe
	freeSect   = 0xffffffff
	noStream   = 0xffffffff
)

// Entry types.
const (
	TypeUnused  = 0
	TypeStorage = 1
	TypeStream  = 2
	TypeRoot    = 5
)

const (
	headerSize     = 512
	direntSize     = 128
	miniSectorSize = 64
	miniCutoff     = 4096
	headerDIFAT    = 109
)

// Entry is a directory entry reached from the root.
type Entry struct {
	// Name is the entry's name, decoded from UTF-16 (unpaired surrogates
	// become U+FFFD); RawName is the name as stored (UTF-16LE, without the
	// terminating NUL).
	Name    string
	RawName []byte
	Type    uint8
	// CLSID, StateBits, Created and Modified are as stored.
	CLSID     [16]byte
	StateBits uint32
	Created   [8]byte
	Modified  [8]byte
	// Size is a stream's size (0 for a storage).
	Size int64
	// Children are the indexes (in File.Entries) of a storage's entries,
	// in the order of its tree (in order).
	Children []int
	// Offset is the file offset of the directory entry.
	Offset int64

	start uint32
}

// File is a parsed compound file.
type File struct {
	r    io.ReaderAt
	size int64
	// SectorSize is 512 (version 3) or 4096 (version 4).
	SectorSize int
	// Entries are the directory entries reachable from the root, root
	// first.
	Entries []Entry
	// End is the end of the last sector in use (by the FAT, the DIFAT, the
	// directory, the mini FAT or a stream): what follows it in the file
	// is in no structure and no stream.
	End int64

	nsect      uint32   // sectors in the file
	fat        []uint32 // the FAT
	fatSectors []uint32
	minifat    []uint32
	mfSectors  []uint32 // the mini FAT's sectors
	miniStream []uint32 // the mini stream's sectors
}

func malformed(off int64, format string, args ...any) *signing.MalformedError {
	return &signing.MalformedError{Format: Format, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

func limit(off int64, format string, args ...any) *signing.MalformedError {
	e := malformed(off, "limit exceeded: "+format, args...)
	e.Err = signing.ErrLimit
	return e
}

// Sniff reports whether b starts with the compound file signature.
func Sniff(b []byte) bool { return len(b) >= 8 && [8]byte(b[:8]) == Magic }

// readFull reads len(b) bytes at off.
func (f *File) readFull(b []byte, off int64) error {
	n, err := f.r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return &signing.MalformedError{Format: Format, Offset: off + int64(n), Reason: "truncated", Err: io.ErrUnexpectedEOF}
	}
	return fmt.Errorf("cfb: reading at offset %#x: %w", off+int64(n), err)
}

// sectorOffset is the file offset of sector s.
func (f *File) sectorOffset(s uint32) int64 { return int64(s+1) * int64(f.SectorSize) }

// Parse reads a compound file of size bytes from r.
func Parse(r io.ReaderAt, size int64) (*File, error) {
	f := &File{r: r, size: size}
	if size < headerSize {
		return nil, malformed(0, "%d bytes, shorter than the 512-byte header", size)
	}
	var h [headerSize]byte
	if err := f.readFull(h[:], 0); err != nil {
		return nil, err
	}
	if [8]byte(h[:8]) != Magic {
		return nil, malformed(0, "no compound file signature")
	}
	le := binary.LittleEndian
	major, shift := le.Uint16(h[0x1a:]), le.Uint16(h[0x1e:])
	switch {
	case le.Uint16(h[0x1c:]) != 0xfffe:
		return nil, malformed(0x1c, "byte order mark %#04x, want 0xfffe", le.Uint16(h[0x1c:]))
	case major == 3 && shift == 9, major == 4 && shift == 12:
	default:
		return nil, malformed(0x1a, "version %d with sector shift %d (want 3 with 9, or 4 with 12)", major, shift)
	}
	if s := le.Uint16(h[0x20:]); s != 6 {
		return nil, malformed(0x20, "mini sector shift %d, want 6", s)
	}
	if c := le.Uint32(h[0x38:]); c != miniCutoff {
		return nil, malformed(0x38, "mini stream cutoff %d, want 4096", c)
	}
	if major == 3 && le.Uint32(h[0x28:]) != 0 {
		return nil, malformed(0x28, "a version 3 file with a directory sector count")
	}
	f.SectorSize = 1 << shift
	ss := int64(f.SectorSize)
	if size < 2*ss {
		return nil, malformed(0, "%d bytes: no room for a sector after the header", size)
	}
	if n := (size - ss + ss - 1) / ss; n >= maxRegSect {
		return nil, limit(0, "%d sectors", n)
	} else {
		f.nsect = uint32(n)
	}
	numFAT, dirStart := le.Uint32(h[0x2c:]), le.Uint32(h[0x30:])
	miniFATStart, numMiniFAT := le.Uint32(h[0x3c:]), le.Uint32(h[0x40:])
	difatStart, numDIFAT := le.Uint32(h[0x44:]), le.Uint32(h[0x48:])
	if numFAT == 0 || numFAT > f.nsect {
		return nil, malformed(0x2c, "%d FAT sectors in a file of %d sectors", numFAT, f.nsect)
	}
	// A FAT of more sectors than it takes to describe every sector of the
	// file describes none that exists: refused before it is read (its
	// size would otherwise be the attacker's).
	per := uint32(ss / 4)
	if need := f.nsect/per + 2; numFAT > need {
		return nil, malformed(0x2c, "%d FAT sectors, where %d describe every sector of the file", numFAT, need)
	}
	if numDIFAT > f.nsect || numMiniFAT > f.nsect {
		return nil, malformed(0x40, "%d DIFAT and %d mini FAT sectors in a file of %d sectors", numDIFAT, numMiniFAT, f.nsect)
	}
	used := make([]bool, f.nsect)
	use := func(s uint32, at int64, what string) error {
		if s >= f.nsect {
			return malformed(at, "%s: sector %#x is past the end of the file (%d sectors)", what, s, f.nsect)
		}
		if used[s] {
			return malformed(at, "%s: sector %#x is used twice (a loop, or two chains sharing it)", what, s)
		}
		used[s] = true
		return nil
	}

	// The DIFAT: the FAT's sectors.
	fatSectors := make([]uint32, 0, numFAT)
	var difatSectors []uint32
	take := func(v uint32, at int64) error {
		if uint32(len(fatSectors)) < numFAT {
			if err := use(v, at, "FAT sector list"); err != nil {
				return err
			}
			fatSectors = append(fatSectors, v)
		} else if v != freeSect {
			return malformed(at, "DIFAT entry %#x past the %d FAT sectors (want FREESECT)", v, numFAT)
		}
		return nil
	}
	for i := range headerDIFAT {
		if err := take(le.Uint32(h[0x4c+4*i:]), int64(0x4c+4*i)); err != nil {
			return nil, err
		}
	}
	buf := make([]byte, ss)
	next := difatStart
	for i := uint32(0); i < numDIFAT; i++ {
		if err := use(next, 0x44, "DIFAT chain"); err != nil {
			return nil, err
		}
		difatSectors = append(difatSectors, next)
		off := f.sectorOffset(next)
		if err := f.readFull(buf, off); err != nil {
			return nil, err
		}
		for j := range per - 1 {
			if err := take(le.Uint32(buf[4*j:]), off+int64(4*j)); err != nil {
				return nil, err
			}
		}
		next = le.Uint32(buf[ss-4:])
	}
	if numDIFAT > 0 && next != endOfChain && next != freeSect {
		return nil, malformed(0x48, "the DIFAT chain goes on past its %d sectors", numDIFAT)
	}
	if uint32(len(fatSectors)) < numFAT {
		return nil, malformed(0x2c, "the DIFAT lists %d of the %d FAT sectors", len(fatSectors), numFAT)
	}

	// The FAT.
	f.fatSectors = fatSectors
	f.fat = make([]uint32, 0, numFAT*per)
	for _, s := range fatSectors {
		off := f.sectorOffset(s)
		if err := f.readFull(buf, off); err != nil {
			return nil, err
		}
		for j := range per {
			f.fat = append(f.fat, le.Uint32(buf[4*j:]))
		}
	}
	for _, s := range fatSectors {
		if s >= uint32(len(f.fat)) || f.fat[s] != fatSect {
			return nil, malformed(f.fatOffset(s), "FAT sector %#x is not marked FATSECT in the FAT", s)
		}
	}
	for _, s := range difatSectors {
		if s >= uint32(len(f.fat)) || f.fat[s] != difSect {
			return nil, malformed(f.fatOffset(s), "DIFAT sector %#x is not marked DIFSECT in the FAT", s)
		}
	}

	// The directory.
	maxDir := int64(limits.MaxCFBDirectoryEntries) * direntSize / ss
	dir, err := f.chain(dirStart, -maxDir, used, "directory", 0x30)
	if err != nil {
		return nil, err
	}
	dirBytes := make([]byte, int64(len(dir))*ss)
	for i, s := range dir {
		if err := f.readFull(dirBytes[int64(i)*ss:int64(i+1)*ss], f.sectorOffset(s)); err != nil {
			return nil, err
		}
	}
	direntOffset := func(i uint32) int64 {
		return f.sectorOffset(dir[int64(i)*direntSize/ss]) + int64(i)*direntSize%ss
	}
	if err := f.readDirectory(dirBytes, direntOffset); err != nil {
		return nil, err
	}

	// The mini FAT and the mini stream.
	root := &f.Entries[0]
	if need := root.Size/miniSectorSize/int64(per) + 2; int64(numMiniFAT) > need {
		return nil, malformed(0x40, "%d mini FAT sectors for a mini stream of %d bytes", numMiniFAT, root.Size)
	}
	if numMiniFAT > 0 || root.Size > 0 {
		mf, err := f.chain(miniFATStart, int64(numMiniFAT), used, "mini FAT", 0x3c)
		if err != nil {
			return nil, err
		}
		f.mfSectors = mf
		f.minifat = make([]uint32, 0, int64(len(mf))*int64(per))
		for _, s := range mf {
			off := f.sectorOffset(s)
			if err := f.readFull(buf, off); err != nil {
				return nil, err
			}
			for j := range per {
				f.minifat = append(f.minifat, le.Uint32(buf[4*j:]))
			}
		}
		f.miniStream, err = f.chain(root.start, (root.Size+ss-1)/ss, used, "mini stream", root.Offset+0x74)
		if err != nil {
			return nil, err
		}
		if err := f.within(f.miniStream, root.Size, "the mini stream"); err != nil {
			return nil, err
		}
	}
	// Every stream's chain, once.
	miniUsed := make([]bool, int64(len(f.miniStream))*ss/miniSectorSize)
	for i := range f.Entries {
		e := &f.Entries[i]
		if e.Type != TypeStream || e.Size == 0 {
			continue // an empty stream's start sector is not read (writers leave 0, ENDOFCHAIN or NOSTREAM)
		}
		if e.Size < miniCutoff {
			if _, err := f.miniChain(e, miniUsed); err != nil {
				return nil, err
			}
		} else {
			c, err := f.chain(e.start, (e.Size+ss-1)/ss, used, "stream "+quote(e.Name), e.Offset+0x74)
			if err != nil {
				return nil, err
			}
			if err := f.within(c, e.Size, "stream "+quote(e.Name)); err != nil {
				return nil, err
			}
		}
	}
	for s := int64(len(used)) - 1; s >= 0; s-- {
		if used[s] {
			f.End = min(size, f.sectorOffset(uint32(s))+ss)
			break
		}
	}
	return f, nil
}

// within checks that the n bytes a chain of sectors holds are in the file
// (its last sector may be the file's last, cut short).
func (f *File) within(chain []uint32, n int64, what string) error {
	if len(chain) == 0 {
		return nil
	}
	ss := int64(f.SectorSize)
	last := chain[len(chain)-1]
	if end := f.sectorOffset(last) + n - int64(len(chain)-1)*ss; end > f.size {
		return &signing.MalformedError{Format: Format, Offset: f.size, Err: io.ErrUnexpectedEOF,
			Reason: fmt.Sprintf("truncated: %s ends at offset %#x, past the end of the file", what, end)}
	}
	return nil
}

// miniFATSector is the sector holding mini sector m's mini FAT entry.
func (f *File) miniFATSector(m uint32) uint32 { return f.mfSectors[m/uint32(f.SectorSize/4)] }

// fatOffset is the file offset of sector s's FAT entry.
func (f *File) fatOffset(s uint32) int64 {
	per := uint32(f.SectorSize / 4)
	if int(s/per) >= len(f.fatSectors) {
		return -1
	}
	return f.sectorOffset(f.fatSectors[s/per]) + int64(s%per)*4
}

// quote quotes a stream name for messages.
func quote(s string) string { return fmt.Sprintf("%+q", s) }

// chain follows the FAT chain from start, marking its sectors in used (nil:
// a chain Parse checked). With want >= 0 the chain must have exactly want
// sectors (want 0: start is ENDOFCHAIN); want < -1 caps an open-ended
// chain at -want sectors (a limit error past it).
func (f *File) chain(start uint32, want int64, used []bool, what string, at int64) ([]uint32, error) {
	var out []uint32
	maxLen := int64(-1)
	if want < -1 {
		maxLen, want = -want, -1
	}
	if want > int64(f.nsect) {
		return nil, malformed(at, "%s: %d sectors in a file of %d", what, want, f.nsect)
	}
	if want > 0 {
		out = make([]uint32, 0, want)
	}
	s := start
	for s != endOfChain {
		if want >= 0 && int64(len(out)) == want {
			return nil, malformed(at, "%s: the chain goes on past its %d sectors", what, want)
		}
		if maxLen >= 0 && int64(len(out)) == maxLen {
			return nil, limit(at, "%s: a chain of more than %d sectors (the cap is %d directory entries)", what, maxLen, limits.MaxCFBDirectoryEntries)
		}
		if s >= f.nsect || s >= uint32(len(f.fat)) {
			return nil, malformed(at, "%s: sector %#x is past the end of the file or the FAT (%d sectors)", what, s, f.nsect)
		}
		if used != nil {
			if used[s] {
				return nil, malformed(f.sectorOffset(s), "%s: sector %#x is used twice (a loop, or two chains sharing it)", what, s)
			}
			used[s] = true
		}
		out = append(out, s)
		s = f.fat[s]
	}
	if want >= 0 && int64(len(out)) != want {
		return nil, malformed(at, "%s: a chain of %d sectors, want %d", what, len(out), want)
	}
	if len(out) == 0 && want < 0 {
		return nil, malformed(at, "%s: an empty chain", what)
	}
	return out, nil
}

// miniChain follows e's chain in the mini FAT.
func (f *File) miniChain(e *Entry, used []bool) ([]uint32, error) {
	want := (e.Size + miniSectorSize - 1) / miniSectorSize
	out := make([]uint32, 0, want)
	what := "stream " + quote(e.Name)
	s := e.start
	for s != endOfChain {
		if int64(len(out)) == want {
			return nil, malformed(e.Offset+0x74, "%s: its mini chain goes on past its %d mini sectors", what, want)
		}
		if int64(s) >= int64(len(f.miniStream))*int64(f.SectorSize)/miniSectorSize || s >= uint32(len(f.minifat)) {
			return nil, malformed(e.Offset+0x74, "%s: mini sector %#x is past the end of the mini stream", what, s)
		}
		if used != nil {
			if used[s] {
				return nil, malformed(e.Offset+0x74, "%s: mini sector %#x is used twice (a loop, or two streams sharing it)", what, s)
			}
			used[s] = true
		}
		out = append(out, s)
		s = f.minifat[s]
	}
	if int64(len(out)) != want {
		return nil, malformed(e.Offset+0x74, "%s: a mini chain of %d sectors, want %d", what, len(out), want)
	}
	return out, nil
}

// readDirectory reads the entries reachable from the root.
func (f *File) readDirectory(dir []byte, offset func(uint32) int64) error {
	le := binary.LittleEndian
	n := uint32(len(dir) / direntSize)
	seen := make([]bool, n)
	read := func(id uint32) (Entry, uint32, uint32, uint32, error) {
		b := dir[id*direntSize : (id+1)*direntSize]
		off := offset(id)
		e := Entry{Type: b[0x42], Offset: off, start: le.Uint32(b[0x74:])}
		nl := le.Uint16(b[0x40:])
		if nl < 2 || nl > 64 || nl%2 != 0 || b[nl-2] != 0 || b[nl-1] != 0 {
			return e, 0, 0, 0, malformed(off+0x40, "directory entry %d: name length %d", id, nl)
		}
		e.RawName = append([]byte(nil), b[:nl-2]...)
		u := make([]uint16, len(e.RawName)/2)
		for i := range u {
			u[i] = le.Uint16(e.RawName[2*i:])
			if u[i] == 0 {
				return e, 0, 0, 0, malformed(off+int64(2*i), "directory entry %d: a NUL in its name", id)
			}
		}
		e.Name = string(utf16.Decode(u))
		copy(e.CLSID[:], b[0x50:0x60])
		e.StateBits = le.Uint32(b[0x60:])
		copy(e.Created[:], b[0x64:0x6c])
		copy(e.Modified[:], b[0x6c:0x74])
		sz := le.Uint64(b[0x78:])
		switch e.Type {
		case TypeStream:
			if f.SectorSize == 512 && sz>>32 != 0 {
				return e, 0, 0, 0, malformed(off+0x78, "stream %s: size %#x has high bits set in a version 3 file", quote(e.Name), sz)
			}
			if sz > uint64(f.size) {
				return e, 0, 0, 0, malformed(off+0x78, "stream %s: %d bytes in a file of %d", quote(e.Name), sz, f.size)
			}
			e.Size = int64(sz)
		case TypeStorage, TypeRoot:
			if e.Type == TypeRoot {
				if sz > uint64(f.size) {
					return e, 0, 0, 0, malformed(off+0x78, "a mini stream of %d bytes in a file of %d", sz, f.size)
				}
				e.Size = int64(sz)
			}
		default:
			return e, 0, 0, 0, malformed(off+0x42, "directory entry %d %s: type %d", id, quote(e.Name), e.Type)
		}
		return e, le.Uint32(b[0x44:]), le.Uint32(b[0x48:]), le.Uint32(b[0x4c:]), nil
	}
	if n == 0 {
		return malformed(-1, "an empty directory")
	}
	root, _, _, child, err := read(0)
	if err != nil {
		return err
	}
	if root.Type != TypeRoot {
		return malformed(root.Offset+0x42, "the first directory entry is of type %d, not the root", root.Type)
	}
	seen[0] = true
	f.Entries = append(f.Entries, root)
	// Storages to expand: (entry index, child tree root).
	type todo struct {
		parent int
		child  uint32
	}
	work := []todo{{0, child}}
	for len(work) > 0 {
		w := work[len(work)-1]
		work = work[:len(work)-1]
		names := map[string]bool{}
		// In-order walk of the storage's tree with an explicit stack.
		var stack []uint32
		type node struct {
			id           uint32
			left, right  uint32
			child        uint32
			entry        Entry
			leftExpanded bool
		}
		nodes := map[uint32]*node{}
		visit := func(id uint32, at int64) error {
			if id == noStream {
				return nil
			}
			if id >= n {
				return malformed(at, "directory entry id %d past the directory's %d entries", id, n)
			}
			if seen[id] {
				return malformed(at, "directory entry %d is reached twice (a loop, or two storages sharing it)", id)
			}
			seen[id] = true
			e, l, r, c, err := read(id)
			if err != nil {
				return err
			}
			if e.Type == TypeRoot {
				return malformed(e.Offset+0x42, "a second root entry (%d)", id)
			}
			nodes[id] = &node{id: id, left: l, right: r, child: c, entry: e}
			stack = append(stack, id)
			return nil
		}
		if err := visit(w.child, f.Entries[w.parent].Offset+0x4c); err != nil {
			return err
		}
		for len(stack) > 0 {
			nd := nodes[stack[len(stack)-1]]
			if !nd.leftExpanded {
				nd.leftExpanded = true
				if err := visit(nd.left, nd.entry.Offset+0x44); err != nil {
					return err
				}
				continue
			}
			stack = stack[:len(stack)-1]
			delete(nodes, nd.id)
			key := strings.ToUpper(nd.entry.Name)
			if names[key] {
				return malformed(nd.entry.Offset, "two entries named %s (compared case-insensitively) in one storage", quote(nd.entry.Name))
			}
			names[key] = true
			idx := len(f.Entries)
			if nd.entry.Type == TypeStorage {
				work = append(work, todo{idx, nd.child})
			} else if nd.child != noStream {
				return malformed(nd.entry.Offset+0x4c, "stream %s has children", quote(nd.entry.Name))
			}
			f.Entries = append(f.Entries, nd.entry)
			f.Entries[w.parent].Children = append(f.Entries[w.parent].Children, idx)
			if err := visit(nd.right, nd.entry.Offset+0x48); err != nil {
				return err
			}
		}
	}
	return nil
}

// Stream reads one stream of a compound file by random access.
type Stream struct {
	f      *File
	extent []extent
	pos    int64 // position in the stream
	size   int64
	i      int   // current extent
	in     int64 // position in the current extent
}

// extent is a run of contiguous bytes of the file.
type extent struct{ off, n int64 }

// Open returns a reader of the stream Entries[i].
func (f *File) Open(i int) (*Stream, error) {
	if i <= 0 || i >= len(f.Entries) || f.Entries[i].Type != TypeStream {
		return nil, fmt.Errorf("cfb: entry %d is not a stream", i)
	}
	e := &f.Entries[i]
	s := &Stream{f: f, size: e.Size}
	add := func(off, n int64) {
		if k := len(s.extent) - 1; k >= 0 && s.extent[k].off+s.extent[k].n == off {
			s.extent[k].n += n
			return
		}
		s.extent = append(s.extent, extent{off, n})
	}
	left := e.Size
	if e.Size == 0 {
		return s, nil
	}
	if e.Size < miniCutoff {
		chain, err := f.miniChain(e, nil)
		if err != nil {
			return nil, err
		}
		per := uint32(f.SectorSize / miniSectorSize)
		for _, m := range chain {
			sec := f.miniStream[m/per]
			n := min(left, miniSectorSize)
			add(f.sectorOffset(sec)+int64(m%per)*miniSectorSize, n)
			left -= n
		}
		return s, nil
	}
	// Parse checked the chain against every other: here its length bounds
	// it.
	ss := int64(f.SectorSize)
	chain, err := f.chain(e.start, (e.Size+ss-1)/ss, nil, "stream "+quote(e.Name), e.Offset+0x74)
	if err != nil {
		return nil, err
	}
	for _, c := range chain {
		n := min(left, ss)
		add(f.sectorOffset(c), n)
		left -= n
	}
	return s, nil
}

// Size is the stream's size.
func (s *Stream) Size() int64 { return s.size }

// Read implements io.Reader.
func (s *Stream) Read(p []byte) (int, error) {
	total := 0
	for len(p) > 0 && s.i < len(s.extent) {
		x := s.extent[s.i]
		n := min(int64(len(p)), x.n-s.in)
		if err := s.f.readFull(p[:n], x.off+s.in); err != nil {
			return total, err
		}
		total += int(n)
		p = p[n:]
		s.in += n
		s.pos += n
		if s.in == x.n {
			s.i++
			s.in = 0
		}
	}
	if total == 0 && s.i >= len(s.extent) {
		return 0, io.EOF
	}
	return total, nil
}

// ReadAll reads the whole stream, which must be at most max bytes.
func (s *Stream) ReadAll(max int64) ([]byte, error) {
	if s.size > max {
		return nil, fmt.Errorf("cfb: a stream of %d bytes, over the %d-byte cap: %w", s.size, max, signing.ErrLimit)
	}
	b := make([]byte, s.size)
	if _, err := io.ReadFull(s, b); err != nil {
		return nil, err
	}
	return b, nil
}

// Child returns the index of the child of storage i named name (exactly,
// as stored), or -1.
func (f *File) Child(i int, name string) int {
	for _, c := range f.Entries[i].Children {
		if f.Entries[c].Name == name {
			return c
		}
	}
	return -1
}
