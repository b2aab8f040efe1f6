package pe

import (
	"encoding/binary"
	"io"
	"maps"
	"slices"
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
	// maxResourceDirs caps the resource directories one ReadVersionInfo
	// call reads: each is a read of the file (outside the first few
	// kilobytes, a system call), and directories can share entries, so
	// that a 32 KiB tree of empty ones costs tens of thousands. A real
	// file reads three (root, RT_VERSION, its name).
	maxResourceDirs = 64
	// maxVersionInfo caps the version resource data read (VS_VERSIONINFO's
	// wLength cannot exceed it).
	maxVersionInfo = 1 << 16
	// maxVersionStrings caps the strings of one string table.
	maxVersionStrings = 1024
	// maxVersionTables caps the string tables of one version resource.
	maxVersionTables = 64
	// maxVersionResources caps the version resources (names times
	// languages) of one file.
	maxVersionResources = 32
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
	// en-US string table if there is one, else of the first; of a key
	// written twice, the first. Never nil.
	Strings map[string]string
	// FileVersion and ProductVersion come from VS_FIXEDFILEINFO, when
	// HasFixed says it is present.
	FileVersion, ProductVersion [4]uint16
	HasFixed                    bool
	// Tables are every string table of this resource, in file order, with
	// every string (repeated keys and all).
	Tables []StringTable
	// Others are the file's other version resources (other languages, or
	// other resource names), read the same way, in directory order. Which
	// one Windows reads is not established: see [VersionInfo.Readings].
	Others []*VersionInfo
}

// StringTable is one StringTable block of a StringFileInfo: its key (a
// language and code page, "040904b0") and its strings in file order.
type StringTable struct {
	Key     string
	Entries []StringEntry
}

// StringEntry is one String block: a key and its value.
type StringEntry struct {
	Key, Value string
	// Counted is the value as long as its wValueLength says, when that
	// is shorter than Value (which runs to the NUL): VerQueryValue
	// returns that length with the value, and a reader that takes it
	// reads Counted. Empty otherwise, and for wValueLength 0, which
	// compilers write for strings of any length.
	Counted string
}

// Reading is one way to read a file's version resource: the strings of one
// string table, with the fixed file version of the resource that holds it.
type Reading struct {
	// Table is the string table's key ("" when the resource has none).
	Table string
	// Strings holds the keys Readings was asked for that the reading has.
	Strings map[string]string
	// FileVersion is VS_FIXEDFILEINFO's file version, when HasFixed.
	FileVersion [4]uint16
	HasFixed    bool
}

// maxReadings caps what Readings returns: a real file has one or two.
const maxReadings = 256

// Readings returns every reading of the file's version resources for the
// given string keys, the preferred one ([VersionInfo.Strings] and
// FileVersion) first, then one per other string table, other resource, and
// other spelling of a key: a key written twice in a table, or with other
// letter case, yields a reading with that value, and so does a value its
// wValueLength cuts short (StringEntry.Counted). Which table, resource and
// spelling Windows reads has not been established, so a policy must judge
// all of them: a deny rule applies if it matches any reading, an allow rule
// only if it matches every one. It returns ok false, with the readings so
// far, when there are more than maxReadings (the file is then best refused).
func (vi *VersionInfo) Readings(keys ...string) (out []Reading, ok bool) {
	for i, r := range append([]*VersionInfo{vi}, vi.Others...) {
		tables := r.Tables
		if len(tables) == 0 {
			tables = []StringTable{{}}
		} else if j := preferredTable(tables); j > 0 && i == 0 {
			tables = append([]StringTable{tables[j]}, append(slices.Clone(tables[:j]), tables[j+1:]...)...)
		}
		for _, t := range tables {
			base := Reading{Table: t.Key, Strings: map[string]string{}, FileVersion: r.FileVersion, HasFixed: r.HasFixed}
			// The canonical spelling, first occurrence.
			for _, k := range keys {
				for _, e := range t.Entries {
					if e.Key == k {
						base.Strings[k] = e.Value
						break
					}
				}
			}
			out = append(out, base)
			// Every other occurrence (a repeat, another letter case) of a
			// key asked for, and every value cut short by its length, in
			// place of the canonical one.
			for _, k := range keys {
				first := true
				for _, e := range t.Entries {
					if !sameKey(e.Key, k) {
						continue
					}
					var vals []string
					if e.Key == k && first {
						first = false // base holds e.Value
					} else {
						vals = append(vals, e.Value)
					}
					if e.Counted != "" {
						vals = append(vals, e.Counted)
					}
					for _, val := range vals {
						if len(out) == maxReadings {
							return out, false
						}
						v := base
						v.Strings = maps.Clone(base.Strings)
						v.Strings[k] = val
						out = append(out, v)
					}
				}
			}
			if len(out) > maxReadings {
				return out[:maxReadings], false
			}
		}
	}
	return out, true
}

