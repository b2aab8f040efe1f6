package appx

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// BlockSize is the size of the uncompressed blocks the block map hashes.
const BlockSize = 64 << 10

// Namespace of the block map's elements.
const blockMapNS = "http://schemas.microsoft.com/appx/2010/blockmap"

// HashMethods are the block map's HashMethod URIs and the algorithms
// they name (the block map schema; osslsigncode reads the same three).
var HashMethods = map[string]crypto.Hash{
	"http://www.w3.org/2001/04/xmlenc#sha256":       crypto.SHA256,
	"http://www.w3.org/2001/04/xmldsig-more#sha384": crypto.SHA384,
	"http://www.w3.org/2001/04/xmlenc#sha512":       crypto.SHA512,
}

// BlockMap is a parsed AppxBlockMap.xml.
type BlockMap struct {
	// HashMethod is the algorithm of the block hashes, which the
	// package's signature digests use too.
	HashMethod crypto.Hash
	Files      []BlockFile
}

// BlockFile is a File element: a member of the package and the hashes of
// its 64 KiB blocks.
type BlockFile struct {
	// Name is the file's name as the block map writes it (Windows
	// separators, not percent-encoded).
	Name string
	// Size is its uncompressed size, LfhSize the length of its local
	// file header.
	Size, LfhSize int64
	Blocks        []Block
	// Offset is the element's byte offset in the block map (for
	// messages).
	Offset int64
}

// Block is a Block element: the hash of 64 KiB of uncompressed data
// (less for the last block), and its compressed size (-1 when the
// attribute is absent: a stored file).
type Block struct {
	Hash []byte
	Size int64
}

// ErrBlockMap is wrapped (with signing.ErrMalformed) by errors about a
// block map that does not parse or does not describe the package.
var ErrBlockMap = errors.New("appx: the block map does not describe the package")

func bmError(off int64, format string, args ...any) *signing.MalformedError {
	return &signing.MalformedError{Format: Format, Offset: off, Err: ErrBlockMap,
		Reason: "AppxBlockMap.xml: " + fmt.Sprintf(format, args...)}
}

