package triage

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/panicerr"
)

// ParseXML reads events as wevtutil qe LOG /f:xml writes them: <Event>
// elements one after another with no root element (or under one root,
// such as <Events>), each with <System> (Provider Name, EventID, Version,
// TimeCreated SystemTime, EventRecordID, Correlation ActivityID,
// Computer) and <EventData> holding <Data Name="...">value</Data>.
// Every field is read by its name, so any template version is read.
// The decoder is encoding/xml's, in strict mode: a document type
// declaration is refused (no entity is ever defined or fetched).
//
// The events are read token by token, each token capped
// (limits.MaxEventXMLToken) before encoding/xml materializes it, and each
// field while its text arrives: the memory an event takes is bounded by
// the caps, whatever its size. What an export could say twice is refused
// rather than read as the last one says it (a SIEM may keep the first):
// a repeated <System>, <EventData>, System child (<EventID>, <Provider>,
// ...), <Data Name=X> or attribute; and an element inside a <Data> or a
// System field, whose text encoding/xml would silently drop. A character
// reference to a UTF-16 surrogate (&#xD800;), which encoding/xml turns
// into U+FFFD without a word, is refused too.
func ParseXML(data []byte, source string) (log *Log, err error) {
	defer func() {
		if r := recover(); r != nil {
			log, err = nil, fmt.Errorf("%w: %s: internal error reading XML: %w", ErrMalformed, source, panicerr.New(r))
		}
	}()
	text, err := decodeText(data, source)
	if err != nil {
		return nil, err
	}
	// wevtutil writes no root element: the events are read inside one,
	// so that one decoder reads them all. The wrapper's name cannot be
	// closed by the export's text, which may not contain
	// "</csv-triage-root>" before its own elements close (a well-formed
	// document would not).
	if bytes.Contains(text, []byte("csv-triage-root")) {
		return nil, fmt.Errorf("%w: %s: the export contains csv's own wrapper name", ErrMalformed, source)
	}
	body := text
	if bytes.HasPrefix(bytes.TrimSpace(body), []byte("<?xml")) {
		// The declaration must come first in a document: drop it.
		t := bytes.TrimSpace(body)
		end := bytes.Index(t, []byte("?>"))
		if end < 0 {
			return nil, fmt.Errorf("%w: %s: unterminated XML declaration", ErrMalformed, source)
		}
		body = t[end+2:]
	}
	r := &tokenReader{parts: [3][]byte{[]byte("<csv-triage-root>"), body, []byte("</csv-triage-root>")}}
	dec := xml.NewDecoder(r)
	dec.Strict = true
	x := &xmlReader{dec: dec, r: r}
	var ps []parsed
	index := 0
	depth := 0
	fail := func(err error) *Log {
		ps = append(ps, parsed{err: &EventError{Source: source, Index: index + 1, Err: err}})
		return assemble(ps)
	}
	for {
		tok, err := x.token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(fmt.Errorf("malformed or truncated XML (the rest of the export is unread): %w", err)), nil
		}
		switch t := tok.(type) {
		case xml.Directive:
			return fail(errors.New("a document type declaration (<!DOCTYPE ...>): refused, exports have none")), nil
		case xml.StartElement:
			if t.Name.Local != "Event" {
				depth++
				if depth > 3 {
					return fail(fmt.Errorf("<%s> nested %d deep outside any <Event>", truncate(t.Name.Local, 40), depth)), nil
				}
				continue
			}
			if index >= limits.MaxEvents {
				ps = append(ps, parsed{err: tooMany(source, index+1)})
				return assemble(ps), nil
			}
			index++
			sys, f, err, fatal := x.event()
			if fatal != nil {
				index--
				return fail(fmt.Errorf("malformed or truncated <Event> (the rest of the export is unread): %w", fatal)), nil
			}
			if err != nil {
				ps = append(ps, parsed{err: &EventError{Source: source, Index: index, ID: sys.id, Err: err}})
				continue
			}
			ps = append(ps, classify(sys, f, source, index))
		case xml.EndElement:
			depth--
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return fail(fmt.Errorf("text outside any <Event>: %q", truncate(string(bytes.TrimSpace(t)), 40))), nil
			}
		}
	}
	return assemble(ps), nil
}

