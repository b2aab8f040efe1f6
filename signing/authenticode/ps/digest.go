package ps

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/codesignval/csv/signing"
)

// Digester computes a script's digest (see the package documentation)
// while the file's bytes are written to it in order, from offset 0 to the
// end, and checks the text it covers: its encoding, and that no line of it
// begins a signature block. A Digester is not safe for concurrent use.
type Digester struct {
	enc    Encoding
	end    int64 // the text's end (Script.Content)
	size   int64
	pos    int64
	hashes []hash.Hash
	out    []byte // UTF-16LE of UTF-8 text, before it is hashed
	outp   *[]byte

	carry    [4]byte // an incomplete UTF-8 sequence or UTF-16 unit
	nc       int
	carryOff int64
	high     bool // a UTF-16 high surrogate waits for its low one
	highOff  int64

	begin     string // the begin line, which no line of the text starts
	m         int    // its bytes the current line starts with
	lineStart bool
	line      int   // lines before the current one
	lineOff   int64 // the current line's offset
	err       *signing.MalformedError
}

// digestChunk is how much UTF-16LE is hashed at a time.
const digestChunk = 32 << 10

// outs are the Digesters' transcoding buffers, returned by Close.
var outs = sync.Pool{New: func() any { b := make([]byte, 0, digestChunk+8); return &b }}

// NewDigester returns a Digester of the script that feeds its digest to
// each of hashes, which should be fresh.
func (s *Script) NewDigester(hashes ...hash.Hash) *Digester {
	d := &Digester{enc: s.Encoding, end: s.Content, size: s.Size, hashes: hashes,
		begin: s.Syntax.beginLine(), lineStart: true}
	if d.enc != UTF16LE && len(hashes) > 0 {
		d.outp = outs.Get().(*[]byte)
		d.out = (*d.outp)[:0]
	}
	return d
}

// Write hashes the part of p that the digest covers; p holds the file's
// bytes from the current position on. It fails only when written past the
// file's end: what is wrong with the text is Err's.
func (d *Digester) Write(p []byte) (int, error) {
	start := d.pos
	if start+int64(len(p)) > d.size {
		return 0, fmt.Errorf("ps: %d bytes written past the end of the %d-byte file", start+int64(len(p))-d.size, d.size)
	}
	d.pos += int64(len(p))
	if start >= d.end || d.err != nil {
		return len(p), nil
	}
	q := p[:min(int64(len(p)), d.end-start)]
	if d.enc == UTF16LE {
		d.utf16(q, start)
	} else {
		d.utf8(q, start)
	}
	return len(p), nil
}

// Close checks that the whole file was written and ends the text's
// checks. Call it once, before reading the hashes' sums or Err.
func (d *Digester) Close() error {
	if d.pos != d.size {
		return fmt.Errorf("ps: %d of %d bytes written: %w", d.pos, d.size, io.ErrUnexpectedEOF)
	}
	switch {
	case d.err != nil:
	case d.nc > 0 && d.enc == UTF16LE:
		d.fail(d.carryOff, "the text ends inside a UTF-16 code unit")
	case d.nc > 0:
		d.fail(d.carryOff, "the text ends inside a UTF-8 sequence")
	case d.high:
		d.fail(d.highOff, "an unpaired UTF-16 surrogate")
	}
	d.flush()
	if d.outp != nil {
		outs.Put(d.outp)
		d.outp, d.out = nil, nil
	}
	return nil
}

// Err is what is wrong with the text (a *signing.MalformedError), or nil.
// The digest of a script with an error is not its SIP hash.
func (d *Digester) Err() error {
	if d.err == nil {
		return nil
	}
	return d.err
}

func (d *Digester) fail(off int64, format string, args ...any) {
	if d.err == nil {
		d.err = malformed(off, format, args...)
	}
}

func (d *Digester) flush() {
	if len(d.out) == 0 {
		return
	}
	for _, h := range d.hashes {
		h.Write(d.out)
	}
	d.out = d.out[:0]
}

