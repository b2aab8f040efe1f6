package ps

import (
	"crypto"
	"fmt"
	"hash"
	"io"
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

// NewDigester returns a Digester of the script that feeds its digest to
// each of hashes, which should be fresh.
func (s *Script) NewDigester(hashes ...hash.Hash) *Digester {
	d := &Digester{enc: s.Encoding, end: s.Content, size: s.Size, hashes: hashes,
		begin: s.Syntax.beginLine(), lineStart: true}
	if d.enc != UTF16LE && len(hashes) > 0 {
		d.out = make([]byte, 0, digestChunk+8)
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
	if !d.lineStart {
		return
	}
	if u < 0x80 && byte(u) == d.begin[d.m] {
		if d.m++; d.m == len(d.begin) {
			d.fail(d.lineOff, "line %d begins a signature block that does not end the file "+
				"(a truncated block, text after its end line, or a second block): no signature covers what follows it", d.line+1)
			d.lineStart = false
		}
		return
	}
	d.lineStart = false
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
		d.unit16(uint16(p[i])|uint16(p[i+1])<<8, start+int64(i))
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
		b := p[i]
		if b < 0x80 {
			d.unit(rune(b), start+int64(i), start+int64(i)+1)
			if d.out != nil {
				d.out = append(d.out, b, 0)
				if len(d.out) >= digestChunk {
					d.flush()
				}
			}
			i++
			continue
		}
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
