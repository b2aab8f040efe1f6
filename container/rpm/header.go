package rpm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// Header data types (rpm's rpmTagType).
const (
	typeNull        = 0
	typeChar        = 1
	typeInt8        = 2
	typeInt16       = 3
	typeInt32       = 4
	typeInt64       = 5
	typeString      = 6
	typeBin         = 7
	typeStringArray = 8
	typeI18NString  = 9
)

// Tags csv reads. The signature header's tags share numbers with the main
// header's below 1000 (RPMTAG_SIG_BASE + n) and reuse 1000 up.
const (
	sigTagDSA             = 267  // OpenPGP signature of the header (DSA, EdDSA in v6)
	sigTagRSA             = 268  // OpenPGP signature of the header (RSA)
	sigTagSHA1            = 269  // hex SHA-1 of the main header
	sigTagLongSize        = 270  // header + payload size, 64 bits
	sigTagLongArchiveSize = 271  // uncompressed payload size, 64 bits
	sigTagSHA256          = 273  // hex SHA-256 of the main header
	sigTagFileSignatures  = 274  // IMA signatures of the files
	sigTagVeritySigs      = 276  // fs-verity signatures of the files
	sigTagOpenPGP         = 278  // OpenPGP signatures (rpm 6)
	sigTagSize            = 1000 // header + payload size
	sigTagPGP             = 1002 // OpenPGP signature of header + payload (RSA)
	sigTagMD5             = 1004 // MD5 of header + payload
	sigTagGPG             = 1005 // OpenPGP signature of header + payload (DSA)
	sigTagPayloadSize     = 1007 // uncompressed payload size

	tagOldFileNames      = 1027
	tagFileSizes         = 1028
	tagFileModes         = 1030
	tagDirIndexes        = 1116
	tagBaseNames         = 1117
	tagDirNames          = 1118
	tagLongFileSizes     = 5008
	tagPayloadFormat     = 1124
	tagPayloadCompressor = 1125
	tagPayloadDigest     = 5092
	tagPayloadDigestAlgo = 5093
	tagPayloadDigestAlt  = 5097
)

// signatureTags names the signature tags that carry a signature (rather
// than a digest): Package.Signatures lists those present.
var signatureTags = map[uint32]string{
	sigTagDSA:            "DSA header signature (OpenPGP)",
	sigTagRSA:            "RSA header signature (OpenPGP)",
	sigTagOpenPGP:        "OpenPGP header signatures",
	sigTagPGP:            "PGP header+payload signature",
	sigTagGPG:            "GPG header+payload signature",
	sigTagFileSignatures: "IMA file signatures",
	sigTagVeritySigs:     "fs-verity file signatures",
}

var headerMagic = []byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0}

// header is one header structure: the 16-byte intro, the index and the
// store, as read from the file.
type header struct {
	what    string // "signature header", "main header"
	off     int64  // of the intro in the file
	raw     []byte // intro + index + store
	entries []entry
	store   []byte
}

type entry struct {
	tag, typ, off, count uint32
	at                   int64 // the entry's offset in the file
}

