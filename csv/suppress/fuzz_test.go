package suppress

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
)

// FuzzParse reads arbitrary bytes as a suppressions file of either format:
// never a panic; an error is a *LoadError (ErrInvalid) with no file; a file
// holds only entries that name a file, a rule csv reports and a
// justification; matching with them never panics.
func FuzzParse(f *testing.F) {
	yamlDoc := fmt.Sprintf(goodYAML, hex.EncodeToString(digestOf("x")))
	a, b := sig("a"), sig("b")
	gdn := string(gdnDoc(f, true, map[string]map[string]any{
		a: gdnEntry(a, map[string]any{"target": "bin/a.exe", "tool": "codesign", "ruleId": "CodeSign.MissingSigningCert",
			"justification": "x", "expirationDate": "2027-01-31 00:00:00Z"}),
		b: gdnEntry(b, map[string]any{"target": "file:///D:/a/_work/1/s/node.exe", "tool": "binskim", "ruleId": "BA2008"}),
	}))
	unhydrated := string(gdnDoc(f, false, map[string]map[string]any{a: gdnEntry(a, nil)}))
	for _, s := range []string{yamlDoc, gdn, unhydrated, "format: csv-suppressions/v1\nsuppressions: []\n", "{}", "[]", ""} {
		f.Add([]byte(s))
		for _, cut := range []int{len(s) / 3, len(s) / 2, len(s) - 2} {
			if cut > 0 && cut < len(s) {
				f.Add([]byte(s[:cut]))
			}
		}
		f.Add([]byte(strings.Replace(s, "e", "\x00", 3)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data, "fuzz")
		if err != nil {
			var le *LoadError
			if file != nil || !errors.Is(err, ErrInvalid) || !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("error %v (%T) with file %v", err, err, file)
			}
			return
		}
		for _, e := range file.Entries {
			if _, ok := RuleKind(e.Rule); !ok || e.Kind == "" || strings.TrimSpace(e.Justification) == "" || (e.Path == "" && len(e.Digests) == 0) {
				t.Fatalf("entry accepted: %+v", e)
			}
		}
		s := NewSet(now, file)
		for _, e := range file.Entries {
			s.Match(Finding{Path: "a/b.exe", Kind: e.Kind, Digests: cipolicy.Digests{cipolicy.SHA256: digestOf("x")}})
		}
		if len(s.Statuses()) != len(file.Entries) {
			t.Fatal("statuses")
		}
	})
}

// FuzzGuardian reads arbitrary bytes as a .gdnsuppress file: never a
// panic; an error is a *LoadError with no file; a file's entries are
// hydrated results of csv's rules with a justification and a clean
// relative target; checkJSON never accepts what the decoder refuses.
func FuzzGuardian(f *testing.F) {
	a, b, c := sig("a"), sig("b"), sig("c")
	f.Add(gdnDoc(f, true, map[string]map[string]any{
		a: gdnEntry(a, map[string]any{"target": "bin/a[1].exe", "tool": "codesign", "ruleId": "CodeSign.MissingSigningCert",
			"justification": "x", "expirationDate": "2027-01-31 00:00:00Z", "line": 4}),
		b: gdnEntry(b, map[string]any{"target": "file:///D:/a/_work/1/s/node.exe", "tool": "binskim", "ruleId": "BA2008",
			"alternativeSignatures": []string{c}}),
		c: gdnEntry(c, map[string]any{"target": "lib/x.dll", "ruleId": "malformed", "justification": "cut", "expirationDate": nil}),
	}))
	f.Add(gdnDoc(f, false, map[string]map[string]any{a: gdnEntry(a, nil)}))
	f.Add([]byte(`{"version":"1.0.0","results":{}}`))
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseGuardian(data, ".gdnsuppress")
		if err != nil {
			if file != nil || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v with file %v", err, file)
			}
			return
		}
		for _, e := range file.Entries {
			if len(e.ID) != 64 || e.Kind == "" || strings.TrimSpace(e.Justification) == "" || e.Path == "" ||
				strings.HasPrefix(e.Path, "/") || strings.Contains(e.Path, "://") {
				t.Fatalf("entry accepted: %+v", e)
			}
		}
	})
}
