package triage

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// kv is one field of an event, in template order.
type kv struct {
	name  string
	value any // string, int, uint64, bool or []byte
}

// spec is an event built in a test, rendered in every export format.
type spec struct {
	id       int
	version  int
	time     string // RFC 3339
	activity string
	computer string
	record   int
	data     []kv
}

// blockSpec is a 3076/3077 event of template version 5 (every field of
// the documented template, lengths consistent with the values).
func blockSpec(id int, file string, auth1, auth256, flat1, flat256 []byte, policyGUID string) spec {
	u16 := func(s string) int { return len([]rune(s)) }
	d := []kv{
		{"FileNameLength", u16(file)}, {"File Name", file},
		{"ProcessNameLength", u16(`\Device\HarddiskVolume3\Windows\explorer.exe`)}, {"Process Name", `\Device\HarddiskVolume3\Windows\explorer.exe`},
		{"Requested Signing Level", 8}, {"Validated Signing Level", 1}, {"Status", "0xc0e90002"},
		{"SHA1 Hash Size", len(auth1)}, {"SHA1 Hash", auth1},
		{"SHA256 Hash Size", len(auth256)}, {"SHA256 Hash", auth256},
		{"SHA1 Flat Hash Size", len(flat1)}, {"SHA1 Flat Hash", flat1},
		{"SHA256 Flat Hash Size", len(flat256)}, {"SHA256 Flat Hash", flat256},
		{"USN", uint64(123456789012)}, {"SI Signing Scenario", 1},
		{"PolicyNameLength", 7}, {"PolicyName", "Contoso"},
		{"PolicyIDLength", 10}, {"PolicyID", "2026-05-01"},
		{"PolicyHashSize", 32}, {"PolicyHash", repeat(0xAA, 32)},
		{"OriginalFileNameLength", 8}, {"OriginalFileName", "tool.exe"},
		{"InternalNameLength", 4}, {"InternalName", "tool"},
		{"FileDescriptionLength", 9}, {"FileDescription", "Some tool"},
		{"ProductNameLength", 13}, {"ProductName", "Contoso Tools"},
		{"FileVersion", "2.1.0.7"}, {"PolicyGUID", policyGUID}, {"UserWriteable", false},
		{"PackageFamilyNameLength", 0}, {"PackageFamilyName", ""},
	}
	return spec{id: id, version: 5, time: "2026-06-02T08:00:00.1234567Z", activity: "{E4DB489E-1037-0002-799D-F2E43710DA01}", computer: "WS01.contoso.test", record: 2828, data: d}
}

// sigSpec is a 3089 event of template version 2.
func sigSpec(activity, computer string, n, total int, publisher, issuer string, pubTBS, issTBS []byte) spec {
	d := []kv{
		{"TotalSignatureCount", total}, {"Signature", n}, {"CacheState", 0},
		{"Hash Size", 32}, {"Hash", repeat(0x11, 32)}, {"PageHash", false},
		{"SignatureType", 1}, {"ValidatedSigningLevel", 4}, {"VerificationError", 21},
		{"Flags", 0}, {"PolicyBits", 2050},
		{"NotValidBefore", "2026-01-01T00:00:00Z"}, {"NotValidAfter", "2027-01-01T00:00:00Z"},
		{"PublisherNameLength", len(publisher)}, {"PublisherName", publisher},
		{"IssuerNameLength", len(issuer)}, {"IssuerName", issuer},
		{"PublisherTBSHashSize", len(pubTBS)}, {"PublisherTBSHash", pubTBS},
		{"IssuerTBSHashSize", len(issTBS)}, {"IssuerTBSHash", issTBS},
	}
	return spec{id: IDSignature, version: 2, time: "2026-06-02T08:00:00.1234567Z", activity: activity, computer: computer, record: 2829, data: d}
}

func repeat(b byte, n int) []byte { return []byte(strings.Repeat(string([]byte{b}), n)) }

func text(v any) string {
	switch x := v.(type) {
	case []byte:
		return strings.ToUpper(hex.EncodeToString(x))
	default:
		return fmt.Sprint(x)
	}
}

// xml renders the event as wevtutil qe /f:xml does.
func (s spec) xml() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-CodeIntegrity' Guid='{4ee76bd8-3cf4-44a0-a0ac-3937643e37a3}'/><EventID>%d</EventID><Version>%d</Version><Level>2</Level><Task>22</Task><Opcode>111</Opcode><Keywords>0x8000000000000000</Keywords><TimeCreated SystemTime='%s'/><EventRecordID>%d</EventRecordID><Correlation ActivityID='%s'/><Execution ProcessID='4' ThreadID='8'/><Channel>Microsoft-Windows-CodeIntegrity/Operational</Channel><Computer>%s</Computer><Security UserID='S-1-5-18'/></System><EventData>`,
		s.id, s.version, s.time, s.record, s.activity, s.computer)
	for _, d := range s.data {
		fmt.Fprintf(&b, `<Data Name='%s'>%s</Data>`, d.name, xmlEscape(text(d.value)))
	}
	b.WriteString(`</EventData></Event>`)
	return b.String()
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;").Replace(s)
}

// psStyle is how a PowerShell version writes byte arrays and dates.
type psStyle int

const (
	ps51 psStyle = iota // Windows PowerShell 5.1: byte arrays as numbers, /Date(ms)/
	ps7                 // PowerShell 7: byte arrays as base64, ISO dates
)

func (s spec) jsonValue(v any, st psStyle) any {
	switch x := v.(type) {
	case []byte:
		if st == ps7 {
			return base64.StdEncoding.EncodeToString(x)
		}
		out := make([]int, len(x))
		for i, c := range x {
			out[i] = int(c)
		}
		return out
	}
	return v
}

func (s spec) jsonTime(st psStyle) string {
	if st == ps7 {
		return s.time
	}
	t, err := parseTime(s.time)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("/Date(%d)/", t.UnixMilli())
}

// record is the event as Get-WinEvent | ConvertTo-Json -Depth 4 writes
// it: positional Properties.
func (s spec) winEvent(st psStyle) map[string]any {
	props := make([]map[string]any, len(s.data))
	for i, d := range s.data {
		props[i] = map[string]any{"Value": s.jsonValue(d.value, st)}
	}
	return map[string]any{
		"Id": s.id, "Version": s.version, "Qualifiers": nil, "Level": 2, "Task": 22, "Opcode": 111,
		"RecordId": s.record, "ProviderName": "Microsoft-Windows-CodeIntegrity",
		"ProviderId": "4ee76bd8-3cf4-44a0-a0ac-3937643e37a3", "LogName": "Microsoft-Windows-CodeIntegrity/Operational",
		"MachineName": s.computer, "TimeCreated": s.jsonTime(st), "ActivityId": strings.Trim(s.activity, "{}"),
		"Message": "Code Integrity determined that a process ...", "Properties": props,
	}
}

// named is the event with its fields by name (EventData).
func (s spec) named() map[string]any {
	m := s.winEvent(ps7)
	delete(m, "Properties")
	data := map[string]any{}
	for _, d := range s.data {
		data[d.name] = text(d.value)
	}
	m["EventData"] = data
	return m
}

func jsonOf(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func xmlExport(specs ...spec) []byte {
	var b strings.Builder
	for _, s := range specs {
		b.WriteString(s.xml())
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

func jsonExport(t testing.TB, st psStyle, specs ...spec) []byte {
	t.Helper()
	var recs []map[string]any
	for _, s := range specs {
		recs = append(recs, s.winEvent(st))
	}
	return jsonOf(t, recs)
}