// errTokenCap: an XML token over limits.MaxEventXMLToken.
var errTokenCap = fmt.Errorf("an XML token (a tag with its attributes, or a run of text) over %d bytes (limits.MaxEventXMLToken)", limits.MaxEventXMLToken)

// tokenReader gives encoding/xml the export one byte at a time (as an
// io.ByteReader it is read without a buffer of its own), and fails once
// one token has taken more than limits.MaxEventXMLToken bytes: the
// decoder holds a token whole (a text, a tag's attributes) before it
// returns it. parts are read one after the other.
type tokenReader struct {
	parts [3][]byte
	part  int
	i     int
	// n counts the bytes read since the current token began.
	n int
}

func (r *tokenReader) ReadByte() (byte, error) {
	for r.part < len(r.parts) && r.i >= len(r.parts[r.part]) {
		r.part, r.i = r.part+1, 0
	}
	if r.part >= len(r.parts) {
		return 0, io.EOF
	}
	if r.n >= limits.MaxEventXMLToken {
		return 0, errTokenCap
	}
	r.n++
	c := r.parts[r.part][r.i]
	r.i++
	return c, nil
}

func (r *tokenReader) Read(p []byte) (int, error) {
	for n := range p {
		c, err := r.ReadByte()
		if err != nil {
			if n > 0 && errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		p[n] = c
	}
	return len(p), nil
}

// mark starts a token: it returns where the token's bytes start in the
// export's body (the byte the decoder may have read ahead included), or
// -1 outside it.
func (r *tokenReader) mark() int {
	r.n = 0
	for r.part < len(r.parts) && r.i >= len(r.parts[r.part]) {
		r.part, r.i = r.part+1, 0
	}
	if r.part != 1 {
		return -1
	}
	return max(r.i-1, 0)
}

// since returns the body's bytes read since mark returned at.
func (r *tokenReader) since(at int) []byte {
	if at < 0 {
		return nil
	}
	end := r.i
	if r.part > 1 {
		end = len(r.parts[1])
	}
	if end < at {
		return nil
	}
	return r.parts[1][at:end]
}

type xmlReader struct {
	dec *xml.Decoder
	r   *tokenReader
	// surrogate is set when the last token's text held a character
	// reference to a UTF-16 surrogate.
	surrogate bool
}

// token returns the next token, noting a character reference to a
// surrogate in its bytes.
func (x *xmlReader) token() (xml.Token, error) {
	at := x.r.mark()
	t, err := x.dec.Token()
	x.surrogate = err == nil && surrogateRef(x.r.since(at))
	return t, err
}

// surrogateRef reports whether b holds a character reference (&#NNNN; or
// &#xHHHH;) to a UTF-16 surrogate, D800 to DFFF: no XML character
// (XML 1.0 section 2.2, Char), which encoding/xml turns into U+FFFD.
// The digits are read as encoding/xml reads them (any number of them,
// leading zeros included: &#x0000000000D800; is U+D800 to it), up to
// the ';' that ends the reference.
func surrogateRef(b []byte) bool {
	for {
		i := bytes.Index(b, []byte("&#"))
		if i < 0 {
			return false
		}
		b = b[i+2:]
		hex := len(b) > 0 && b[0] == 'x'
		if hex {
			b = b[1:]
		}
		j := 0
		for j < len(b) && (isDigit(b[j]) || hex && isHexLetter(b[j])) {
			j++
		}
		if j == len(b) || b[j] != ';' {
			continue // no reference (encoding/xml refuses it in strict mode)
		}
		digits := bytes.TrimLeft(b[:j], "0")
		b = b[j+1:]
		// Once the leading zeros are gone, more than 8 digits is over
		// 0x10FFFF, the largest character, whatever they are.
		if len(digits) == 0 || len(digits) > 8 {
			continue
		}
		base := 10
		if hex {
			base = 16
		}
		if n, err := strconv.ParseUint(string(digits), base, 64); err == nil && n >= 0xd800 && n <= 0xdfff {
			return true
		}
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHexLetter(c byte) bool { return 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// xmlEvent is what an <Event> says, as it is read.
type xmlEvent struct {
	sys      system
	f        fields
	seen     map[string]bool // System, EventData, the System fields read
	id       string          // <EventID> text
	version  string
	record   string
	computer string
	time     string
	data     int // <Data> elements read
	// The <Data> (or System field) being read: its name and text.
	dataName string
	text     []byte
}

// systemText are the System fields read from their text; systemAttr
// those read from an attribute.
var (
	systemText = map[string]bool{"EventID": true, "Version": true, "EventRecordID": true, "Computer": true}
	systemAttr = map[string]string{"Provider": "Name", "TimeCreated": "SystemTime", "Correlation": "ActivityID"}
)

// maxSystemText caps the text of a System field (a computer name has at
// most 255 bytes).
const maxSystemText = 1024

// event reads an <Event> whose start the decoder returned, to its end.
// err is an event that cannot be read (the decoder is past it); fatal an
// export that cannot be read on (syntax, caps on tokens and depth).
func (x *xmlReader) event() (sys system, f fields, err, fatal error) {
	e := &xmlEvent{f: fields{}, seen: map[string]bool{}}
	path := []string{"Event"}
	for len(path) > 0 {
		tok, terr := x.token()
		if terr != nil {
			if errors.Is(terr, io.EOF) {
				terr = io.ErrUnexpectedEOF
			}
			return e.sys, nil, nil, terr
		}
		if x.surrogate && err == nil {
			err = errors.New("a character reference to a UTF-16 surrogate (&#xD800; to &#xDFFF;), which is no character: refused (encoding/xml would read U+FFFD in its place, and the name would be another)")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(path) >= limits.MaxEventXMLDepth {
				return e.sys, nil, nil, fmt.Errorf("elements nested more than %d deep in an <Event> (limits.MaxEventXMLDepth)", limits.MaxEventXMLDepth)
			}
			path = append(path, t.Name.Local)
			if err == nil {
				err = e.start(path, t)
			}
		case xml.EndElement:
			if err == nil {
				err = e.end(path)
			}
			path = path[:len(path)-1]
		case xml.CharData:
			if err == nil {
				err = e.chars(path, t)
			}
		case xml.Directive:
			if err == nil {
				err = errors.New("a directive (<!...>) inside an <Event>")
			}
		}
	}
	if err != nil {
		if n, perr := strconv.Atoi(strings.TrimSpace(e.id)); perr == nil {
			e.sys.id = n
		}
		return e.sys, nil, err, nil
	}
	sys, err = e.system()
	if err != nil || (sys.id != IDAudit && sys.id != IDBlock && sys.id != IDSignature) {
		return sys, nil, err, nil
	}
	return sys, e.f, nil, nil
}

// attr returns the value of the attribute of that local name, refusing
// one given twice (encoding/xml returns both).
func attr(t xml.StartElement, name string) (string, bool, error) {
	var v string
	found := false
	for _, a := range t.Attr {
		if a.Name.Local == name {
			if found {
				return "", false, fmt.Errorf("<%s> gives its %s attribute twice", truncate(t.Name.Local, 40), name)
			}
			v, found = a.Value, true
		}
	}
	return v, found, nil
}

func (e *xmlEvent) start(path []string, t xml.StartElement) error {
	name := path[len(path)-1]
	switch len(path) {
	case 2: // a child of <Event>
		if name == "System" || name == "EventData" {
			if e.seen[name] {
				return fmt.Errorf("<%s> given twice in one <Event>: refused (which one is the event?)", name)
			}
			e.seen[name] = true
		}
		return nil
	case 3:
		switch path[1] {
		case "System":
			if !systemText[name] && systemAttr[name] == "" {
				return nil // Level, Task, Channel, ...: not read
			}
			if e.seen["System/"+name] {
				return fmt.Errorf("<%s> given twice in <System>: refused (which one is the event's?)", name)
			}
			e.seen["System/"+name] = true
			if a := systemAttr[name]; a != "" {
				v, _, err := attr(t, a)
				if err != nil {
					return err
				}
				switch name {
				case "Provider":
					e.sys.provider = v
				case "TimeCreated":
					e.time = v
				case "Correlation":
					e.sys.activityID = v
				}
			}
			e.text = e.text[:0]
			return nil
		case "EventData":
			switch name {
			case "Data":
			case "Binary":
				return nil
			default:
				return fmt.Errorf("<%s> in <EventData>, which holds <Data> elements: refused", truncate(name, 40))
			}
			e.data++
			n, ok, err := attr(t, "Name")
			if err != nil {
				return err
			}
			if !ok || n == "" {
				return fmt.Errorf("<Data> #%d has no Name: csv reads EventData by name", e.data)
			}
			if len(e.f) >= limits.MaxEventFields {
				return fmt.Errorf("more than %d <Data> fields, over the limit", limits.MaxEventFields)
			}
			e.dataName, e.text = n, e.text[:0]
		}
		return nil
	}
	// Deeper: an element inside a field csv reads would be dropped
	// from its text.
	if len(path) == 4 && (path[1] == "EventData" && path[2] == "Data" ||
		path[1] == "System" && (systemText[path[2]] || systemAttr[path[2]] != "")) {
		what := "<" + path[2] + ">"
		if path[2] == "Data" {
			what = fmt.Sprintf("<Data Name=%q>", truncate(e.dataName, 40))
		}
		return fmt.Errorf("%s holds an element <%s>: refused (a field is text)", what, truncate(name, 40))
	}
	return nil
}

func (e *xmlEvent) chars(path []string, t xml.CharData) error {
	if len(path) != 3 {
		return nil
	}
	limit := 0
	switch {
	case path[1] == "EventData" && path[2] == "Data":
		limit = limits.MaxEventField
	case path[1] == "System" && systemText[path[2]]:
		limit = maxSystemText
	default:
		return nil
	}
	if len(e.text)+len(t) > limit {
		return fmt.Errorf("<%s> holds more than %d bytes, over the limit", path[2], limit)
	}
	e.text = append(e.text, t...)
	return nil
}

func (e *xmlEvent) end(path []string) error {
	if len(path) != 3 {
		return nil
	}
	name := path[2]
	switch {
	case path[1] == "EventData" && name == "Data":
		return e.f.add(e.dataName, string(e.text))
	case path[1] == "System":
		v := string(e.text)
		switch name {
		case "EventID":
			e.id = v
		case "Version":
			e.version = v
		case "EventRecordID":
			e.record = v
		case "Computer":
			e.computer = v
		}
	}
	return nil
}

// system checks what <System> said.
func (e *xmlEvent) system() (system, error) {
	sys := e.sys
	sys.version = -1
	id, err := strconv.Atoi(strings.TrimSpace(e.id))
	if err != nil {
		return sys, fmt.Errorf("<EventID> %q is not a number", truncate(e.id, 20))
	}
	sys.id = id
	if id != IDAudit && id != IDBlock && id != IDSignature {
		return sys, nil
	}
	if v := strings.TrimSpace(e.version); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 255 {
			return sys, fmt.Errorf("<Version> %q is not a number from 0 to 255", truncate(v, 20))
		}
		sys.version = n
	}
	if r := strings.TrimSpace(e.record); r != "" {
		if sys.recordID, err = strconv.ParseUint(r, 10, 64); err != nil {
			return sys, fmt.Errorf("<EventRecordID> %q is not a number", truncate(r, 20))
		}
	}
	if sys.time, err = parseTime(e.time); err != nil {
		return sys, fmt.Errorf("<TimeCreated SystemTime>: %w", err)
	}
	sys.computer = strings.TrimSpace(e.computer)
	return sys, nil
}
