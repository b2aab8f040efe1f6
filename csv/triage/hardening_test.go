package triage

import (
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/codesignval/csv/internal/limits"
)

// allocated returns the bytes f allocates (runtime.MemStats.TotalAlloc):
// a count, not a time, so the test is deterministic enough to bound.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestEventMemoryBounded: an event of many megabytes is not materialized
// before its caps are checked. Before the token readers, one such event
// cost about 100 times its size (every member and byte as a Go value).
func TestEventMemoryBounded(t *testing.T) {
	good := blockSpec(IDBlock, `\Device\HarddiskVolume3\a.exe`, auth1, auth256, flat1, flat256, testGUID)
	goodJSON := string(jsonExport(t, ps51, good))
	goodXML := string(xmlExport(good))
	const n = 4 << 20 // elements or bytes
	cases := []struct {
		name string
		data string
		// bound on the bytes allocated while parsing
		bound uint64
		// events read, errors; fatal: the error ends the export
		events, errs int
	}{
		// An array of 4 Mi numbers in a member csv does not read: scanned,
		// never built (encoding/json: a RawMessage, then every token).
		{"JSON unknown member", strings.Replace(goodJSON, `"Id":`, `"Junk":[`+strings.Repeat("1,", n)+`1],"Id":`, 1) + "", 1 << 20, 1, 0},
		// 4 Mi Properties: over MaxEventFields at the 257th (encoding/json:
		// a slice of 4 Mi RawMessages and 4 Mi maps).
		{"JSON many Properties", strings.Replace(goodJSON, `"Properties":[`, `"Properties":[`+strings.Repeat(`{"Value":1},`, n/4), 1), 2 << 20, 0, 1},
		// A byte array of 4 Mi numbers: over MaxEventField while it is read.
		{"JSON long byte array", strings.Replace(goodJSON, "[2,2,2", "["+strings.Repeat("2,", n)+"2,2,2", 1), 2 << 20, 0, 1},
		// A string of 8 MiB: over MaxEventField while it is read.
		{"JSON long string", strings.Replace(goodJSON, `"Contoso"`, `"`+strings.Repeat("x", 2*n)+`"`, 1), 2 << 20, 0, 1},
		// A <Data> of 8 MiB: its text token over MaxEventXMLToken ends the
		// export (encoding/xml: the whole text, then the string).
		{"XML long Data", goodXML + strings.Replace(goodXML, "Contoso Tools", strings.Repeat("x", 2*n), 1), 8 << 20, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := []byte(c.data)
			var l *Log
			var err error
			got := allocated(func() { l, err = Parse(data, "big") })
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Events) != c.events || len(l.Errors) != c.errs {
				t.Fatalf("%d events, errors %v; want %d, %d", len(l.Events), l.Errors, c.events, c.errs)
			}
			t.Logf("%d-byte export: %d bytes allocated", len(data), got)
			if got > c.bound {
				t.Errorf("parsing a %d-byte export allocated %d bytes, over %d", len(data), got, c.bound)
			}
		})
	}
}

