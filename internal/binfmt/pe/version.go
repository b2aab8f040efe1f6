package pe

import (
	"encoding/binary"
	"io"
	"strings"
	"unicode/utf16"

	"github.com/codesignval/csv/internal/binfmt"
)

// Version resource reading: WDAC FileName rules match the OriginalFilename
// (or InternalName, FileDescription, ProductName) string of a PE file's
// VS_VERSIONINFO resource, and its version bounds the VS_FIXEDFILEINFO file
// version.

// Caps on the resource walk. A version resource is small: its
// VS_VERSIONINFO length field is 16 bits.
const (
	// resourceDirIdx is the resource table's data directory index.
	resourceDirIdx = 2
	// rtVersion is the RT_VERSION resource type.
	rtVersion = 16
	// maxResourceEntries caps the entries of one resource directory.
	maxResourceEntries = 4096
	// maxResourceRead caps the bytes one ReadVersionInfo call reads.
	maxResourceRead = 1 << 20
	// maxVersionInfo caps the version resource data read (VS_VERSIONINFO's
	// wLength cannot exceed it).
	maxVersionInfo = 1 << 16
	// maxVersionStrings caps the strings kept from one string table.
	maxVersionStrings = 1024
	// maxVersionKey caps a block key's length in UTF-16 code units.
	maxVersionKey = 256

	resourceDirSize   = 16
	resourceEntrySize = 8
	resourceDataSize  = 16
	fixedFileInfoSize = 52
	fixedSignature    = 0xFEEF04BD
	// langEnUS and langIDEnUS are the en-US language ID, preferred among
	// string tables and resource languages.
	langEnUS   = "0409"
	langIDEnUS = 0x409
)

// VersionInfo is what a PE file's version resource says.
type VersionInfo struct {
	// Strings are the StringFileInfo entries (OriginalFilename,
	// InternalName, FileDescription, ProductName, FileVersion, ...) of the
	// en-US string table if there is one, else of the first. Never nil.
	Strings map[string]string
	// FileVersion and ProductVersion come from VS_FIXEDFILEINFO, when
	// HasFixed says it is present.
	FileVersion, ProductVersion [4]uint16
	HasFixed                    bool
}

// ReadVersionInfo reads the version resource of the PE file f (parsed from
// r by Parse). It walks the resource directory to the first RT_VERSION
// resource (first name; language en-US, else neutral, else the first) and
// parses its VS_VERSIONINFO. It
// returns (nil, nil) when the file has no version resource, and a
// *binfmt.MalformedError naming the offset when the resource table or the
// version resource is broken.
//
// # Security
//
// Every offset and length is checked against the section that holds it and
// the file size; at most maxResourceRead bytes are read, directories of more
// than maxResourceEntries entries are refused, and the walk descends exactly
// three levels, so loops in the directory cannot recur.
func ReadVersionInfo(r io.ReaderAt, f *File) (*VersionInfo, error) {
	v := &versionReader{r: r, f: f}
	// The data directories start 4 entries before the certificate table's.
	dirOff := f.CertDirOffset - (securityDirIdx-resourceDirIdx)*dirEntrySize
	var dir [dirEntrySize]byte
	if err := v.read(dirOff, dir[:], "resource table directory entry"); err != nil {
		return nil, err
	}
	rva := binary.LittleEndian.Uint32(dir[0:])
	size := binary.LittleEndian.Uint32(dir[4:])
	if rva == 0 || size == 0 {
		return nil, nil
	}
	base, sec, err := v.rvaToOffset(rva, resourceDirSize, dirOff, "resource table")
	if err != nil {
		return nil, err
	}
	v.rsrc, v.rsrcEnd = base, int64(sec.PointerToRawData)+int64(sec.SizeOfRawData)

	// Level 1: type RT_VERSION; level 2: the first name; level 3: the first
	// language, which leads to a data entry.
	typeDir, ok, err := v.entry(0, func(id uint32, named bool) bool { return !named && id == rtVersion }, true)
	if err != nil || !ok {
		return nil, err
	}
	nameDir, ok, err := v.entry(typeDir, func(uint32, bool) bool { return true }, true)
	if err != nil || !ok {
		return nil, err
	}
	// Several languages: take en-US, else language-neutral, else the
	// first, so that the choice does not depend on a machine's locale.
	var dataEntry uint32
	for _, want := range []func(uint32, bool) bool{
		func(id uint32, named bool) bool { return !named && id == langIDEnUS },
		func(id uint32, named bool) bool { return !named && id == 0 },
		func(uint32, bool) bool { return true },
	} {
		dataEntry, ok, err = v.entry(nameDir, want, false)
		if err != nil {
			return nil, err
		}
		if ok {
			break
		}
	}
	if !ok {
		return nil, nil
	}
	var de [resourceDataSize]byte
	deOff := v.rsrc + int64(dataEntry)
	if err := v.readRsrc(deOff, de[:], "resource data entry"); err != nil {
		return nil, err
	}
	dataRVA := binary.LittleEndian.Uint32(de[0:])
	dataSize := binary.LittleEndian.Uint32(de[4:])
	if dataSize < 6 {
		return nil, binfmt.Errorf(binfmt.PE, deOff, "version resource data entry has size %d, too small for a VS_VERSIONINFO header", dataSize)
	}
	n := min(dataSize, maxVersionInfo)
	off, _, err := v.rvaToOffset(dataRVA, n, deOff, "version resource")
	if err != nil {
		return nil, err
	}
	data := make([]byte, n)
	if err := v.read(off, data, "version resource"); err != nil {
		return nil, err
	}
	return parseVersionInfo(data, off)
}

