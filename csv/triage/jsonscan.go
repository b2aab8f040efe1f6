package triage

import (
	"errors"
	"fmt"
	"hash/maphash"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/codesignval/csv/internal/limits"
)

// jsonScanner reads JSON (RFC 8259, https://www.rfc-editor.org/rfc/rfc8259)
// from an export already in memory, one value at a time, without building
// a tree: encoding/json's Decode of one event materialized every member,
// property and byte as Go values (maps, slices of RawMessage, Numbers),
// about 100 times the event's size, before a cap could be checked. Here
// the only values kept are the fields triage reads, each checked against
// its cap while it is decoded, and, while an event is checked, the member
// names of the objects open at that moment (at most
// limits.MaxEventJSONDepth objects of limits.MaxEventFields names of 256
// bytes). Memory per event is so bounded by the caps, whatever its size.
//
// Two kinds of error: a *jsonSyntaxError (the text is not JSON: the rest
// of the export cannot be read) and any other (the event is JSON but
// cannot be triaged: the scanner is past it, and the next event reads).
type jsonScanner struct {
	b []byte
	i int
}

// jsonSyntaxError is text that is not JSON, or JSON nested deeper than
// the cap (which the scanner cannot skip without a stack): the export
// cannot be read past it.
type jsonSyntaxError struct {
	off int
	msg string
}

func (e *jsonSyntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.off) }

func (s *jsonScanner) syntax(format string, args ...any) error {
	if s.i >= len(s.b) {
		return &jsonSyntaxError{off: s.i, msg: "unexpected end of JSON (truncated?)"}
	}
	return &jsonSyntaxError{off: s.i, msg: fmt.Sprintf(format, args...)}
}

func isSyntax(err error) bool {
	var se *jsonSyntaxError
	return errors.As(err, &se)
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, 0 at the end. A NUL byte
// is 0 too: where the end matters, test s.i against len(s.b).
func (s *jsonScanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *jsonScanner) expect(c byte) error {
	if s.peek() != c {
		return s.syntax("expected %q", c)
	}
	s.i++
	return nil
}

// errUnpaired: JSON allows a \uD800 escape with no partner (RFC 8259
// section 8.2), which is no character: encoding/json turns it into
// U+FFFD, so that a file name \x\ud800.exe would read as another name
// ("\x\uFFFD.exe") without a word. Refused instead: no stand-in can be
// told apart from a real name.
var errUnpaired = errors.New("an unpaired UTF-16 surrogate escape (a name Windows allows but no text can show as it is): refused")

// str reads a string at s.i (which must be '"'), appending its value to
// dst while it stays within max bytes (max < 0: nothing is kept). A
// string over max, or with an unpaired surrogate escape, is read to its
// end and then reported (not a syntax error).
func (s *jsonScanner) str(dst []byte, max int) ([]byte, error) {
	if s.peek() != '"' {
		return dst, s.syntax("expected a string")
	}
	s.i++
	keep := max >= 0
	start := len(dst)
	var sem error
	add := func(p []byte) {
		if !keep {
			return
		}
		if len(dst)-start+len(p) > max {
			keep = false
			dst = dst[:start]
			if sem == nil {
				sem = fmt.Errorf("a string over the limit of %d bytes", max)
			}
			return
		}
		dst = append(dst, p...)
	}
	var buf [utf8.UTFMax]byte
	for {
		// A run of plain bytes (the export is valid UTF-8: decodeText).
		j := s.i
		for j < len(s.b) && s.b[j] != '"' && s.b[j] != '\\' && s.b[j] >= 0x20 {
			j++
		}
		add(s.b[s.i:j])
		s.i = j
		if s.i >= len(s.b) {
			return dst, s.syntax("")
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return dst, sem
		case c < 0x20:
			return dst, s.syntax("a control character in a string")
		}
		// An escape.
		if s.i+1 >= len(s.b) {
			s.i = len(s.b)
			return dst, s.syntax("")
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			add([]byte{e})
		case 'b':
			add([]byte{'\b'})
		case 'f':
			add([]byte{'\f'})
		case 'n':
			add([]byte{'\n'})
		case 'r':
			add([]byte{'\r'})
		case 't':
			add([]byte{'\t'})
		case 'u':
			r, err := s.hex4()
			if err != nil {
				return dst, err
			}
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if r < 0xdc00 && s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					save := s.i
					s.i += 2
					lo, err := s.hex4()
					if err != nil {
						return dst, err
					}
					r2 = utf16.DecodeRune(r, lo)
					if r2 == utf8.RuneError {
						s.i = save // the next escape is read on its own
					}
				}
				if r2 == utf8.RuneError {
					if sem == nil {
						sem = errUnpaired
					}
					keep = false
					continue
				}
				r = r2
			}
			add(buf[:utf8.EncodeRune(buf[:], r)])
		default:
			s.i -= 2
			return dst, s.syntax("an invalid escape in a string")
		}
	}
}

