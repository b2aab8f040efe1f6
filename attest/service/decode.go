package service

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// An AttestRequest is decoded here rather than by encoding/json, whose
// scanner walks every byte of the request through a state machine twice
// (once to find the value's end, once to decode it) and unquotes each
// string before base64-decoding it: for a request carrying a 24 KB event
// log that was a third of the service's time per attestation, more than
// verifying the evidence. This decoder knows the one schema, so a base64
// field is found with bytes.IndexByte and decoded in place.
//
// It is stricter than encoding/json with DisallowUnknownFields, never
// looser: unknown and repeated names, values of the wrong type, invalid
// UTF-8, control characters in strings, nesting other than the schema's
// and trailing data are errors. What it accepts, encoding/json decodes to
// the same AttestRequest (FuzzDecodeAttestRequest checks it).

var errSyntax = errors.New("malformed JSON")

type reqDecoder struct {
	b   []byte
	off int
}

func (d *reqDecoder) fail(format string, args ...any) error {
	return fmt.Errorf("%w: %s (at byte %d)", errSyntax, fmt.Sprintf(format, args...), d.off)
}

func (d *reqDecoder) ws() {
	for d.off < len(d.b) {
		switch d.b[d.off] {
		case ' ', '\t', '\n', '\r':
			d.off++
		default:
			return
		}
	}
}

// next skips whitespace and returns the next byte (0 at the end).
func (d *reqDecoder) next() byte {
	d.ws()
	if d.off >= len(d.b) {
		return 0
	}
	return d.b[d.off]
}

func (d *reqDecoder) expect(c byte) error {
	if d.next() != c {
		if d.off >= len(d.b) {
			return d.fail("unexpected end of input, want %q", c)
		}
		return d.fail("want %q, found %q", c, d.b[d.off])
	}
	d.off++
	return nil
}

// null consumes a JSON null if one comes next.
func (d *reqDecoder) null() bool {
	if d.next() == 'n' && bytes.HasPrefix(d.b[d.off:], []byte("null")) {
		d.off += 4
		return true
	}
	return false
}

// rawString returns a string's contents between its quotes, and whether it
// has escapes; it checks that no control character or invalid UTF-8 is in
// it.
func (d *reqDecoder) rawString() ([]byte, bool, error) {
	if err := d.expect('"'); err != nil {
		return nil, false, err
	}
	start := d.off
	escaped := false
	for {
		i := bytes.IndexAny(d.b[d.off:], "\"\\")
		if i < 0 {
			return nil, false, d.fail("unterminated string")
		}
		d.off += i
		if d.b[d.off] == '"' {
			break
		}
		escaped = true
		if d.off+1 >= len(d.b) {
			return nil, false, d.fail("unterminated string")
		}
		d.off += 2 // the escape's second byte is checked when unquoting
	}
	s := d.b[start:d.off]
	d.off++
	for i, c := range s {
		if c < 0x20 {
			d.off = start + i
			return nil, false, d.fail("control character in a string")
		}
	}
	if !utf8.Valid(s) {
		return nil, false, d.fail("invalid UTF-8 in a string")
	}
	return s, escaped, nil
}

// unquote decodes a string's escapes.
func unquote(s []byte) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		switch s[i] {
		case '"', '\\', '/':
			out = append(out, s[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s[i+1:])
			if !ok {
				return nil, errors.New("bad \\u escape")
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					if r2, ok = hex4(s[i+3:]); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							r, i = dec, i+6
						} else {
							ok = false
						}
					}
				}
				if !ok {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, fmt.Errorf("bad escape \\%c", s[i])
		}
	}
	return out, nil
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(s[:4]), 16, 16)
	return rune(v), err == nil
}

func (d *reqDecoder) str() (string, error) {
	s, esc, err := d.rawString()
	if err != nil {
		return "", err
	}
	if esc {
		u, err := unquote(s)
		if err != nil {
			return "", d.fail("%v", err)
		}
		return string(u), nil
	}
	return string(s), nil
}