// unit scans one code unit u at off (next is the next unit's offset) for
// a line that begins a signature block.
func (d *Digester) unit(u rune, off, next int64) {
	if u == '\n' {
		d.lineStart, d.m, d.lineOff = true, 0, next
		d.line++
		return
	}
	if !d.lineStart || (u == 0xfeff && off == 0) {
		// The byte order mark is no text: the line after it is the
		// script's first, as PowerShell reads it.
		return
	}
	if u < 0x80 && byte(u) == d.begin[d.m] {
		if d.m++; d.m == len(d.begin) {
			d.found()
			d.lineStart = false
		}
		return
	}
	d.lineStart = false
}

// found reports the current line, which begins a signature block.
func (d *Digester) found() {
	d.fail(d.lineOff, "line %d begins a signature block that does not end the file "+
		"(a truncated block, text after its end line, or a second block): no signature covers what follows it", d.line+1)
}

func (d *Digester) utf16(p []byte, start int64) {
	for _, h := range d.hashes {
		h.Write(p)
	}
	i := 0
	if d.nc == 1 && len(p) > 0 {
		d.unit16(uint16(d.carry[0])|uint16(p[0])<<8, start-1)
		d.nc, i = 0, 1
	}
	for ; i+1 < len(p); i += 2 {
		u := uint16(p[i]) | uint16(p[i+1])<<8
		if u != '\n' && !d.lineStart && !d.high && (u < 0xd800 || u >= 0xe000) {
			continue // the common case: nothing to check
		}
		d.unit16(u, start+int64(i))
	}
	if i < len(p) {
		d.carry[0], d.nc, d.carryOff = p[i], 1, start+int64(i)
	}
}

func (d *Digester) unit16(u uint16, off int64) {
	switch {
	case d.high && utf16.IsSurrogate(rune(u)) && u >= 0xdc00:
		d.high = false
	case d.high:
		d.fail(d.highOff, "an unpaired UTF-16 surrogate")
		return
	case u >= 0xd800 && u < 0xdc00:
		d.high, d.highOff = true, off
	case u >= 0xdc00 && u < 0xe000:
		d.fail(off, "an unpaired UTF-16 surrogate")
		return
	}
	d.unit(rune(u), off, off+2)
}

func (d *Digester) utf8(p []byte, start int64) {
	i := 0
	if d.nc > 0 {
		// Complete the sequence the last write ended in.
		for d.nc < len(d.carry) && i < len(p) && !utf8.FullRune(d.carry[:d.nc]) {
			d.carry[d.nc] = p[i]
			d.nc++
			i++
		}
		if !utf8.FullRune(d.carry[:d.nc]) {
			return
		}
		r, n := utf8.DecodeRune(d.carry[:d.nc])
		if r == utf8.RuneError && n <= 1 {
			d.fail(d.carryOff, "invalid UTF-8")
			return
		}
		// The sequence may have taken bytes it does not hold back.
		i -= d.nc - n
		d.nc = 0
		d.rune(r, d.carryOff, d.carryOff+int64(n))
	}
	for i < len(p) && d.err == nil {
		if j := i + asciiRun(p[i:]); j > i {
			if d.enc == UTF8 {
				if k := bytes.IndexByte(p[i:j], 0); k >= 0 {
					d.fail(start+int64(i+k), "a NUL byte, and the script has no byte order mark: it may be UTF-16 without one, which Windows may read as such "+
						"(csv reads it as ASCII); save it as UTF-8 with a byte order mark or as UTF-16LE")
					return
				}
			}
			d.ascii(p[i:j], start+int64(i))
			i = j
			continue
		}
		b := p[i]
		if d.enc == UTF8 {
			d.fail(start+int64(i), "byte %#02x is not ASCII, and the script has no byte order mark: csv cannot establish the digest Windows computes "+
				"(Windows PowerShell reads such a file in the system's ANSI code page, osslsigncode as UTF-8); save it as UTF-8 with a byte order mark or as UTF-16LE", b)
			return
		}
		if !utf8.FullRune(p[i:]) {
			d.nc = copy(d.carry[:], p[i:])
			d.carryOff = start + int64(i)
			return
		}
		r, n := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && n <= 1 {
			d.fail(start+int64(i), "invalid UTF-8")
			return
		}
		d.rune(r, start+int64(i), start+int64(i+n))
		i += n
	}
}