func (s *jsonScanner) hex4() (rune, error) {
	if s.i+4 > len(s.b) {
		s.i = len(s.b)
		return 0, s.syntax("")
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, s.syntax(`a \u escape that is not 4 hex digits`)
		}
	}
	s.i += 4
	return r, nil
}

// number reads a number (RFC 8259 section 6) and returns its text.
func (s *jsonScanner) number() ([]byte, error) {
	s.ws()
	start := s.i
	digits := func() int {
		n := 0
		for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case digits() == 0:
		return nil, s.syntax("invalid value")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return nil, s.syntax("a number with no digits after its point")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return nil, s.syntax("a number with no digits in its exponent")
		}
	}
	return s.b[start:s.i], nil
}

func (s *jsonScanner) literal(word string) error {
	s.ws()
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return s.syntax("invalid value")
	}
	s.i += len(word)
	return nil
}

// maxJSONKey caps the bytes of a member name: Get-WinEvent's are short,
// and the field names of EventData are capped at 256 bytes too.
const maxJSONKey = 256

// check reads one value of any kind, checking that it is JSON (a syntax
// error), that no object in it names a member twice, has more than
// limits.MaxEventFields members or a name over 256 bytes, and that no
// string in it holds an unpaired surrogate escape. Such an error is
// returned once the whole value is read, so that the scanner is past it.
// Objects nested more than limits.MaxEventJSONDepth deep are a syntax
// error: skipping them would take a stack as deep.
//
// Duplicate names are refused at every depth: encoding/json keeps the
// last, another reader of the same export (a SIEM) may keep the first,
// and the two would triage different events.
func (s *jsonScanner) check() error {
	type frame struct {
		obj  bool
		keys map[uint64]struct{}
		n    int
	}
	var stack []frame
	// The names of an open object are kept as hashes (maphash, with a
	// seed of this run: a collision, which refuses the event, is as
	// likely as guessing it), in a map per depth reused from object to
	// object: checking a million small objects allocates nothing.
	var pool []map[uint64]struct{}
	seed := maphash.MakeSeed()
	var sem error
	var key []byte
	fail := func(err error) {
		if sem == nil {
			sem = err
		}
	}
	wantMember := false
	for {
		if wantMember {
			top := &stack[len(stack)-1]
			var err error
			key, err = s.str(key[:0], maxJSONKey)
			if err != nil {
				if isSyntax(err) {
					return err
				}
				fail(fmt.Errorf("a member name: %w", err))
			}
			if err := s.expect(':'); err != nil {
				return err
			}
			if sem == nil {
				top.n++
				h := maphash.Bytes(seed, key)
				if _, dup := top.keys[h]; dup {
					fail(fmt.Errorf("member %q given twice", truncate(string(key), 40)))
				} else if top.n > limits.MaxEventFields {
					fail(fmt.Errorf("an object of more than %d members", limits.MaxEventFields))
				} else {
					top.keys[h] = struct{}{}
				}
			}
		}
		// A value.
		switch c := s.peek(); c {
		case '{', '[':
			if len(stack) >= limits.MaxEventJSONDepth {
				return s.syntax("JSON nested more than %d deep (limits.MaxEventJSONDepth)", limits.MaxEventJSONDepth)
			}
			s.i++
			f := frame{obj: c == '{'}
			end := byte(']')
			if f.obj {
				d := len(stack)
				for len(pool) <= d {
					pool = append(pool, nil)
				}
				if pool[d] == nil {
					pool[d] = map[uint64]struct{}{}
				}
				f.keys = pool[d]
				clear(f.keys)
				end = '}'
			}
			if s.peek() != end {
				stack = append(stack, f)
				wantMember = f.obj
				continue
			}
			s.i++ // empty
		case '"':
			if _, err := s.str(nil, -1); err != nil {
				if isSyntax(err) {
					return err
				}
				fail(err)
			}
		case 't':
			if err := s.literal("true"); err != nil {
				return err
			}
		case 'f':
			if err := s.literal("false"); err != nil {
				return err
			}
		case 'n':
			if err := s.literal("null"); err != nil {
				return err
			}
		default:
			if _, err := s.number(); err != nil {
				return err
			}
		}
		// After a value: the ends of the containers it closes, then
		// the next element or member.
		for {
			if len(stack) == 0 {
				return sem
			}
			top := &stack[len(stack)-1]
			end := byte(']')
			if top.obj {
				end = '}'
			}
			c := s.peek()
			if c == end {
				s.i++
				stack = stack[:len(stack)-1]
				continue
			}
			if c != ',' {
				return s.syntax("expected ',' or %q", end)
			}
			s.i++
			wantMember = top.obj
			break
		}
	}
}