// bytesField decodes a base64 string (standard alphabet, padded, as
// encoding/json writes []byte) or null.
func (d *reqDecoder) bytesField(name string) ([]byte, error) {
	if d.null() {
		return nil, nil
	}
	if d.next() != '"' {
		return nil, d.fail("%s: want a base64 string", name)
	}
	// The fast path: no escape before the closing quote. The base64
	// decoder refuses every byte outside its alphabet but CR and LF, which
	// it skips and JSON forbids raw in a string: refuse those here.
	if n := bytes.IndexByte(d.b[d.off+1:], '"'); n >= 0 {
		s := d.b[d.off+1 : d.off+1+n]
		if bytes.IndexByte(s, '\\') < 0 {
			if bytes.IndexByte(s, '\n') >= 0 || bytes.IndexByte(s, '\r') >= 0 {
				return nil, d.fail("%s: control character in a string", name)
			}
			out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
			k, err := base64.StdEncoding.Decode(out, s)
			if err != nil {
				return nil, d.fail("%s: not base64: %v", name, err)
			}
			d.off += n + 2
			return out[:k], nil
		}
	}
	s, esc, err := d.rawString()
	if err != nil {
		return nil, err
	}
	if esc {
		if s, err = unquote(s); err != nil {
			return nil, d.fail("%v", err)
		}
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(out, s)
	if err != nil {
		return nil, d.fail("%s: not base64: %v", name, err)
	}
	return out[:n], nil
}

// object walks an object's members, calling member with each name; a
// repeated name is an error.
func (d *reqDecoder) object(what string, member func(name string) error) error {
	if err := d.expect('{'); err != nil {
		return err
	}
	seen := map[string]bool{}
	if d.next() == '}' {
		d.off++
		return nil
	}
	for {
		name, err := d.str()
		if err != nil {
			return err
		}
		if seen[name] {
			return d.fail("%s: %q repeated", what, name)
		}
		seen[name] = true
		if err := d.expect(':'); err != nil {
			return err
		}
		if err := member(name); err != nil {
			return err
		}
		switch d.next() {
		case ',':
			d.off++
		case '}':
			d.off++
			return nil
		default:
			return d.fail("%s: want ',' or '}'", what)
		}
	}
}

// decodeAttestRequest decodes a request body strictly.
func decodeAttestRequest(b []byte) (*AttestRequest, error) {
	d := &reqDecoder{b: b}
	r := &AttestRequest{}
	if d.next() == 0 {
		return nil, errEmptyBody
	}
	err := d.object("request", func(name string) error {
		var err error
		switch name {
		case "nonce":
			if d.null() {
				return nil
			}
			r.Nonce, err = d.str()
		case "event_log":
			r.EventLog, err = d.bytesField(name)
		case "ak_public":
			r.AKPublic, err = d.bytesField(name)
		case "ak_certificate":
			r.AKCertificate, err = d.bytesField(name)
		case "ek_public":
			r.EKPublic, err = d.bytesField(name)
		case "ek_certificate":
			r.EKCertificate, err = d.bytesField(name)
		case "quotes":
			r.Quotes, err = d.quotes()
		case "pcrs":
			r.PCRs, err = d.pcrs()
		default:
			return d.fail("unknown field %q", name)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if d.next() != 0 {
		return nil, errTrailing
	}
	return r, nil
}

var (
	errEmptyBody = errors.New("empty body")
	errTrailing  = errors.New("data after the JSON object")
)

func (d *reqDecoder) quotes() ([]QuoteJSON, error) {
	if d.null() {
		return nil, nil
	}
	if err := d.expect('['); err != nil {
		return nil, err
	}
	out := []QuoteJSON{}
	if d.next() == ']' {
		d.off++
		return out, nil
	}
	for {
		if len(out) > maxQuotes {
			return nil, d.fail("quotes: more than %d", maxQuotes)
		}
		var q QuoteJSON
		err := d.object("quote", func(name string) error {
			var err error
			switch name {
			case "attest":
				q.Attest, err = d.bytesField(name)
			case "signature":
				q.Signature, err = d.bytesField(name)
			default:
				return d.fail("unknown field %q in a quote", name)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, q)
		switch d.next() {
		case ',':
			d.off++
		case ']':
			d.off++
			return out, nil
		default:
			return nil, d.fail("quotes: want ',' or ']'")
		}
	}
}

func (d *reqDecoder) pcrs() (map[string]map[string]string, error) {
	if d.null() {
		return nil, nil
	}
	out := map[string]map[string]string{}
	err := d.object("pcrs", func(bank string) error {
		if len(out) >= maxPCRBanks {
			return d.fail("pcrs: more than %d banks", maxPCRBanks)
		}
		if d.null() {
			out[bank] = nil
			return nil
		}
		m := map[string]string{}
		out[bank] = m
		return d.object("pcrs."+bank, func(idx string) error {
			if len(m) >= 32 {
				return d.fail("pcrs: too many PCRs")
			}
			v, err := d.str()
			m[idx] = v
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