// sameKey reports whether a key in the file may be the key k to a reader
// that ignores case: VerQueryValue compares keys with wcsnicmp, and
// whether that folds by Unicode case folding or by an upper-case table
// (which makes "ı" an "I": "OrıgınalFilename") is not established, so
// keys equal under either, or under simple lower case, are the same.
func sameKey(key, k string) bool {
	if strings.EqualFold(key, k) {
		return true
	}
	ascii := func(s string) bool { return !strings.ContainsFunc(s, func(r rune) bool { return r >= 0x80 }) }
	if ascii(key) && ascii(k) {
		return false
	}
	return strings.ToUpper(key) == strings.ToUpper(k) || strings.ToLower(key) == strings.ToLower(k)
}

// preferredTable returns the index of the en-US table, else 0.
func preferredTable(tables []StringTable) int {
	for i, t := range tables {
		if strings.HasPrefix(strings.ToLower(t.Key), langEnUS) {
			return i
		}
	}
	return 0
}

// versionData is one RT_VERSION data entry found by the walk.
type versionData struct {
	name, lang int // indexes of the name and language directory entries
	langID     uint32
	named      bool
	entry      uint32 // the data entry's offset from the table start
}

// ResourceSection returns the file range of the section that holds the
// resource table, which ReadVersionInfo reads (size 0 when the image has
// no resource table, or it lies in no section: ReadVersionInfo says so).
// It reads the resource table's directory entry, in the headers.
func ResourceSection(r io.ReaderAt, f *File) (off, size int64, err error) {
	v := &versionReader{r: r, f: f}
	dirOff := f.CertDirOffset - (securityDirIdx-resourceDirIdx)*dirEntrySize
	var dir [dirEntrySize]byte
	if err := v.read(dirOff, dir[:], "resource table directory entry"); err != nil {
		return 0, 0, err
	}
	rva := binary.LittleEndian.Uint32(dir[0:])
	if rva == 0 || binary.LittleEndian.Uint32(dir[4:]) == 0 {
		return 0, 0, nil
	}
	if _, sec, err := v.rvaToOffset(rva, resourceDirSize, dirOff, "resource table"); err == nil {
		return int64(sec.PointerToRawData), int64(sec.SizeOfRawData), nil
	}
	return 0, 0, nil
}

