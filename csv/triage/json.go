package triage

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/codesignval/csv/internal/limits"
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
// Names of the object's members are matched without regard to case.
func ParseJSON(data []byte, source string) (log *Log, err error) {
	defer func() {
		if r := recover(); r != nil {
			log, err = nil, fmt.Errorf("%w: %s: internal error reading JSON: %v", ErrMalformed, source, r)
		}
	}()
	text, err := decodeText(data, source)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var ps []parsed
	index := 0
	one := func(raw json.RawMessage) {
		index++
		sys, f, err := jsonEvent(raw)
		if err != nil {
			ps = append(ps, parsed{err: &EventError{Source: source, Index: index, ID: sys.id, Err: err}})
			return
		}
		ps = append(ps, classify(sys, f, source, index))
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not JSON: %v", ErrMalformed, source, err)
	}
	switch tok {
	case json.Delim('['):
		for dec.More() {
			if index >= limits.MaxEvents {
				ps = append(ps, parsed{err: tooMany(source, index+1)})
				return assemble(ps), nil
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				ps = append(ps, parsed{err: &EventError{Source: source, Index: index + 1, Err: fmt.Errorf("malformed or truncated JSON (the rest of the export is unread): %v", err)}})
				return assemble(ps), nil
			}
			one(raw)
		}
		if _, err := dec.Token(); err != nil {
			ps = append(ps, parsed{err: &EventError{Source: source, Index: index + 1, Err: fmt.Errorf("malformed or truncated JSON after the last event: %v", err)}})
			return assemble(ps), nil
		}
	case json.Delim('{'):
		// One event: ConvertTo-Json of a single record writes no array.
		dec = json.NewDecoder(bytes.NewReader(text))
		dec.UseNumber()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			ps = append(ps, parsed{err: &EventError{Source: source, Index: 1, Err: fmt.Errorf("malformed or truncated JSON: %v", err)}})
			return assemble(ps), nil
		}
		one(raw)
	default:
		return nil, fmt.Errorf("%w: %s: JSON that is neither an array of events nor one event", ErrMalformed, source)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		ps = append(ps, parsed{err: &EventError{Source: source, Index: index + 1, Err: errors.New("data after the events")}})
	}
	return assemble(ps), nil
}

// jsonEvent reads one EventLogRecord object.
func jsonEvent(raw json.RawMessage) (system, fields, error) {
	sys := system{version: -1}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return sys, nil, fmt.Errorf("not an event object: %v", err)
	}
	// Every object in the event, at every depth (EventData, each
	// property), names each member once: checked before the Id is read,
	// or {"Id":3077,"Id":1} would pass as another event for csv (the
	// last Id) and as a block for a reader that keeps the first.
	if err := uniqueKeys(raw); err != nil {
		return sys, nil, err
	}
	m := make(map[string]json.RawMessage, len(obj))
	for k, v := range obj {
		lk := strings.ToLower(k)
		if _, dup := m[lk]; dup {
			return sys, nil, fmt.Errorf("member %q given twice (in another letter case)", truncate(k, 40))
		}
		m[lk] = v
	}
	str := func(names ...string) (string, error) {
		for _, n := range names {
			if v, ok := m[n]; ok {
				return jsonScalar(v)
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
	if named, ok := m["eventdata"]; ok {
		var data map[string]json.RawMessage
		if err := json.Unmarshal(named, &data); err != nil {
			return sys, nil, fmt.Errorf("EventData is not an object of named fields: %v", err)
		}
		for k, v := range data {
			s, err := jsonScalar(v)
			if err != nil {
				return sys, nil, fmt.Errorf("EventData %q: %w", truncate(k, 40), err)
			}
			if err := f.add(k, s); err != nil {
				return sys, nil, err
			}
		}
		return sys, f, nil
	}
	props, ok := m["properties"]
	if !ok {
		return sys, nil, errors.New("neither Properties nor EventData: the event carries no fields")
	}
	var list []json.RawMessage
	if err := json.Unmarshal(props, &list); err != nil {
		return sys, nil, fmt.Errorf("Properties is not an array: %v", err)
	}
	var objs []map[string]json.RawMessage
	if err := json.Unmarshal(props, &objs); err != nil {
		objs = nil
	}
	if len(list) > limits.MaxEventFields {
		return sys, nil, fmt.Errorf("%d Properties, over the limit of %d", len(list), limits.MaxEventFields)
	}
	names, err := template(id, sys.version, len(list))
	if err != nil {
		return sys, nil, err
	}
	for i := range list {
		if objs == nil || objs[i] == nil {
			return sys, nil, fmt.Errorf("Properties[%d] is not an object {\"Value\": ...} (ConvertTo-Json stopped at its -Depth? export with -Depth 4)", i)
		}
		v, ok := objs[i]["Value"]
		if !ok {
			return sys, nil, fmt.Errorf("Properties[%d] has no Value", i)
		}
		s, err := jsonScalar(v)
		if err != nil {
			return sys, nil, fmt.Errorf("Properties[%d] (%s): %w", i, names[i], err)
		}
		if err := f.add(names[i], s); err != nil {
			return sys, nil, err
		}
	}
	return sys, f, nil
}

// jsonScalar turns a JSON value into the text a field holds: strings as
// they are, numbers and booleans as written, null as "", an array of
// bytes (Windows PowerShell's byte[]) as upper-case hex.
func jsonScalar(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", errors.New("empty value")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	case 'n':
		return "", nil
	case 't', 'f':
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return "", err
		}
		return strconv.FormatBool(b), nil
	case '[':
		var bs []json.Number
		if err := json.Unmarshal(raw, &bs); err != nil {
			return "", errors.New("an array that is not of bytes")
		}
		out := make([]byte, len(bs))
		for i, n := range bs {
			v, err := strconv.ParseUint(n.String(), 10, 8)
			if err != nil {
				return "", fmt.Errorf("byte %d of an array is %q, not 0 to 255", i, truncate(n.String(), 20))
			}
			out[i] = byte(v)
		}
		return strings.ToUpper(hex.EncodeToString(out)), nil
	case '{':
		return "", errors.New("an object where a value was expected (ConvertTo-Json at another -Depth?)")
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", err
	}
	return n.String(), nil
}

// uniqueKeys refuses a value holding an object, at any depth, that names
// a member twice: encoding/json keeps the last, another reader of the
// same export (a SIEM) may keep the first, and the two would triage
// different events. One pass over the tokens.
func uniqueKeys(raw json.RawMessage) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	// stack holds, per open container, the keys seen (nil for an array)
	// and whether the next token of an object is a key.
	type frame struct {
		seen  map[string]bool
		isKey bool
	}
	var stack []frame
	for {
		t, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		switch v := t.(type) {
		case json.Delim:
			switch v {
			case '{':
				if top != nil && top.seen != nil {
					top.isKey = true
				}
				stack = append(stack, frame{seen: map[string]bool{}, isKey: true})
			case '[':
				if top != nil && top.seen != nil {
					top.isKey = true
				}
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if top != nil && top.seen != nil && top.isKey {
				if top.seen[v] {
					return fmt.Errorf("member %q given twice", truncate(v, 40))
				}
				top.seen[v] = true
				top.isKey = false
				continue
			}
		}
		if top != nil && top.seen != nil {
			top.isKey = true
		}
	}
}
