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
)

// xmlEvent is the part of an <Event> element
// (http://schemas.microsoft.com/win/2004/08/events/event) triage reads.
type xmlEvent struct {
	System struct {
		Provider struct {
			Name string `xml:"Name,attr"`
		} `xml:"Provider"`
		EventID     string `xml:"EventID"`
		Version     string `xml:"Version"`
		TimeCreated struct {
			SystemTime string `xml:"SystemTime,attr"`
		} `xml:"TimeCreated"`
		EventRecordID string `xml:"EventRecordID"`
		Correlation   struct {
			ActivityID string `xml:"ActivityID,attr"`
		} `xml:"Correlation"`
		Computer string `xml:"Computer"`
	} `xml:"System"`
	EventData struct {
		Data []struct {
			Name  string `xml:"Name,attr"`
			Value string `xml:",chardata"`
		} `xml:"Data"`
	} `xml:"EventData"`
}

// ParseXML reads events as wevtutil qe LOG /f:xml writes them: <Event>
// elements one after another with no root element (or under one root,
// such as <Events>), each with <System> (Provider Name, EventID, Version,
// TimeCreated SystemTime, EventRecordID, Correlation ActivityID,
// Computer) and <EventData> holding <Data Name="...">value</Data>.
// Every field is read by its name, so any template version is read.
// The decoder is encoding/xml's, in strict mode: a document type
// declaration is refused (no entity is ever defined or fetched).
func ParseXML(data []byte, source string) (log *Log, err error) {
	defer func() {
		if r := recover(); r != nil {
			log, err = nil, fmt.Errorf("%w: %s: internal error reading XML: %v", ErrMalformed, source, r)
		}
	}()
	text, err := decodeText(data, source)
	if err != nil {
		return nil, err
	}
	// wevtutil writes no root element: wrap the events in one, so that
	// one decoder reads them all. The wrapper's name cannot be closed
	// by the export's text, which may not contain "</csv-triage-root>"
	// before its own elements close (a well-formed document would not).
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
	wrapped := make([]byte, 0, len(body)+40)
	wrapped = append(wrapped, "<csv-triage-root>"...)
	wrapped = append(wrapped, body...)
	wrapped = append(wrapped, "</csv-triage-root>"...)
	dec := xml.NewDecoder(bytes.NewReader(wrapped))
	dec.Strict = true
	var ps []parsed
	index := 0
	depth := 0
	fail := func(err error) *Log {
		ps = append(ps, parsed{err: &EventError{Source: source, Index: index + 1, Err: err}})
		return assemble(ps)
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(fmt.Errorf("malformed or truncated XML (the rest of the export is unread): %v", err)), nil
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
			var x xmlEvent
			if err := dec.DecodeElement(&x, &t); err != nil {
				index--
				return fail(fmt.Errorf("malformed or truncated <Event> (the rest of the export is unread): %v", err)), nil
			}
			sys, f, err := xmlFields(&x)
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

func xmlFields(x *xmlEvent) (system, fields, error) {
	sys := system{version: -1, provider: x.System.Provider.Name}
	id, err := strconv.Atoi(strings.TrimSpace(x.System.EventID))
	if err != nil {
		return sys, nil, fmt.Errorf("<EventID> %q is not a number", truncate(x.System.EventID, 20))
	}
	sys.id = id
	if id != IDAudit && id != IDBlock && id != IDSignature {
		return sys, nil, nil
	}
	if v := strings.TrimSpace(x.System.Version); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 255 {
			return sys, nil, fmt.Errorf("<Version> %q is not a number from 0 to 255", truncate(v, 20))
		}
		sys.version = n
	}
	if r := strings.TrimSpace(x.System.EventRecordID); r != "" {
		if sys.recordID, err = strconv.ParseUint(r, 10, 64); err != nil {
			return sys, nil, fmt.Errorf("<EventRecordID> %q is not a number", truncate(r, 20))
		}
	}
	if sys.time, err = parseTime(x.System.TimeCreated.SystemTime); err != nil {
		return sys, nil, fmt.Errorf("<TimeCreated SystemTime>: %w", err)
	}
	sys.computer = strings.TrimSpace(x.System.Computer)
	sys.activityID = x.System.Correlation.ActivityID
	if len(x.EventData.Data) > limits.MaxEventFields {
		return sys, nil, fmt.Errorf("%d <Data> fields, over the limit of %d", len(x.EventData.Data), limits.MaxEventFields)
	}
	f := fields{}
	for i, d := range x.EventData.Data {
		if d.Name == "" {
			return sys, nil, fmt.Errorf("<Data> #%d has no Name: csv reads EventData by name", i+1)
		}
		if err := f.add(d.Name, d.Value); err != nil {
			return sys, nil, err
		}
	}
	return sys, f, nil
}
