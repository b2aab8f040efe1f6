package triage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/panicerr"
)

// Log is what one export holds.
type Log struct {
	// Events are the 3076 and 3077 events, with their 3089 signature
	// events attached.
	Events []*Event
	// Errors are the events that could not be read, and the part of the
	// file after a syntax error: each is reported, none is dropped.
	Errors []*EventError
	// Orphans counts the 3089 events no 3076 or 3077 event of the export
	// claims; Other the events of other IDs or providers (skipped).
	Orphans int
	Other   int
}

// EventError is an event (or part of an export) that cannot be read.
type EventError struct {
	Source string `json:"source"`
	// Index is the event's position in the export (1-based); 0 for the
	// export as a whole.
	Index int `json:"index"`
	// ID is the event's ID when it was read, else 0.
	ID  int   `json:"id,omitempty"`
	Err error `json:"-"`
}

func (e *EventError) Error() string {
	where := e.Source
	if e.Index > 0 {
		where += fmt.Sprintf(": event #%d", e.Index)
	}
	if e.ID != 0 {
		where += fmt.Sprintf(" (%d)", e.ID)
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

func (e *EventError) Unwrap() error { return e.Err }

// Is makes every EventError an ErrMalformed.
func (e *EventError) Is(target error) bool { return target == ErrMalformed }

// Parse reads an export of Code Integrity events: JSON (Get-WinEvent |
// ConvertTo-Json) or XML (wevtutil qe /f:xml, Get-WinEvent's ToXml()),
// told apart by the first character; UTF-8 or UTF-16 with a byte order
// mark (Windows PowerShell's Out-File writes UTF-16LE). source names the
// export in errors. An error is returned only for an export that is
// unreadable as a whole (too large, neither format); an event that cannot
// be read is an EventError in the Log.
func Parse(data []byte, source string) (*Log, error) {
	text, err := decodeText(data, source)
	if err != nil {
		return nil, err
	}
	i := bytes.IndexFunc(text, func(r rune) bool { return r != ' ' && r != '\t' && r != '\r' && r != '\n' })
	if i < 0 {
		return nil, fmt.Errorf("%w: %s: empty export", ErrMalformed, source)
	}
	switch text[i] {
	case '<':
		return ParseXML(text, source)
	case '[', '{':
		return ParseJSON(text, source)
	}
	return nil, fmt.Errorf("%w: %s: neither JSON (Get-WinEvent | ConvertTo-Json) nor XML (wevtutil qe /f:xml)", ErrMalformed, source)
}

// decodeText checks the size cap and turns UTF-16 (with a byte order
// mark) into UTF-8; it drops a UTF-8 byte order mark.
func decodeText(data []byte, source string) ([]byte, error) {
	if len(data) > limits.MaxEventFile {
		return nil, fmt.Errorf("%w: %s is %d bytes, over the limit of %d", ErrMalformed, source, len(data), limits.MaxEventFile)
	}
	switch {
	case bytes.HasPrefix(data, []byte{0xef, 0xbb, 0xbf}):
		data = data[3:]
	case bytes.HasPrefix(data, []byte{0xff, 0xfe}), bytes.HasPrefix(data, []byte{0xfe, 0xff}):
		var order binary.ByteOrder = binary.LittleEndian
		if data[0] == 0xfe {
			order = binary.BigEndian
		}
		body := data[2:]
		if len(body)%2 != 0 {
			return nil, fmt.Errorf("%w: %s: UTF-16 text of an odd number of bytes (truncated?)", ErrMalformed, source)
		}
		units := make([]uint16, len(body)/2)
		for i := range units {
			units[i] = order.Uint16(body[2*i:])
		}
		out := make([]byte, 0, len(body))
		for i := 0; i < len(units); i++ {
			r := rune(units[i])
			if utf16.IsSurrogate(r) {
				if i+1 < len(units) {
					r = utf16.DecodeRune(r, rune(units[i+1]))
				} else {
					r = utf8.RuneError
				}
				if r == utf8.RuneError {
					// utf16.Decode would write U+FFFD, and a name with
					// it would read as another file's.
					return nil, fmt.Errorf("%w: %s: UTF-16 text with an unpaired surrogate at byte %d (a name Windows allows but no text can show as it is): refused", ErrMalformed, source, 2+2*i)
				}
				i++
			}
			out = utf8.AppendRune(out, r)
		}
		return out, nil
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: %s is not UTF-8 (nor UTF-16 with a byte order mark)", ErrMalformed, source)
	}
	return data, nil
}

// parsed is one event of an export, before correlation.
type parsed struct {
	block *Event
	sig   *Signature
	err   *EventError
	other bool
	// where, for a signature: its source and index, for an error.
	source string
	index  int
}

// classify builds the event of one export entry, recovering from a
// panic (a bug) as an error of that event.
func classify(sys system, f fields, source string, index int) (p parsed) {
	defer func() {
		if r := recover(); r != nil {
			p = parsed{err: &EventError{Source: source, Index: index, ID: sys.id, Err: fmt.Errorf("internal error reading the event: %w", panicerr.New(r))}}
		}
	}()
	if sys.provider != "" && sys.provider != provider {
		return parsed{other: true}
	}
	switch sys.id {
	case IDAudit, IDBlock:
		e, err := buildEvent(sys, f, source, index)
		if err != nil {
			return parsed{err: &EventError{Source: source, Index: index, ID: sys.id, Err: err}}
		}
		return parsed{block: e}
	case IDSignature:
		s, err := buildSignature(sys, f, source, index)
		if err != nil {
			return parsed{err: &EventError{Source: source, Index: index, ID: sys.id, Err: err}}
		}
		return parsed{sig: s, source: source, index: index}
	}
	return parsed{other: true}
}

// assemble correlates the 3089 events with their 3076/3077 by ActivityID
// (and computer, when both name one) and makes the Log.
func assemble(ps []parsed) *Log {
	log := &Log{}
	byKey := map[string][]*Event{}
	for _, p := range ps {
		switch {
		case p.err != nil:
			log.Errors = append(log.Errors, p.err)
		case p.block != nil:
			log.Events = append(log.Events, p.block)
			if p.block.ActivityID != "" {
				byKey[p.block.ActivityID] = append(byKey[p.block.ActivityID], p.block)
			}
		case p.other:
			log.Other++
		}
	}
	for _, p := range ps {
		if p.sig == nil {
			continue
		}
		claimed, over := false, false
		if p.sig.ActivityID != "" {
			for _, e := range byKey[p.sig.ActivityID] {
				if e.Computer != "" && p.sig.Computer != "" && e.Computer != p.sig.Computer {
					continue
				}
				claimed = true
				// A file has a few signatures: an export that ties
				// more to one event (one ActivityID for thousands of
				// events) would cost their product. Refused, reported.
				if len(e.Signatures) >= limits.MaxEventSignatures {
					over = true
					continue
				}
				e.Signatures = append(e.Signatures, *p.sig)
			}
		}
		switch {
		case over:
			log.Errors = append(log.Errors, &EventError{Source: p.source, Index: p.index, ID: IDSignature,
				Err: fmt.Errorf("its block or audit event (ActivityID %s) has %d signature events already, the limit (limits.MaxEventSignatures): not attached", p.sig.ActivityID, limits.MaxEventSignatures)})
		case !claimed:
			log.Orphans++
		}
	}
	for _, e := range log.Events {
		slices.SortStableFunc(e.Signatures, func(a, b Signature) int { return a.Number - b.Number })
	}
	return log
}

// Merge joins the logs of several exports: a 3089 event in one export
// does not attach to a 3076/3077 of another (export them together).
func Merge(logs ...*Log) *Log {
	out := &Log{}
	for _, l := range logs {
		out.Events = append(out.Events, l.Events...)
		out.Errors = append(out.Errors, l.Errors...)
		out.Orphans += l.Orphans
		out.Other += l.Other
	}
	return out
}

var errTooMany = errors.New("too many events")

func tooMany(source string, index int) *EventError {
	return &EventError{Source: source, Index: index, Err: fmt.Errorf("%w: over the limit of %d in one export", errTooMany, limits.MaxEvents)}
}
