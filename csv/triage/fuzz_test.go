package triage

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/codesignval/csv/internal/panicerr"
)

func fuzzSeeds(f testing.TB) []spec {
	blk := blockSpec(IDBlock, `\Device\HarddiskVolume3\Program Files\Contoso\tool.exe`, auth1, auth256, flat1, flat256, testGUID)
	sig := sigSpec(blk.activity, blk.computer, 1, 1, "Contoso Build Signing", "Contoso Issuing CA", repeat(0x21, 32), repeat(0x22, 32))
	aud := blockSpec(IDAudit, `\??\C:\x.exe`, auth1, auth256, nil, nil, "")
	return []spec{blk, sig, aud}
}

// checkLog asserts the invariants of a parse: an error is ErrMalformed
// and comes with no log; every event has a file name and a hash.
func checkLog(t *testing.T, l *Log, err error) {
	// A panic recovered into an error is a bug the fuzzer must report.
	if p := panicerr.Find(err); p != nil {
		t.Fatal(p.Report())
	}
	if err != nil {
		if l != nil || !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v with log %v", err, l)
		}
		return
	}
	for _, e := range l.Events {
		if e.FileName == "" || (e.SHA256Hash == nil && e.SHA1Hash == nil && e.SHA256FlatHash == nil) {
			t.Fatalf("event without file name or hash: %+v", e)
		}
	}
	for _, e := range l.Errors {
		if p := panicerr.Find(e); p != nil {
			t.Fatal(p.Report())
		}
		if !errors.Is(e, ErrMalformed) {
			t.Fatalf("event error %v is not ErrMalformed", e)
		}
	}
	tr, terr := New(Options{})
	if terr != nil {
		t.Fatal(terr)
	}
	fs := tr.TriageLog(l)
	if len(fs) != len(l.Events)+len(l.Errors) {
		t.Fatalf("%d findings for %d events and %d errors", len(fs), len(l.Events), len(l.Errors))
	}
	for _, f := range fs {
		if f.panicked != nil {
			t.Fatal(f.panicked.Report())
		}
	}
}

func FuzzEventsJSON(f *testing.F) {
	s := fuzzSeeds(f)
	f.Add(jsonExport(f, ps51, s...))
	f.Add(jsonExport(f, ps7, s...))
	f.Add(jsonOf(f, []any{s[0].named(), s[1].named()}))
	f.Add(jsonOf(f, s[2].winEvent(ps51)))
	f.Add([]byte(`[{"Id":3077,"Version":5,"Message":"\ud83d\ude00 \u00e9\n","Qualifiers":{"a":[1,-2.5e3,true,false,null]},"EventData":{"File Name":"a\ud800"}}]`))
	// Review 8: a NUL after the events, aliases of one field, a name
	// outside ASCII.
	f.Add(append(append(jsonExport(f, ps51, s[0]), 0), jsonExport(f, ps51, s[2])...))
	f.Add([]byte(`{"Id":3077,"EventId":3089,"\u0130d":1,"Properties":[],"EventData":{"F\u0130le Name":"a"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseJSON(data, "fuzz.json")
		checkLog(t, l, err)
		// UTF-8 text that is no JSON (RFC 8259; encoding/json is the
		// oracle) is never read without an error: a reader that stops
		// early would drop what follows without a word. A BOM or UTF-16
		// export is decoded first, and so left out.
		if err == nil && len(l.Errors) == 0 && !json.Valid(data) &&
			(len(data) == 0 || data[0] != 0xef && data[0] != 0xfe && data[0] != 0xff) {
			t.Fatalf("%q is no JSON (encoding/json), read as %d events without an error", truncate(string(data), 200), len(l.Events))
		}
	})
}

func FuzzEventsXML(f *testing.F) {
	s := fuzzSeeds(f)
	f.Add(xmlExport(s...))
	f.Add([]byte("<Events>" + string(xmlExport(s[0])) + "</Events>"))
	f.Add(xmlExport(s[2]))
	f.Add([]byte(`<Event><System><EventID>3077</EventID><EventID>1</EventID></System><EventData><Data Name="File Name" Name="x">a&#xD800;<b/><![CDATA[c]]><!-- d --></Data></EventData></Event>`))
	f.Add([]byte(`<Event><System><EventID>3077</EventID></System><EventData><Data Name="F&#x0000000000D800;le">&#000000000055296;</Data><Data Name="F` + "\u0130" + `le Name">a</Data></EventData></Event>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseXML(data, "fuzz.xml")
		checkLog(t, l, err)
	})
}
