package facts

import (
	"encoding/base64"
	"fmt"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/limits"
)

// The record and certificate lines are decoded by hand, in one pass over
// the line's bytes: encoding/json's reflection was more than half of what
// judging a record cost (docs/performance.md). The grammar is JSON's (RFC
// 8259: https://www.rfc-editor.org/rfc/rfc8259), the values those
// encoding/json decodes into the same Go types, with these differences,
// each stricter:
//
//   - a member name must be a field's exactly: encoding/json matches names
//     case-insensitively ("Path", "PATH" and "\u017Fize" are fields there);
//   - a member may not repeat: encoding/json keeps the last;
//   - a string must be valid UTF-8: encoding/json replaces bad bytes with
//     U+FFFD (the Reader's header path refuses them too, see strict);
//   - the caps of internal/limits are applied as the bytes are scanned (a
//     string over limits.MaxFactsText, a list over its cap), where the
//     checks after decoding would refuse the record anyway.
//
// Everything else follows encoding/json (a null leaves a string, number or
// bool at its zero value and sets a list, map or pointer to nil; [] is an
// empty list, not nil; an escaped unpaired surrogate is U+FFFD; an integer
// is what strconv.ParseInt takes, so no fraction or exponent), and
// FuzzDecodeDifferential holds the two to it.

// decodeError is what is wrong with a line, and where (a byte offset).
type decodeError struct {
	off int
	msg string
}

func (e *decodeError) Error() string { return fmt.Sprintf("offset %d: %s", e.off, e.msg) }

// memberError is a member name that is no field's (repeated false) or
// that repeats one (repeated true): encoding/json's documented leniencies.
type memberError struct {
	off      int
	name     string
	repeated bool
}

func (e *memberError) Error() string {
	if e.repeated {
		return fmt.Sprintf("offset %d: field %q given twice", e.off, e.name)
	}
	return fmt.Sprintf("offset %d: unknown field %q", e.off, e.name)
}

// capError is a value past a cap of internal/limits, found while
// scanning.
type capError struct {
	off int
	msg string
}

func (e *capError) Error() string { return fmt.Sprintf("offset %d: %s", e.off, e.msg) }

// maxInterned bounds a decoder's interned strings (and their length): the
// names a build's records repeat (roots, formats, algorithms).
const (
	maxInterned    = 1024
	maxInternedLen = 256
)

// lexer reads one line. Strings without escapes are read in place (the
// line is the caller's and reused: whatever outlives the call is copied,
// or interned); escaped ones are unescaped into tmp.
type lexer struct {
	b      []byte
	i      int
	tmp    []byte
	intern map[string]string
	recent [16]string
	// wasNull: the last list or object read was null (a list is then
	// nil, not empty).
	wasNull bool
	// arena collects a record's own strings (its path, digests, problem),
	// which become substrings of one string at its end (flush): one
	// allocation for them all.
	arena   []byte
	pending []pendingString
	digest  []pendingDigest
	// digestsTo is the record's digests map, which flush makes (nil: the
	// record has none, or null); decoded are the record's digests once
	// flushed, until the next record.
	digestsTo *map[cipolicy.HashAlgorithm]string
	decoded   []digestText
	// reuse, if not nil, is an empty map flush may fill (the last
	// record's, which the caller is done with).
	reuse map[cipolicy.HashAlgorithm]string
}

type pendingString struct {
	dst      *string
	off, end int
}

type pendingDigest struct {
	a        cipolicy.HashAlgorithm
	off, end int
}

// digestText is a digest as a record holds it: its algorithm and hex.
type digestText struct {
	a cipolicy.HashAlgorithm
	v string
}

// deferText reads a string fact (as text) into the arena, for flush to
// set *dst; null leaves it "".
func (l *lexer) deferText(dst *string) error {
	if ok, err := l.null(); ok || err != nil {
		return err
	}
	s, err := l.str(limits.MaxFactsText)
	if err != nil {
		return err
	}
	off := len(l.arena)
	l.arena = append(l.arena, s...)
	l.pending = append(l.pending, pendingString{dst, off, len(l.arena)})
	return nil
}