// skip reads past one value that check accepted.
func (s *jsonScanner) skip() error { return s.check() }

// scalar reads the value of a field as text, at most max bytes: strings
// as they are, numbers as written, booleans, null as "", an array of
// bytes (Windows PowerShell's byte[]) as upper-case hex.
func (s *jsonScanner) scalar(max int) (string, error) {
	switch c := s.peek(); c {
	case '"':
		b, err := s.str(nil, max)
		return string(b), err
	case 'n':
		return "", s.literal("null")
	case 't':
		return "true", s.literal("true")
	case 'f':
		return "false", s.literal("false")
	case '{':
		if err := s.skip(); err != nil {
			return "", err
		}
		return "", errors.New("an object where a value was expected (ConvertTo-Json at another -Depth?)")
	case '[':
		open := s.i
		s.i++
		var out []byte
		bad := func(err error) (string, error) {
			s.i = open
			if serr := s.skip(); serr != nil {
				return "", serr
			}
			return "", err
		}
		const digits = "0123456789ABCDEF"
		if s.peek() == ']' {
			s.i++
			return "", nil
		}
		for n := 0; ; n++ {
			if s.peek() != '-' && (s.peek() < '0' || s.peek() > '9') {
				return bad(errors.New("an array that is not of bytes"))
			}
			num, err := s.number()
			if err != nil {
				return "", err
			}
			v, ok := byteValue(num)
			if !ok {
				return bad(fmt.Errorf("byte %d of an array is %q, not 0 to 255", n, truncate(string(num), 20)))
			}
			if len(out)+2 > max {
				return bad(fmt.Errorf("an array of bytes over the limit of %d hex digits", max))
			}
			out = append(out, digits[v>>4], digits[v&15])
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				return string(out), nil
			default:
				return "", s.syntax("expected ',' or ']'")
			}
		}
	}
	num, err := s.number()
	if err != nil {
		return "", err
	}
	if len(num) > max {
		return "", fmt.Errorf("a number over the limit of %d bytes", max)
	}
	return string(num), nil
}

// byteValue reads a number from 0 to 255 written as an integer.
func byteValue(num []byte) (byte, bool) {
	if len(num) == 0 || len(num) > 3 {
		return 0, false
	}
	v := 0
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	if v > 255 || (len(num) > 1 && num[0] == '0') {
		return 0, false
	}
	return byte(v), true
}

// members calls fn for each member of the object at s.i, with the
// scanner at the member's value; fn must read past the value. The object
// must have passed check.
func (s *jsonScanner) members(fn func(name string) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		k, err := s.str(nil, maxJSONKey)
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := fn(string(k)); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.syntax("expected ',' or '}'")
		}
	}
}
