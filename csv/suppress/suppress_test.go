package suppress

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/limits"
)

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func digestOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

const goodYAML = `format: csv-suppressions/v1
suppressions:
  - path: vendor/**/*.dll
    rule: CodeSign.MissingSigningCert
    justification: the vendor signs these at install time
    owner: platform
    ticket: SEC-1
  - sha256: %s
    rule: denied
    justification: a known sample the tests ship
    expires: 2026-12-07
  - path: "app.zip!/lib/*.so"
    rule: malformed
    justification: truncated on purpose
    expires: 2026-12-06
`

func TestParseYAML(t *testing.T) {
	data := fmt.Sprintf(goodYAML, hex.EncodeToString(digestOf("x")))
	f, err := Parse([]byte(data), "s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f.Format != "yaml" || len(f.Entries) != 3 {
		t.Fatalf("got %s with %d entries", f.Format, len(f.Entries))
	}
	e := f.Entries[0]
	if e.Kind != cipolicy.KindUnsigned || e.Line != 3 || e.Owner != "platform" || e.Ticket != "SEC-1" || e.Ref() != "s.yaml:3" {
		t.Errorf("entry 1: %+v", e)
	}
	if got := f.Entries[1].Digests.Get(cipolicy.SHA256); hex.EncodeToString(got) != hex.EncodeToString(digestOf("x")) {
		t.Errorf("entry 2's digest: %x", got)
	}
	// Expires names the last day an entry applies.
	if f.Entries[1].ExpiredAt(now) || !f.Entries[1].ExpiredAt(now.Add(12*time.Hour)) {
		t.Error("an entry expiring today applies until the end of the day")
	}
	if !f.Entries[2].ExpiredAt(now) {
		t.Error("an entry that expired yesterday applies")
	}
}