func malformed(off int64, format string, args ...any) error {
	return &signing.MalformedError{Format: "RPM", Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// readHeader reads the header structure at off (of a file of size bytes).
func readHeader(src io.ReaderAt, off, size int64, what string) (*header, error) {
	var intro [16]byte
	if size-off < 16 {
		return nil, malformed(off, "the file ends before the %s", what)
	}
	if _, err := src.ReadAt(intro[:], off); err != nil {
		return nil, malformed(off, "reading the %s: %v", what, err)
	}
	if !bytes.Equal(intro[:8], headerMagic) {
		return nil, malformed(off, "the %s does not start with the header magic 8e ad e8 01 00 00 00 00", what)
	}
	n := int64(binary.BigEndian.Uint32(intro[8:]))
	dl := int64(binary.BigEndian.Uint32(intro[12:]))
	if n > limits.MaxRPMHeaderEntries {
		return nil, &signing.MalformedError{Format: "RPM", Offset: off + 8,
			Reason: fmt.Sprintf("the %s declares %d index entries", what, n),
			Err: &container.LimitError{Cap: "MaxRPMHeaderEntries", Value: limits.MaxRPMHeaderEntries,
				What: fmt.Sprintf("the %s's %d index entries", what, n)}}
	}
	if dl > limits.MaxRPMHeaderData {
		return nil, &signing.MalformedError{Format: "RPM", Offset: off + 12,
			Reason: fmt.Sprintf("the %s declares %d bytes of data", what, dl),
			Err: &container.LimitError{Cap: "MaxRPMHeaderData", Value: limits.MaxRPMHeaderData,
				What: fmt.Sprintf("the %s's %d bytes of data", what, dl)}}
	}
	if n == 0 {
		return nil, malformed(off+8, "the %s has no index entries", what)
	}
	total := 16 + 16*n + dl
	if total > size-off {
		return nil, malformed(off, "the %s (%d bytes) runs past the end of the file", what, total)
	}
	h := &header{what: what, off: off, raw: make([]byte, total)}
	if _, err := src.ReadAt(h.raw, off); err != nil {
		return nil, malformed(off, "reading the %s: %v", what, err)
	}
	h.store = h.raw[16+16*n:]
	h.entries = make([]entry, n)
	for i := range h.entries {
		b := h.raw[16+16*i:]
		e := entry{tag: binary.BigEndian.Uint32(b), typ: binary.BigEndian.Uint32(b[4:]),
			off: binary.BigEndian.Uint32(b[8:]), count: binary.BigEndian.Uint32(b[12:]),
			at: off + 16 + 16*int64(i)}
		if e.typ > typeI18NString || e.typ == typeNull {
			return nil, malformed(e.at, "%s tag %d has type %d, which rpm does not define", what, e.tag, e.typ)
		}
		if e.count == 0 {
			return nil, malformed(e.at, "%s tag %d has no values", what, e.tag)
		}
		if int64(e.off) > dl {
			return nil, malformed(e.at, "%s tag %d's data starts at %d, past the %d-byte store", what, e.tag, e.off, dl)
		}
		if sz := fixedSize(e.typ); sz > 0 && int64(e.off)+int64(e.count)*sz > dl {
			return nil, malformed(e.at, "%s tag %d's %d values run past the %d-byte store", what, e.tag, e.count, dl)
		}
		h.entries[i] = e
	}
	return h, nil
}

func fixedSize(typ uint32) int64 {
	switch typ {
	case typeChar, typeInt8, typeBin:
		return 1
	case typeInt16:
		return 2
	case typeInt32:
		return 4
	case typeInt64:
		return 8
	}
	return 0
}

// find returns the entry of tag, or nil. A tag stored twice is an error:
// which one rpm reads is not for csv to guess.
func (h *header) find(tag uint32) (*entry, error) {
	var found *entry
	for i := range h.entries {
		if h.entries[i].tag == tag {
			if found != nil {
				return nil, malformed(h.entries[i].at, "%s tag %d is stored twice", h.what, tag)
			}
			found = &h.entries[i]
		}
	}
	return found, nil
}

func (h *header) has(tag uint32) bool {
	for i := range h.entries {
		if h.entries[i].tag == tag {
			return true
		}
	}
	return false
}

func (h *header) wrongType(e *entry, want string) error {
	return malformed(e.at, "%s tag %d has type %d, not %s", h.what, e.tag, e.typ, want)
}

// strings returns the strings of tag (a STRING, STRING_ARRAY or
// I18NSTRING), nil when absent.
func (h *header) strings(tag uint32) ([]string, error) {
	e, err := h.find(tag)
	if e == nil || err != nil {
		return nil, err
	}
	if e.typ != typeString && e.typ != typeStringArray && e.typ != typeI18NString {
		return nil, h.wrongType(e, "a string")
	}
	if e.typ == typeString && e.count != 1 {
		return nil, malformed(e.at, "%s tag %d is a STRING of %d values", h.what, e.tag, e.count)
	}
	if err := h.arrayCount(e); err != nil {
		return nil, err
	}
	var out []string
	rest := h.store[e.off:]
	for range e.count {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return nil, malformed(e.at, "%s tag %d's strings run past the store", h.what, e.tag)
		}
		out = append(out, string(rest[:i]))
		rest = rest[i+1:]
	}
	return out, nil
}

// str returns tag's single string, "" and false when absent.
func (h *header) str(tag uint32) (string, bool, error) {
	s, err := h.strings(tag)
	if err != nil || s == nil {
		return "", false, err
	}
	return s[0], true, nil
}

// integer returns tag's first value (an INT32 or INT64), -1 when absent.
func (h *header) integer(tag uint32) (int64, error) {
	e, err := h.find(tag)
	if e == nil || err != nil {
		return -1, err
	}
	switch e.typ {
	case typeInt32:
		return int64(binary.BigEndian.Uint32(h.store[e.off:])), nil
	case typeInt64:
		v := binary.BigEndian.Uint64(h.store[e.off:])
		if v > 1<<62 {
			return 0, malformed(e.at, "%s tag %d holds %d", h.what, e.tag, v)
		}
		return int64(v), nil
	}
	return 0, h.wrongType(e, "an integer")
}

// bin returns tag's bytes (a BIN), nil when absent.
func (h *header) bin(tag uint32) ([]byte, error) {
	e, err := h.find(tag)
	if e == nil || err != nil {
		return nil, err
	}
	if e.typ != typeBin {
		return nil, h.wrongType(e, "BIN")
	}
	return h.store[e.off : e.off+e.count], nil
}

// ints returns tag's values (INT16, INT32 or INT64), nil when absent.
func (h *header) ints(tag uint32) ([]int64, error) {
	e, err := h.find(tag)
	if e == nil || err != nil {
		return nil, err
	}
	if err := h.arrayCount(e); err != nil {
		return nil, err
	}
	out := make([]int64, e.count)
	b := h.store[e.off:]
	for i := range out {
		switch e.typ {
		case typeInt16:
			out[i] = int64(binary.BigEndian.Uint16(b[2*i:]))
		case typeInt32:
			out[i] = int64(binary.BigEndian.Uint32(b[4*i:]))
		case typeInt64:
			v := binary.BigEndian.Uint64(b[8*i:])
			if v > 1<<62 {
				return nil, malformed(e.at, "%s tag %d holds %d", h.what, e.tag, v)
			}
			out[i] = int64(v)
		default:
			return nil, h.wrongType(e, "an integer")
		}
	}
	return out, nil
}

// headerFile is what the main header says of one file: rpm installs a
// file of the type and size the header gives, with the payload entry of
// its name as its bytes.
type headerFile struct {
	mode uint32
	size int64
}

// fileList returns the main header's files by cleaned name
// (container.NameKey), nil when the header lists none (rpm then installs
// no payload entry: it refuses each as "not in header").
func fileList(h *header) (map[string]headerFile, error) {
	names, err := h.strings(tagOldFileNames)
	if err != nil {
		return nil, err
	}
	if names == nil {
		base, err := h.strings(tagBaseNames)
		if err != nil || base == nil {
			return nil, err
		}
		dirs, err := h.strings(tagDirNames)
		if err != nil {
			return nil, err
		}
		idx, err := h.ints(tagDirIndexes)
		if err != nil {
			return nil, err
		}
		if len(idx) != len(base) {
			return nil, malformed(h.off, "the main header lists %d base names and %d directory indexes", len(base), len(idx))
		}
		names = make([]string, len(base))
		for i, b := range base {
			if idx[i] < 0 || idx[i] >= int64(len(dirs)) {
				return nil, malformed(h.off, "the main header's file %q has directory index %d, of %d directories", b, idx[i], len(dirs))
			}
			names[i] = dirs[idx[i]] + b
		}
	}
	modes, err := h.ints(tagFileModes)
	if err != nil {
		return nil, err
	}
	sizes, err := h.ints(tagLongFileSizes)
	if err == nil && sizes == nil {
		sizes, err = h.ints(tagFileSizes)
	}
	if err != nil {
		return nil, err
	}
	if len(modes) != len(names) || len(sizes) != len(names) {
		return nil, malformed(h.off, "the main header lists %d files, %d modes and %d sizes", len(names), len(modes), len(sizes))
	}
	files := make(map[string]headerFile, len(names))
	for i, n := range names {
		c, err := container.CleanName(strings.TrimLeft(n, "/"))
		if err != nil {
			return nil, malformed(h.off, "the main header's file list: %v", err)
		}
		k := container.NameKey(c)
		if _, dup := files[k]; dup {
			return nil, malformed(h.off, "the main header lists file %s twice", c)
		}
		files[k] = headerFile{mode: uint32(modes[i]), size: sizes[i]}
	}
	return files, nil
}

// maxArray caps the values of an array csv reads (file names, modes and
// sizes; payload digests): a store of NUL bytes is as many empty strings,
// each costing a string header (16 bytes) and more in the file list. A
// package of more files than a container may have members is not walked
// anyway.
const maxArray = limits.MaxContainerMembers

func (h *header) arrayCount(e *entry) error {
	if e.count > maxArray {
		return &signing.MalformedError{Format: "RPM", Offset: e.at,
			Reason: fmt.Sprintf("%s tag %d holds %d values", h.what, e.tag, e.count),
			Err: &container.LimitError{Cap: "max-container-members", Value: maxArray,
				What: fmt.Sprintf("the %s's tag %d of %d values", h.what, e.tag, e.count)}}
	}
	return nil
}
