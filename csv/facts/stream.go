package facts

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/internal/safefile"
)

// ErrMalformed is wrapped by every error about a facts file's content.
var ErrMalformed = errors.New("facts: malformed facts file")

// ParseError says where a facts file is malformed: its name, the line
// (from 1) and what is wrong there.
type ParseError struct {
	File string
	Line int
	Err  error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("facts: %s:%d: %v", e.File, e.Line, e.Err)
}

// Unwrap returns ErrMalformed and the cause.
func (e *ParseError) Unwrap() []error { return []error{ErrMalformed, e.Err} }

// Writer writes a facts file: the header, then one record per Write.
type Writer struct {
	bw *bufio.Writer
	gz *gzip.Writer
	n  int
	// written are the certificates a certificate line defined.
	written map[[32]byte]bool
}

// WriterOptions configure NewWriter. The zero value writes plain JSON
// Lines.
type WriterOptions struct {
	// Gzip compresses the file (gzip level 1: facts files of a build
	// repeat the same chains, which compress some 10 to 30 times).
	Gzip bool
}

// NewWriter writes h (its Format set to Version) to w and returns the
// Writer of the records. Close flushes it; it does not close w.
func NewWriter(w io.Writer, h Header, opts WriterOptions) (*Writer, error) {
	fw := &Writer{}
	if opts.Gzip {
		fw.gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed) // a valid level
		w = fw.gz
	}
	fw.bw = bufio.NewWriterSize(w, 64<<10)
	h.Format = Version
	if h.Origin == "" {
		return nil, errors.New("facts: a header needs an origin")
	}
	if err := fw.line(h); err != nil {
		return nil, err
	}
	return fw, nil
}

func (w *Writer) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) >= limits.MaxFactsLine {
		return fmt.Errorf("facts: a line of %d bytes, over the limit of %d", len(b), limits.MaxFactsLine)
	}
	b = append(b, '\n')
	_, err = w.bw.Write(b)
	return err
}

// Write writes one record. A certificate it holds in full is written
// once, on a certificate line before the first record that holds it, and
// named by its SHA-256 fingerprint in every record (past
// limits.MaxFactsFileCertificates distinct ones, in full).
func (w *Writer) Write(r *Record) error {
	if w.n >= limits.MaxFactsRecords {
		return fmt.Errorf("facts: more than %d records", limits.MaxFactsRecords)
	}
	w.n++
	if len(r.Certificates) > 0 {
		rc := *r
		rc.Certificates = make([]Certificate, len(r.Certificates))
		for i, c := range r.Certificates {
			rc.Certificates[i] = c
			if c.DER == nil {
				continue
			}
			fp := sha256.Sum256(c.DER)
			if !w.written[fp] {
				if len(w.written) >= limits.MaxFactsFileCertificates {
					continue
				}
				if w.written == nil {
					w.written = map[[32]byte]bool{}
				}
				def := c
				if err := w.line(certificateLine{Certificate: &def}); err != nil {
					return err
				}
				w.written[fp] = true
			}
			rc.Certificates[i] = Certificate{SHA256: hex.EncodeToString(fp[:])}
		}
		r = &rc
	}
	return w.line(r)
}

// Close flushes the records (and ends the gzip stream).
func (w *Writer) Close() error {
	if err := w.bw.Flush(); err != nil {
		return err
	}
	if w.gz != nil {
		return w.gz.Close()
	}
	return nil
}

// Reader reads a facts file's records, one at a time: memory does not
// grow with their number.
type Reader struct {
	// Header is the file's header.
	Header Header
	name   string
	br     *bufio.Reader
	gz     *gzip.Reader
	line   int
	n      int
	dec    *Decoder
	buf    []byte
	// certs are the certificates the certificate lines defined.
	certs *certTable
	// certLines counts the certificate lines; cache parses their DER.
	certLines int
	cache     certCache
	lex       lexer
}

// NewReader reads the header of the facts file r, named name in errors.
// A gzip-compressed file is told by its magic bytes; it may decompress to
// limits.MaxFactsDecompressed bytes.
func NewReader(r io.Reader, name string) (rd *Reader, err error) {
	return newReader(r, name, limits.MaxFactsDecompressed)
}