func TestParseYAMLProblems(t *testing.T) {
	head := "format: csv-suppressions/v1\nsuppressions:\n"
	tests := []struct {
		name, doc, want string
	}{
		{"no format", "suppressions: []\n", `missing field "format"`},
		{"other format", "format: csv-policy/v1\nsuppressions: []\n", "unsupported format"},
		{"no list", "format: csv-suppressions/v1\n", `missing field "suppressions"`},
		{"unknown field", head + "  - path: a.exe\n    rule: unsigned\n    justification: x\n    reason: y\n", `unknown field "reason"`},
		{"no justification", head + "  - path: a.exe\n    rule: unsigned\n", "missing justification"},
		{"blank justification", head + "  - path: a.exe\n    rule: unsigned\n    justification: '  '\n", "missing justification"},
		{"no rule", head + "  - path: a.exe\n    justification: x\n", `missing field "rule"`},
		{"unknown rule", head + "  - path: a.exe\n    rule: CodeSign.Whatever\n    justification: x\n", "not a finding csv reports"},
		{"allowed is no finding", head + "  - path: a.exe\n    rule: CodeSign.MatchingPolicy\n    justification: x\n", "not a finding csv reports"},
		{"no file", head + "  - rule: unsigned\n    justification: x\n", "names no file"},
		{"absolute glob", head + "  - path: /out/a.exe\n    rule: unsigned\n    justification: x\n", "can never match"},
		{"backslashes", head + "  - path: 'out\\a.exe'\n    rule: unsigned\n    justification: x\n", "can never match"},
		{"bad glob", head + "  - path: 'a[.exe'\n    rule: unsigned\n    justification: x\n", "invalid path glob"},
		{"short digest", head + "  - sha256: abcd\n    rule: unsigned\n    justification: x\n", "64 hexadecimal digits"},
		{"bad date", head + "  - path: a.exe\n    rule: unsigned\n    justification: x\n    expires: next year\n", "want a date"},
		{"duplicate", head + "  - path: a.exe\n    rule: unsigned\n    justification: x\n  - path: a.exe\n    rule: CodeSign.MissingSigningCert\n    justification: y\n", "repeats the suppression at s.yaml:3"},
		{"alias", head + "  - &a {path: a.exe, rule: unsigned, justification: x}\n  - *a\n", "aliases are not allowed"},
		{"two documents", "format: csv-suppressions/v1\nsuppressions: []\n---\nx: 1\n", "one YAML document"},
		{"long text", head + "  - path: a.exe\n    rule: unsigned\n    justification: " + strings.Repeat("x", limits.MaxSuppressionText+1) + "\n", "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.doc), "s.yaml")
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, %v; want ErrInvalid", f, err)
			}
			if f != nil {
				t.Error("a file returned with an error")
			}
			var le *LoadError
			if !errors.As(err, &le) || le.Source != "s.yaml" {
				t.Fatalf("not a LoadError naming the file: %v", err)
			}
			// The message is what the user reads.
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	d := digestOf("x")
	data := fmt.Sprintf(goodYAML, hex.EncodeToString(d))
	f, err := Parse([]byte(data), "s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := NewSet(now, f)
	if !s.Digests().Has(cipolicy.SHA256) {
		t.Error("the set does not ask for the digest its entries compare")
	}
	tests := []struct {
		name string
		f    Finding
		want *Entry
	}{
		{"glob and rule", Finding{Path: "vendor/x/y.dll", Kind: cipolicy.KindUnsigned}, f.Entries[0]},
		{"other rule", Finding{Path: "vendor/x/y.dll", Kind: cipolicy.KindNotAllowed}, nil},
		{"other path", Finding{Path: "bin/y.dll", Kind: cipolicy.KindUnsigned}, nil},
		{"digest", Finding{Path: "any/where.exe", Kind: cipolicy.KindDenied, Digests: cipolicy.Digests{cipolicy.SHA256: d}}, f.Entries[1]},
		{"other digest", Finding{Path: "any/where.exe", Kind: cipolicy.KindDenied, Digests: cipolicy.Digests{cipolicy.SHA256: digestOf("y")}}, nil},
		{"no digest computed", Finding{Path: "any/where.exe", Kind: cipolicy.KindDenied}, nil},
		{"expired", Finding{Path: "app.zip!/lib/a.so", Kind: cipolicy.KindMalformed}, nil},
	}
	for _, tt := range tests {
		if got := s.Match(tt.f); got != tt.want {
			t.Errorf("%s: matched %v, want %v", tt.name, got, tt.want)
		}
	}
	st := s.Statuses()
	if st[0].Uses != 1 || st[1].Uses != 1 || st[2].Uses != 0 || !st[2].Expired || st[1].Expired {
		t.Errorf("statuses: %+v", st)
	}
	if ex := Expired(st); len(ex) != 1 || ex[0].Entry != f.Entries[2] {
		t.Errorf("expired: %+v", ex)
	}
	if len(Unused(st)) != 0 {
		t.Errorf("unused: %+v", Unused(st))
	}
	var nilSet *Set
	if nilSet.Match(tests[0].f) != nil || nilSet.Statuses() != nil {
		t.Error("a nil set suppresses")
	}
}

// A member's path is matched as policy path rules match it.
func TestMatchMembers(t *testing.T) {
	f, err := Parse([]byte("format: csv-suppressions/v1\nsuppressions:\n  - path: '**/*.dll'\n    rule: unsigned\n    justification: x\n"), "s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := NewSet(now, f)
	for _, p := range []string{"a.dll", "pkg/app.zip!/lib/x.dll", "a.msi!/Binary/x.dll"} {
		if s.Match(Finding{Path: p, Kind: cipolicy.KindUnsigned}) == nil {
			t.Errorf("%s not matched", p)
		}
	}
	if s.Match(Finding{Path: "a.zip!/x.exe", Kind: cipolicy.KindUnsigned}) != nil {
		t.Error("x.exe matched *.dll")
	}
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("format: csv-suppressions/v1\nsuppressions: []\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("format: csv-suppressions/v1\n"), 0o644)
	if fs, err := LoadFiles([]string{good}); err != nil || len(fs) != 1 {
		t.Fatalf("%v, %v", fs, err)
	}
	_, err := LoadFiles([]string{good, bad, filepath.Join(dir, "none.yaml")})
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v; want both files' errors", err)
	}
	if !strings.Contains(err.Error(), bad) {
		t.Errorf("the error does not name %s: %v", bad, err)
	}
}

// The first entry that covers a finding wins, in the order given, however
// the set finds its candidates (by path, by digest, or one by one).
func TestMatchOrder(t *testing.T) {
	d := digestOf("x")
	doc := fmt.Sprintf(`format: csv-suppressions/v1
suppressions:
  - path: "bin/*.exe"
    rule: unsigned
    justification: glob first
  - path: bin/a.exe
    rule: unsigned
    justification: literal second
  - sha256: %x
    rule: unsigned
    justification: digest third
  - path: 'lib/b1.exe'
    sha256: %x
    rule: unsigned
    justification: literal with a digest
`, d, digestOf("y"))
	f, err := Parse([]byte(doc), "s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := NewSet(now, f)
	if len(s.scan) != 1 || len(s.byPath) != 2 || len(s.byDigest) != 1 {
		t.Errorf("index: %d scanned, %d paths, %d digests", len(s.scan), len(s.byPath), len(s.byDigest))
	}
	for _, tt := range []struct {
		f    Finding
		want string
	}{
		{Finding{Path: "bin/a.exe", Kind: cipolicy.KindUnsigned, Digests: cipolicy.Digests{cipolicy.SHA256: d}}, "glob first"},
		{Finding{Path: "lib/a.exe", Kind: cipolicy.KindUnsigned, Digests: cipolicy.Digests{cipolicy.SHA256: d}}, "digest third"},
		{Finding{Path: "lib/b1.exe", Kind: cipolicy.KindUnsigned, Digests: cipolicy.Digests{cipolicy.SHA256: digestOf("y")}}, "literal with a digest"},
		{Finding{Path: "lib/b1.exe", Kind: cipolicy.KindUnsigned}, ""},
		{Finding{Path: "lib/b2.exe", Kind: cipolicy.KindUnsigned, Digests: cipolicy.Digests{cipolicy.SHA256: digestOf("y")}}, ""},
	} {
		got := ""
		if e := s.Match(tt.f); e != nil {
			got = e.Justification
		}
		if got != tt.want {
			t.Errorf("%+v: matched %q, want %q", tt.f, got, tt.want)
		}
	}
}

// BenchmarkMatch matches blocked files against 10,000 literal entries (a
// Guardian file of a large repository) and 10 globs.
func BenchmarkMatch(b *testing.B) {
	var doc strings.Builder
	doc.WriteString("format: csv-suppressions/v1\nsuppressions:\n")
	for i := range 10000 {
		fmt.Fprintf(&doc, "  - {path: bin/f%d.exe, rule: unsigned, justification: x}\n", i)
	}
	for i := range 10 {
		fmt.Fprintf(&doc, "  - {path: 'vendor%d/**/*.dll', rule: unsigned, justification: x}\n", i)
	}
	f, err := Parse([]byte(doc.String()), "s.yaml")
	if err != nil {
		b.Fatal(err)
	}
	indexed := NewSet(now, f)
	// What matching cost before the index: every entry tried in turn.
	linear := NewSet(now, f)
	linear.byPath, linear.byDigest, linear.scan = nil, nil, nil
	for i := range linear.entries {
		linear.scan = append(linear.scan, i)
	}
	for _, bc := range []struct {
		name string
		s    *Set
	}{{"indexed", indexed}, {"linear", linear}} {
		b.Run(bc.name, func(b *testing.B) {
			for i := range b.N {
				if bc.s.Match(Finding{Path: fmt.Sprintf("bin/f%d.exe", i%20000), Kind: cipolicy.KindUnsigned}) == nil && i%20000 < 10000 {
					b.Fatal("no match")
				}
			}
		})
	}
}

// The caps: a file's size, its entries (both formats).
func TestCaps(t *testing.T) {
	many := "format: csv-suppressions/v1\nsuppressions: [" + strings.Repeat("{}, ", limits.MaxSuppressions) + "{}]\n"
	if _, err := Parse([]byte(many), "s.yaml"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("more than %d", limits.MaxSuppressions)) {
		t.Errorf("%d entries: %v", limits.MaxSuppressions+1, err)
	}
	var g strings.Builder
	g.WriteString(`{"version": "1.0.0", "results": {`)
	for i := range limits.MaxSuppressions + 1 {
		if i > 0 {
			g.WriteByte(',')
		}
		fmt.Fprintf(&g, `"%d": {}`, i)
	}
	g.WriteString("}}")
	if _, err := Parse([]byte(g.String()), ".gdnsuppress"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("more than %d", limits.MaxSuppressions)) {
		t.Errorf("%d results: %v", limits.MaxSuppressions+1, err)
	}
	big := make([]byte, limits.MaxSuppressionFile+1)
	for i := range big {
		big[i] = ' '
	}
	for _, head := range []string{"", "{"} {
		copy(big, head)
		if _, err := Parse(big, "big"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("%q...: %v", head, err)
		}
	}
}