// flush sets the strings deferText and digests read.
func (l *lexer) flush() {
	var all string
	if len(l.arena) > 0 {
		all = string(l.arena)
		for _, p := range l.pending {
			*p.dst = all[p.off:p.end]
		}
	}
	if l.digestsTo != nil {
		m := l.reuse
		if m == nil {
			m = make(map[cipolicy.HashAlgorithm]string, len(l.digest))
		}
		for _, p := range l.digest {
			v := all[p.off:p.end]
			m[p.a] = v
			l.decoded = append(l.decoded, digestText{p.a, v})
		}
		*l.digestsTo = m
	}
	l.arena, l.digestsTo = l.arena[:0], nil
	clear(l.pending)
	l.pending, l.digest = l.pending[:0], l.digest[:0]
}

// reset forgets what the last line read.
func (l *lexer) reset() {
	l.arena, l.digestsTo = l.arena[:0], nil
	clear(l.pending)
	clear(l.decoded)
	l.pending, l.digest, l.decoded = l.pending[:0], l.digest[:0], l.decoded[:0]
}

func (l *lexer) fail(format string, args ...any) error {
	return &decodeError{off: l.i, msg: fmt.Sprintf(format, args...)}
}

func (l *lexer) ws() {
	for l.i < len(l.b) {
		switch l.b[l.i] {
		case ' ', '\t', '\n', '\r':
			l.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, 0 at the end (and
// for a NUL byte, which no caller takes).
func (l *lexer) peek() byte {
	if l.i < len(l.b) && l.b[l.i] > ' ' {
		return l.b[l.i]
	}
	l.ws()
	if l.i < len(l.b) {
		return l.b[l.i]
	}
	return 0
}

// expect skips white space and consumes c.
func (l *lexer) expect(c byte) error {
	if l.peek() != c {
		return l.unexpected(fmt.Sprintf("%q", c))
	}
	l.i++
	return nil
}

func (l *lexer) unexpected(want string) error {
	if l.i >= len(l.b) {
		return l.fail("unexpected end of the line, want %s", want)
	}
	return l.fail("unexpected %q, want %s", l.b[l.i], want)
}

// null consumes a null literal if one is next.
func (l *lexer) null() (bool, error) {
	if l.peek() != 'n' {
		return false, nil
	}
	return true, l.literal("null")
}

func (l *lexer) literal(s string) error {
	if len(l.b)-l.i < len(s) || string(l.b[l.i:l.i+len(s)]) != s {
		return l.fail("invalid literal, want %s", s)
	}
	l.i += len(s)
	return nil
}

// str reads a string (white space, then '"'), of at most max bytes once
// unescaped: in place when it holds no escape, else in l.tmp; valid until
// the next call.
func (l *lexer) str(max int) ([]byte, error) {
	if l.peek() != '"' {
		return nil, l.unexpected("a string")
	}
	l.i++
	start := l.i
	b := l.b
	i := l.i
	for {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			l.i = i
			return nil, l.fail("unterminated string")
		}
		c := b[i]
		if c == '"' {
			if i-start > max {
				l.i = start
				return nil, &capError{off: start, msg: fmt.Sprintf("a string of %d bytes, over the limit of %d", i-start, max)}
			}
			l.i = i + 1
			return b[start:i], nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			l.i = i
			return nil, l.fail("control character %#x in a string", c)
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			l.i = i
			return nil, l.fail("invalid UTF-8 in a string")
		}
		i += size
	}
	// Escapes: unescape into tmp.
	t := append(l.tmp[:0], b[start:i]...)
	for {
		if len(t) > max {
			l.i = start
			return nil, &capError{off: start, msg: fmt.Sprintf("a string of more than %d bytes", max)}
		}
		if i >= len(b) {
			l.i = i
			return nil, l.fail("unterminated string")
		}
		c := b[i]
		switch {
		case c == '"':
			l.i = i + 1
			l.tmp = t
			return t, nil
		case c == '\\':
			if i+1 >= len(b) {
				l.i = i
				return nil, l.fail("unterminated string")
			}
			switch e := b[i+1]; e {
			case '"', '\\', '/':
				t = append(t, e)
				i += 2
			case 'b':
				t, i = append(t, '\b'), i+2
			case 'f':
				t, i = append(t, '\f'), i+2
			case 'n':
				t, i = append(t, '\n'), i+2
			case 'r':
				t, i = append(t, '\r'), i+2
			case 't':
				t, i = append(t, '\t'), i+2
			case 'u':
				r := hex4(b[i+2:])
				if r < 0 {
					l.i = i
					return nil, l.fail("invalid \\u escape")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					// As encoding/json: a pair is one rune; a surrogate
					// that pairs with no next escape is U+FFFD (and the
					// next escape is read on its own).
					r2 := rune(-1)
					if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
						r2 = hex4(b[i+2:])
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r, i = d, i+6
					} else {
						r = utf8.RuneError
					}
				}
				t = utf8.AppendRune(t, r)
			default:
				l.i = i
				return nil, l.fail("invalid escape \\%c", e)
			}
		case c < 0x20:
			l.i = i
			return nil, l.fail("control character %#x in a string", c)
		case c < utf8.RuneSelf:
			t, i = append(t, c), i+1
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				l.i = i
				return nil, l.fail("invalid UTF-8 in a string")
			}
			t, i = append(t, b[i:i+size]...), i+size
		}
	}
}

// plain are the bytes a string holds as they are: printable ASCII but
// for the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hex4 reads 4 hex digits, -1 if b does not start with them.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// text reads a string fact into a new string, of at most
// limits.MaxFactsText bytes; null is "".
func (l *lexer) text() (string, error) {
	if ok, err := l.null(); ok || err != nil {
		return "", err
	}
	s, err := l.str(limits.MaxFactsText)
	return string(s), err
}

// name reads a string fact that records repeat (a root, an algorithm's
// name), interned.
func (l *lexer) name() (string, error) {
	if ok, err := l.null(); ok || err != nil {
		return "", err
	}
	s, err := l.str(limits.MaxFactsText)
	if err != nil {
		return "", err
	}
	return l.interned(s), nil
}

func (l *lexer) interned(s []byte) string {
	// The last few names, by length and last byte, before the map (whose
	// hashing was most of interning's cost).
	slot := 0
	if len(s) > 0 {
		slot = (len(s) ^ int(s[len(s)-1])<<2) & (len(l.recent) - 1)
		if v := l.recent[slot]; v == string(s) {
			return v
		}
	}
	if v, ok := l.intern[string(s)]; ok {
		l.recent[slot] = v
		return v
	}
	v := string(s)
	if len(s) <= maxInternedLen {
		if l.intern == nil || len(l.intern) >= maxInterned {
			l.intern = make(map[string]string, 64)
		}
		l.intern[v] = v
		l.recent[slot] = v
	}
	return v
}

// boolean reads true, false or null (false).
func (l *lexer) boolean() (bool, error) {
	switch l.peek() {
	case 't':
		return true, l.literal("true")
	case 'f':
		return false, l.literal("false")
	case 'n':
		return false, l.literal("null")
	}
	return false, l.unexpected("a boolean")
}

// integer reads an integer (in int64's range; null is 0). A fraction or
// an exponent is refused, as encoding/json refuses them for Go integers.
func (l *lexer) integer() (int64, error) {
	c := l.peek()
	if c == 'n' {
		return 0, l.literal("null")
	}
	start := l.i
	neg := c == '-'
	if neg {
		l.i++
	}
	if l.i >= len(l.b) || l.b[l.i] < '0' || l.b[l.i] > '9' {
		return 0, l.unexpected("a number")
	}
	var u uint64
	over := false
	if l.b[l.i] == '0' {
		l.i++
	} else {
		for l.i < len(l.b) && '0' <= l.b[l.i] && l.b[l.i] <= '9' {
			d := uint64(l.b[l.i] - '0')
			if u > (1<<64-1-d)/10 {
				over = true
			} else {
				u = u*10 + d
			}
			l.i++
		}
	}
	if l.i < len(l.b) {
		switch l.b[l.i] {
		case '.', 'e', 'E':
			l.i = start
			return 0, l.fail("a number that is not an integer")
		case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return 0, l.fail("a number with a leading zero")
		}
	}
	switch {
	case over || !neg && u > 1<<63-1 || neg && u > 1<<63:
		l.i = start
		return 0, l.fail("an integer out of range")
	case neg:
		return -int64(u), nil
	}
	return int64(u), nil
}

// integers reads a list of integers (null: nil), of at most max.
func (l *lexer) integers(max int, what string) ([]int, error) {
	var out []int
	err := l.list(max, what, func() error {
		if out == nil {
			out = make([]int, 0, 4)
		}
		n, err := l.integer()
		out = append(out, int(n))
		return err
	})
	if err == nil && out == nil && !l.wasNull {
		out = []int{}
	}
	return out, err
}

// list reads an array, calling elem for each element, refusing more than
// max; null is an empty, nil list (l.wasNull set).
func (l *lexer) list(max int, what string, elem func() error) error {
	l.wasNull = false
	if ok, err := l.null(); ok || err != nil {
		l.wasNull = ok
		return err
	}
	if err := l.expect('['); err != nil {
		return err
	}
	if l.peek() == ']' {
		l.i++
		return nil
	}
	for n := 1; ; n++ {
		if n > max {
			return &capError{off: l.i, msg: fmt.Sprintf("more than %d %s", max, what)}
		}
		if err := elem(); err != nil {
			return err
		}
		switch l.peek() {
		case ',':
			l.i++
		case ']':
			l.i++
			return nil
		default:
			return l.unexpected("',' or ']'")
		}
	}
}

// object reads an object, calling member with each member's name (in
// place or in tmp: valid until the value is read). null is no object
// (l.wasNull set).
func (l *lexer) object(member func(name []byte, off int) error) error {
	l.wasNull = false
	if ok, err := l.null(); ok || err != nil {
		l.wasNull = ok
		return err
	}
	if err := l.expect('{'); err != nil {
		return err
	}
	if l.peek() == '}' {
		l.i++
		return nil
	}
	for {
		off := l.i
		k, err := l.str(limits.MaxFactsText)
		if err != nil {
			return err
		}
		if err := l.expect(':'); err != nil {
			return err
		}
		if err := member(k, off); err != nil {
			return err
		}
		switch l.peek() {
		case ',':
			l.i++
		case '}':
			l.i++
			return nil
		default:
			return l.unexpected("',' or '}'")
		}
	}
}

// fields tracks the members of one struct read so far.
type fields uint32

// see marks field f (a bit) seen, refusing a repeat.
func (s *fields) see(f fields, name []byte, off int) error {
	if *s&f != 0 {
		return &memberError{off: off, name: string(name), repeated: true}
	}
	*s |= f
	return nil
}

func unknown(name []byte, off int) error { return &memberError{off: off, name: string(name)} }

// end refuses anything but white space after the value.
func (l *lexer) end() error {
	if l.ws(); l.i < len(l.b) { // a NUL byte too, which peek returns as the end
		return l.fail("data after the JSON value")
	}
	return nil
}

// decodeRecord decodes a record line into r (zero).
func (l *lexer) decodeRecord(line []byte, r *Record) error {
	l.b, l.i = line, 0
	l.reset()
	if err := l.record(r); err != nil {
		l.reset()
		return err
	}
	if err := l.end(); err != nil {
		l.reset()
		return err
	}
	l.flush()
	return nil
}

// decodeCertificateLine decodes a certificate line.
func (l *lexer) decodeCertificateLine(line []byte, c *certificateLine) error {
	l.b, l.i = line, 0
	var seen fields
	err := l.object(func(k []byte, off int) error {
		switch string(k) {
		case "certificate":
			if err := seen.see(1, k, off); err != nil {
				return err
			}
			return l.certificatePtr(&c.Certificate)
		}
		return unknown(k, off)
	})
	if err != nil {
		return err
	}
	return l.end()
}

func (l *lexer) record(r *Record) error {
	var seen fields
	return l.object(func(k []byte, off int) error {
		var err error
		switch string(k) {
		case "root":
			if err = seen.see(1<<0, k, off); err == nil {
				r.Root, err = l.name()
			}
		case "path":
			if err = seen.see(1<<1, k, off); err == nil {
				err = l.deferText(&r.Path)
			}
		case "file_root":
			if err = seen.see(1<<2, k, off); err == nil {
				r.FileRoot, err = l.boolean()
			}
		case "skipped":
			if err = seen.see(1<<3, k, off); err == nil {
				r.Skipped, err = l.name()
			}
		case "format":
			if err = seen.see(1<<4, k, off); err == nil {
				var s string
				s, err = l.name()
				r.Format = cipolicy.Format(s)
			}
		case "size":
			if err = seen.see(1<<5, k, off); err == nil {
				r.Size, err = l.integer()
			}
		case "digests":
			if err = seen.see(1<<6, k, off); err == nil {
				err = l.digests(&r.Digests)
			}
		case "signed":
			if err = seen.see(1<<7, k, off); err == nil {
				r.Signed, err = l.boolean()
			}
		case "signatures":
			if err = seen.see(1<<8, k, off); err == nil {
				err = l.signatures(&r.Signatures)
			}
		case "certificates":
			if err = seen.see(1<<9, k, off); err == nil {
				err = l.certificates(&r.Certificates)
			}
		case "attributes":
			if err = seen.see(1<<10, k, off); err == nil {
				err = l.attributesPtr(&r.Attributes, 0)
			}
		case "relocatable":
			if err = seen.see(1<<11, k, off); err == nil {
				r.Relocatable, err = l.boolean()
			}
		case "decompressed":
			if err = seen.see(1<<12, k, off); err == nil {
				r.Decompressed, err = l.boolean()
			}
		case "catalog_lookup":
			if err = seen.see(1<<13, k, off); err == nil {
				err = l.algorithms(&r.CatalogLookup)
			}
		case "catalog_file":
			if err = seen.see(1<<14, k, off); err == nil {
				err = l.catalogFile(&r.Catalog)
			}
		case "problem":
			if err = seen.see(1<<15, k, off); err == nil {
				err = l.deferText(&r.Problem)
			}
		default:
			err = unknown(k, off)
		}
		return err
	})
}

// digests reads a record's digests: hex by algorithm, at most one per
// algorithm cipolicy knows (others are refused when checked).
func (l *lexer) digests(d *map[cipolicy.HashAlgorithm]string) error {
	err := l.object(func(k []byte, off int) error {
		a := cipolicy.HashAlgorithm(l.interned(k))
		for _, p := range l.digest {
			if p.a == a {
				return &memberError{off: off, name: string(a), repeated: true}
			}
		}
		if len(l.digest) >= len(cipolicy.HashAlgorithms) {
			return &capError{off: off, msg: fmt.Sprintf("more than %d digests", len(cipolicy.HashAlgorithms))}
		}
		if ok, err := l.null(); ok || err != nil {
			l.digest = append(l.digest, pendingDigest{a: a})
			return err
		}
		v, err := l.str(limits.MaxFactsText)
		if err != nil {
			return err
		}
		at := len(l.arena)
		l.arena = append(l.arena, v...)
		l.digest = append(l.digest, pendingDigest{a, at, len(l.arena)})
		return nil
	})
	// flush makes the map, of the right size.
	l.digestsTo, *d = nil, nil
	if err == nil && !l.wasNull {
		l.digestsTo = d
	}
	return err
}

func (l *lexer) algorithms(out *[]cipolicy.HashAlgorithm) error {
	var s []cipolicy.HashAlgorithm
	err := l.list(len(cipolicy.HashAlgorithms), "catalog_lookup digests", func() error {
		n, err := l.name()
		s = append(s, cipolicy.HashAlgorithm(n))
		return err
	})
	if err == nil && s == nil && !l.wasNull {
		s = []cipolicy.HashAlgorithm{}
	}
	*out = s
	return err
}

func (l *lexer) names(out *[]string, max int, what string) error {
	var s []string
	err := l.list(max, what, func() error {
		n, err := l.name()
		s = append(s, n)
		return err
	})
	if err == nil && s == nil && !l.wasNull {
		s = []string{}
	}
	*out = s
	return err
}

func (l *lexer) signatures(out *[]Signature) error {
	var s []Signature
	err := l.list(limits.MaxFactsSignatures, "signatures", func() error {
		s = append(s, Signature{})
		return l.signature(&s[len(s)-1])
	})
	if err == nil && s == nil && !l.wasNull {
		s = []Signature{}
	}
	*out = s
	return err
}

func (l *lexer) signature(f *Signature) error {
	var seen fields
	return l.object(func(k []byte, off int) error {
		var err error
		switch string(k) {
		case "format":
			if err = seen.see(1<<0, k, off); err == nil {
				f.Format, err = l.name()
			}
		case "index":
			if err = seen.see(1<<1, k, off); err == nil {
				var n int64
				n, err = l.integer()
				f.Index = int(n)
			}
		case "path":
			if err = seen.see(1<<2, k, off); err == nil {
				f.Path, err = l.integers(limits.MaxFactsChainDepth, "path elements")
			}
		case "verified":
			if err = seen.see(1<<3, k, off); err == nil {
				f.Verified, err = l.boolean()
			}
		case "problem":
			if err = seen.see(1<<4, k, off); err == nil {
				f.Problem, err = l.text()
			}
		case "signer_not_found":
			if err = seen.see(1<<5, k, off); err == nil {
				f.SignerNotFound, err = l.boolean()
			}
		case "digest_algorithm":
			if err = seen.see(1<<6, k, off); err == nil {
				f.DigestAlgorithm, err = l.name()
			}
		case "digest":
			if err = seen.see(1<<7, k, off); err == nil {
				f.Digest, err = l.text()
			}
		case "signer_digests":
			if err = seen.see(1<<8, k, off); err == nil {
				err = l.names(&f.SignerDigests, 8, "signer_digests")
			}
		case "signature_algorithm":
			if err = seen.see(1<<9, k, off); err == nil {
				f.SignatureAlgorithm, err = l.name()
			}
		case "chains":
			if err = seen.see(1<<10, k, off); err == nil {
				f.Chains, err = l.chains()
			}
		case "certificates":
			if err = seen.see(1<<11, k, off); err == nil {
				f.Certificates, err = l.integers(limits.MaxFactsCertificates, "certificates")
			}
		case "page_hashes":
			if err = seen.see(1<<12, k, off); err == nil {
				f.PageHashes, err = l.name()
			}
		case "timestamp":
			if err = seen.see(1<<13, k, off); err == nil {
				err = l.timestamp(&f.Timestamp)
			}
		case "ignored_by":
			if err = seen.see(1<<14, k, off); err == nil {
				err = l.ignoredBy(&f.IgnoredBy)
			}
		case "catalog":
			if err = seen.see(1<<15, k, off); err == nil {
				f.Catalog, err = l.name()
			}
		default:
			err = unknown(k, off)
		}
		return err
	})
}

func (l *lexer) chains() ([][]int, error) {
	var out [][]int
	err := l.list(limits.MaxFactsChains, "chains", func() error {
		c, err := l.integers(limits.MaxFactsChainDepth, "certificates in a chain")
		out = append(out, c)
		return err
	})
	if err == nil && out == nil && !l.wasNull {
		out = [][]int{}
	}
	return out, err
}

// ignoredBy reads the hosts that ignore a signature (at most 4, as
// checked).
func (l *lexer) ignoredBy(out *map[string]string) error {
	var m map[string]string
	err := l.object(func(k []byte, off int) error {
		if m == nil {
			m = make(map[string]string, 2)
		}
		h := l.interned(k)
		if _, ok := m[h]; ok {
			return &memberError{off: off, name: h, repeated: true}
		}
		if len(m) >= 4 {
			return &capError{off: off, msg: "more than 4 ignored_by hosts"}
		}
		v, err := l.text()
		m[h] = v
		return err
	})
	if err == nil && m == nil && !l.wasNull {
		m = map[string]string{}
	}
	*out = m
	return err
}

func (l *lexer) timestamp(out **Timestamp) error {
	var t *Timestamp
	var seen fields
	err := l.object(func(k []byte, off int) error {
		if t == nil {
			t = &Timestamp{}
		}
		var err error
		switch string(k) {
		case "kind":
			if err = seen.see(1<<0, k, off); err == nil {
				t.Kind, err = l.name()
			}
		case "time":
			if err = seen.see(1<<1, k, off); err == nil {
				err = l.time(&t.Time)
			}
		case "verified":
			if err = seen.see(1<<2, k, off); err == nil {
				t.Verified, err = l.boolean()
			}
		case "problem":
			if err = seen.see(1<<3, k, off); err == nil {
				t.Problem, err = l.text()
			}
		case "chains":
			if err = seen.see(1<<4, k, off); err == nil {
				t.Chains, err = l.chains()
			}
		default:
			err = unknown(k, off)
		}
		return err
	})
	if err == nil && t == nil && !l.wasNull {
		t = &Timestamp{}
	}
	*out = t
	return err
}

// time reads a time as encoding/json does (time.Time's UnmarshalJSON of
// the string's bytes as they are, quotes included: RFC 3339); null
// leaves it zero.
func (l *lexer) time(t *time.Time) error {
	if ok, err := l.null(); ok || err != nil {
		return err
	}
	start := l.i
	if _, err := l.str(limits.MaxFactsLine); err != nil {
		return err
	}
	if err := t.UnmarshalJSON(l.b[start:l.i]); err != nil {
		return &decodeError{off: start, msg: err.Error()}
	}
	return nil
}

// maxAlternatives caps a version resource's alternatives (as checked).
const maxAlternatives = 64

func (l *lexer) attributesPtr(out **Attributes, depth int) error {
	if ok, err := l.null(); ok || err != nil {
		*out = nil
		return err
	}
	a := &Attributes{}
	*out = a
	return l.attributes(a, depth)
}

func (l *lexer) attributes(a *Attributes, depth int) error {
	var seen fields
	return l.object(func(k []byte, off int) error {
		var err error
		switch string(k) {
		case "original_file_name":
			if err = seen.see(1<<0, k, off); err == nil {
				a.OriginalFileName, err = l.text()
			}
		case "internal_name":
			if err = seen.see(1<<1, k, off); err == nil {
				a.InternalName, err = l.text()
			}
		case "file_description":
			if err = seen.see(1<<2, k, off); err == nil {
				a.FileDescription, err = l.text()
			}
		case "product_name":
			if err = seen.see(1<<3, k, off); err == nil {
				a.ProductName, err = l.text()
			}
		case "file_version":
			if err = seen.see(1<<4, k, off); err == nil {
				a.FileVersion, err = l.text()
			}
		case "alternatives":
			if err = seen.see(1<<5, k, off); err == nil {
				max := maxAlternatives
				if depth > 0 {
					max = 0 // an alternative has none
				}
				var s []Attributes
				err = l.list(max, "alternatives", func() error {
					s = append(s, Attributes{})
					return l.attributes(&s[len(s)-1], depth+1)
				})
				if err == nil && s == nil && !l.wasNull {
					s = []Attributes{}
				}
				a.Alternatives = s
			}
		default:
			err = unknown(k, off)
		}
		return err
	})
}

func (l *lexer) catalogFile(out **CatalogFile) error {
	var c *CatalogFile
	var seen fields
	err := l.object(func(k []byte, off int) error {
		if c == nil {
			c = &CatalogFile{}
		}
		var err error
		switch string(k) {
		case "signed":
			if err = seen.see(1<<0, k, off); err == nil {
				c.Signed, err = l.boolean()
			}
		case "verified":
			if err = seen.see(1<<1, k, off); err == nil {
				c.Verified, err = l.boolean()
			}
		case "members":
			if err = seen.see(1<<2, k, off); err == nil {
				var n int64
				n, err = l.integer()
				c.Members = int(n)
			}
		case "problem":
			if err = seen.see(1<<3, k, off); err == nil {
				c.Problem, err = l.text()
			}
		default:
			err = unknown(k, off)
		}
		return err
	})
	if err == nil && c == nil && !l.wasNull {
		c = &CatalogFile{}
	}
	*out = c
	return err
}

func (l *lexer) certificates(out *[]Certificate) error {
	var s []Certificate
	err := l.list(limits.MaxFactsCertificates, "certificates", func() error {
		s = append(s, Certificate{})
		return l.certificate(&s[len(s)-1])
	})
	if err == nil && s == nil && !l.wasNull {
		s = []Certificate{}
	}
	*out = s
	return err
}

func (l *lexer) certificatePtr(out **Certificate) error {
	var c *Certificate
	if ok, err := l.null(); ok || err != nil {
		*out = nil
		return err
	}
	c = &Certificate{}
	*out = c
	return l.certificate(c)
}

func (l *lexer) certificate(c *Certificate) error {
	var seen fields
	return l.object(func(k []byte, off int) error {
		var err error
		switch string(k) {
		case "der":
			if err = seen.see(1<<0, k, off); err == nil {
				err = l.der(&c.DER)
			}
		case "tbs_hash":
			if err = seen.see(1<<1, k, off); err == nil {
				c.TBSHash, err = l.text()
			}
		case "subject":
			if err = seen.see(1<<2, k, off); err == nil {
				c.Subject, err = l.text()
			}
		case "sha256":
			if err = seen.see(1<<3, k, off); err == nil {
				c.SHA256, err = l.text()
			}
		default:
			err = unknown(k, off)
		}
		return err
	})
}

// der reads a certificate's DER, base64 (standard, padded) as
// encoding/json reads a []byte (so a line break in it is skipped), of at
// most limits.MaxFactsCertificate bytes; null is nil.
func (l *lexer) der(out *[]byte) error {
	if ok, err := l.null(); ok || err != nil {
		*out = nil
		return err
	}
	start := l.i
	s, err := l.str(limits.MaxFactsLine)
	if err != nil {
		return err
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(b, s)
	if err != nil {
		return &decodeError{off: start, msg: "der: " + err.Error()}
	}
	if n > limits.MaxFactsCertificate {
		return &capError{off: start, msg: fmt.Sprintf("a certificate of %d bytes, over the limit of %d", n, limits.MaxFactsCertificate)}
	}
	*out = b[:n]
	return nil
}
