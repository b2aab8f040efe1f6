// Package authenticode implements Windows Authenticode for PE files: the
// image hash (the digest a PE signature signs and WDAC hash rules list,
// [Digester]) and the verification of the signatures in a PE certificate
// table ([Verify]): every WIN_CERTIFICATE entry, nested signatures at any
// depth (bounded), RFC 3161 and legacy timestamps.
//
// Verify trusts nothing in the table: it parses the PKCS#7 with a thin
// cryptobyte layer (pkcs7.go says why not a library), checks that each
// signature's digest is the file's, that its signed attributes are
// consistent and that the signer's signature verifies, and builds chains
// from the signature's certificates and the ones the caller supplies. It
// does not decide trust: which chain is acceptable is the policy's business
// (package cipolicy).
//
// # The image hash
//
// The image hash covers the whole file except three ranges: the optional
// header's CheckSum field, the certificate table data directory entry, and
// the attribute certificate table itself. The bytes are hashed in file order
// (as osslsigncode, sbsigntool and Windows do for well-formed files), which
// covers overlay data after the last section. An unsigned file is hashed as if
// padded with zeros to a multiple of 8 bytes, because a signer pads it so
// before appending the 8-byte aligned certificate table: a hash written for
// the unsigned file then still matches the signed one.
//
// # Security
//
// Every signature's problems are reported on that signature; Verify (and
// CheckTable, its structural half) fails only when the table holds anything
// but well-formed Authenticode signatures. The layout comes from
// internal/binfmt/pe, which refuses files whose
// certificate table is not at the end of the file or overlaps the image, so
// no bytes of a file that passes can be outside the digest except the three
// ranges above.
package authenticode

import (
	"crypto"
	"fmt"
	"hash"
	"io"

	"github.com/codesignval/csv/internal/binfmt/pe"
)

// Digester computes Authenticode image hashes of one PE file while its bytes
// are written to it in order, from offset 0 to the end of the file. A
// Digester is not safe for concurrent use.
type Digester struct {
	f       *pe.File
	include [3]pe.Range // hashed ranges, ascending
	pad     int64       // zero bytes hashed after the last range
	hashes  []hash.Hash
	pos     int64
}

// NewDigester returns a Digester that feeds the image bytes of f to each of
// hashes. The hashes should be fresh.
func NewDigester(f *pe.File, hashes ...hash.Hash) *Digester {
	end := f.Size
	var pad int64
	if f.Signed() {
		end = f.CertTable.Off
	} else if r := f.Size % 8; r != 0 {
		pad = 8 - r
	}
	d := &Digester{f: f, hashes: hashes, pad: pad}
	d.include[0] = pe.Range{Off: 0, Len: f.CheckSumOffset}
	d.include[1] = pe.Range{Off: f.CheckSumOffset + 4, Len: f.CertDirOffset - f.CheckSumOffset - 4}
	d.include[2] = pe.Range{Off: f.CertDirOffset + 8, Len: end - f.CertDirOffset - 8}
	return d
}

// Write hashes the part of p that the image hash covers. p holds the file's
// bytes from the current position on.
func (d *Digester) Write(p []byte) (int, error) {
	start, end := d.pos, d.pos+int64(len(p))
	if end > d.f.Size {
		return 0, fmt.Errorf("authenticode: %d bytes written past the end of the %d-byte file", end-d.f.Size, d.f.Size)
	}
	for _, r := range d.include {
		lo, hi := max(start, r.Off), min(end, r.End())
		if lo >= hi {
			continue
		}
		b := p[lo-start : hi-start]
		for _, h := range d.hashes {
			h.Write(b)
		}
	}
	d.pos = end
	return len(p), nil
}

var zeros [8]byte

// Close checks that the whole file was written and adds the padding of an
// unsigned file. Call it once, before reading the hashes' sums.
func (d *Digester) Close() error {
	if d.pos != d.f.Size {
		return fmt.Errorf("authenticode: %d of %d bytes written: %w", d.pos, d.f.Size, io.ErrUnexpectedEOF)
	}
	for _, h := range d.hashes {
		h.Write(zeros[:d.pad])
	}
	return nil
}

// Digest computes the Authenticode image hash of the PE file f, read from r,
// with hash function h. It is the simple one-shot form of [Digester].
func Digest(r io.ReaderAt, f *pe.File, h crypto.Hash) ([]byte, error) {
	if !h.Available() {
		return nil, fmt.Errorf("authenticode: hash %v is not available", h)
	}
	hh := h.New()
	d := NewDigester(f, hh)
	if _, err := io.Copy(d, io.NewSectionReader(r, 0, f.Size)); err != nil {
		return nil, fmt.Errorf("authenticode: reading image: %w", err)
	}
	if err := d.Close(); err != nil {
		return nil, err
	}
	return hh.Sum(nil), nil
}