// TestRepeatedAndHidden: what an export says twice, or hides where
// encoding/xml drops it, is refused (an error naming the export and the
// event), never read as the last one says it.
func TestRepeatedAndHidden(t *testing.T) {
	good := blockSpec(IDBlock, `\Device\HarddiskVolume3\a.exe`, auth1, auth256, flat1, flat256, testGUID)
	x := string(xmlExport(good))
	j := string(jsonExport(t, ps51, good))
	named := string(jsonOf(t, []any{good.named()}))
	rep := func(s, old, new string) string {
		t.Helper()
		if !strings.Contains(s, old) {
			t.Fatalf("%q not in the export", old)
		}
		return strings.Replace(s, old, new, 1)
	}
	// Get-WinEvent's positional Properties with an added EventData: two
	// members for the event's fields, each naming another file.
	bothM := blockSpec(IDBlock, `\Device\HarddiskVolume3\evil.exe`, auth1, auth256, flat1, flat256, testGUID).winEvent(ps51)
	bothM["EventData"] = blockSpec(IDBlock, `\Device\HarddiskVolume3\innocent.exe`, auth1, auth256, flat1, flat256, testGUID).named()["EventData"]
	both := string(jsonOf(t, []any{bothM}))
	cases := []struct{ name, data, want string }{
		{"XML System twice", rep(x, "<EventData>", "<System><EventID>1</EventID></System><EventData>"), "<System> given twice"},
		{"XML EventID twice", rep(x, "<EventID>3077</EventID>", "<EventID>3077</EventID><EventID>1</EventID>"), "<EventID> given twice"},
		{"XML EventID twice, the other first", rep(x, "<EventID>3077</EventID>", "<EventID>1</EventID><EventID>3077</EventID>"), "<EventID> given twice"},
		{"XML Version twice", rep(x, "<Version>5</Version>", "<Version>5</Version><Version>3</Version>"), "<Version> given twice"},
		{"XML Correlation twice", rep(x, "<Computer>", "<Correlation ActivityID='{00000000-0000-0000-0000-000000000001}'/><Computer>"), "<Correlation> given twice"},
		{"XML Provider Name twice", rep(x, "<Provider Name='Microsoft-Windows-CodeIntegrity'", "<Provider Name='Microsoft-Windows-CodeIntegrity' Name='Other'"), "Name attribute twice"},
		{"XML EventData twice", rep(x, "</EventData>", "</EventData><EventData><Data Name='File Name'>b.exe</Data></EventData>"), "<EventData> given twice"},
		{"XML Data Name twice", rep(x, "<Data Name='File Name'>", "<Data Name='File Name' Name='Other'>"), "Name attribute twice"},
		{"XML Data twice", rep(x, "</EventData>", "<Data Name='SHA256 Flat Hash'>00</Data></EventData>"), "given twice"},
		{"XML Data with an element", rep(x, "<Data Name='File Name'>", "<Data Name='File Name'><b>x</b>"), "holds an element <b>"},
		{"XML EventID with an element", rep(x, "<EventID>3077", "<EventID><x/>3077"), "<EventID> holds an element"},
		{"XML unknown element in EventData", rep(x, "</EventData>", "<ComplexData/></EventData>"), "<ComplexData> in <EventData>"},
		{"XML surrogate reference", rep(x, `\a.exe`, `\a&#xD800;.exe`), "surrogate"},
		{"XML surrogate reference, decimal", rep(x, `\a.exe`, `\a&#56320;.exe`), "surrogate"},
		// Leading zeros: encoding/xml reads any number of them.
		{"XML surrogate reference, leading zeros", rep(x, `\a.exe`, `\a&#x0000000000D800;.exe`), "surrogate"},
		{"XML surrogate reference, decimal, leading zeros", rep(x, `\a.exe`, `\a&#000000000055296;.exe`), "surrogate"},
		{"XML surrogate reference, many leading zeros", rep(x, `\a.exe`, `\a&#x`+strings.Repeat("0", 200)+`DFFF;.exe`), "surrogate"},
		{"XML surrogate reference in an attribute", rep(x, "<Data Name='File Name'>", "<Data Name='File&#x00000000DBFF;Name'>"), "surrogate"},
		// Letters that Unicode folds to ASCII: İ lowers to i, ı and ſ
		// upper to I and S, K (Kelvin) lowers to k. PowerShell reads
		// none of these names as the ASCII one.
		{"XML Data Name with a dotted capital I", rep(x, "<Data Name='File Name'>", "<Data Name='F\u0130le Name'>"), "not ASCII"},
		{"JSON member with a dotted capital I", rep(j, `"Id":3077`, `"\u0130d":3077`), "not ASCII"},
		{"JSON member with a dotless i", rep(j, `"Id":3077`, `"\u0131d":3077`), "not ASCII"},
		{"JSON named field with a dotted capital I", rep(named, `"File Name":`, `"F\u0130le Name":`), "not ASCII"},
		{"JSON named field with a long s", rep(named, `"SHA256 Flat Hash":`, `"\u017fHA256 Flat Hash":`), "not ASCII"},
		{"JSON property member with a Kelvin sign", rep(j, `{"Value":"Contoso"}`, `{"Value":"Contoso","\u212aey":1}`), "not ASCII"},
		// Two members csv reads as one field (aliases): refused, as a
		// reader keyed on the other would see another event.
		{"JSON Properties and EventData", both, `"EventData" and "Properties"`},
		{"JSON Id and EventId", rep(j, `"Id":3077`, `"Id":3077,"EventId":3089`), `"Id" and "EventId"`},
		{"JSON EventId, then Id", rep(j, `"Id":3077`, `"EventId":1,"Id":3077`), `"EventId" and "Id"`},
		{"JSON MachineName and Computer", rep(j, `"MachineName":`, `"computer":"other","MachineName":`), `"computer" and "MachineName"`},
		{"JSON member twice in a property", rep(j, `{"Value":"Contoso"}`, `{"Value":"Contoso","Value":"Other"}`), `member "Value" given twice`},
		{"JSON member twice deep", rep(j, `"Qualifiers":null`, `"Qualifiers":{"a":[{"b":1,"b":2}]}`), `member "b" given twice`},
		{"JSON Value in another case in a property", rep(j, `{"Value":"Contoso"}`, `{"Value":"Contoso","value":"Other"}`), "Value in another letter case"},
		{"JSON member twice in another case", rep(j, `"Id":3077`, `"Id":3077,"id":1`), "another letter case"},
		{"JSON named field twice", rep(named, `"File Name":`, `"FileName":"x","File Name":`), "given twice"},
		{"JSON unpaired surrogate", rep(j, `a.exe`, `a\ud800.exe`), "unpaired"},
		{"JSON unpaired low surrogate", rep(j, `a.exe`, `a\udc00.exe`), "unpaired"},
		{"JSON high surrogate then another escape", rep(j, `a.exe`, `a\ud800\u0041.exe`), "unpaired"},
		{"JSON unpaired surrogate in a member csv does not read", rep(j, `"Message":"Code`, `"Message":"\udbff Code`), "unpaired"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := Parse([]byte(c.data), "bad.export")
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Events) != 0 || len(l.Errors) != 1 {
				t.Fatalf("%d events %+v, errors %v; want the event refused", len(l.Events), l.Events, l.Errors)
			}
			e := l.Errors[0]
			if !errors.Is(e, ErrMalformed) || e.Index != 1 || !strings.HasPrefix(e.Error(), "bad.export: event #1") || !strings.Contains(e.Error(), c.want) {
				t.Errorf("error %q (index %d): want ErrMalformed naming the export, event #1 and %q", e, e.Index, c.want)
			}
		})
	}
	// The export goes on after a refused event.
	l, err := Parse([]byte(rep(x, "<EventID>3077</EventID>", "<EventID>3077</EventID><EventID>1</EventID>")+x), "two.xml")
	if err != nil || len(l.Events) != 1 || len(l.Errors) != 1 || l.Events[0].Index != 2 {
		t.Errorf("after a refused event: %v %+v", err, l)
	}
}