type versionReader struct {
	r             io.ReaderAt
	f             *File
	total         int64 // bytes read so far
	rsrc, rsrcEnd int64 // the resource section's raw data, from the table start
}

func (v *versionReader) read(off int64, b []byte, what string) error {
	v.total += int64(len(b))
	if v.total > maxResourceRead {
		return binfmt.Errorf(binfmt.PE, off, "reading the version resource takes more than %d bytes", maxResourceRead)
	}
	return binfmt.ReadFull(v.r, v.f.Size, binfmt.PE, off, b, what)
}

// readRsrc reads within the resource section.
func (v *versionReader) readRsrc(off int64, b []byte, what string) error {
	if off < v.rsrc || off+int64(len(b)) > v.rsrcEnd {
		return binfmt.Errorf(binfmt.PE, off, "%s [%#x, %#x) lies outside the resource section [%#x, %#x)", what, off, off+int64(len(b)), v.rsrc, v.rsrcEnd)
	}
	return v.read(off, b, what)
}

// rvaToOffset maps an RVA to a file offset through the section table; the n
// bytes from it must lie in the section's raw data. at is where the RVA was
// read, for messages.
func (v *versionReader) rvaToOffset(rva, n uint32, at int64, what string) (int64, Section, error) {
	for _, s := range v.f.Sections {
		span := max(s.VirtualSize, s.SizeOfRawData)
		if rva < s.VirtualAddress || uint64(rva) >= uint64(s.VirtualAddress)+uint64(span) {
			continue
		}
		delta := uint64(rva - s.VirtualAddress)
		if delta+uint64(n) > uint64(s.SizeOfRawData) {
			return 0, s, binfmt.Errorf(binfmt.PE, at, "%s at RVA %#x (%d bytes) extends past the raw data of section %q", what, rva, n, s.Name)
		}
		return int64(s.PointerToRawData) + int64(delta), s, nil
	}
	return 0, Section{}, binfmt.Errorf(binfmt.PE, at, "%s at RVA %#x lies in no section", what, rva)
}

// entry reads the resource directory at dirOff (relative to the table
// start) and returns the offset of the first entry pick accepts: a
// subdirectory if sub, else a data entry. ok is false when no entry is
// accepted.
func (v *versionReader) entry(dirOff uint32, pick func(id uint32, named bool) bool, sub bool) (uint32, bool, error) {
	at := v.rsrc + int64(dirOff)
	var hdr [resourceDirSize]byte
	if err := v.readRsrc(at, hdr[:], "resource directory"); err != nil {
		return 0, false, err
	}
	named := int(binary.LittleEndian.Uint16(hdr[12:]))
	ids := int(binary.LittleEndian.Uint16(hdr[14:]))
	count := named + ids
	if count > maxResourceEntries {
		return 0, false, binfmt.Errorf(binfmt.PE, at, "resource directory has %d entries, over the limit of %d", count, maxResourceEntries)
	}
	if count == 0 {
		return 0, false, nil
	}
	entries := make([]byte, count*resourceEntrySize)
	if err := v.readRsrc(at+resourceDirSize, entries, "resource directory entries"); err != nil {
		return 0, false, err
	}
	for i := range count {
		e := entries[i*resourceEntrySize:]
		name := binary.LittleEndian.Uint32(e[0:])
		target := binary.LittleEndian.Uint32(e[4:])
		isNamed := name&0x80000000 != 0
		if !pick(name&0x7fffffff, isNamed) {
			continue
		}
		eAt := at + resourceDirSize + int64(i*resourceEntrySize)
		isDir := target&0x80000000 != 0
		switch {
		case sub && !isDir:
			return 0, false, binfmt.Errorf(binfmt.PE, eAt, "resource directory entry points to data where a subdirectory belongs")
		case !sub && isDir:
			return 0, false, binfmt.Errorf(binfmt.PE, eAt, "resource directory nested deeper than 3 levels")
		}
		target &= 0x7fffffff
		if v.rsrc+int64(target) >= v.rsrcEnd {
			return 0, false, binfmt.Errorf(binfmt.PE, eAt, "resource directory entry points to offset %#x, outside the resource section", target)
		}
		return target, true, nil
	}
	return 0, false, nil
}

// block is one VS_VERSIONINFO-style structure: wLength, wValueLength,
// wType, szKey, padding, Value, padding, Children.
type block struct {
	key      string
	value    []byte // the value, as wValueLength says
	rest     []byte // from the value's start to the block's end
	children []byte
	childOff int  // offset of children within the data
	valueLen int  // wValueLength as stored
	text     bool // wType 1
}