func newReader(r io.Reader, name string, maxDecompressed int64) (rd *Reader, err error) {
	rd = &Reader{name: name, br: bufio.NewReaderSize(r, 64<<10), certs: &certTable{m: map[[32]byte]definedCert{}}}
	defer func() {
		if p := recover(); p != nil {
			rd, err = nil, rd.errorf("internal error while parsing (please report it): %w", panicerr.New(p))
		}
	}()
	if magic, _ := rd.br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(rd.br)
		if err != nil {
			return nil, &ParseError{File: name, Line: 0, Err: err}
		}
		rd.gz = gz
		rd.br = bufio.NewReaderSize(&capReader{r: gz, n: maxDecompressed}, 64<<10)
	}
	b, err := rd.next()
	if err == io.EOF {
		return nil, rd.errorf("empty: no header")
	}
	if err != nil {
		return nil, err
	}
	if err := strict(b, &rd.Header); err != nil {
		return nil, rd.errorf("header: %w", err)
	}
	switch {
	case rd.Header.Format != Version:
		return nil, rd.errorf("header: format %q: want %q", rd.Header.Format, Version)
	case rd.Header.Origin == "":
		return nil, rd.errorf("header: no origin")
	}
	for _, t := range []struct{ name, v string }{{"origin", rd.Header.Origin}, {"tool", rd.Header.Tool}} {
		if err := checkText("header "+t.name, t.v); err != nil {
			return nil, rd.errorf("%w", err)
		}
	}
	return rd, nil
}

// capReader reads r until n bytes have been read, then fails.
type capReader struct {
	r io.Reader
	n int64
	// max is the cap, for the error.
	max int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.max == 0 {
		c.max = c.n
	}
	if c.n <= 0 {
		var one [1]byte
		if k, err := c.r.Read(one[:]); k == 0 && err != nil {
			return 0, err // the end, at the cap
		}
		return 0, fmt.Errorf("decompresses to more than %d bytes, the limit", c.max)
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	k, err := c.r.Read(p)
	c.n -= int64(k)
	return k, err
}

// Entry is one record and its facts, checked.
type Entry struct {
	// Line is the record's line in the file (from 1).
	Line   int
	Record *Record
	// Subject is the record's facts as cipolicy takes them (empty for a
	// skipped record).
	Subject *Subject
}

// Next returns the next record, or io.EOF after the last one.
func (rd *Reader) Next() (*Entry, error) {
	line, n, err := rd.Line()
	if err != nil {
		return nil, err
	}
	if rd.dec == nil {
		rd.dec = rd.Decoder()
	}
	return rd.dec.Decode(line, n)
}

// Line returns the next record's line, unparsed (the caller's to keep),
// and its number, or io.EOF after the last one: a caller that decodes
// records in parallel reads lines in order here and decodes each with a
// Decoder of its goroutine.
func (rd *Reader) Line() (line []byte, n int, err error) {
	line, n, err = rd.AppendLine(nil)
	return line, n, err
}

// AppendLine is Line, appending the line to dst (which it returns; the
// line is what follows dst's length): a caller may keep a batch of lines
// in one buffer.
func (rd *Reader) AppendLine(dst []byte) (out []byte, n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = dst, rd.errorf("internal error while reading (please report it): %w", panicerr.New(p))
		}
	}()
	start := len(dst)
	out, err = rd.appendNext(dst)
	for err == nil && bytes.HasPrefix(out[start:], certificatePrefix) {
		if err := rd.define(out[start:]); err != nil {
			return dst, 0, err
		}
		out, err = rd.appendNext(out[:start])
	}
	if err != nil {
		return dst, 0, err
	}
	if rd.n++; rd.n > limits.MaxFactsRecords {
		return dst, 0, rd.errorf("more than %d records", limits.MaxFactsRecords)
	}
	return out, rd.line, nil
}

// certificatePrefix starts a certificate line (as Writer writes it; a
// record's first field is its root).
var certificatePrefix = []byte(`{"certificate":`)

// define reads a certificate line.
func (rd *Reader) define(b []byte) error {
	var l certificateLine
	if err := rd.lex.decodeCertificateLine(b, &l); err != nil {
		return rd.errorf("%w", err)
	}
	if l.Certificate == nil || l.Certificate.SHA256 != "" {
		return rd.errorf("a certificate line without the certificate in full")
	}
	if rd.certLines++; rd.certLines > limits.MaxFactsFileCertificates {
		return rd.errorf("more than %d certificate lines", limits.MaxFactsFileCertificates)
	}
	if rd.cache == nil {
		rd.cache = certCache{}
	}
	// A certificate line repeated is parsed once (the cache), and still
	// checked against its tbs_hash and subject.
	c, err := l.Certificate.resolve(rd.cache, certRefs{rd.certs, rd.line})
	if err != nil {
		return rd.errorf("certificate: %w", err)
	}
	if err := rd.certs.add(c, rd.line); err != nil {
		return rd.errorf("%w", err)
	}
	return nil
}

// Decoder decodes the record lines of one facts file (Reader.Line). It
// keeps the certificates it parsed (a bounded number): use one per
// goroutine.
type Decoder struct {
	name  string
	cache certCache
	certs *certTable
	lex   lexer
	// own is DecodeTransient's entry.
	own *entryAlloc
}

// Decoder returns a Decoder of rd's records.
func (rd *Reader) Decoder() *Decoder {
	return &Decoder{name: rd.name, cache: certCache{}, certs: rd.certs}
}