// TestJSONTrailingData: nothing but white space may follow the events;
// a NUL byte is no white space (RFC 8259 section 2), and the events
// after one must not be dropped without a word.
func TestJSONTrailingData(t *testing.T) {
	a := blockSpec(IDBlock, `\Device\HarddiskVolume3\a.exe`, auth1, auth256, flat1, flat256, testGUID)
	b := blockSpec(IDBlock, `\Device\HarddiskVolume3\hidden.exe`, auth1, auth256, flat1, flat256, testGUID)
	arr := string(jsonExport(t, ps51, a))
	one := string(jsonOf(t, a.winEvent(ps51)))
	for name, data := range map[string]string{
		"NUL, then an array":        arr + "\x00" + string(jsonExport(t, ps51, b)),
		"NUL alone":                 arr + "\x00",
		"white space, NUL":          arr + " \r\n\x00 garbage",
		"one object, NUL, object":   one + "\x00" + string(jsonOf(t, b.winEvent(ps51))),
		"text after the events":     arr + " x",
		"a second array":            arr + string(jsonExport(t, ps51, b)),
		"one object, a second one":  one + " " + string(jsonOf(t, b.winEvent(ps51))),
		"NUL before the first byte": "\x00" + arr,
	} {
		if json.Valid([]byte(data)) {
			t.Fatalf("%s: encoding/json takes it", name)
		}
		l, err := Parse([]byte(data), "trail.json")
		if err != nil {
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "trail.json") {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if len(l.Errors) != 1 || !strings.Contains(l.Errors[0].Error(), "trail.json") {
			t.Errorf("%s: %d events, errors %v: want the data after the events refused", name, len(l.Events), l.Errors)
		}
		for _, e := range l.Events {
			if strings.Contains(e.FileName, "hidden") {
				t.Errorf("%s: read the event after the data: %q", name, e.FileName)
			}
		}
	}
	// Control: white space after the events is taken.
	l, err := Parse([]byte(arr+" \t\r\n"), "ws.json")
	if err != nil || len(l.Events) != 1 || len(l.Errors) != 0 {
		t.Errorf("white space after the events: %v %+v", err, l)
	}
}

// TestSurrogates: a surrogate pair is the character it encodes; an
// unpaired surrogate in UTF-16 text is refused, as in JSON escapes.
func TestSurrogates(t *testing.T) {
	good := blockSpec(IDBlock, `\Device\HarddiskVolume3\a😀.exe`, auth1, auth256, flat1, flat256, testGUID)
	j := string(jsonExport(t, ps51, good))
	// encoding/json writes 😀 as it is: escape it as ConvertTo-Json may.
	esc := strings.Replace(j, "😀", `\ud83d\ude00`, 1)
	for name, data := range map[string]string{"raw": j, "escaped": esc} {
		l, err := Parse([]byte(data), name)
		if err != nil || len(l.Events) != 1 || l.Events[0].FileName != `\Device\HarddiskVolume3\a😀.exe` {
			t.Errorf("%s: %v %+v", name, err, l)
		}
	}
	utf16le := func(units []uint16) []byte {
		b := []byte{0xff, 0xfe}
		for _, u := range units {
			b = append(b, byte(u), byte(u>>8))
		}
		return b
	}
	units := utf16.Encode([]rune(string(xmlExport(good))))
	if _, err := Parse(utf16le(units), "pair.xml"); err != nil {
		t.Fatalf("UTF-16 with a surrogate pair: %v", err)
	}
	for i, u := range units {
		if utf16.IsSurrogate(rune(u)) {
			bad := append([]uint16(nil), units...)
			bad[i+1] = 'x' // the high surrogate alone
			_, err := Parse(utf16le(bad), "unpaired.xml")
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "unpaired.xml: UTF-16 text with an unpaired surrogate at byte") {
				t.Errorf("UTF-16 with an unpaired surrogate: %v", err)
			}
			break
		}
	}
}