// parseBlock reads the block at data[pos:]. Offsets in errors are file
// offsets (base + position).
func parseBlock(data []byte, pos int, base int64) (block, int, error) {
	var b block
	errorf := func(at int, format string, args ...any) (block, int, error) {
		return block{}, 0, binfmt.Errorf(binfmt.PE, base+int64(at), format, args...)
	}
	if pos+6 > len(data) {
		return errorf(pos, "version block header runs past the end of the version resource")
	}
	length := int(binary.LittleEndian.Uint16(data[pos:]))
	b.valueLen = int(binary.LittleEndian.Uint16(data[pos+2:]))
	b.text = binary.LittleEndian.Uint16(data[pos+4:]) == 1
	end := pos + length
	if length < 6 || end > len(data) {
		return errorf(pos, "version block length %d does not fit (%d bytes left)", length, len(data)-pos)
	}
	// szKey: UTF-16LE, NUL-terminated.
	k := pos + 6
	var key []uint16
	for {
		if k+2 > end {
			return errorf(pos, "version block key is not terminated within the block")
		}
		c := binary.LittleEndian.Uint16(data[k:])
		k += 2
		if c == 0 {
			break
		}
		if len(key) == maxVersionKey {
			return errorf(pos, "version block key longer than %d characters", maxVersionKey)
		}
		key = append(key, c)
	}
	b.key = string(utf16.Decode(key))
	vStart := min(align4(k-pos)+pos, end)
	vLen := b.valueLen
	if b.text {
		vLen *= 2 // text values count UTF-16 code units
	}
	vEnd := min(vStart+vLen, end)
	b.value, b.rest = data[vStart:vEnd], data[vStart:end]
	cStart := min(align4(vEnd-pos)+pos, end)
	b.children, b.childOff = data[cStart:end], cStart
	return b, end, nil
}

func align4(n int) int { return (n + 3) &^ 3 }

// eachChild calls fn for each child block of b.
func eachChild(data []byte, b block, base int64, fn func(block) error) error {
	pos, end := b.childOff, b.childOff+len(b.children)
	for pos+6 <= end {
		if binary.LittleEndian.Uint16(data[pos:]) == 0 {
			break // padding after the last child
		}
		c, next, err := parseBlock(data[:end], pos, base)
		if err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
		pos = align4(next)
	}
	return nil
}

// parseVersionInfo parses a VS_VERSIONINFO resource read from file offset
// base.
func parseVersionInfo(data []byte, base int64) (*VersionInfo, error) {
	root, _, err := parseBlock(data, 0, base)
	if err != nil {
		return nil, err
	}
	if root.key != "VS_VERSION_INFO" {
		return nil, binfmt.Errorf(binfmt.PE, base, "version resource key is %q, not VS_VERSION_INFO", truncate(root.key, 40))
	}
	vi := &VersionInfo{Strings: map[string]string{}}
	if root.valueLen > 0 {
		if len(root.value) < fixedFileInfoSize || root.valueLen < fixedFileInfoSize {
			return nil, binfmt.Errorf(binfmt.PE, base, "VS_FIXEDFILEINFO is %d bytes (want %d)", min(len(root.value), root.valueLen), fixedFileInfoSize)
		}
		ffi := root.value
		if sig := binary.LittleEndian.Uint32(ffi); sig != fixedSignature {
			return nil, binfmt.Errorf(binfmt.PE, base, "VS_FIXEDFILEINFO signature %#x (want %#x)", sig, uint32(fixedSignature))
		}
		le := binary.LittleEndian
		split := func(ms, ls uint32) [4]uint16 {
			return [4]uint16{uint16(ms >> 16), uint16(ms), uint16(ls >> 16), uint16(ls)}
		}
		vi.FileVersion = split(le.Uint32(ffi[8:]), le.Uint32(ffi[12:]))
		vi.ProductVersion = split(le.Uint32(ffi[16:]), le.Uint32(ffi[20:]))
		vi.HasFixed = true
	}
	var tables []block
	err = eachChild(data, root, base, func(c block) error {
		if c.key != "StringFileInfo" {
			return nil // VarFileInfo
		}
		return eachChild(data, c, base, func(t block) error {
			tables = append(tables, t)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if len(tables) == 0 {
		return vi, nil
	}
	table := tables[0]
	for _, t := range tables {
		if strings.HasPrefix(strings.ToLower(t.key), langEnUS) {
			table = t
			break
		}
	}
	err = eachChild(data, table, base, func(s block) error {
		if len(vi.Strings) >= maxVersionStrings {
			return binfmt.Errorf(binfmt.PE, base+int64(s.childOff), "more than %d strings in a version string table", maxVersionStrings)
		}
		// wValueLength counts bytes in some files and code units in
		// others, and is 0 in some: read to the block's end and stop at the
		// NUL, as Windows' VerQueryValue callers see it.
		if _, dup := vi.Strings[s.key]; !dup {
			vi.Strings[s.key] = utf16String(s.rest)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return vi, nil
}

// utf16String decodes UTF-16LE up to the first NUL. Unpaired surrogates
// become U+FFFD, so the result is valid UTF-8.
func utf16String(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
