package pe_test

// DER surgery for tests: find an element by its path of child indexes and
// replace it, re-encoding the lengths of its parents. Tests use it to tamper
// with and re-sign signatures that osslsigncode made.

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	binpe "github.com/codesignval/csv/internal/binfmt/pe"
)

// element is one DER element of a buffer: [off, end), contents from off+hdr.
type element struct {
	off, hdr, end int
	tag           cbasn1.Tag
}

func (e element) contents(der []byte) []byte { return der[e.off+e.hdr : e.end] }
func (e element) bytes(der []byte) []byte    { return der[e.off:e.end] }

// children lists the elements inside a constructed element.
func children(t testing.TB, der []byte, e element) []element {
	t.Helper()
	var out []element
	pos := e.off + e.hdr
	for pos < e.end {
		c := elementAt(t, der, pos)
		out = append(out, c)
		pos = c.end
	}
	return out
}

// elementAt reads the element that starts at off.
func elementAt(t testing.TB, der []byte, off int) element {
	t.Helper()
	s := cryptobyte.String(der[off:])
	var full, contents cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1Element(&full, &tag) {
		t.Fatalf("no DER element at offset %d", off)
	}
	if !full.ReadAnyASN1(&contents, &tag) {
		t.Fatalf("bad DER element at offset %d", off)
	}
	n := len(der[off:]) - len(s)
	return element{off: off, hdr: n - len(contents), end: off + n, tag: tag}
}

// at follows path (child indexes; -1 is the last child) from the element
// at the start of der.
func at(t testing.TB, der []byte, path ...int) element {
	t.Helper()
	e := elementAt(t, der, 0)
	for depth, i := range path {
		cs := children(t, der, e)
		if i < 0 {
			i = len(cs) + i
		}
		if i < 0 || i >= len(cs) {
			t.Fatalf("DER path %v: element at depth %d has %d children", path, depth, len(cs))
		}
		e = cs[i]
	}
	return e
}

// replace returns der with the element at path replaced by repl (a whole
// DER element, or nothing to delete it), the parents' lengths re-encoded.
func replace(t testing.TB, der []byte, repl []byte, path ...int) []byte {
	t.Helper()
	root := elementAt(t, der, 0)
	return append(rebuild(t, der, root, repl, path), der[root.end:]...)
}

func rebuild(t testing.TB, der []byte, e element, repl []byte, path []int) []byte {
	t.Helper()
	if len(path) == 0 {
		return repl
	}
	cs := children(t, der, e)
	i := path[0]
	if i < 0 {
		i = len(cs) + i
	}
	var contents []byte
	for j, c := range cs {
		if j == i {
			contents = append(contents, rebuild(t, der, c, repl, path[1:])...)
		} else {
			contents = append(contents, c.bytes(der)...)
		}
	}
	return encode(e.tag, contents)
}

// encode returns a DER element.
func encode(tag cbasn1.Tag, contents []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(tag, func(c *cryptobyte.Builder) { c.AddBytes(contents) })
	return b.BytesOrPanic()
}

// insertChild returns der with child appended to the element at path.
func insertChild(t testing.TB, der []byte, child []byte, path ...int) []byte {
	t.Helper()
	e := at(t, der, path...)
	return replace(t, der, encode(e.tag, append(bytes.Clone(e.contents(der)), child...)), path...)
}

// Paths inside an Authenticode ContentInfo as osslsigncode writes it.
var (
	pathCerts      = []int{1, 0, 3}
	pathSignerInfo = []int{1, 0, -1, 0}
)

// Children of a SignerInfo (osslsigncode: no subjectKeyIdentifier).
const (
	siVersion = iota
	siSID
	siDigestAlg
	siSignedAttrs
	siSigAlg
	siSignature
	siUnsigned
)

func signerInfoPath(child ...int) []int {
	return append(append([]int{}, pathSignerInfo...), child...)
}

// tableEntry is one WIN_CERTIFICATE to build a table from.
type tableEntry struct {
	revision, typ uint16
	data          []byte
}

// makeTable builds a certificate table, each entry padded to 8 bytes.
func makeTable(entries ...tableEntry) []byte {
	var out []byte
	for _, e := range entries {
		var hdr [8]byte
		binary.LittleEndian.PutUint32(hdr[0:], uint32(8+len(e.data)))
		binary.LittleEndian.PutUint16(hdr[4:], e.revision)
		binary.LittleEndian.PutUint16(hdr[6:], e.typ)
		out = append(out, hdr[:]...)
		out = append(out, e.data...)
		for len(out)%8 != 0 {
			out = append(out, 0)
		}
	}
	return out
}

// pkcs7Entry makes a revision 2.0 PKCS_SIGNED_DATA entry.
func pkcs7Entry(data []byte) tableEntry {
	return tableEntry{revision: binpe.CertRevision2_0, typ: binpe.CertTypePKCSSignedData, data: data}
}

// signedPE is a signed PE file in memory.
type signedPE struct {
	data  []byte
	pf    *binpe.File
	table []byte
}

func parseSignedPE(t testing.TB, data []byte) *signedPE {
	t.Helper()
	pf, err := binpe.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("binpe.Parse: %v", err)
	}
	if !pf.Signed() {
		t.Fatal("the file is not signed")
	}
	return &signedPE{data: data, pf: pf, table: data[pf.CertTable.Off:pf.CertTable.End()]}
}

// entries returns the table's WIN_CERTIFICATE entries.
func (s *signedPE) entries(t testing.TB) []binpe.Certificate {
	t.Helper()
	es, err := binpe.ParseCertificateTable(s.table, s.pf.CertTable.Off)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// pkcs7 returns the DER of the first entry's signature, without padding.
func (s *signedPE) pkcs7(t testing.TB) []byte {
	t.Helper()
	d := s.entries(t)[0].Data
	return bytes.Clone(d[:at(t, d).end])
}

// withTable returns the file with its certificate table replaced.
func (s *signedPE) withTable(t testing.TB, table []byte) *signedPE {
	t.Helper()
	data := append(bytes.Clone(s.data[:s.pf.CertTable.Off]), table...)
	binary.LittleEndian.PutUint32(data[s.pf.CertDirOffset+4:], uint32(len(table)))
	return parseSignedPE(t, data)
}

// withSignature returns the file with one entry holding der.
func (s *signedPE) withSignature(t testing.TB, der []byte) *signedPE {
	t.Helper()
	return s.withTable(t, makeTable(pkcs7Entry(der)))
}

// digest computes the file's Authenticode digest.
func (s *signedPE) digest(t testing.TB, h crypto.Hash) []byte {
	t.Helper()
	d, err := imageOf(s.pf).Digest(bytes.NewReader(s.data), h)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