// ParseBlockMap parses AppxBlockMap.xml strictly: UTF-8 XML without a
// document type declaration (no DTD, no entities but XML's five), a
// BlockMap root in the block map namespace with a known HashMethod, File
// elements with Name, Size and LfhSize, and Block elements with a Hash of
// the method's size and an optional positive Size; attributes and
// elements of other namespaces (later schema versions' extensions) are
// skipped, and anything else in the block map's namespace is refused.
// Offsets in errors are the block map's.
//
// # Security
//
// b is untrusted and at most limits.MaxAPPXBlockMap bytes; encoding/xml
// reads it in one pass (work linear in its size), nesting is capped by
// limits.MaxAPPXBlockMapDepth and the files by
// limits.MaxContainerMembers.
func ParseBlockMap(b []byte) (bm *BlockMap, err error) {
	if len(b) > limits.MaxAPPXBlockMap {
		return nil, limitErr(0, "AppxBlockMap.xml of %d bytes (the cap is %d)", len(b), limits.MaxAPPXBlockMap)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	bm = &BlockMap{}
	depth := 0
	root, inFile := false, false
	var file *BlockFile
	skip := 0 // depth of a foreign element being skipped (0: none)
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, bmError(off, "%v", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, bmError(off, "a document type declaration or other directive (<!%s>)", firstWord(t))
		case xml.ProcInst:
			if t.Target != "xml" || off != 0 {
				return nil, bmError(off, "a processing instruction <?%s?>", t.Target)
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, bmError(off, "text outside attributes")
			}
		case xml.StartElement:
			depth++
			if depth > limits.MaxAPPXBlockMapDepth {
				return nil, limitErr(off, "AppxBlockMap.xml nests elements %d deep (the cap is %d)", depth, limits.MaxAPPXBlockMapDepth)
			}
			if skip > 0 {
				continue
			}
			if t.Name.Space != blockMapNS {
				if depth == 1 {
					return nil, bmError(off, "the root element is {%s}%s, not the block map namespace's BlockMap", t.Name.Space, t.Name.Local)
				}
				skip = depth
				continue
			}
			switch {
			case depth == 1 && t.Name.Local == "BlockMap":
				root = true
				m, err := attrs(t, off, "HashMethod")
				if err != nil {
					return nil, err
				}
				h, ok := HashMethods[m["HashMethod"]]
				if !ok {
					return nil, bmError(off, "HashMethod %q is none of SHA-256, SHA-384 and SHA-512", m["HashMethod"])
				}
				bm.HashMethod = h
			case depth == 2 && t.Name.Local == "File":
				if len(bm.Files) >= limits.MaxContainerMembers {
					return nil, limitErr(off, "AppxBlockMap.xml lists more than %d files", limits.MaxContainerMembers)
				}
				m, err := attrs(t, off, "Name", "Size", "LfhSize")
				if err != nil {
					return nil, err
				}
				f := BlockFile{Name: m["Name"], Offset: off}
				if f.Size, err = number(m["Size"], 0); err != nil {
					return nil, bmError(off, "File %q: Size %q: %v", f.Name, m["Size"], err)
				}
				if f.LfhSize, err = number(m["LfhSize"], localLen+1); err != nil {
					return nil, bmError(off, "File %q: LfhSize %q: %v", f.Name, m["LfhSize"], err)
				}
				if f.Name == "" {
					return nil, bmError(off, "a File with an empty Name")
				}
				bm.Files = append(bm.Files, f)
				file, inFile = &bm.Files[len(bm.Files)-1], true
			case depth == 3 && inFile && t.Name.Local == "Block":
				m, err := attrs(t, off, "Hash", "?Size")
				if err != nil {
					return nil, err
				}
				blk := Block{Size: -1}
				if blk.Hash, err = base64.StdEncoding.Strict().DecodeString(m["Hash"]); err != nil || len(blk.Hash) != bm.HashMethod.Size() {
					return nil, bmError(off, "File %q: a Block Hash %q that is not the base64 of a %v digest", file.Name, m["Hash"], bm.HashMethod)
				}
				if s, ok := m["Size"]; ok {
					if blk.Size, err = number(s, 1); err != nil || blk.Size > 2*BlockSize {
						return nil, bmError(off, "File %q: Block Size %q is not a compressed size of a 64 KiB block", file.Name, s)
					}
				}
				if int64(len(file.Blocks)) >= (file.Size+BlockSize-1)/BlockSize {
					return nil, bmError(off, "File %q: more blocks than its %d bytes hold", file.Name, file.Size)
				}
				file.Blocks = append(file.Blocks, blk)
			default:
				return nil, bmError(off, "an unexpected element %s at depth %d", t.Name.Local, depth)
			}
		case xml.EndElement:
			if skip == depth {
				skip = 0
			} else if skip == 0 && depth == 2 {
				inFile = false
				if want := (file.Size + BlockSize - 1) / BlockSize; int64(len(file.Blocks)) != want {
					return nil, bmError(file.Offset, "File %q of %d bytes has %d blocks, not %d", file.Name, file.Size, len(file.Blocks), want)
				}
			}
			depth--
		}
	}
	if !root {
		return nil, bmError(0, "no BlockMap element")
	}
	return bm, nil
}

func firstWord(d xml.Directive) string {
	s, _, _ := strings.Cut(string(d), " ")
	if len(s) > 20 {
		s = s[:20]
	}
	return s
}

// attrs returns an element's attributes of no namespace, which must be
// among names ("?x": optional; the others required); attributes of a
// namespace (xmlns declarations, extensions) are skipped.
func attrs(t xml.StartElement, off int64, names ...string) (map[string]string, error) {
	m := make(map[string]string, len(names))
	for _, a := range t.Attr {
		if a.Name.Space != "" || a.Name.Local == "xmlns" {
			continue
		}
		known := false
		for _, n := range names {
			if strings.TrimPrefix(n, "?") == a.Name.Local {
				known = true
			}
		}
		if !known && !(t.Name.Local == "BlockMap" && a.Name.Local == "IgnorableNamespaces") {
			return nil, bmError(off, "%s has an unknown attribute %s", t.Name.Local, a.Name.Local)
		}
		if _, dup := m[a.Name.Local]; dup {
			return nil, bmError(off, "%s repeats the attribute %s", t.Name.Local, a.Name.Local)
		}
		m[a.Name.Local] = a.Value
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "?") {
			if _, ok := m[n]; !ok {
				return nil, bmError(off, "%s has no %s attribute", t.Name.Local, n)
			}
		}
	}
	return m, nil
}

// number parses a decimal attribute of at least min.
func number(s string, min int64) (int64, error) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, errors.New("not a decimal number")
	}
	n, err := strconv.ParseInt(s, 10, 63)
	if err != nil {
		return 0, errors.New("not a decimal number below 2^62")
	}
	if n < min {
		return 0, fmt.Errorf("below %d", min)
	}
	return n, nil
}