// ReadVersionInfo reads the version resources of the PE file f (parsed from
// r by Parse). It walks the resource directory to every RT_VERSION
// resource (every name, every language) and parses each VS_VERSIONINFO. The
// preferred one (first name; language en-US, else neutral, else the first,
// so that the choice does not depend on a machine's locale) is returned,
// with the others in Others. It returns (nil, nil) when the file has no
// version resource, and a *binfmt.MalformedError naming the offset when the
// resource table or any version resource is broken: a resource csv cannot
// read could be the one Windows reads.
//
// # Security
//
// Every offset and length is checked against the section that holds it and
// the file size; at most maxResourceRead bytes are read in all, in at most
// maxResourceDirs directories (a walk through more is refused, so that
// shared subdirectories cannot multiply the reads); directories of more
// than maxResourceEntries entries and files with more than
// maxVersionResources version resources are refused, and the walk descends
// exactly three levels, so loops in the directory cannot recur.
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

	// Level 1: type RT_VERSION (every such entry); level 2: every name;
	// level 3: every language, each leading to a data entry.
	// Windows finds a resource by ID among the entries after the named
	// ones, comparing the low 16 bits (IMAGE_RESOURCE_DIRECTORY_ENTRY.Id,
	// a WORD: Wine's and ReactOS's find_entry_by_id): an entry there whose
	// other bits are set, even the name flag, is RT_VERSION to it. An entry
	// among the named ones without the name flag is read too.
	types, err := v.entries(0, true, func(name uint32, inIDs bool) bool {
		return uint16(name) == rtVersion && (inIDs || name&0x80000000 == 0)
	})
	if err != nil {
		return nil, err
	}
	var found []versionData
	for _, t := range types {
		names, err := v.entries(t.target, true, nil)
		if err != nil {
			return nil, err
		}
		for ni, n := range names {
			langs, err := v.entries(n.target, false, nil)
			if err != nil {
				return nil, err
			}
			for li, l := range langs {
				if len(found) == maxVersionResources {
					return nil, binfmt.Errorf(binfmt.PE, l.at, "more than %d version resources", maxVersionResources)
				}
				found = append(found, versionData{name: ni, lang: li, langID: l.id, named: l.named, entry: l.target})
			}
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	// The preferred resource, among the first name's languages: en-US,
	// else language-neutral, else the first.
	pick := 0
	for _, want := range []func(d versionData) bool{
		func(d versionData) bool { return !d.named && d.langID == langIDEnUS },
		func(d versionData) bool { return !d.named && d.langID == 0 },
	} {
		if i := slices.IndexFunc(found, func(d versionData) bool { return d.name == 0 && want(d) }); i >= 0 {
			pick = i
			break
		}
	}
	var first *VersionInfo
	var others []*VersionInfo
	for i, d := range found {
		vi, err := v.versionResource(d.entry)
		if err != nil {
			return nil, err
		}
		if i == pick {
			first = vi
		} else {
			others = append(others, vi)
		}
	}
	first.Others = others
	return first, nil
}

// versionResource reads and parses the VS_VERSIONINFO of the data entry at
// entry (from the table start).
func (v *versionReader) versionResource(entry uint32) (*VersionInfo, error) {
	var de [resourceDataSize]byte
	deOff := v.rsrc + int64(entry)
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
	dirs          int   // directories read so far
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

// dirEntry is one entry of a resource directory.
type dirEntry struct {
	id     uint32 // the ID, or the name's offset when named
	named  bool
	target uint32 // a subdirectory's or data entry's offset from the table start
	at     int64  // where the entry is, for messages
}

// entries reads the resource directory at dirOff (relative to the table
// start) and returns the entries pick accepts (every entry if pick is nil;
// pick gets the entry's Name field whole, and whether the entry lies among
// the directory's ID entries, after the named ones),
// each of which must be a subdirectory if sub, else a data entry.
func (v *versionReader) entries(dirOff uint32, sub bool, pick func(name uint32, inIDs bool) bool) ([]dirEntry, error) {
	at := v.rsrc + int64(dirOff)
	if v.dirs == maxResourceDirs {
		return nil, binfmt.Errorf(binfmt.PE, at, "more than %d resource directories on the way to the version resources", maxResourceDirs)
	}
	v.dirs++
	var hdr [resourceDirSize]byte
	if err := v.readRsrc(at, hdr[:], "resource directory"); err != nil {
		return nil, err
	}
	named := int(binary.LittleEndian.Uint16(hdr[12:]))
	ids := int(binary.LittleEndian.Uint16(hdr[14:]))
	count := named + ids
	if count > maxResourceEntries {
		return nil, binfmt.Errorf(binfmt.PE, at, "resource directory has %d entries, over the limit of %d", count, maxResourceEntries)
	}
	if count == 0 {
		return nil, nil
	}
	raw := make([]byte, count*resourceEntrySize)
	if err := v.readRsrc(at+resourceDirSize, raw, "resource directory entries"); err != nil {
		return nil, err
	}
	var out []dirEntry
	for i := range count {
		e := raw[i*resourceEntrySize:]
		name := binary.LittleEndian.Uint32(e[0:])
		target := binary.LittleEndian.Uint32(e[4:])
		isNamed := name&0x80000000 != 0
		if pick != nil && !pick(name, i >= named) {
			continue
		}
		eAt := at + resourceDirSize + int64(i*resourceEntrySize)
		isDir := target&0x80000000 != 0
		switch {
		case sub && !isDir:
			return nil, binfmt.Errorf(binfmt.PE, eAt, "resource directory entry points to data where a subdirectory belongs")
		case !sub && isDir:
			return nil, binfmt.Errorf(binfmt.PE, eAt, "resource directory nested deeper than 3 levels")
		}
		target &= 0x7fffffff
		if v.rsrc+int64(target) >= v.rsrcEnd {
			return nil, binfmt.Errorf(binfmt.PE, eAt, "resource directory entry points to offset %#x, outside the resource section", target)
		}
		out = append(out, dirEntry{id: name & 0x7fffffff, named: isNamed, target: target, at: eAt})
	}
	return out, nil
}

// block is one VS_VERSIONINFO-style structure: wLength, wValueLength,
// wType, szKey, padding, Value, padding, Children.
type block struct {
	key      string
	value    []byte // the value, as wValueLength says
	rest     []byte // from the value's start to the block's end
	children []byte
	childOff int  // offset of children within the data
	pos      int  // offset of the block within the data
	valueLen int  // wValueLength as stored
	text     bool // wType 1
}

// parseBlock reads the block at data[pos:]. Offsets in errors are file
// offsets (base + position).
func parseBlock(data []byte, pos int, base int64) (block, int, error) {
	b := block{pos: pos}
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
			// Padding after the last child. VerQueryValue stops at a
			// block of length 0 (Wine's and ReactOS's FindChild), other
			// readers skip it and read on: what follows must be padding.
			if slices.ContainsFunc(data[pos:end], func(c byte) bool { return c != 0 }) {
				return binfmt.Errorf(binfmt.PE, base+int64(pos), "a version block of length 0 followed by data: readers disagree on what follows it")
			}
			break
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

// noValue checks that a StringFileInfo or StringTable block has no value,
// as the format has it: VerQueryValue finds its children after a value as
// long as wValueLength says, other readers (pefile) right after the key, and
// they would read different strings.
func noValue(b block, base int64) error {
	if b.valueLen != 0 {
		return binfmt.Errorf(binfmt.PE, base+int64(b.pos), "version block %q has a value (wValueLength %d), which it never has: readers disagree where its children start",
			truncate(b.key, 40), b.valueLen)
	}
	return nil
}

// parseVersionInfo parses a VS_VERSIONINFO resource read from file offset
// base.
func parseVersionInfo(data []byte, base int64) (*VersionInfo, error) {
	root, end, err := parseBlock(data, 0, base)
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(data[end:], func(c byte) bool { return c != 0 }) {
		// VerQueryValue reads within VS_VERSION_INFO's wLength, other
		// readers (pefile) read on to the resource's end.
		return nil, binfmt.Errorf(binfmt.PE, base+int64(end), "data after VS_VERSION_INFO (%d bytes) within the version resource (%d): readers disagree on what it holds", end, len(data))
	}
	if root.key != "VS_VERSION_INFO" {
		return nil, binfmt.Errorf(binfmt.PE, base, "version resource key is %q, not VS_VERSION_INFO", truncate(root.key, 40))
	}
	vi := &VersionInfo{Strings: map[string]string{}}
	if root.valueLen > 0 {
		if len(root.value) < fixedFileInfoSize || root.valueLen < fixedFileInfoSize {
			return nil, binfmt.Errorf(binfmt.PE, base, "VS_FIXEDFILEINFO is %d bytes (want %d)", min(len(root.value), root.valueLen), fixedFileInfoSize)
		}
		if root.valueLen != fixedFileInfoSize || root.text {
			// VerQueryValue finds the children after the value as long as
			// wValueLength (and wType) say, other readers after the 52
			// bytes of a VS_FIXEDFILEINFO: they would read other strings.
			return nil, binfmt.Errorf(binfmt.PE, base, "VS_VERSION_INFO's value is %d %s, not the %d bytes of a VS_FIXEDFILEINFO: readers disagree where its children start",
				root.valueLen, map[bool]string{false: "bytes", true: "characters"}[root.text], fixedFileInfoSize)
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
		// VerQueryValue finds a block by its key ignoring case (Wine's and
		// ReactOS's VersionInfo32_FindChild compare with wcsnicmp), so a
		// block keyed "STRINGFILEINFO" holds string tables Windows reads.
		if !sameKey(c.key, "StringFileInfo") {
			return nil // VarFileInfo
		}
		if err := noValue(c, base); err != nil {
			return err
		}
		return eachChild(data, c, base, func(t block) error {
			if err := noValue(t, base); err != nil {
				return err
			}
			if len(tables) == maxVersionTables {
				return binfmt.Errorf(binfmt.PE, base+int64(t.childOff), "more than %d string tables in a version resource", maxVersionTables)
			}
			tables = append(tables, t)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		st := StringTable{Key: t.key}
		err = eachChild(data, t, base, func(s block) error {
			if len(st.Entries) >= maxVersionStrings {
				return binfmt.Errorf(binfmt.PE, base+int64(s.childOff), "more than %d strings in a version string table", maxVersionStrings)
			}
			// wValueLength counts bytes in some files and code units in
			// others, and is 0 in some: read to the block's end and stop at
			// the NUL, as Windows' VerQueryValue callers see it. A reader
			// may also take the length VerQueryValue returns: counted as
			// code units (the longer reading of the two), a value it cuts
			// short is another reading.
			e := StringEntry{Key: s.key, Value: utf16String(s.rest)}
			if n := 2 * s.valueLen; n > 0 && n < len(s.rest) {
				if c := utf16String(s.rest[:n]); len(c) < len(e.Value) {
					e.Counted = c
				}
			}
			st.Entries = append(st.Entries, e)
			return nil
		})
		if err != nil {
			return nil, err
		}
		vi.Tables = append(vi.Tables, st)
	}
	if len(vi.Tables) > 0 {
		for _, e := range vi.Tables[preferredTable(vi.Tables)].Entries {
			if _, dup := vi.Strings[e.Key]; !dup {
				vi.Strings[e.Key] = e.Value
			}
		}
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
