package triage

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/panicerr"
)

// ParseJSON reads events as Get-WinEvent | ConvertTo-Json -Depth 4 writes
// them: an array of EventLogRecord objects (or one object), each with
// Id, Version, ProviderName, TimeCreated ("/Date(ms)/" from Windows
// PowerShell, RFC 3339 from PowerShell 7), RecordId, MachineName,
// ActivityId and Properties, the event's values in its template's order
// ([{"Value": ...}, ...]; byte arrays as arrays of numbers or base64).
// Positional Properties are read with the template of the event's
// Version (see template); an object may instead carry its fields by name
// in "EventData" ({"File Name": ..., ...}), which any version reads.
// Names of the object's members are matched without regard to ASCII
// case; a name with any other character is refused (see asciiName).
func ParseJSON(data []byte, source string) (log *Log, err error) {
	defer func() {
		if r := recover(); r != nil {
			log, err = nil, fmt.Errorf("%w: %s: internal error reading JSON: %w", ErrMalformed, source, panicerr.New(r))
		}
	}()
	text, err := decodeText(data, source)
	if err != nil {
		return nil, err
	}
	s := &jsonScanner{b: text}
	var ps []parsed
	index := 0
	fail := func(err error) *Log {
		ps = append(ps, parsed{err: &EventError{Source: source, Index: index + 1, Err: err}})
		return assemble(ps)
	}
	// one reads the event at s.i; false: a syntax error ended the export.
	one := func() bool {
		index++
		start := s.i
		if err := s.check(); err != nil {
			if isSyntax(err) {
				index--
				fail(fmt.Errorf("malformed or truncated JSON (the rest of the export is unread): %v", err))
				return false
			}
			ps = append(ps, parsed{err: &EventError{Source: source, Index: index, Err: err}})
			return true
		}
		ev := &jsonScanner{b: text[:s.i], i: start}
		sys, f, err := jsonEvent(ev)
		if err != nil {
			ps = append(ps, parsed{err: &EventError{Source: source, Index: index, ID: sys.id, Err: err}})
			return true
		}
		ps = append(ps, classify(sys, f, source, index))
		return true
	}
	switch s.peek() {
	case '[':
		s.i++
		if s.peek() == ']' {
			s.i++
			break
		}
		for {
			if index >= limits.MaxEvents {
				ps = append(ps, parsed{err: tooMany(source, index+1)})
				return assemble(ps), nil
			}
			if !one() {
				return assemble(ps), nil
			}
			c := s.peek()
			if c == ',' {
				s.i++
				continue
			}
			if c != ']' {
				return fail(fmt.Errorf("malformed or truncated JSON after the event (the rest of the export is unread): %v", s.syntax("expected ',' or ']'"))), nil
			}
			s.i++
			break
		}
	case '{':
		// One event: ConvertTo-Json of a single record writes no array.
		if !one() {
			return assemble(ps), nil
		}
	default:
		return nil, fmt.Errorf("%w: %s: JSON that is neither an array of events nor one event", ErrMalformed, source)
	}
	// Only white space may follow. Not peek() != 0: peek returns 0 for a
	// NUL byte too, which would hide whatever comes after it.
	if s.ws(); s.i != len(s.b) {
		return fail(fmt.Errorf("data after the events (byte %d; the rest of the export is unread)", s.i)), nil
	}
	return assemble(ps), nil
}

// topMembers are the members of an EventLogRecord triage reads, by
// their lower-case names.
var topMembers = map[string]bool{"id": true, "eventid": true, "version": true, "providername": true,
	"recordid": true, "timecreated": true, "machinename": true, "computer": true, "activityid": true,
	"eventdata": true, "properties": true}

