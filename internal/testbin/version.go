package testbin

import (
	"encoding/binary"
	"unicode/utf16"
)

// VersionResource is one RT_VERSION resource (one language of one resource
// name): a VS_VERSIONINFO with an optional VS_FIXEDFILEINFO and string
// tables.
type VersionResource struct {
	// Lang is the resource's language ID (0x409 en-US, 0 neutral).
	Lang uint16
	// FileVersion, if set, makes a VS_FIXEDFILEINFO with this file version;
	// nil leaves it out (wValueLength 0).
	FileVersion *[4]uint16
	// Tables are the StringFileInfo's string tables.
	Tables []VersionTable
	// StringFileInfoKey, if set, spells the StringFileInfo block's key
	// (readers find it case-insensitively: "STRINGFILEINFO").
	StringFileInfoKey string
}

// VersionTable is one StringTable: its key ("040904b0") and its strings,
// in order (a key may repeat).
type VersionTable struct {
	Key     string
	Strings [][2]string
}

// VersionPE returns a PE32+ image whose resource table (in .data, with data
// directory 2 pointing at it) holds RT_VERSION resources: one resource name
// (IDs 1, 2, ...) per element of names, each with its languages.
func VersionPE(names ...[]VersionResource) []byte {
	le := binary.LittleEndian
	// .data follows .text at the next section alignment: RVA 0x2000 with
	// the default code.
	const rva = 2 * sectAlign
	img := PE(PEOptions{Data: versionTable(rva, names)})
	const lfanew = 0x40
	opt := lfanew + 4 + 20
	secs := opt + 240
	if got := le.Uint32(img[secs+40+12:]); got != rva {
		panic("testbin: .data is not at the expected RVA")
	}
	dir2 := opt + 112 + 2*8
	le.PutUint32(img[dir2:], rva)
	le.PutUint32(img[dir2+4:], le.Uint32(img[secs+40+8:])) // the section's virtual size
	ck := opt + 64
	le.PutUint32(img[ck:], Checksum(img, ck))
	return img
}

// UTF16Z is s in UTF-16LE with a terminating NUL, as version resources
// hold their keys and strings.
func UTF16Z(s string) []byte {
	u := append(utf16.Encode([]rune(s)), 0)
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// Pad4 pads b with zeros to a multiple of 4 bytes.
func Pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// VersionBlock builds a version resource block: wLength, wValueLength,
// wType (1 if text), szKey, padding, value, padding, children (each 32-bit
// aligned).
func VersionBlock(key string, text bool, value []byte, valueLen int, children ...[]byte) []byte {
	b := make([]byte, 6)
	b = append(b, UTF16Z(key)...)
	b = Pad4(b)
	b = append(b, value...)
	for _, c := range children {
		b = Pad4(b)
		b = append(b, c...)
	}
	binary.LittleEndian.PutUint16(b[0:], uint16(len(b)))
	binary.LittleEndian.PutUint16(b[2:], uint16(valueLen))
	if text {
		binary.LittleEndian.PutUint16(b[4:], 1)
	}
	return b
}

// versionInfo builds a VS_VERSIONINFO.
func versionInfo(r VersionResource) []byte {
	var fixed []byte
	if v := r.FileVersion; v != nil {
		le := binary.LittleEndian
		fixed = make([]byte, 52)
		le.PutUint32(fixed[0:], 0xFEEF04BD)
		le.PutUint32(fixed[4:], 0x00010000)
		le.PutUint32(fixed[8:], uint32(v[0])<<16|uint32(v[1]))
		le.PutUint32(fixed[12:], uint32(v[2])<<16|uint32(v[3]))
		le.PutUint32(fixed[16:], uint32(v[0])<<16|uint32(v[1]))
		le.PutUint32(fixed[20:], uint32(v[2])<<16|uint32(v[3]))
		le.PutUint32(fixed[24:], 0x3f)
		le.PutUint32(fixed[32:], 0x00040004) // VOS_NT_WINDOWS32
		le.PutUint32(fixed[36:], 1)          // VFT_APP
	}
	var tables [][]byte
	for _, t := range r.Tables {
		var ss [][]byte
		for _, s := range t.Strings {
			v := UTF16Z(s[1])
			ss = append(ss, VersionBlock(s[0], true, v, len(v)/2))
		}
		tables = append(tables, VersionBlock(t.Key, true, nil, 0, ss...))
	}
	sfi := r.StringFileInfoKey
	if sfi == "" {
		sfi = "StringFileInfo"
	}
	return VersionBlock("VS_VERSION_INFO", false, fixed, len(fixed),
		VersionBlock(sfi, true, nil, 0, tables...),
		VersionBlock("VarFileInfo", true, nil, 0, VersionBlock("Translation", false, []byte{0x09, 0x04, 0xb0, 0x04}, 4)))
}

// versionTable builds a resource table at RVA rva: type RT_VERSION (16),
// one name per element of names, each with its languages.
func versionTable(rva int, names [][]VersionResource) []byte {
	le := binary.LittleEndian
	dir := func(entries ...[2]uint32) []byte {
		b := make([]byte, 16+8*len(entries))
		le.PutUint16(b[14:], uint16(len(entries)))
		for i, e := range entries {
			le.PutUint32(b[16+8*i:], e[0])
			le.PutUint32(b[20+8*i:], e[1])
		}
		return b
	}
	b := dir([2]uint32{16, 0x80000000 | 24})
	at := 24 + 16 + 8*len(names)
	var nes [][2]uint32
	for i, langs := range names {
		nes = append(nes, [2]uint32{uint32(i + 1), 0x80000000 | uint32(at)})
		at += 16 + 8*len(langs)
	}
	b = append(b, dir(nes...)...)
	dataEntries, n := at, 0
	for _, langs := range names {
		var les [][2]uint32
		for _, l := range langs {
			les = append(les, [2]uint32{uint32(l.Lang), uint32(dataEntries + 16*n)})
			n++
		}
		b = append(b, dir(les...)...)
	}
	var blobs []byte
	blobAt := dataEntries + 16*n
	for _, langs := range names {
		for _, l := range langs {
			data := versionInfo(l)
			de := make([]byte, 16)
			le.PutUint32(de[0:], uint32(rva+blobAt+len(blobs)))
			le.PutUint32(de[4:], uint32(len(data)))
			b = append(b, de...)
			blobs = Pad4(append(blobs, data...))
		}
	}
	return append(b, blobs...)
}