// PartName is the block map's name of a zip member: its name with OPC's
// percent-encoding undone and Windows separators; false if the name does
// not decode.
func PartName(zipName string) (string, bool) {
	s, err := url.PathUnescape(zipName)
	if err != nil {
		return "", false
	}
	return strings.ReplaceAll(s, "/", `\`), true
}

// footprint reports whether a member is one of the package's own files,
// which the block map does not list: the signature, the block map and
// the content types.
func footprint(name string) bool {
	return name == SignatureName || name == BlockMapName || name == ContentTypesName
}

// CheckBlockMap checks the block map against the package: every member
// but the signature, the block map and [Content_Types].xml is listed
// exactly once (by its part name), no other file is listed, each File's
// Size and LfhSize are the member's, a stored member's blocks have no
// Size and a deflated member's blocks have Sizes that add up to its
// compressed size, and every block's hash, with the block map's
// HashMethod, is the hash of that 64 KiB of the member's uncompressed
// bytes (read once, by random access). The first disagreement is the
// error, naming the member: a *signing.MalformedError wrapping
// ErrBlockMap, or signing.ErrDigestMismatch for a bad hash, or the
// member's read error (ErrMemberData).
func (p *Package) CheckBlockMap() error {
	bm := p.BlockMap
	if bm == nil {
		return bmError(-1, "the package has no block map")
	}
	byName := make(map[string]*BlockFile, len(bm.Files))
	for i := range bm.Files {
		f := &bm.Files[i]
		if _, dup := byName[f.Name]; dup {
			return bmError(f.Offset, "File %q is listed twice", f.Name)
		}
		byName[f.Name] = f
	}
	seen := make(map[string]bool, len(bm.Files))
	buf := make([]byte, BlockSize)
	for i := range p.Entries {
		e := &p.Entries[i]
		if footprint(e.Name) {
			continue
		}
		name, ok := PartName(e.Name)
		if !ok {
			return malformed(e.Local, "member %q: its name's percent-encoding does not decode", e.Name)
		}
		f := byName[name]
		if f == nil {
			return bmError(-1, "member %q is not in the block map", e.Name)
		}
		if seen[name] {
			return bmError(f.Offset, "File %q describes two members (%q is one)", f.Name, e.Name)
		}
		seen[name] = true
		if f.Size != e.Size || f.LfhSize != e.LfhSize {
			return bmError(f.Offset, "File %q: Size %d and LfhSize %d, the member's are %d and %d", f.Name, f.Size, f.LfhSize, e.Size, e.LfhSize)
		}
		var sum int64
		for j, b := range f.Blocks {
			switch {
			case e.Method == methodStore && b.Size >= 0:
				return bmError(f.Offset, "File %q: block %d has a compressed Size, and the member is stored", f.Name, j)
			case e.Method == methodFlate && b.Size < 0:
				return bmError(f.Offset, "File %q: block %d has no compressed Size, and the member is deflated", f.Name, j)
			}
			sum += max(b.Size, 0)
		}
		if e.Method == methodFlate && sum != e.CompressedSize {
			return bmError(f.Offset, "File %q: its blocks' compressed Sizes add up to %d, the member's compressed size is %d", f.Name, sum, e.CompressedSize)
		}
		r := open(p.r, e)
		h := bm.HashMethod.New()
		for j, b := range f.Blocks {
			n := min(BlockSize, e.Size-int64(j)*BlockSize)
			if _, err := io.ReadFull(r, buf[:n]); err != nil {
				return err
			}
			h.Reset()
			h.Write(buf[:n])
			if got := h.Sum(nil); !bytes.Equal(got, b.Hash) {
				return &signing.MalformedError{Format: Format, Offset: e.Data, Err: signing.ErrDigestMismatch,
					Reason: fmt.Sprintf("member %q: block %d (bytes %d to %d) hashes to %s, AppxBlockMap.xml says %s", e.Name, j, int64(j)*BlockSize, int64(j)*BlockSize+n, base64.StdEncoding.EncodeToString(got), base64.StdEncoding.EncodeToString(b.Hash))}
			}
		}
		if _, err := r.Read(buf[:1]); err != io.EOF {
			return err
		}
	}
	for i := range bm.Files {
		f := &bm.Files[i]
		if !seen[f.Name] {
			return bmError(f.Offset, "File %q is listed and is not in the package", f.Name)
		}
	}
	return nil
}