// TestXMLCaps: depth and token caps end the export with an error that
// says so; nothing before is lost.
func TestXMLCaps(t *testing.T) {
	good := blockSpec(IDBlock, `\Device\HarddiskVolume3\a.exe`, auth1, auth256, flat1, flat256, testGUID)
	x := string(xmlExport(good))
	deep := strings.Replace(x, "</EventData>", "</EventData><U>"+strings.Repeat("<a>", limits.MaxEventXMLDepth)+strings.Repeat("</a>", limits.MaxEventXMLDepth)+"</U>", 1)
	attrs := strings.Replace(x, "<Level>", "<Level"+strings.Repeat(` a="b"`, limits.MaxEventXMLToken/6)+">", 1)
	for name, c := range map[string]struct{ data, want string }{
		"depth": {x + deep, "MaxEventXMLDepth"},
		"attrs": {x + attrs, "MaxEventXMLToken"},
	} {
		l, err := Parse([]byte(c.data), name)
		if err != nil || len(l.Events) != 1 || len(l.Errors) != 1 || !strings.Contains(l.Errors[0].Error(), c.want) || !strings.Contains(l.Errors[0].Error(), "the rest of the export is unread") {
			t.Errorf("%s: %v %+v %v", name, err, l, l.Errors)
		}
	}
	// A JSON export nested deeper than its cap: the same.
	j := string(jsonExport(t, ps51, good, good))
	i := strings.LastIndex(j, `"Qualifiers":null`)
	deepJ := j[:i] + `"Qualifiers":` + strings.Repeat("[", limits.MaxEventJSONDepth) + strings.Repeat("]", limits.MaxEventJSONDepth) + j[i+len(`"Qualifiers":null`):]
	l, err := Parse([]byte(deepJ), "deep.json")
	if err != nil || len(l.Events) != 1 || len(l.Errors) != 1 || !strings.Contains(l.Errors[0].Error(), "MaxEventJSONDepth") {
		t.Errorf("deep JSON: %v %+v %v", err, l, l.Errors)
	}
}