// asciiRun returns the length of the run of ASCII bytes p starts with.
func asciiRun(p []byte) int {
	i := 0
	for ; i+8 <= len(p); i += 8 {
		if binary.LittleEndian.Uint64(p[i:])&0x8080808080808080 != 0 {
			break
		}
	}
	for ; i < len(p) && p[i] < 0x80; i++ {
	}
	return i
}

// ascii scans and hashes a run of ASCII text at off.
func (d *Digester) ascii(p []byte, off int64) {
	d.scanASCII(p, off)
	if d.out == nil {
		return
	}
	for len(p) > 0 {
		n := min(len(p), (digestChunk-len(d.out))/2)
		if n <= 0 {
			d.flush()
			continue
		}
		o := d.out[len(d.out) : len(d.out)+2*n]
		q := p[:n]
		k := 0
		for ; k+8 <= len(q); k += 8 {
			w := binary.LittleEndian.Uint64(q[k:])
			binary.LittleEndian.PutUint64(o[2*k:], spread(w&0xffffffff))
			binary.LittleEndian.PutUint64(o[2*k+8:], spread(w>>32))
		}
		for ; k < len(q); k++ {
			o[2*k], o[2*k+1] = q[k], 0
		}
		d.out = d.out[:len(d.out)+2*n]
		p = p[n:]
		if len(d.out) >= digestChunk {
			d.flush()
		}
	}
}

// spread widens the four bytes of x to four 16-bit little-endian units.
func spread(x uint64) uint64 {
	x = (x | x<<16) & 0x0000ffff0000ffff
	return (x | x<<8) & 0x00ff00ff00ff00ff
}

// scanASCII looks for a line of ASCII text p (at off) that begins a
// signature block, jumping from line break to line break.
func (d *Digester) scanASCII(p []byte, off int64) {
	for len(p) > 0 && d.err == nil {
		if d.lineStart {
			k := 0
			for k < len(p) && p[k] == d.begin[d.m] {
				k++
				if d.m++; d.m == len(d.begin) {
					d.found()
					break
				}
			}
			if d.m == len(d.begin) || k < len(p) {
				d.lineStart = false
			}
			if d.err != nil || k == len(p) {
				return
			}
			p, off = p[k:], off+int64(k)
		}
		nl := bytes.IndexByte(p, '\n')
		if nl < 0 {
			return
		}
		d.lineStart, d.m, d.lineOff = true, 0, off+int64(nl)+1
		d.line++
		p, off = p[nl+1:], off+int64(nl)+1
	}
}

// rune hashes a non-ASCII rune of UTF-8 text as UTF-16LE.
func (d *Digester) rune(r rune, off, next int64) {
	d.unit(r, off, next)
	if d.out == nil {
		return
	}
	if r >= 0x10000 {
		a, b := utf16.EncodeRune(r)
		d.out = append(d.out, byte(a), byte(a>>8), byte(b), byte(b>>8))
	} else {
		d.out = append(d.out, byte(r), byte(r>>8))
	}
	if len(d.out) >= digestChunk {
		d.flush()
	}
}

// Digest computes the digest of the script s lays out, read from r, with
// hash function h: the one-shot form of [Digester]. A script whose text
// csv does not accept is an error.
func (s *Script) Digest(r io.ReaderAt, h crypto.Hash) ([]byte, error) {
	if !h.Available() {
		return nil, fmt.Errorf("ps: hash %v is not available", h)
	}
	hh := h.New()
	d := s.NewDigester(hh)
	if _, err := io.Copy(d, io.NewSectionReader(r, 0, s.Size)); err != nil {
		return nil, fmt.Errorf("ps: reading the script: %w", err)
	}
	if err := d.Close(); err != nil {
		return nil, err
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return hh.Sum(nil), nil
}