// jsonEvent reads one EventLogRecord object that check accepted (every
// object in it names each member once, at every depth: checked before the
// Id is read, or {"Id":3077,"Id":1} would pass as another event for csv
// and as a block for a reader that keeps the first).
func jsonEvent(s *jsonScanner) (system, fields, error) {
	sys := system{version: -1}
	if s.peek() != '{' {
		return sys, nil, errors.New("not an event object")
	}
	// Where each member triage reads starts, and its name as given, by
	// lower-case name; a name given twice in another letter case is
	// refused.
	at := map[string]int{}
	given := map[string]string{}
	seen := map[string]bool{}
	err := s.members(func(name string) error {
		if err := asciiName(name); err != nil {
			return fmt.Errorf("member %w", err)
		}
		lk := asciiLower(name)
		if seen[lk] {
			return fmt.Errorf("member %q given twice (in another letter case)", truncate(name, 40))
		}
		if len(seen) < limits.MaxEventFields {
			seen[lk] = true
		}
		if topMembers[lk] {
			s.ws()
			at[lk], given[lk] = s.i, name
		}
		return s.skip()
	})
	if err != nil {
		return sys, nil, err
	}
	// csv reads each pair as one field (a Get-WinEvent record's Id and
	// positional Properties; the EventId, Computer and named EventData
	// of other exports): both in one event are refused, or csv would
	// read one while a reader keyed on the other (a SIEM, PowerShell's
	// $e.Properties) reads another event.
	for _, alias := range [][2]string{{"id", "eventid"}, {"machinename", "computer"}, {"properties", "eventdata"}} {
		a, aok := at[alias[0]]
		b, bok := at[alias[1]]
		if aok && bok {
			first, second := given[alias[0]], given[alias[1]]
			if b < a {
				first, second = second, first
			}
			return sys, nil, fmt.Errorf("members %q and %q both given, which csv reads as one field: refused (which one is the event's?)", first, second)
		}
	}
	str := func(names ...string) (string, error) {
		for _, n := range names {
			if i, ok := at[n]; ok {
				s.i = i
				return s.scalar(limits.MaxEventField)
			}
		}
		return "", nil
	}
	idText, err := str("id", "eventid")
	if err != nil {
		return sys, nil, fmt.Errorf("Id: %w", err)
	}
	id, err := strconv.Atoi(idText)
	if err != nil {
		return sys, nil, fmt.Errorf("no event Id (got %q)", truncate(idText, 20))
	}
	sys.id = id
	if v, err := str("version"); err != nil {
		return sys, nil, fmt.Errorf("Version: %w", err)
	} else if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 255 {
			return sys, nil, fmt.Errorf("Version %q is not a number from 0 to 255", truncate(v, 20))
		}
		sys.version = n
	}
	if sys.provider, err = str("providername"); err != nil {
		return sys, nil, fmt.Errorf("ProviderName: %w", err)
	}
	if id != IDAudit && id != IDBlock && id != IDSignature {
		return sys, nil, nil
	}
	if rid, err := str("recordid"); err != nil {
		return sys, nil, fmt.Errorf("RecordId: %w", err)
	} else if rid != "" {
		if sys.recordID, err = strconv.ParseUint(rid, 10, 64); err != nil {
			return sys, nil, fmt.Errorf("RecordId %q is not a number", truncate(rid, 20))
		}
	}
	tc, err := str("timecreated")
	if err != nil {
		return sys, nil, fmt.Errorf("TimeCreated: %w", err)
	}
	if sys.time, err = parseTime(tc); err != nil {
		return sys, nil, fmt.Errorf("TimeCreated: %w", err)
	}
	if sys.computer, err = str("machinename", "computer"); err != nil {
		return sys, nil, fmt.Errorf("MachineName: %w", err)
	}
	if sys.activityID, err = str("activityid"); err != nil {
		return sys, nil, fmt.Errorf("ActivityId: %w", err)
	}
	f := fields{}
	if i, ok := at["eventdata"]; ok {
		s.i = i
		if s.peek() != '{' {
			return sys, nil, errors.New("EventData is not an object of named fields")
		}
		err := s.members(func(k string) error {
			v, err := s.scalar(limits.MaxEventField)
			if err != nil {
				return fmt.Errorf("EventData %q: %w", truncate(k, 40), err)
			}
			return f.add(k, v)
		})
		if err != nil {
			return sys, nil, err
		}
		return sys, f, nil
	}
	i, ok := at["properties"]
	if !ok {
		return sys, nil, errors.New("neither Properties nor EventData: the event carries no fields")
	}
	s.i = i
	if s.peek() != '[' {
		return sys, nil, errors.New("Properties is not an array")
	}
	s.i++
	// The values in order, each read as its template's field once the
	// count is known: at most limits.MaxEventFields of them.
	var values []string
	for s.peek() != ']' {
		if len(values) > 0 {
			if err := s.expect(','); err != nil {
				return sys, nil, err
			}
		}
		n := len(values)
		if n >= limits.MaxEventFields {
			return sys, nil, fmt.Errorf("more than %d Properties, over the limit", limits.MaxEventFields)
		}
		if s.peek() != '{' {
			return sys, nil, fmt.Errorf("Properties[%d] is not an object {\"Value\": ...} (ConvertTo-Json stopped at its -Depth? export with -Depth 4)", n)
		}
		var v string
		found := false
		err := s.members(func(k string) error {
			if err := asciiName(k); err != nil {
				return fmt.Errorf("member %w", err)
			}
			if k != "Value" {
				if strings.EqualFold(k, "Value") {
					// A reader that ignores case (PowerShell's
					// ConvertFrom-Json) would read this one.
					return fmt.Errorf("member %q: Value in another letter case", truncate(k, 40))
				}
				return s.skip()
			}
			found = true
			var err error
			v, err = s.scalar(limits.MaxEventField)
			return err
		})
		if err != nil {
			return sys, nil, fmt.Errorf("Properties[%d]: %w", n, err)
		}
		if !found {
			return sys, nil, fmt.Errorf("Properties[%d] has no Value", n)
		}
		values = append(values, v)
	}
	names, err := template(id, sys.version, len(values))
	if err != nil {
		return sys, nil, err
	}
	for i, v := range values {
		if err := f.add(names[i], v); err != nil {
			return sys, nil, fmt.Errorf("Properties[%d] (%s): %w", i, names[i], err)
		}
	}
	return sys, f, nil
}