// Decode parses and checks the record on line n.
func (d *Decoder) Decode(line []byte, n int) (e *Entry, err error) {
	return d.decode(line, n, new(entryAlloc))
}

// DecodeTransient is Decode into the Decoder's own entry, which the next
// call overwrites: for a caller that takes from it what it keeps (a
// string, a pointer: those are the record's own), and no digest's bytes
// (Subject.Digests), which it copies. It saves a record's allocations
// (csv's judge).
func (d *Decoder) DecodeTransient(line []byte, n int) (*Entry, error) {
	if d.own == nil {
		d.own = new(entryAlloc)
	}
	m := d.own.r.Digests
	*d.own = entryAlloc{}
	if m != nil {
		clear(m)
		d.lex.reuse = m
	}
	return d.decode(line, n, d.own)
}

// entryAlloc is an Entry, its record and its facts, in one allocation.
type entryAlloc struct {
	e Entry
	r Record
	s Subject
}

func (d *Decoder) decode(line []byte, n int, a *entryAlloc) (e *Entry, err error) {
	errorf := func(format string, args ...any) error {
		return &ParseError{File: d.name, Line: n, Err: fmt.Errorf(format, args...)}
	}
	defer func() {
		d.lex.reuse = nil
		if p := recover(); p != nil {
			e, err = nil, errorf("internal error while parsing (please report it): %w", panicerr.New(p))
		}
	}()
	if err := d.lex.decodeRecord(line, &a.r); err != nil {
		return nil, errorf("%w", err)
	}
	if err := a.r.fill(&a.s, d.cache, certRefs{d.certs, n}, d.lex.decoded); err != nil {
		return nil, errorf("%q: %w", a.r.Path, err)
	}
	a.e = Entry{Line: n, Record: &a.r, Subject: &a.s}
	return &a.e, nil
}

// next returns the next line, without its newline; io.EOF at the end.
func (rd *Reader) next() ([]byte, error) {
	b, err := rd.appendNext(rd.buf[:0])
	rd.buf = b[:0]
	return b, err
}

// appendNext appends the next line to dst, without its newline (nor a
// carriage return before it); io.EOF at the end.
func (rd *Reader) appendNext(dst []byte) ([]byte, error) {
	start := len(dst)
	for {
		chunk, err := rd.br.ReadSlice('\n')
		if len(dst)-start+len(chunk) > limits.MaxFactsLine {
			rd.line++
			return dst[:start], rd.errorf("a line over the limit of %d bytes", limits.MaxFactsLine)
		}
		dst = append(dst, chunk...)
		switch {
		case err == nil:
			rd.line++
			end := len(dst) - 1
			if end > start && dst[end-1] == '\r' {
				end--
			}
			return dst[:end], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			if len(dst) > start {
				rd.line++
				return dst[:start], rd.errorf("the last line does not end with a newline: the file is truncated")
			}
			return dst, io.EOF
		default:
			return dst[:start], &ParseError{File: rd.name, Line: rd.line + 1, Err: err}
		}
	}
}

func (rd *Reader) errorf(format string, args ...any) error {
	return &ParseError{File: rd.name, Line: rd.line, Err: fmt.Errorf(format, args...)}
}

// strict decodes one JSON value from b into v with encoding/json,
// refusing unknown fields, invalid UTF-8 and anything after the value:
// the header's decoder, and the reference the hand-written decoder of
// the other lines is tested against (decode.go).
func strict(b []byte, v any) error {
	if !utf8.Valid(b) {
		return errors.New("invalid UTF-8")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("data after the JSON value")
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// NewHeader returns a header for facts recorded at origin by tool, at
// created.
func NewHeader(origin, tool string, created time.Time) Header {
	return Header{Format: Version, Origin: origin, Tool: tool, Created: created.UTC()}
}

// IsFactsFile reports whether the regular file at path is a facts file:
// its first line (gzip-compressed or not) starts as a header does
// ({"format":"csv-facts/). A directory or another kind of file is not;
// an error is one opening or reading it.
func IsFactsFile(path string) (bool, error) {
	f, st, err := safefile.Open(path, safefile.Options{})
	if errors.Is(err, safefile.ErrNotRegular) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	if st.Size() < 2 {
		return false, nil
	}
	var r io.Reader = bufio.NewReader(f)
	br := r.(*bufio.Reader)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return false, nil
		}
		r = gz
	}
	head := make([]byte, len(factsPrefix))
	if _, err := io.ReadFull(r, head); err != nil {
		return false, nil
	}
	return bytes.Equal(head, factsPrefix), nil
}

// factsPrefix starts every facts file (Writer writes the header's format
// first).
var factsPrefix = []byte(`{"format":"csv-facts/`)

// Name is the facts file's name, as errors give it.
func (rd *Reader) Name() string { return rd.name }
