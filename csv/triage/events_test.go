package triage

import (
	"bytes"
	"errors"
	"github.com/codesignval/csv/internal/limits"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

var (
	auth1   = repeat(0x01, 20)
	auth256 = repeat(0x02, 32)
	flat1   = repeat(0x03, 20)
	flat256 = repeat(0x04, 32)
)

const testGUID = "{A244370E-44C9-4C06-B551-F6016E563076}"

// documented3077 is the EventData of event 3077 (and 3076) as
// Microsoft's "Understanding App Control event tags" and the provider
// manifest name them, template version 5, in order.
var documented3077 = []string{
	"FileNameLength", "File Name", "ProcessNameLength", "Process Name", "Requested Signing Level",
	"Validated Signing Level", "Status", "SHA1 Hash Size", "SHA1 Hash", "SHA256 Hash Size", "SHA256 Hash",
	"SHA1 Flat Hash Size", "SHA1 Flat Hash", "SHA256 Flat Hash Size", "SHA256 Flat Hash", "USN",
	"SI Signing Scenario", "PolicyNameLength", "PolicyName", "PolicyIDLength", "PolicyID", "PolicyHashSize",
	"PolicyHash", "OriginalFileNameLength", "OriginalFileName", "InternalNameLength", "InternalName",
	"FileDescriptionLength", "FileDescription", "ProductNameLength", "ProductName", "FileVersion",
	"PolicyGUID", "UserWriteable", "PackageFamilyNameLength", "PackageFamilyName",
}

var documented3089 = []string{
	"TotalSignatureCount", "Signature", "CacheState", "Hash Size", "Hash", "PageHash", "SignatureType",
	"ValidatedSigningLevel", "VerificationError", "Flags", "PolicyBits", "NotValidBefore", "NotValidAfter",
	"PublisherNameLength", "PublisherName", "IssuerNameLength", "IssuerName", "PublisherTBSHashSize",
	"PublisherTBSHash", "IssuerTBSHashSize", "IssuerTBSHash",
}

func TestTemplatesAreTheDocumentedSchema(t *testing.T) {
	check := func(name string, got, want []string) {
		if len(got) != len(want) {
			t.Fatalf("%s: %d fields, documented %d", name, len(got), len(want))
		}
		for i := range want {
			if fieldKey(got[i]) != fieldKey(want[i]) {
				t.Errorf("%s field %d: %q, documented %q", name, i, got[i], want[i])
			}
		}
	}
	check("3077 v5", blockFieldsV5, documented3077)
	check("3089 v2", signatureFieldsV2, documented3089)
	// Version 4 is version 5 without the flat hashes and the three last
	// fields.
	var v4 []string
	for _, f := range documented3077 {
		if strings.Contains(f, "Flat Hash") || f == "UserWriteable" || strings.HasPrefix(f, "PackageFamilyName") {
			continue
		}
		v4 = append(v4, f)
	}
	check("3077 v4", blockFieldsV4, v4)
	// The property counts Get-WinEvent -ListProvider reports per version
	// (Windows 11 24H2; version 4 on 1809 LTSC has 32).
	for _, c := range []struct {
		id, version int
		counts      []int
	}{
		{IDBlock, 0, []int{13}}, {IDBlock, 1, []int{17}}, {IDBlock, 2, []int{19}}, {IDBlock, 3, []int{28}},
		{IDBlock, 4, []int{29, 32}}, {IDBlock, 5, []int{36}}, {IDAudit, 5, []int{36}},
		{IDSignature, 0, []int{15}}, {IDSignature, 1, []int{20}}, {IDSignature, 2, []int{21}}, {IDSignature, 3, []int{26}},
	} {
		ts := templates[c.id][c.version]
		if len(ts) != len(c.counts) {
			t.Errorf("%d v%d: %d templates, want %d", c.id, c.version, len(ts), len(c.counts))
			continue
		}
		for i, tpl := range ts {
			if len(tpl) != c.counts[i] {
				t.Errorf("%d v%d: %d fields, want %d", c.id, c.version, len(tpl), c.counts[i])
			}
			seen := map[string]bool{}
			for j, f := range tpl {
				if seen[fieldKey(f)] {
					t.Errorf("%d v%d: %q twice", c.id, c.version, f)
				}
				seen[fieldKey(f)] = true
				// A binary or string field follows its size or length.
				if strings.HasSuffix(f, "Size") || strings.HasSuffix(f, "Length") {
					if j+1 >= len(tpl) {
						t.Errorf("%d v%d: %q ends the template", c.id, c.version, f)
					}
				}
			}
		}
	}
	if got := blockFieldsV4LTSC[11:15]; strings.Join(got, ",") != "SHA1 Flat Hash Size,SHA1 Flat Hash,SHA256 Flat Hash Size,SHA256 Flat Hash" {
		t.Errorf("1809 v4 flat hashes at %v", got)
	}
	// The spelling without spaces (the manifest's FileName) is the same
	// field.
	if fieldKey("File Name") != fieldKey("FileName") || fieldKey("SHA256 Flat Hash") != fieldKey("SHA256FlatHash") {
		t.Error("fieldKey does not join the two spellings")
	}
}

// TestEventFieldByField reads one 3077 event carrying every documented
// field in each export format and checks each field of the result.
func TestEventFieldByField(t *testing.T) {
	file := `\Device\HarddiskVolume3\Program Files\Contoso\tool.exe`
	blk := blockSpec(IDBlock, file, auth1, auth256, flat1, flat256, testGUID)
	sig := sigSpec(blk.activity, blk.computer, 1, 1, "Contoso Build Signing", "Contoso Issuing CA", repeat(0x21, 32), repeat(0x22, 32))
	exports := map[string][]byte{
		"xml":        xmlExport(blk, sig),
		"json-ps5.1": jsonExport(t, ps51, blk, sig),
		"json-ps7":   jsonExport(t, ps7, blk, sig),
		"json-named": jsonOf(t, []any{blk.named(), sig.named()}),
	}
	for name, data := range exports {
		t.Run(name, func(t *testing.T) {
			l, err := Parse(data, "events."+name)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Errors) != 0 || len(l.Events) != 1 || l.Orphans != 0 {
				t.Fatalf("errors %v, %d events, %d orphans", l.Errors, len(l.Events), l.Orphans)
			}
			e := l.Events[0]
			ms := time.Date(2026, 6, 2, 8, 0, 0, 123456700, time.UTC)
			if name == "json-ps5.1" {
				ms = ms.Truncate(time.Millisecond)
			}
			want := []struct {
				field string
				got   any
				want  any
			}{
				{"ID", e.ID, IDBlock},
				{"Enforced", e.Enforced(), true},
				{"Version", e.Version, 5},
				{"RecordID", e.RecordID, uint64(2828)},
				{"Time", e.Time, ms},
				{"Computer", e.Computer, "WS01.contoso.test"},
				{"ActivityID", e.ActivityID, "E4DB489E-1037-0002-799D-F2E43710DA01"},
				{"File Name", e.FileName, file},
				{"Path", e.Path, `HarddiskVolume3:\Program Files\Contoso\tool.exe`},
				{"Process Name", e.ProcessName, `\Device\HarddiskVolume3\Windows\explorer.exe`},
				{"Requested Signing Level", e.RequestedSigningLevel, 8},
				{"Validated Signing Level", e.ValidatedSigningLevel, 1},
				{"Status", e.Status, "0xc0e90002"},
				{"SHA1 Hash", text(e.SHA1Hash), text(auth1)},
				{"SHA256 Hash", text(e.SHA256Hash), text(auth256)},
				{"SHA1 Flat Hash", text(e.SHA1FlatHash), text(flat1)},
				{"SHA256 Flat Hash", text(e.SHA256FlatHash), text(flat256)},
				{"USN", e.USN, uint64(123456789012)},
				{"SI Signing Scenario", e.Scenario, 1},
				{"PolicyName", e.PolicyName, "Contoso"},
				{"PolicyID", e.PolicyID, "2026-05-01"},
				{"PolicyHash", text(e.PolicyHash), text(repeat(0xAA, 32))},
				{"PolicyGUID", e.PolicyGUID, "A244370E-44C9-4C06-B551-F6016E563076"},
				{"OriginalFileName", e.OriginalFileName, "tool.exe"},
				{"InternalName", e.InternalName, "tool"},
				{"FileDescription", e.FileDescription, "Some tool"},
				{"ProductName", e.ProductName, "Contoso Tools"},
				{"FileVersion", e.FileVersion, "2.1.0.7"},
				{"UserWriteable", e.UserWriteable != nil && !*e.UserWriteable, true},
				{"PackageFamilyName", e.PackageFamilyName, ""},
				{"signatures", len(e.Signatures), 1},
			}
			for _, w := range want {
				if w.got != w.want {
					t.Errorf("%s = %v, want %v", w.field, w.got, w.want)
				}
			}
			s := e.Signatures[0]
			swant := []struct {
				field string
				got   any
				want  any
			}{
				{"TotalSignatureCount", s.TotalSignatureCount, 1},
				{"Signature", s.Number, 1},
				{"Hash", text(s.Hash), text(repeat(0x11, 32))},
				{"PageHash", s.PageHash, false},
				{"SignatureType", s.SignatureType, 1},
				{"ValidatedSigningLevel", s.ValidatedSigningLevel, 4},
				{"VerificationError", s.VerificationError, 21},
				{"Flags", s.Flags, uint64(0)},
				{"NotValidBefore", s.NotValidBefore, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
				{"NotValidAfter", s.NotValidAfter, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
				{"PublisherName", s.PublisherName, "Contoso Build Signing"},
				{"IssuerName", s.IssuerName, "Contoso Issuing CA"},
				{"PublisherTBSHash", text(s.PublisherTBSHash), text(repeat(0x21, 32))},
				{"IssuerTBSHash", text(s.IssuerTBSHash), text(repeat(0x22, 32))},
			}
			for _, w := range swant {
				if w.got != w.want {
					t.Errorf("3089 %s = %v, want %v", w.field, w.got, w.want)
				}
			}
		})
	}
}

func TestVersion4Positional(t *testing.T) {
	blk := blockSpec(IDAudit, `\??\C:\x\a.exe`, auth1, auth256, nil, nil, testGUID)
	blk.version = 4
	var d []kv
	for _, f := range blk.data {
		if strings.Contains(f.name, "Flat Hash") || f.name == "UserWriteable" || strings.HasPrefix(f.name, "PackageFamilyName") {
			continue
		}
		d = append(d, f)
	}
	blk.data = d
	l, err := Parse(jsonExport(t, ps51, blk), "v4.json")
	if err != nil || len(l.Errors) != 0 || len(l.Events) != 1 {
		t.Fatalf("%v %v", err, l)
	}
	e := l.Events[0]
	if e.Enforced() || e.Path != `C:\x\a.exe` || text(e.SHA256Hash) != text(auth256) || e.SHA256FlatHash != nil || e.PolicyName != "Contoso" {
		t.Errorf("v4 event read as %+v", e)
	}
}

// TestOlderVersionsPositional reads version 0 (no policy fields) and
// the 1809 LTSC version 4 (flat hashes, no PolicyGUID) positionally.
func TestOlderVersionsPositional(t *testing.T) {
	full := blockSpec(IDBlock, `\??\C:\x\a.exe`, auth1, auth256, flat1, flat256, testGUID)
	pick := func(version int, names []string) spec {
		s := full
		s.version = version
		s.data = nil
		for _, n := range names {
			for _, d := range full.data {
				if d.name == n {
					s.data = append(s.data, d)
				}
			}
		}
		if len(s.data) != len(names) {
			t.Fatalf("v%d: %d of %d fields", version, len(s.data), len(names))
		}
		return s
	}
	l, err := Parse(jsonExport(t, ps7, pick(0, blockV0), pick(4, blockFieldsV4LTSC)), "old.json")
	if err != nil || len(l.Errors) != 0 || len(l.Events) != 2 {
		t.Fatalf("%v %+v", err, l)
	}
	v0, ltsc := l.Events[0], l.Events[1]
	if text(v0.SHA256Hash) != text(auth256) || v0.PolicyName != "" || v0.SHA256FlatHash != nil || v0.Scenario != 1 {
		t.Errorf("v0 read as %+v", v0)
	}
	if text(ltsc.SHA256FlatHash) != text(flat256) || ltsc.PolicyGUID != "" || ltsc.FileVersion != "2.1.0.7" || ltsc.USN != 123456789012 {
		t.Errorf("1809 v4 read as %+v", ltsc)
	}
}

// TestPrettyXML reads the shape Event Viewer and wevtutil write on a
// real host: indented elements, a self-closing empty <Data/>, double
// quotes, the activity ID in lower case.
func TestPrettyXML(t *testing.T) {
	doc := `<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
  <System>
    <Provider Name="Microsoft-Windows-CodeIntegrity" Guid="{4ee76bd8-3cf4-44a0-a0ac-3937643e37a3}" />
    <EventID>3077</EventID>
    <Version>5</Version>
    <TimeCreated SystemTime="2026-06-02T08:00:00.0190333Z" />
    <EventRecordID>193</EventRecordID>
    <Correlation ActivityID="{06dc59e1-fb5b-0001-7580-dc065bfbd701}" />
    <Computer>WS01</Computer>
  </System>
  <EventData>
    <Data Name="File Name">\Device\HarddiskVolume3\Tools\a.exe</Data>
    <Data Name="SHA256 Hash Size">32</Data>
    <Data Name="SHA256 Hash">` + text(auth256) + `</Data>
    <Data Name="SHA256 Flat Hash Size">32</Data>
    <Data Name="SHA256 Flat Hash">` + text(flat256) + `</Data>
    <Data Name="USN">0x1F</Data>
    <Data Name="PolicyGUID">{0f78c0e5-cb41-47b7-96f7-fedf43fafcb3}</Data>
    <Data Name="UserWriteable">false</Data>
    <Data Name="PackageFamilyNameLength">0</Data>
    <Data Name="PackageFamilyName" />
  </EventData>
</Event>
<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
  <System>
    <Provider Name="Microsoft-Windows-CodeIntegrity" />
    <EventID>3089</EventID>
    <Version>2</Version>
    <Correlation ActivityID="{06DC59E1-FB5B-0001-7580-DC065BFBD701}" />
    <Computer>WS01</Computer>
  </System>
  <EventData>
    <Data Name="TotalSignatureCount">1</Data>
    <Data Name="Signature">0</Data>
    <Data Name="NotValidBefore">2024-09-02T18:23:41.0000000Z</Data>
    <Data Name="PublisherName">Contoso</Data>
  </EventData>
</Event>`
	l, err := Parse([]byte(doc), "pretty.xml")
	if err != nil || len(l.Errors) != 0 || len(l.Events) != 1 {
		t.Fatalf("%v %+v", err, l)
	}
	e := l.Events[0]
	if e.USN != 31 || e.PolicyGUID != "0F78C0E5-CB41-47B7-96F7-FEDF43FAFCB3" || len(e.Signatures) != 1 || e.Signatures[0].Number != 0 ||
		e.Signatures[0].PublisherName != "Contoso" || e.Path != `HarddiskVolume3:\Tools\a.exe` {
		t.Errorf("read as %+v", e)
	}
}

func TestCorrelation(t *testing.T) {
	a := blockSpec(IDBlock, `\Device\HarddiskVolume3\a.exe`, auth1, auth256, flat1, flat256, testGUID)
	b := blockSpec(IDAudit, `\Device\HarddiskVolume3\b.exe`, auth1, auth256, flat1, flat256, testGUID)
	b.activity = "{00000000-0000-0000-0000-0000000000BB}"
	s2 := sigSpec(a.activity, a.computer, 2, 2, "second", "ca", repeat(1, 32), repeat(2, 32))
	s1 := sigSpec(strings.ToLower(a.activity), a.computer, 1, 2, "first", "ca", repeat(1, 32), repeat(2, 32))
	otherHost := sigSpec(a.activity, "WS99", 1, 1, "elsewhere", "ca", repeat(1, 32), repeat(2, 32))
	orphan := sigSpec("{00000000-0000-0000-0000-0000000000CC}", a.computer, 1, 1, "orphan", "ca", repeat(1, 32), repeat(2, 32))
	other := spec{id: 3099, version: 1, time: a.time, computer: a.computer, data: []kv{{"PolicyNameLength", 3}}}
	l, err := Parse(xmlExport(s2, a, b, s1, otherHost, orphan, other), "c.xml")
	if err != nil || len(l.Errors) != 0 {
		t.Fatal(err, l.Errors)
	}
	if len(l.Events) != 2 || l.Orphans != 2 || l.Other != 1 {
		t.Fatalf("%d events, %d orphans, %d other", len(l.Events), l.Orphans, l.Other)
	}
	sigs := l.Events[0].Signatures
	if len(sigs) != 2 || sigs[0].PublisherName != "first" || sigs[1].PublisherName != "second" {
		t.Errorf("a's signatures: %+v", sigs)
	}
	if len(l.Events[1].Signatures) != 0 {
		t.Errorf("b got signatures: %+v", l.Events[1].Signatures)
	}
}

func TestRootedXMLAndUTF16(t *testing.T) {
	a := blockSpec(IDBlock, `\Device\HarddiskVolume3\a.exe`, auth1, auth256, flat1, flat256, testGUID)
	doc := `<?xml version="1.0" encoding="utf-8"?>` + "\n<Events>" + a.xml() + "</Events>"
	l, err := Parse([]byte(doc), "rooted.xml")
	if err != nil || len(l.Events) != 1 || len(l.Errors) != 0 {
		t.Fatalf("rooted: %v %+v", err, l)
	}
	// Windows PowerShell's Out-File writes UTF-16LE with a byte order mark.
	units := utf16.Encode([]rune(string(jsonExport(t, ps51, a))))
	var b bytes.Buffer
	b.Write([]byte{0xff, 0xfe})
	for _, u := range units {
		b.WriteByte(byte(u))
		b.WriteByte(byte(u >> 8))
	}
	l, err = Parse(b.Bytes(), "utf16.json")
	if err != nil || len(l.Events) != 1 || len(l.Errors) != 0 {
		t.Fatalf("utf-16: %v %+v", err, l)
	}
	// One record: ConvertTo-Json writes an object, not an array.
	l, err = Parse(jsonOf(t, a.winEvent(ps7)), "one.json")
	if err != nil || len(l.Events) != 1 || len(l.Errors) != 0 {
		t.Fatalf("one object: %v %+v", err, l)
	}
}

// TestMalformed: every broken export is an error (of the export or of an
// event in the log), never a panic, and never silently dropped.
func TestMalformed(t *testing.T) {
	good := blockSpec(IDBlock, `\Device\HarddiskVolume3\a.exe`, auth1, auth256, flat1, flat256, testGUID)
	goodXML := string(xmlExport(good))
	goodJSON := string(jsonExport(t, ps51, good))
	mutate := func(f func(*spec)) spec {
		s := good
		s.data = append([]kv(nil), good.data...)
		f(&s)
		return s
	}
	setField := func(name string, v any) spec {
		return mutate(func(s *spec) {
			for i := range s.data {
				if s.data[i].name == name {
					s.data[i].value = v
				}
			}
		})
	}
	twoJSON := string(jsonExport(t, ps51, good, good))
	cases := []struct {
		name string
		data string
		// events is how many events still read; errs how many errors the
		// log holds (-1: the export as a whole is an error).
		events, errs int
	}{
		{"empty", "", 0, -1},
		{"garbage", "hello", 0, -1},
		{"not UTF-8", "\xff\xfe\xfd", 0, -1},
		{"truncated JSON array", twoJSON[:len(twoJSON)-200], 1, 1},
		{"truncated JSON object", goodJSON[:len(goodJSON)/2], 0, 1},
		{"truncated XML", goodXML + goodXML[:len(goodXML)/2], 1, 1},
		{"XML with a DOCTYPE", `<!DOCTYPE x [<!ENTITY a "b">]>` + goodXML, 0, 1},
		{"XML with an undefined entity", strings.Replace(goodXML, "tool.exe", "&xxe;", 1), 0, 1},
		{"text outside events", goodXML + "junk", 1, 1},
		{"hash size disagrees", string(xmlExport(setField("SHA256 Hash Size", 20))), 0, 1},
		{"SHA256 of 20 bytes", string(xmlExport(mutate(func(s *spec) {
			for i := range s.data {
				switch s.data[i].name {
				case "SHA256 Hash Size":
					s.data[i].value = 20
				case "SHA256 Hash":
					s.data[i].value = repeat(1, 20)
				}
			}
		}))), 0, 1},
		{"no File Name", string(xmlExport(setField("File Name", ""))), 0, 1},
		{"no hashes", string(xmlExport(mutate(func(s *spec) {
			var d []kv
			for _, f := range s.data {
				if !strings.Contains(f.name, "Hash") || strings.HasPrefix(f.name, "Policy") {
					d = append(d, f)
				}
			}
			s.data = d
		}))), 0, 1},
		{"a field twice", string(xmlExport(mutate(func(s *spec) { s.data = append(s.data, kv{"FileName", "b.exe"}) }))), 0, 1},
		{"a field over the cap", string(xmlExport(setField("ProductName", strings.Repeat("x", 200<<10)))), 0, 1},
		{"level not a number", string(xmlExport(setField("Requested Signing Level", "high"))), 0, 1},
		{"unknown positional version", strings.Replace(goodJSON, `"Version":5`, `"Version":9`, 1), 0, 1},
		{"positional count off", string(jsonOf(t, []any{func() map[string]any {
			m := good.winEvent(ps51)
			m["Properties"] = m["Properties"].([]map[string]any)[:30]
			return m
		}()})), 0, 1},
		{"ConvertTo-Json depth 2", strings.Replace(goodJSON, "[2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2]", `"System.Byte[]"`, 1), 0, 1},
		{"Properties truncated to strings", string(jsonOf(t, []any{func() map[string]any {
			m := good.winEvent(ps51)
			ps := make([]string, 36)
			for i := range ps {
				ps[i] = "System.Diagnostics.Eventing.Reader.EventProperty"
			}
			m["Properties"] = ps
			return m
		}()})), 0, 1},
		{"no Id", `[{"Properties":[]}]`, 0, 1},
		{"a member twice", strings.Replace(goodJSON, `"Id":3077`, `"Id":3077,"Id":3076`, 1), 0, 1},
		{"a named field twice", strings.Replace(string(jsonOf(t, []any{good.named()})), `"File Name":`, `"File Name":"x","File Name":`, 1), 0, 1},
		{"not an object", `[1]`, 0, 1},
		{"data after the array", goodJSON + "[]", 1, 1},
		{"bad time", strings.Replace(goodXML, "2026-06-02T08:00:00.1234567Z", "yesterday", 1), 0, 1},
		{"byte out of range", strings.Replace(goodJSON, "[2,2,2", "[2,256,2", 1), 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := Parse([]byte(c.data), "bad")
			if c.errs < 0 {
				if err == nil || !errors.Is(err, ErrMalformed) {
					t.Fatalf("Parse = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(l.Events) != c.events || len(l.Errors) != c.errs {
				t.Fatalf("%d events, errors %v; want %d events, %d errors", len(l.Events), l.Errors, c.events, c.errs)
			}
			for _, e := range l.Errors {
				if !errors.Is(e, ErrMalformed) || !strings.HasPrefix(e.Error(), "bad") {
					t.Errorf("error %q: not ErrMalformed naming the export", e)
				}
			}
		})
	}
}

// TestHexNumbers: USN is a HexInt64 and Status, Flags HexInt32 in the
// templates: either rendering reads.
func TestHexNumbers(t *testing.T) {
	f := fields{}
	for k, v := range map[string]string{"USN": "0x1F", "Status": "0xC0E90002", "Flags": "18"} {
		if err := f.add(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := f.uint("USN", 64); err != nil || n != 31 {
		t.Errorf("USN %d %v", n, err)
	}
	if n, err := f.uint("Status", 32); err != nil || n != 0xC0E90002 {
		t.Errorf("Status %x %v", n, err)
	}
	if n, err := f.uint("Flags", 32); err != nil || n != 18 {
		t.Errorf("Flags %d %v", n, err)
	}
}

func TestReadablePath(t *testing.T) {
	for in, want := range map[string]string{
		`\Device\HarddiskVolume3\Windows\a.dll`: `HarddiskVolume3:\Windows\a.dll`,
		`\device\harddiskvolume1\x`:             `harddiskvolume1:\x`,
		`\??\C:\Tools\b.exe`:                    `C:\Tools\b.exe`,
		`C:\plain.exe`:                          `C:\plain.exe`,
		`\Device\`:                              `\Device\`,
	} {
		if got := ReadablePath(in); got != want {
			t.Errorf("ReadablePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPolicyInfoID(t *testing.T) {
	doc := `<?xml version="1.0"?><SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"><Settings>
<Setting Provider="PolicyInfo" Key="Information" ValueName="Name"><Value><String>Contoso</String></Value></Setting>
<Setting Provider="PolicyInfo" Key="Information" ValueName="Id"><Value><String> 2026-05-01 </String></Value></Setting>
</Settings></SiPolicy>`
	if got := PolicyInfoID([]byte(doc)); got != "2026-05-01" {
		t.Errorf("PolicyInfoID = %q", got)
	}
	if got := PolicyInfoID([]byte("name: x\n")); got != "" {
		t.Errorf("YAML: %q", got)
	}
}

// TestSignaturesPerEventCapped: one ActivityID shared by thousands of
// signature events would cost their product; past
// limits.MaxEventSignatures they are not attached, and each is reported.
func TestSignaturesPerEventCapped(t *testing.T) {
	a := blockSpec(IDBlock, `\Device\HarddiskVolume3\a.exe`, auth1, auth256, flat1, flat256, testGUID)
	specs := []spec{a}
	extra := 5
	for i := range limits.MaxEventSignatures + extra {
		specs = append(specs, sigSpec(a.activity, a.computer, i%limits.MaxEventSignatures+1, limits.MaxEventSignatures, "p", "ca", repeat(1, 32), repeat(2, 32)))
	}
	l, err := Parse(xmlExport(specs...), "many.xml")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Events) != 1 || len(l.Events[0].Signatures) != limits.MaxEventSignatures || len(l.Errors) != extra {
		t.Fatalf("%d events, %d signatures attached, %d errors", len(l.Events), len(l.Events[0].Signatures), len(l.Errors))
	}
	if e := l.Errors[0]; e.Source != "many.xml" || e.ID != IDSignature || !strings.Contains(e.Error(), "MaxEventSignatures") {
		t.Errorf("error: %v", e)
	}
}
