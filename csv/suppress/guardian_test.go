package suppress

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
)

// gdnResult builds a result of a .gdnsuppress file, in the shape the files
// Microsoft's repositories check in have.
func gdnEntry(sig string, fields map[string]any) map[string]any {
	r := map[string]any{"signature": sig, "alternativeSignatures": []string{}, "memberOf": []string{"default"},
		"createdDate": "2025-08-25 17:54:06Z"}
	for k, v := range fields {
		if v == nil {
			delete(r, k)
			continue
		}
		r[k] = v
	}
	return r
}

func gdnDoc(t testing.TB, hydrated bool, results map[string]map[string]any) []byte {
	t.Helper()
	doc := map[string]any{
		"hydrated": hydrated,
		"properties": map[string]string{
			"helpUri": "https://eng.ms/docs/microsoft-security/security/azure-security/cloudai-security-fundamentals-engineering/security-integration/guardian-wiki/microsoft-guardian/general/suppressions",
		},
		"version": "1.0.0",
		"suppressionSets": map[string]any{
			"default": map[string]string{"name": "default", "createdDate": "2025-01-28 06:29:05Z", "lastUpdatedDate": "2025-08-25 17:55:20Z"},
		},
		"results": results,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sig(s string) string { return hex.EncodeToString(digestOf(s)) }

func TestParseGuardian(t *testing.T) {
	a, b, c, d, e := sig("a"), sig("b"), sig("c"), sig("d"), sig("e")
	data := gdnDoc(t, true, map[string]map[string]any{
		// Mapped: csv's rule, a relative target, a justification.
		a: gdnEntry(a, map[string]any{"target": "bin/tool[1].exe", "tool": "codesign", "ruleId": "CodeSign.MissingSigningCert",
			"justification": "signed at release", "expirationDate": "2027-01-31 00:00:00Z"}),
		// Another tool's rule.
		b: gdnEntry(b, map[string]any{"target": "bin/node.exe", "tool": "binskim", "ruleId": "BA2008", "line": 3}),
		// A build agent's path.
		c: gdnEntry(c, map[string]any{"target": "file:///D:/a/_work/1/s/node.exe", "tool": "codesign", "ruleId": "CodeSign.MissingSigningCert", "justification": "x"}),
		// Unhydrated: a signature alone.
		d: gdnEntry(d, map[string]any{"expirationDate": nil}),
		e: gdnEntry(e, map[string]any{"target": `C:\agent\x.dll`, "ruleId": "malformed", "justification": "x"}),
	})
	f, err := Parse(data, ".gdnsuppress")
	if err != nil {
		t.Fatal(err)
	}
	if f.Format != "gdnsuppress" || len(f.Entries) != 1 {
		t.Fatalf("got %s with %d entries: %+v", f.Format, len(f.Entries), f.Entries)
	}
	en := f.Entries[0]
	if en.ID != a || en.Kind != cipolicy.KindUnsigned || en.Justification != "signed at release" || en.Tool != "codesign" ||
		en.Expires.Format("2006-01-02") != "2027-01-31" {
		t.Errorf("entry: %+v", en)
	}
	// The target is matched literally, its glob characters too.
	s := NewSet(now, f)
	if s.Match(Finding{Path: "bin/tool1.exe", Kind: cipolicy.KindUnsigned}) != nil {
		t.Error("the target matched as a glob")
	}
	if s.Match(Finding{Path: "bin/tool[1].exe", Kind: cipolicy.KindUnsigned}) != en {
		t.Error("the target did not match itself")
	}
	want := []string{
		"1 results not applied: a rule csv does not report (another tool's)",
		"1 results not applied: no target and no rule id (an unhydrated result: csv cannot compute Guardian's signatures)",
		"2 results not applied: an absolute target (a build agent's path: csv matches paths relative to the validated root)",
	}
	if strings.Join(f.Unmapped, "\n") != strings.Join(want, "\n") {
		t.Errorf("unmapped:\n%s\nwant:\n%s", strings.Join(f.Unmapped, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseGuardianProblems(t *testing.T) {
	a := sig("a")
	mapped := map[string]any{"target": "bin/a.exe", "ruleId": "unsigned", "justification": "x"}
	good := string(gdnDoc(t, true, map[string]map[string]any{a: gdnEntry(a, mapped)}))
	with := func(fields map[string]any) string {
		m := map[string]any{}
		for k, v := range mapped {
			m[k] = v
		}
		for k, v := range fields {
			m[k] = v
		}
		return string(gdnDoc(t, true, map[string]map[string]any{a: gdnEntry(a, m)}))
	}
	tests := []struct{ name, doc, want string }{
		{"no justification", with(map[string]any{"justification": nil}), "missing justification"},
		{"unknown field", with(map[string]any{"severity": "high"}), `unknown field "severity"`},
		{"unknown set", with(map[string]any{"memberOf": []string{"other"}}), `suppression set "other"`},
		{"key not signature", strings.Replace(good, `"`+a+`": {`, `"`+sig("z")+`": {`, 1), "key and signature"},
		{"repeated key", strings.Replace(good, `"hydrated": true,`, `"hydrated": true, "hydrated": false,`, 1), `key "hydrated" repeated`},
		{"repeated result", strings.Replace(good, `"results": {`, `"results": {"`+a+`": {}, `, 1), "repeated"},
		{"second value", good + "{}", "more than one JSON value"},
		{"other version", strings.Replace(good, `"1.0.0"`, `"2.0.0"`, 1), "version"},
		{"bad date", with(map[string]any{"expirationDate": "soon"}), "expirationDate"},
		{"deep", `{"properties": ` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "nested deeper"},
		{"no results", `{"version": "1.0.0"}`, `no "results"`},
		{"truncated", good[:len(good)/2], "unexpected EOF"},
		{"long string", with(map[string]any{"justification": strings.Repeat("x", 5000)}), "longer than"},
		{"target with dots", with(map[string]any{"target": "bin/../a.exe"}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.doc), ".gdnsuppress")
			if tt.want == "" {
				// Not an error: not applied, and said so.
				if err != nil || len(f.Entries) != 0 || len(f.Unmapped) != 1 {
					t.Fatalf("got %+v, %v", f, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || f != nil {
				t.Fatalf("got %v, %v; want ErrInvalid", f, err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), ".gdnsuppress: gdnsuppress: ") {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}