// TestTriagePanicMarked: a panic while judging is an error finding that
// carries the recovered panic, which the fuzz targets fail on.
func TestTriagePanicMarked(t *testing.T) {
	tr, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := tr.Triage(nil)
	if f.Class != ClassError || f.panicked == nil || !strings.Contains(f.Reason, "internal error judging the event") {
		t.Fatalf("Triage(nil) = %+v: want an error finding that carries the panic", f)
	}
}

// TestJSONMutations: every one-byte insertion (of bytes JSON gives a
// meaning, and bytes it refuses) and every one-byte deletion of a small
// export: one that encoding/json finds no JSON is never read without an
// error. A deterministic sweep beside FuzzEventsJSON, which missed a NUL
// after the events (review 8, F4) that this finds at once.
func TestJSONMutations(t *testing.T) {
	// Small exports, each read without an error, so the sweep is short.
	seeds := [][]byte{
		[]byte(`[{"Id":3076,"Version":5,"TimeCreated":"2026-01-01T00:00:00Z","EventData":{"File Name":"a","SHA1 Hash":"` + strings.Repeat("01", 20) + `"}},{"Id":1,"MachineName":"m"}]`),
		[]byte(`{"Id":3077,"TimeCreated":"/Date(1)/","EventData":{"File Name":"\u0041\ud83d\ude00","SHA256 Flat Hash":"` + strings.Repeat("ab", 32) + `"}}`),
		[]byte(`[{"Id":1,"Message":"\ud83d\ude00 \u00e9\n","Qualifiers":{"a":[1,-2.5e3,true,false,null]}}]`),
	}
	ins := []byte{0, '\t', 0x0b, 0x0c, 0x7f, 0x80, 0xff, '\\', '"', ',', ']', '}', '[', '{', ' ', '0', '1', '-', '+', 'e', '.', 'u', 'n', ':', '/'}
	n, bad := 0, 0
	try := func(m []byte) {
		n++
		l, err := Parse(m, "m.json")
		if err != nil || len(l.Errors) > 0 || json.Valid(m) {
			return
		}
		if bad++; bad <= 10 {
			t.Errorf("%q is no JSON (encoding/json), read as %d events without an error", m, len(l.Events))
		}
	}
	for _, s := range seeds {
		if l, err := Parse(s, "seed.json"); err != nil || len(l.Errors) > 0 {
			t.Fatalf("seed %q: %v %v", s, err, l.Errors)
		}
		for i := 0; i <= len(s); i++ {
			for _, c := range ins {
				try(append(append(append([]byte{}, s[:i]...), c), s[i:]...))
			}
			if i < len(s) {
				try(append(append([]byte{}, s[:i]...), s[i+1:]...))
			}
		}
	}
	t.Logf("%d mutations, %d read without an error", n, bad)
}
